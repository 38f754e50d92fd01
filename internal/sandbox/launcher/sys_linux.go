package launcher

import (
	"errors"
	"syscall"
	"unsafe"
)

// The launcher talks to the kernel through package syscall and raw system
// calls only, not golang.org/x/sys/unix, os or fmt: those import time and
// internal/godebug (and fmt reflect and unicode), whose inits and heap
// cost every launcher ~80 µs before its first line runs (see doc.go).
// What syscall lacks is defined here; sys_linux_test.go checks every value
// against x/sys/unix at compile time, for each GOARCH it is built for.

// Syscall numbers added after Linux 5.0 are the same on every
// architecture, offset on MIPS (sysBase).
const (
	sysCloseRange            = sysBase + 436
	sysOpenat2               = sysBase + 437
	sysLandlockCreateRuleset = sysBase + 444
	sysLandlockAddRule       = sysBase + 445
	sysLandlockRestrictSelf  = sysBase + 446
)

const (
	oPath                   = 0x200000
	prSetNoNewPrivs         = 38
	prCapAmbient            = 47
	prCapAmbientClearAll    = 4
	prCapbsetDrop           = 24
	prSetSecurebits         = 28
	seccompSetModeFilter    = 1
	closeRangeCloexec       = 1 << 2
	resolveNoMagiclinks     = 0x02
	resolveNoSymlinks       = 0x04
	linuxCapabilityVersion3 = 0x20080522
	clockMonotonic          = 1
)

// openHow is struct open_how (openat2).
type openHow struct {
	flags, mode, resolve uint64
}

func openat2(path string, how *openHow) (int, error) {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	dirfd := atFDCWD
	fd, _, e := syscall.Syscall6(sysOpenat2, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(how)), unsafe.Sizeof(*how), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// atFDCWD is AT_FDCWD as a signed value, passed through uintptr.
const atFDCWD = -100

func prctl(option int, arg2 uintptr) error {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, uintptr(option), arg2, 0, 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// capHeader and capData are struct __user_cap_header_struct and
// __user_cap_data_struct.
type capHeader struct {
	version uint32
	pid     int32
}

type capData struct {
	effective, permitted, inheritable uint32
}

var errUnexpectedEOF = errors.New("unexpected EOF")

// mkdirAll creates dir and its missing parents, like os.MkdirAll.
func mkdirAll(dir string, perm uint32) error {
	err := syscall.Mkdir(dir, perm)
	if err == nil || err == syscall.EEXIST {
		return nil
	}
	if err != syscall.ENOENT {
		return wrap("mkdir "+dir, err)
	}
	if parent := dirname(dir); parent != dir {
		if err := mkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := syscall.Mkdir(dir, perm); err != nil && err != syscall.EEXIST {
		return wrap("mkdir "+dir, err)
	}
	return nil
}

// dirname is filepath.Dir for the clean absolute paths the launcher uses.
func dirname(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
