//go:build linux && !386

package sockio

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Blocking is a connected Unix stream socket kept out of the Go runtime's
// network poller: a Read that finds nothing to read, or a write that finds
// the socket full, blocks its thread in the kernel until the peer has
// written or read, as a C or Rust program's would. It is meant for a
// process's only connection, such as a plugin's to its host, where one
// thread waiting costs nothing and the poller's wake costs a call's worth
// of latency (see the package doc). A read may run concurrently with a
// write; concurrent reads (or writes) take turns.
//
// It has no deadlines. Close ends a waiting Read or write.
type Blocking struct {
	fd      int
	closing atomic.Bool // set by Close before it wakes the waiting calls

	rmu sync.Mutex // held by a Read, including while it waits
	wmu sync.Mutex // held by a write, including while it waits

	closed bool            // the descriptor is closed; under rmu and wmu
	iov    []syscall.Iovec // the buffers of the write in progress; under wmu
	one    [1][]byte
}

// NewBlocking adopts fd, which must be a connected Unix stream socket: it
// puts the socket in blocking mode, and the Blocking owns it from then on.
// The descriptor must not be in the runtime's poller (os.NewFile and
// net.FileConn put it there), or the poller would be woken by its traffic
// with nobody to hand it to.
func NewBlocking(fd int) (*Blocking, error) {
	domain, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_DOMAIN)
	if err != nil {
		return nil, fmt.Errorf("sockio: fd %d is not a socket: %w", fd, err)
	}
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("sockio: fd %d is not a socket: %w", fd, err)
	}
	if domain != syscall.AF_UNIX || typ != syscall.SOCK_STREAM {
		return nil, fmt.Errorf("sockio: fd %d is a socket of domain %d and type %d, not a Unix stream socket (%d, %d)", fd, domain, typ, syscall.AF_UNIX, syscall.SOCK_STREAM)
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		return nil, fmt.Errorf("sockio: put fd %d in blocking mode: %w", fd, err)
	}
	return &Blocking{fd: fd}, nil
}

// Read reads up to len(p) bytes, waiting for at least one; at the end of
// the stream it returns io.EOF, and once Close has been called
// net.ErrClosed.
//
// The read goes through the runtime's system call bookkeeping
// (syscall.Syscall), so that while it waits the runtime can hand the
// thread's processor to other goroutines.
func (c *Blocking) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	for {
		n, _, e := syscall.Syscall(syscall.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == syscall.EINTR:
			continue
		case c.closing.Load() && (e != 0 || n == 0):
			return 0, net.ErrClosed // Close shut the socket down to wake us
		case e != 0:
			return 0, c.opError("read", e)
		case n == 0:
			return 0, io.EOF
		}
		return int(n), nil
	}
}

// Write writes all of p or fails.
func (c *Blocking) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.one[0] = p
	n, err := c.writev(c.one[:])
	c.one[0] = nil
	return int(n), err
}

// WriteBuffers writes the buffers in order, all of them, with as few
// system calls as the socket's buffer allows, or fails; it returns the
// bytes written.
func (c *Blocking) WriteBuffers(bufs [][]byte) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writev(bufs)
}

// writev sends bufs. It first tries without waiting and as a raw system
// call, which needs none of the runtime's bookkeeping because it cannot
// block; only when the socket is full does it send again, blocking. A
// socket whose peer is gone fails with EPIPE, never SIGPIPE.
func (c *Blocking) writev(bufs [][]byte) (int64, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	c.iov = c.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			c.iov = append(c.iov, v)
		}
	}
	defer clear(c.iov) // keep no reference to the caller's buffers
	var wn int64
	for left := c.iov; len(left) > 0; {
		var msg syscall.Msghdr
		msg.Iov = &left[0]
		setLen(&msg.Iovlen, min(len(left), maxIOV))
		n, _, e := syscall.RawSyscall(syscall.SYS_SENDMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&msg)), syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
		if e == syscall.EAGAIN {
			n, _, e = syscall.Syscall(syscall.SYS_SENDMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&msg)), syscall.MSG_NOSIGNAL)
		}
		switch {
		case e == syscall.EINTR || e == syscall.EAGAIN:
			continue
		case e != 0 && c.closing.Load():
			return wn, net.ErrClosed
		case e != 0:
			return wn, c.opError("write", e)
		}
		wn += int64(n)
		left = advance(left, int(n))
	}
	return wn, nil
}

// opError wraps errno as net.Conn does, so errors.Is(err, syscall.EPIPE)
// and friends keep working.
func (c *Blocking) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "unix", Err: os.NewSyscallError(op, errno)}
}

// Close closes the socket. A Read or write waiting for it is woken first
// (the socket is shut down, which the peer sees as the end of the stream)
// and returns net.ErrClosed; the descriptor is closed only once no call
// uses it, so its number cannot be reused under one.
func (c *Blocking) Close() error {
	if c.closing.Swap(true) {
		return net.ErrClosed
	}
	_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.closed = true
	if err := syscall.Close(c.fd); err != nil {
		return &net.OpError{Op: "close", Net: "unix", Err: os.NewSyscallError("close", err)}
	}
	return nil
}

// setLen sets a length field whose width depends on the architecture.
func setLen[T uint32 | uint64](field *T, n int) { *field = T(n) }

// SyscallConn gives access to the socket's descriptor (the rpc Watcher
// registers it). The RawConn's Read and Write fail: there is no poller to
// wait in.
func (c *Blocking) SyscallConn() (syscall.RawConn, error) { return blockingRaw{c}, nil }

type blockingRaw struct{ c *Blocking }

// errNoPoller is what the RawConn of a Blocking returns for Read and Write.
var errNoPoller = errors.New("sockio: a Blocking socket is not in the runtime's poller; read and write it through its own methods")

func (r blockingRaw) Control(f func(fd uintptr)) error {
	if r.c.closing.Load() {
		return net.ErrClosed
	}
	f(uintptr(r.c.fd))
	return nil
}

func (blockingRaw) Read(func(fd uintptr) bool) error  { return errNoPoller }
func (blockingRaw) Write(func(fd uintptr) bool) error { return errNoPoller }
