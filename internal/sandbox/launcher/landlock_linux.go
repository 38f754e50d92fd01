package launcher

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock is driven with raw syscalls rather than go-landlock: that
// library applies rules to every thread through libpsx, which with cgo on
// (the default for native builds) links C code into every binary that
// imports this package, and needs a C toolchain to build. The launcher
// only needs the rules on the one thread that calls execve.

// Filesystem rights by the ABI version that introduced them.
const (
	llExecute           = unix.LANDLOCK_ACCESS_FS_EXECUTE
	llWriteFile         = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	llReadFile          = unix.LANDLOCK_ACCESS_FS_READ_FILE
	llReadDir           = unix.LANDLOCK_ACCESS_FS_READ_DIR
	llV1                = 1<<13 - 1                            // execute … make_sym
	llRefer             = unix.LANDLOCK_ACCESS_FS_REFER        // ABI 2
	llTruncate          = unix.LANDLOCK_ACCESS_FS_TRUNCATE     // ABI 3
	llIoctlDev          = unix.LANDLOCK_ACCESS_FS_IOCTL_DEV    // ABI 5
	llResolveUnx        = unix.LANDLOCK_ACCESS_FS_RESOLVE_UNIX // ABI 9
	llFileRights        = llExecute | llWriteFile | llReadFile | llTruncate | llIoctlDev
	llErrataScopeSignal = 0x2 // LANDLOCK_CREATE_RULESET_ERRATA bit: signal scoping fixed
)

// rulesetAttr is struct landlock_ruleset_attr up to the scoped field (ABI 6).
type rulesetAttr struct {
	fs, net, scoped uint64
}

// LandlockABI returns the kernel's Landlock ABI version, or why there is none.
func LandlockABI() (int, error) {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch {
	case e == unix.ENOSYS:
		return 0, errors.New("the kernel is built without Landlock (CONFIG_SECURITY_LANDLOCK)")
	case e == unix.EOPNOTSUPP:
		return 0, errors.New("Landlock is disabled at boot: add landlock to the lsm= kernel parameter")
	case e != 0:
		return 0, fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	return int(v), nil
}

// handled returns the rights this ABI can restrict.
func landlockHandled(abi int) rulesetAttr {
	var a rulesetAttr
	a.fs = llV1
	if abi >= 2 {
		a.fs |= llRefer
	}
	if abi >= 3 {
		a.fs |= llTruncate
	}
	if abi >= 4 {
		a.net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	}
	if abi >= 5 {
		a.fs |= llIoctlDev
	}
	if abi >= 6 {
		a.scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
		errata, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_ERRATA)
		if e == 0 && errata&llErrataScopeSignal != 0 {
			a.scoped |= unix.LANDLOCK_SCOPE_SIGNAL
		}
	}
	if abi >= 9 {
		a.fs |= llResolveUnx
	}
	if abi >= 10 {
		a.net |= unix.LANDLOCK_ACCESS_NET_BIND_UDP | unix.LANDLOCK_ACCESS_NET_CONNECT_SEND_UDP
	}
	return a
}

func accessRights(access string, handled uint64) uint64 {
	switch access {
	case "rx":
		return (llExecute | llReadFile | llReadDir) & handled
	case "ro":
		return (llReadFile | llReadDir) & handled
	case "dev":
		return (llReadFile | llWriteFile | llTruncate) & handled
	case "rw":
		return handled
	}
	return 0
}

// applyLandlock restricts the calling thread (and what it execs) to rules.
// No TCP port is granted: the plugin reaches the network only through the
// host. Signals and abstract unix sockets are scoped to the plugin's own
// domain. no_new_privs must already be set. private says whether the
// private mount tree is in place (rules marked Private apply only then).
func applyLandlock(rules []LandlockRule, private bool) (string, error) {
	abi, err := LandlockABI()
	if err != nil {
		return "", err
	}
	h := landlockHandled(abi)
	rs, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&h)), unsafe.Sizeof(h), 0)
	if e != 0 {
		return "", fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	defer unix.Close(int(rs))
	for _, r := range rules {
		if r.Private && !private {
			continue
		}
		fd, err := unix.Open(r.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // not in this tree (an optional device, say)
			}
			return "", fmt.Errorf("landlock rule for %s: %w", r.Path, err)
		}
		access := accessRights(r.Access, h.fs)
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			access &= llFileRights
		}
		attr := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(fd)}
		_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, rs, unix.LANDLOCK_RULE_PATH_BENEATH,
			uintptr(unsafe.Pointer(&attr)), 0, 0, 0)
		unix.Close(fd)
		if e != 0 {
			return "", fmt.Errorf("landlock rule for %s: %w", r.Path, e)
		}
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, rs, 0, 0); e != 0 {
		return "", fmt.Errorf("landlock_restrict_self: %w", e)
	}
	detail := fmt.Sprintf("ABI %d", abi)
	if h.net != 0 {
		detail += ", TCP denied"
	}
	if h.scoped&unix.LANDLOCK_SCOPE_SIGNAL != 0 {
		detail += ", signals scoped"
	}
	return detail, nil
}
