package proc

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// awaitExit returns once process pid has exited. It does not reap it: while
// the zombie exists its pid, which is also its process group id, cannot be
// reused.
//
// It waits on a pidfd in the runtime's poller when the kernel offers one
// (pidfd_open and waitid on a pidfd: Linux 5.4). A blocking waitid keeps
// the waiting goroutine's processor in the system call until the runtime's
// monitor hands it on, which takes up to 10 ms once the monitor has backed
// off; it also holds an OS thread per plugin for the plugin's whole life.
// With GOMAXPROCS 2, one cold start in ten took 8–19 ms instead of 3 while
// two such waits were in flight (docs/performance.md, hot-path log).
func awaitExit(pid int) {
	if f := pidfdOf(pid); f != nil {
		defer f.Close()
		if exitedOnPoller(f) {
			return
		}
	}
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// pidfdOf opens a pollable pidfd of pid, or returns nil.
func pidfdOf(pid int) *os.File {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil
	}
	// Non-blocking so that os.NewFile puts it in the poller; before Linux
	// 5.10 waitid ignores the flag, which WNOHANG makes moot.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), "pidfd")
}

// exitedOnPoller waits until the pidfd reports the exit and checks it with
// waitid. False means the pidfd could not be waited on (a kernel without
// waitid on pidfds), and the caller falls back to a blocking wait.
func exitedOnPoller(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	exited := false
	err = rc.Read(func(fd uintptr) bool {
		for {
			var info unix.Siginfo
			err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EAGAIN):
				return false // running (Linux 5.10+ says so for non-blocking pidfds)
			case err != nil:
				return true // no waitid on pidfds: fall back
			}
			exited = info.Signo != 0 // WNOHANG leaves it zero while running
			return exited
		}
	})
	return err == nil && exited
}
