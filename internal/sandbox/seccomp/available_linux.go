package seccomp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

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
