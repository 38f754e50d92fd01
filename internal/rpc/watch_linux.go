//go:build linux

package rpc

import (
	"io"
	"syscall"
)

// watcher lets the goroutine that read a call run it inline without
// handing the reading role to another goroutine first.
//
// # Why?
//
// Handing the role over wakes an idle goroutine on every call, and in the Go
// runtime a goroutine made runnable wakes an idle thread to look for work: a
// futex wake, a spin and a sleep on another CPU, per call, which on a small
// machine competes with the very process waiting for the reply. Most calls
// are short and arrive one at a time, so nobody needs to read while they
// run. The reader therefore leaves the role free, arms a one-shot watch for
// the socket in a private epoll instance, runs the call, then disarms and
// reads on. A watcher goroutine sleeps in epoll_wait and wakes only if a
// frame arrives while a call runs (a concurrent call, a cancel, a ping, a
// host call's reply); it then hands the role to a worker. In the sequential
// case no thread is woken at all.
//
// It uses only the syscall package: the SDK that shares rpc must not gain
// a dependency.
type watcher struct {
	epfd  int
	stopR int // a pipe written to stop the watcher
	stopW int
	sock  int
}

// newWatcher sets up the watch for rwc's socket, or returns nil when rwc has
// no descriptor or epoll is unavailable (the caller falls back to handing
// the role over).
func newWatcher(rwc io.ReadWriteCloser) *watcher {
	sc, ok := rwc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var sock int
	if err := raw.Control(func(fd uintptr) { sock = int(fd) }); err != nil {
		return nil
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil
	}
	w := &watcher{epfd: epfd, stopR: p[0], stopW: p[1], sock: sock}
	// The socket starts disarmed: no events until arm.
	if syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, sock, &syscall.EpollEvent{Events: syscall.EPOLLONESHOT, Fd: int32(sock)}) != nil ||
		syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, w.stopR, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(w.stopR)}) != nil {
		w.close()
		return nil
	}
	return w
}

// arm asks for one wake when the socket is (or becomes) readable.
func (w *watcher) arm() error {
	return syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_MOD, w.sock, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLONESHOT, Fd: int32(w.sock)})
}

// disarm cancels an armed watch.
func (w *watcher) disarm() error {
	return syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_MOD, w.sock, &syscall.EpollEvent{Events: syscall.EPOLLONESHOT, Fd: int32(w.sock)})
}

// wait blocks until the armed watch fires (true) or stop was called
// (false).
func (w *watcher) wait() bool {
	var evs [2]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(w.epfd, evs[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return false
		}
		fired := false
		for _, ev := range evs[:n] {
			if int(ev.Fd) == w.stopR {
				return false
			}
			fired = true
		}
		if fired {
			return true
		}
	}
}

// stop wakes the watcher for good.
func (w *watcher) stop() {
	_, _ = syscall.Write(w.stopW, []byte{1})
}

func (w *watcher) close() {
	syscall.Close(w.epfd)
	syscall.Close(w.stopR)
	syscall.Close(w.stopW)
}
