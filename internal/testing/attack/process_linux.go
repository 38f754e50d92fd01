package attack

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ptraceHost attaches to pid args[0] and, if that works, detaches at once.
// Count is 1 if the attach succeeded.
func ptraceHost(args []string) (Result, error) {
	pid, err := argPID(args, 0)
	if err != nil {
		return Result{}, err
	}
	var r Result
	if err := unix.PtraceAttach(pid); err != nil {
		r.failed(err)
		return r, nil
	}
	r.Count = 1
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, unix.WALL, nil)
	_ = unix.PtraceDetach(pid)
	r.Detail = "attached to " + strconv.Itoa(pid)
	return r, nil
}

// pidfdGetfdHost opens a pidfd for pid args[0] and copies its fd 1 (the
// host's stdout). Count is 1 if it got the descriptor.
func pidfdGetfdHost(args []string) (Result, error) {
	pid, err := argPID(args, 0)
	if err != nil {
		return Result{}, err
	}
	var r Result
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		r.failed(err)
		r.Detail = "pidfd_open"
		return r, nil
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, 1, 0)
	if err != nil {
		r.failed(err)
		r.Detail = "pidfd_getfd"
		return r, nil
	}
	unix.Close(fd)
	r.Count = 1
	return r, nil
}

// processVMReadvHost reads 8 bytes at an address of pid args[0]. EFAULT
// means the kernel allowed the call (the address was just wrong): Count is
// 1 then, as it is when the read succeeds.
func processVMReadvHost(args []string) (Result, error) {
	pid, err := argPID(args, 0)
	if err != nil {
		return Result{}, err
	}
	var r Result
	var buf [8]byte
	local := []unix.Iovec{{Base: &buf[0], Len: 8}}
	remote := []unix.RemoteIovec{{Base: 0x400000, Len: 8}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	switch {
	case err == unix.EFAULT:
		r.Count = 1
		r.failed(err)
		r.Detail = "the call was allowed; only the address was wrong"
	case err != nil:
		r.failed(err)
	default:
		r.Count = 1
		r.Detail = fmt.Sprintf("read %d bytes", n)
	}
	return r, nil
}

// killHost sends SIGKILL to pid args[0]. Count is 1 if the signal was sent.
func killHost(args []string) (Result, error) {
	pid, err := argPID(args, 0)
	if err != nil {
		return Result{}, err
	}
	var r Result
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		r.failed(err)
		return r, nil
	}
	r.Count = 1
	return r, nil
}

// killAll sends SIGKILL to every process it may signal (kill(-1)). This
// process survives it by definition; others do not.
func killAll([]string) (Result, error) {
	var r Result
	if err := unix.Kill(-1, unix.SIGKILL); err != nil {
		r.failed(err)
		return r, nil
	}
	r.Count = 1
	return r, nil
}

// setsidOrphan forks a child that starts a new session and forks a
// grandchild, then exits: the grandchild is an orphan in its own session
// and process group, out of reach of a group kill. PID is the grandchild.
func setsidOrphan([]string) (Result, error) {
	var r Result
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return r, fmt.Errorf("create pipe: %w", err)
	}
	defer unix.Close(p[0])
	child, errno := rawFork()
	if errno != 0 {
		unix.Close(p[1])
		r.failed(errno)
		return r, nil
	}
	if child == 0 {
		orphanChild(p[1])
	}
	unix.Close(p[1])
	var ws unix.WaitStatus
	_, _ = unix.Wait4(child, &ws, 0, nil)
	var buf [4]byte
	if n, err := unix.Read(p[0], buf[:]); err != nil || n != 4 {
		return r, fmt.Errorf("read the orphan's pid: %d bytes, %v", n, err)
	}
	r.PID = int(*(*int32)(unsafe.Pointer(&buf[0])))
	r.Count = 1
	return r, nil
}

// orphanChild runs in a raw-forked child: raw syscalls only.
//
//go:nosplit
func orphanChild(w int) {
	syscall.RawSyscall(syscall.SYS_SETSID, 0, 0, 0)
	pid, errno := rawFork()
	if pid == 0 && errno == 0 {
		waitForever()
	}
	v := int32(pid)
	syscall.RawSyscall(syscall.SYS_WRITE, uintptr(w), uintptr(unsafe.Pointer(&v)), 4)
	exitNow(0)
}

// trySyscalls calls each dangerous syscall with arguments the kernel
// rejects after its permission checks, and reports each outcome: the errno
// name, or "OK" when the call succeeded.
func trySyscalls([]string) (Result, error) {
	const nowhere = "/nonexistent-airlock-attack"
	path := func(s string) uintptr {
		p, _ := unix.BytePtrFromString(s)
		return uintptr(unsafe.Pointer(p))
	}
	// Each entry returns the raw errno; a success closes what it got.
	calls := map[string]func() syscall.Errno{
		"mount": func() syscall.Errno {
			_, _, e := unix.Syscall6(unix.SYS_MOUNT, path("none"), path(nowhere), path("tmpfs"), 0, 0, 0)
			return e
		},
		"umount2": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_UMOUNT2, path(nowhere), 0, 0)
			return e
		},
		"pivot_root": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_PIVOT_ROOT, path(nowhere), path(nowhere), 0)
			return e
		},
		"chroot": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_CHROOT, path(nowhere), 0, 0)
			return e
		},
		"unshare": func() syscall.Errno {
			// A Go process is multithreaded, so a user namespace is refused
			// (EINVAL) even where unshare itself is allowed.
			_, _, e := unix.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
			return e
		},
		"setns": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_SETNS, ^uintptr(0), 0, 0)
			return e
		},
		"clone-newuser": func() syscall.Errno {
			// CLONE_NEWUSER with CLONE_FS is an invalid pair: the kernel
			// answers EINVAL, so nothing is ever created.
			_, _, e := unix.RawSyscall6(unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_FS|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
			return e
		},
		"clone3": func() syscall.Errno {
			_, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
			return e
		},
		"bpf": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_BPF, 0, 0, 0)
			return e
		},
		"perf_event_open": func() syscall.Errno {
			_, _, e := unix.Syscall6(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0, 0)
			return e
		},
		"keyctl": func() syscall.Errno {
			// KEYCTL_GET_KEYRING_ID of the thread keyring, without creating it.
			_, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xffffffffffffffff), 0)
			return e
		},
		"userfaultfd": func() syscall.Errno {
			fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
			if e == 0 {
				unix.Close(int(fd))
			}
			return e
		},
		"kexec_load": func() syscall.Errno {
			// 1000 segments is over KEXEC_SEGMENT_MAX: EINVAL after the
			// permission check.
			_, _, e := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 1000, 0, 0, 0, 0)
			return e
		},
		"init_module": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, path(""))
			return e
		},
		"delete_module": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_DELETE_MODULE, path("nonexistent_airlock_attack"), unix.O_NONBLOCK, 0)
			return e
		},
		"ptrace": func() syscall.Errno {
			// PEEKUSER on a process this one does not trace: ESRCH.
			_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKUSR, uintptr(os.Getpid()), 0, 0, 0, 0)
			return e
		},
		"pidfd_getfd": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_PIDFD_GETFD, ^uintptr(0), 0, 0)
			return e
		},
		"process_vm_readv": func() syscall.Errno {
			_, _, e := unix.Syscall6(unix.SYS_PROCESS_VM_READV, uintptr(os.Getpid()), 0, 0, 0, 0, 0)
			return e
		},
		"process_vm_writev": func() syscall.Errno {
			_, _, e := unix.Syscall6(unix.SYS_PROCESS_VM_WRITEV, uintptr(os.Getpid()), 0, 0, 0, 0, 0)
			return e
		},
		"io_uring_setup": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 0, 0, 0)
			return e
		},
		"open_by_handle_at": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_OPEN_BY_HANDLE_AT, ^uintptr(0), 0, 0)
			return e
		},
		"reboot": func() syscall.Errno {
			// Wrong magic numbers: EINVAL after the permission check.
			_, _, e := unix.Syscall6(unix.SYS_REBOOT, 0, 0, 0, 0, 0, 0)
			return e
		},
		"swapon": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_SWAPON, path(nowhere), 0, 0)
			return e
		},
		"syslog": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_SYSLOG, 10, 0, 0) // SYSLOG_ACTION_SIZE_BUFFER
			return e
		},
		"personality": func() syscall.Errno {
			_, _, e := unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0) // query only
			return e
		},
		"socket-netlink": func() syscall.Errno {
			fd, _, e := unix.Syscall(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
			if e == 0 {
				unix.Close(int(fd))
			}
			return e
		},
		"socket-packet": func() syscall.Errno {
			fd, _, e := unix.Syscall(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
			if e == 0 {
				unix.Close(int(fd))
			}
			return e
		},
		"ioctl-tiocsti": func() syscall.Errno {
			// On a bad descriptor: EBADF if the filter lets it through.
			_, _, e := unix.Syscall(unix.SYS_IOCTL, ^uintptr(0), unix.TIOCSTI, 0)
			return e
		},
		"unknown-1023": func() syscall.Errno {
			_, _, e := unix.Syscall(1023, 0, 0, 0)
			return e
		},
	}
	r := Result{Calls: map[string]string{}}
	for name, call := range calls {
		r.Calls[name] = errnoName(call())
	}
	return r, nil
}

// seccompStatus starts a few more threads, then reports every thread's
// seccomp mode, no_new_privs bit, ids and effective capabilities.
func seccompStatus([]string) (Result, error) {
	release := make(chan struct{})
	ready := make(chan struct{})
	for range 3 {
		go func() {
			runtime.LockOSThread()
			ready <- struct{}{}
			<-release
		}()
		<-ready
	}
	defer close(release)
	var r Result
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		r.failed(err)
		return r, nil
	}
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		st := string(b)
		r.Threads = append(r.Threads, Thread{
			TID: tid, Seccomp: statusField(st, "Seccomp"), NoNewPrivs: statusField(st, "NoNewPrivs"),
			Uid: statusField(st, "Uid"), Gid: statusField(st, "Gid"), CapEff: statusField(st, "CapEff"),
		})
	}
	r.Count = int64(len(r.Threads))
	return r, nil
}

// fds lists the open file descriptors, read with raw syscalls so that the
// Go runtime opens none of its own first.
func fds([]string) (Result, error) {
	var r Result
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		// Without /proc, probe each number.
		for fd := 0; fd < 1024; fd++ {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
				r.FDs = append(r.FDs, fd)
			}
		}
		r.Detail = "probed (no /proc)"
		return r, nil
	}
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.ReadDirent(dir, buf)
		if err != nil {
			unix.Close(dir)
			r.failed(err)
			return r, nil
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	var targets []string
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd == dir {
			continue
		}
		r.FDs = append(r.FDs, fd)
	}
	slices.Sort(r.FDs)
	for _, fd := range r.FDs {
		t, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		targets = append(targets, strconv.Itoa(fd)+"="+t)
	}
	unix.Close(dir)
	r.Detail = strings.Join(targets, " ")
	return r, nil
}
