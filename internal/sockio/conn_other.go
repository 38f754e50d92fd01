//go:build !linux

package sockio

import (
	"net"
	"syscall"
	"time"
)

// Conn is a connected Unix stream socket. Off Linux it is net.UnixConn's
// own I/O.
type Conn struct{ uc *net.UnixConn }

// New wraps a connected Unix socket; the Conn owns it from then on.
func New(uc *net.UnixConn) (*Conn, error) { return &Conn{uc: uc}, nil }

// Read reads up to len(p) bytes.
func (c *Conn) Read(p []byte) (int, error) { return c.uc.Read(p) }

// Write writes all of p or fails.
func (c *Conn) Write(p []byte) (int, error) { return c.uc.Write(p) }

// WriteBuffers writes the buffers in order, all of them, or fails.
func (c *Conn) WriteBuffers(bufs [][]byte) (int64, error) {
	b := net.Buffers(bufs)
	return b.WriteTo(c.uc)
}

// Close closes the socket.
func (c *Conn) Close() error { return c.uc.Close() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.uc.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.uc.SetWriteDeadline(t) }

// SyscallConn gives access to the socket's descriptor.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.uc.SyscallConn() }
