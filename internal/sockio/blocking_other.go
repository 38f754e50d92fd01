//go:build !linux || 386

package sockio

import (
	"fmt"
	"net"
	"os"
)

// Blocking is Conn where blocking sockets are not wired up (off Linux, and
// on 386, which has no sendmsg system call of its own): the runtime's poller
// waits for it, deadlines and all.
type Blocking = Conn

// NewBlocking adopts fd, which must be a connected Unix stream socket; the
// Conn owns it from then on.
func NewBlocking(fd int) (*Blocking, error) {
	f := os.NewFile(uintptr(fd), "socket")
	nc, err := net.FileConn(f)
	f.Close() // FileConn holds its own duplicate
	if err != nil {
		return nil, fmt.Errorf("sockio: adopt fd %d: %w", fd, err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("sockio: fd %d is a %T, not a Unix stream socket", fd, nc)
	}
	return New(uc)
}
