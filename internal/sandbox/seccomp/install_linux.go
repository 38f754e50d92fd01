package seccomp

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install loads an assembled filter on the calling thread. The thread must
// already have no_new_privs set (or CAP_SYS_ADMIN). Threads created later,
// and the program the thread execs, inherit the filter.
//
// It allocates nothing, so it is safe between rlimits and execve.
func Install(raw []Raw) error {
	if len(raw) == 0 {
		return errors.New("install seccomp filter: empty program")
	}
	// bpf.RawInstruction and struct sock_filter share one layout:
	// u16 code, u8 jt, u8 jf, u32 k.
	prog := unix.SockFprog{
		Len:    uint16(len(raw)),
		Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0])),
	}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return os.NewSyscallError("seccomp", e)
	}
	return nil
}

// Available reports whether this kernel accepts seccomp filters, and why
// not when it does not.
func Available() (bool, string) {
	// SECCOMP_GET_ACTION_AVAIL succeeds for a supported action without
	// changing anything.
	for _, act := range []uint32{RetAllow, RetErrno, RetKillProcess} {
		a := act
		_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&a)))
		if e != 0 {
			if e == unix.ENOSYS || e == unix.EINVAL && act == RetAllow {
				return false, "the kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER)"
			}
			return false, "the kernel does not offer seccomp action " + actionName(act) + ": " + e.Error()
		}
	}
	return true, ""
}

func actionName(a uint32) string {
	switch a {
	case RetAllow:
		return "allow"
	case RetErrno:
		return "errno"
	case RetKillProcess:
		return "kill_process"
	}
	return "unknown"
}
