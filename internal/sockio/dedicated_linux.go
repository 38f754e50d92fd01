//go:build linux

package sockio

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Dedicated is a connected Unix stream socket that is its process's one
// busy connection, such as a plugin's to its host. While messages come
// close together, a read that finds nothing waits for the next one in the
// kernel, keeping its thread, as a C or Rust program's read does; otherwise
// it parks in the runtime's poller, as Conn's does. A read may run
// concurrently with a write; concurrent reads (or writes) take turns.
//
// # Why?
//
// A goroutine woken from the poller costs its process a thread wake and a
// trip through the scheduler before it can read; a thread blocked in the
// kernel on the socket reads at once. On a 2-vCPU VM that was the Go
// plugin's whole gap to the floor at 64 B (docs/performance.md). Blocking
// always would cost a thread per connection and wake the runtime's
// monitor thread on every wait after a pause, so reads linger only in a
// window: it opens when a wait in the poller ended within the linger, and
// closes when a whole linger passed without a message.
//
// The socket itself is never in the runtime's poller: a message arriving
// while a read waits in the kernel would also wake the poller's thread,
// with nobody parked there to hand it to. Instead, each direction has an
// epoll instance of its own, which is in the poller, and the socket is
// armed in it (one-shot) only when a read or write is about to park.
type Dedicated struct {
	fd      int
	linger  int64       // ns
	closing atomic.Bool // set by Close before it wakes the waiting calls; never reset

	rmu    sync.Mutex // held by a Read, including while it waits
	rep    *os.File   // the read direction's epoll instance
	rraw   syscall.RawConn
	parked time.Time // when the current Read parked; under rmu

	// The lingering window. hot, lingered and seen are the reader's (under
	// rmu); tfd is closed under tmu and armed under its read lock.
	tfd      int          // a timerfd that ticks once a linger while the window is open
	hot      bool         // the window is open
	lingered uint64       // messages a lingering read waited for
	seen     uint64       // lingered at the last tick
	answered atomic.Bool  // a write happened since a read last returned data
	in       atomic.Int64 // bytes read since the last write
	large    atomic.Bool  // the last message in, at the last write, was over lingerMax
	stop     atomic.Bool  // closing, or a read deadline is set: reads do not linger
	tmu      sync.RWMutex
	windows  windowStats

	wmu  sync.Mutex // held by a write, including while it waits
	wep  *os.File   // the write direction's epoll instance
	wraw syscall.RawConn
	iov  []syscall.Iovec
	one  [1][]byte
}

// windowStats counts windows opened and closed, for tests.
type windowStats struct{ opened, closed atomic.Uint32 }

// lingerMax is the largest message after which reads still linger. A large
// message is likely followed by another, and a lingering read would wake on
// its first part, take the CPU from the peer still writing it, and wait
// again for each further part (measured at 64 KiB: p50 1.31× the poller's;
// docs/performance.md).
const lingerMax = 16 << 10

// NewDedicated adopts fd, a connected Unix stream socket that must not be
// in the runtime's poller (os.NewFile and net.FileConn put it there); the
// Dedicated owns it from then on. linger is both how soon a wait must end
// for the window to open and how long the window stays open without a
// message; 0 never lingers.
func NewDedicated(fd int, linger time.Duration) (*Dedicated, error) {
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
	if err := syscall.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("sockio: put fd %d in non-blocking mode: %w", fd, err)
	}
	c := &Dedicated{fd: fd, linger: int64(linger), tfd: -1}
	if c.rep, c.rraw, err = pollerEpoll(fd, "read"); err != nil {
		return nil, err
	}
	if c.wep, c.wraw, err = pollerEpoll(fd, "write"); err != nil {
		c.rep.Close()
		return nil, err
	}
	if linger > 0 {
		tfd, _, e := syscall.RawSyscall(syscall.SYS_TIMERFD_CREATE, 1 /* CLOCK_MONOTONIC */, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if e != 0 {
			c.rep.Close()
			c.wep.Close()
			return nil, fmt.Errorf("sockio: create a timerfd: %w", e)
		}
		c.tfd = int(tfd)
	}
	return c, nil
}

// pollerEpoll makes an epoll instance in the runtime's poller, with fd
// registered in it, disarmed.
func pollerEpoll(fd int, dir string) (*os.File, syscall.RawConn, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("sockio: create the %s epoll instance: %w", dir, err)
	}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLONESHOT}); err != nil {
		syscall.Close(ep)
		return nil, nil, fmt.Errorf("sockio: register the socket in the %s epoll instance: %w", dir, err)
	}
	if err := syscall.SetNonblock(ep, true); err != nil {
		syscall.Close(ep)
		return nil, nil, fmt.Errorf("sockio: %s epoll instance: %w", dir, err)
	}
	f := os.NewFile(uintptr(ep), "sockio-"+dir+"-epoll") // non-blocking: goes into the poller
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, raw, nil
}

// Read reads up to len(p) bytes; at the end of the stream it returns
// io.EOF, once Close has been called net.ErrClosed, and past the read
// deadline os.ErrDeadlineExceeded. While a read deadline is set, reads
// do not linger.
func (c *Dedicated) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.closing.Load() {
			return 0, net.ErrClosed
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			if !c.parked.IsZero() {
				if c.tfd >= 0 && !c.hot && time.Since(c.parked) < time.Duration(c.linger) {
					c.openWindow()
				}
				c.parked = time.Time{}
			}
			if n == 0 {
				return 0, io.EOF
			}
			c.answered.Store(false)
			c.in.Add(int64(n))
			return int(n), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			return 0, c.opError("read", e)
		}
		// Linger only for the peer's answer to a message of ours, and not
		// after a large one (see lingerMax); a read missing the rest of a
		// message parks.
		if c.hot && c.answered.Load() && !c.large.Load() && !c.stop.Load() && c.lingerRead() {
			continue
		}
		if c.parked.IsZero() {
			c.parked = time.Now()
		}
		if err := c.park(c.rraw, syscall.EPOLLIN); err != nil {
			return 0, err
		}
	}
}

// openWindow makes reads linger until a whole linger passes without a
// message. It needs a spare processor: a lingering read keeps its own.
func (c *Dedicated) openWindow() {
	if runtime.GOMAXPROCS(0) < 2 {
		return
	}
	c.hot, c.seen = true, c.lingered
	c.windows.opened.Add(1)
	c.setTimer(c.linger)
}

// closeWindow stops reads lingering until a wait in the poller ends within
// the linger again.
func (c *Dedicated) closeWindow() {
	c.hot = false
	c.windows.closed.Add(1)
	c.setTimer(0)
}

// setTimer arms the timerfd to tick once after ns; 0 disarms it. A tick
// re-arms it while messages come: a periodic timer would go on firing
// while the goroutine runs a long handler, with nobody lingering.
func (c *Dedicated) setTimer(ns int64) {
	c.tmu.RLock()
	defer c.tmu.RUnlock()
	if c.tfd < 0 {
		return
	}
	spec := [2]syscall.Timespec{{}, syscall.NsecToTimespec(ns)} // interval, value
	syscall.RawSyscall6(syscall.SYS_TIMERFD_SETTIME, uintptr(c.tfd), 0, uintptr(unsafe.Pointer(&spec[0])), 0, 0, 0)
}

// lingerRead waits in the kernel for the socket to become readable while
// the window is open. It reports whether it did; false means park in the
// poller.
//
// The wait is a raw system call, so its thread keeps its processor
// (openWindow made sure there is another). Through syscall.Syscall it
// would hand the processor on, but every wait after a pause would then
// wake the runtime's monitor thread, which polls every 20 µs for a while
// after. A signal ends the wait (EINTR: the runtime preempting the
// goroutine, or stopping the world), and the goroutine parks.
//
// The wait has no timeout: on a VM, a timer set and cancelled for every
// message cost more than the poller's wake (measured: p50 45 µs against
// 18 µs at 64 B). The timerfd ticks once a linger instead.
//
// What holding the processor costs: goroutines the reader made runnable
// are taken over by another processor, as from any busy one, but the
// runtime counts this one as busy, so in some schedules no thread is left
// waiting in the poller for the plugin's other network waits, and one may
// be noticed only by the runtime's monitor, up to 10 ms later, as behind
// any long system call. The window closes a linger after the calls stop.
func (c *Dedicated) lingerRead() bool {
	pfd := [2]struct {
		fd      int32
		events  int16
		revents int16
	}{{fd: int32(c.fd), events: 0x1}, {fd: int32(c.tfd), events: 0x1}} // POLLIN
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd[0])), 2, 0, 0, 0, 0)
		if e != 0 || n == 0 {
			c.closeWindow()
			return false
		}
		if pfd[0].revents != 0 {
			c.lingered++
			return true
		}
		var ticks uint64
		syscall.RawSyscall(syscall.SYS_READ, uintptr(c.tfd), uintptr(unsafe.Pointer(&ticks)), 8)
		if c.lingered == c.seen || c.stop.Load() || c.closing.Load() {
			c.closeWindow()
			return false
		}
		c.seen = c.lingered
		c.setTimer(c.linger)
	}
}

// stopLingering makes reads wait only in the poller while stop holds, and
// a lingering read go there at once.
func (c *Dedicated) stopLingering(stop bool) {
	c.stop.Store(stop)
	if stop {
		c.setTimer(1)
	}
}

// park arms the socket for events in the epoll instance raw belongs to
// and waits in the runtime's poller until that instance reports them.
func (c *Dedicated) park(raw syscall.RawConn, events uint32) error {
	ev := syscall.EpollEvent{Events: events | syscall.EPOLLONESHOT, Fd: int32(c.fd)}
	var err error
	cerr := raw.Control(func(epfd uintptr) {
		_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, epfd, syscall.EPOLL_CTL_MOD, uintptr(c.fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
		if e != 0 {
			err = os.NewSyscallError("epoll_ctl", e)
		}
	})
	if cerr != nil {
		return c.waitError(cerr)
	}
	if err != nil {
		return err
	}
	return c.waitError(raw.Read(takeEvent)) // an epoll instance is readable when it has events
}

// takeEvent is the poller callback of park: it takes the armed event from
// the epoll instance, or reports false to wait for it.
func takeEvent(epfd uintptr) bool {
	var ev [1]syscall.EpollEvent
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(&ev[0])), 1, 0, 0, 0)
	return e == 0 && n > 0
}

// waitError maps an error of the epoll file to what a socket's would be.
func (c *Dedicated) waitError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrClosed) || c.closing.Load():
		return net.ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return os.ErrDeadlineExceeded
	}
	return err
}

// Write writes all of p or fails.
func (c *Dedicated) Write(p []byte) (int, error) {
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
func (c *Dedicated) WriteBuffers(bufs [][]byte) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writev(bufs)
}

func (c *Dedicated) writev(bufs [][]byte) (int64, error) {
	c.iov = appendIovecs(c.iov[:0], bufs)
	defer clear(c.iov) // keep no reference to the caller's buffers
	var wn int64
	for left := c.iov; len(left) > 0; {
		if c.closing.Load() {
			return wn, net.ErrClosed
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&left[0])), uintptr(min(len(left), maxIOV)))
		switch e {
		case 0:
			wn += int64(n)
			left = advance(left, int(n))
			c.large.Store(c.in.Swap(0) > lingerMax)
			c.answered.Store(true)
		case syscall.EINTR:
		case syscall.EAGAIN:
			if err := c.park(c.wraw, syscall.EPOLLOUT); err != nil {
				return wn, err
			}
		default:
			return wn, c.opError("write", e)
		}
	}
	return wn, nil
}

// opError wraps errno as net.Conn does, so errors.Is(err, syscall.EPIPE)
// and friends keep working.
func (c *Dedicated) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "unix", Err: os.NewSyscallError(op, errno)}
}

// SetReadDeadline sets the read deadline, as net.Conn's does. While one is
// set, reads wait only in the poller, so a deadline is met to the
// poller's precision; a read lingering in the kernel goes there at once.
func (c *Dedicated) SetReadDeadline(t time.Time) error {
	err := c.rep.SetReadDeadline(t)
	c.stopLingering(!t.IsZero())
	return err
}

// SetWriteDeadline sets the write deadline, as net.Conn's does.
func (c *Dedicated) SetWriteDeadline(t time.Time) error { return c.wep.SetReadDeadline(t) }

// SetDeadline sets the read and write deadlines.
func (c *Dedicated) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// Close closes the socket. A Read or write waiting for it returns
// net.ErrClosed; the socket is closed once no call uses it, so its number
// cannot be reused under one.
func (c *Dedicated) Close() error {
	if c.closing.Swap(true) {
		return net.ErrClosed
	}
	c.rep.Close()
	c.wep.Close()
	c.stopLingering(true)
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.tmu.Lock()
	if c.tfd >= 0 {
		syscall.Close(c.tfd)
		c.tfd = -1
	}
	c.tmu.Unlock()
	if err := syscall.Close(c.fd); err != nil {
		return &net.OpError{Op: "close", Net: "unix", Err: os.NewSyscallError("close", err)}
	}
	return nil
}

// SyscallConn gives access to the socket's descriptor (the rpc Watcher
// registers it). Its Read and Write fail: wait through the Dedicated.
func (c *Dedicated) SyscallConn() (syscall.RawConn, error) { return dedicatedRaw{c}, nil }

type dedicatedRaw struct{ c *Dedicated }

var errNotPolled = errors.New("sockio: a Dedicated socket is not in the runtime's poller; read and write it through its own methods")

func (r dedicatedRaw) Control(f func(fd uintptr)) error {
	if r.c.closing.Load() {
		return net.ErrClosed
	}
	f(uintptr(r.c.fd))
	return nil
}

func (dedicatedRaw) Read(func(fd uintptr) bool) error  { return errNotPolled }
func (dedicatedRaw) Write(func(fd uintptr) bool) error { return errNotPolled }
