//go:build linux

package sockio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// maxIOV is the most buffers one writev takes (IOV_MAX).
const maxIOV = 1024

// Conn is a connected Unix stream socket. A read may run concurrently with
// a write; concurrent reads (or writes) take turns.
type Conn struct {
	uc  *net.UnixConn
	raw syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool // c.read, bound once: a read allocates nothing

	wmu     sync.Mutex
	onWait  func()          // runs before a write waits for the socket to drain
	iov     []syscall.Iovec // the buffers of the write in progress
	left    []syscall.Iovec // the part of iov not yet written
	wn      int64
	werr    error
	one     [1][]byte
	writeFn func(fd uintptr) bool // c.write, bound once
}

// New wraps a connected Unix socket; the Conn owns it from then on.
func New(uc *net.UnixConn) (*Conn, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &Conn{uc: uc, raw: raw}
	c.readFn, c.writeFn = c.read, c.write
	return c, nil
}

// Read reads up to len(p) bytes; at the end of the stream it returns
// io.EOF. A read deadline or Close ends a waiting Read with the error
// net.Conn would return (os.ErrDeadlineExceeded, net.ErrClosed).
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.raw.Read(c.readFn)
	c.rbuf = nil
	if err != nil {
		return 0, err
	}
	return c.rn, c.rerr
}

// read is the RawConn callback: it reports false to wait for readability.
func (c *Conn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case 0:
			c.rn = int(n)
			if n == 0 {
				c.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = c.opError("read", e)
			return true
		}
	}
}

// OnWriteWait sets f to run, on the writing goroutine, each time a write
// finds the socket full and is about to wait for the peer to read. The rpc
// layer uses it to give up the reading role before a write can block, so
// that two peers each blocked writing to the other cannot both stop
// reading. Set it before the first write.
func (c *Conn) OnWriteWait(f func()) { c.onWait = f }

// Write writes all of p or fails.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.one[0] = p
	n, err := c.writev(c.one[:])
	c.one[0] = nil
	return int(n), err
}

// WriteBuffers writes the buffers in order, all of them, with as few writev
// calls as the socket's buffer allows, or fails; it returns the bytes
// written. The rpc writer batches frames through it.
func (c *Conn) WriteBuffers(bufs [][]byte) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writev(bufs)
}

func (c *Conn) writev(bufs [][]byte) (int64, error) {
	c.iov = appendIovecs(c.iov[:0], bufs)
	c.left, c.wn, c.werr = c.iov, 0, nil
	var err error
	if len(c.left) > 0 {
		err = c.raw.Write(c.writeFn)
	}
	clear(c.iov) // keep no reference to the caller's buffers
	c.left = nil
	if err != nil {
		return c.wn, err
	}
	return c.wn, c.werr
}

// write is the RawConn callback: it reports false to wait for writability.
func (c *Conn) write(fd uintptr) bool {
	for len(c.left) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&c.left[0])), uintptr(min(len(c.left), maxIOV)))
		switch e {
		case 0:
			c.wn += int64(n)
			c.left = advance(c.left, int(n))
		case syscall.EINTR:
		case syscall.EAGAIN:
			if c.onWait != nil {
				c.onWait()
			}
			return false
		default:
			c.werr = c.opError("write", e)
			return true
		}
	}
	return true
}

// appendIovecs appends an iovec for each non-empty buffer of bufs.
func appendIovecs(iov []syscall.Iovec, bufs [][]byte) []syscall.Iovec {
	for _, b := range bufs {
		if len(b) > 0 {
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
	}
	return iov
}

// advance drops the first n bytes from iov.
func advance(iov []syscall.Iovec, n int) []syscall.Iovec {
	for n > 0 {
		l := int(iov[0].Len)
		if n < l {
			iov[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(iov[0].Base), n))
			iov[0].SetLen(l - n)
			return iov
		}
		n -= l
		iov = iov[1:]
	}
	return iov
}

// opError wraps errno as net.Conn does, so errors.Is(err, syscall.EPIPE)
// and friends keep working.
func (c *Conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "unix", Source: c.uc.LocalAddr(), Addr: c.uc.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// Close closes the socket; a Read or Write waiting for it returns
// net.ErrClosed.
func (c *Conn) Close() error { return c.uc.Close() }

// SetDeadline sets the read and write deadlines, as net.Conn's does.
func (c *Conn) SetDeadline(t time.Time) error { return c.uc.SetDeadline(t) }

// SetReadDeadline sets the read deadline, as net.Conn's does.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline, as net.Conn's does.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.uc.SetWriteDeadline(t) }

// SyscallConn gives access to the socket's descriptor (the rpc Watcher
// registers it).
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.raw, nil }
