//go:build unix

package plugin

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/airlockhq/airlock/internal/sockio"
)

// hostConn adopts fd 3, the process tier's socketpair end.
func hostConn() (io.ReadWriteCloser, error) {
	if os.Getenv("AIRLOCK_PROTOCOL") == "" {
		return nil, &exitCodeError{code: exitNotHosted, err: ErrNotHosted}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(3, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return nil, &exitCodeError{code: exitNotHosted, err: fmt.Errorf("fd 3 is not the host's socket: %w", ErrNotHosted)}
	}
	f := os.NewFile(3, "airlock-host")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, &exitCodeError{code: exitProtocol, err: fmt.Errorf("adopt fd 3: %w", err)}
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, &exitCodeError{code: exitNotHosted, err: fmt.Errorf("fd 3 is not a Unix socket: %w", ErrNotHosted)}
	}
	sc, err := sockio.New(uc)
	if err != nil {
		uc.Close()
		return nil, &exitCodeError{code: exitProtocol, err: fmt.Errorf("adopt fd 3: %w", err)}
	}
	return sc, nil
}
