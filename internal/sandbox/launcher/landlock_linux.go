package launcher

import (
	"errors"
	"syscall"
	"unsafe"
)

// Landlock is driven with raw syscalls rather than go-landlock: that
// library applies rules to every thread through libpsx, which with cgo on
// (the default for native builds) links C code into every binary that
// imports this package, and needs a C toolchain to build. The launcher
// only needs the rules on the one thread that calls execve.

// Filesystem rights by the ABI version that introduced them, and the
// other Landlock constants (the kernel's UAPI values; sys_linux_test.go
// checks them against x/sys/unix).
const (
	llExecute           = 1 << 0
	llWriteFile         = 1 << 1
	llReadFile          = 1 << 2
	llReadDir           = 1 << 3
	llV1                = 1<<13 - 1 // execute … make_sym
	llRefer             = 1 << 13   // ABI 2
	llTruncate          = 1 << 14   // ABI 3
	llIoctlDev          = 1 << 15   // ABI 5
	llResolveUnx        = 1 << 16   // ABI 9
	llFileRights        = llExecute | llWriteFile | llReadFile | llTruncate | llIoctlDev
	llErrataScopeSignal = 0x2 // LANDLOCK_CREATE_RULESET_ERRATA bit: signal scoping fixed

	llNetBindTCP           = 1 << 0 // ABI 4
	llNetConnectTCP        = 1 << 1
	llNetBindUDP           = 1 << 2 // ABI 10
	llNetConnectSendUDP    = 1 << 3
	llScopeAbstractUnix    = 1 << 0 // ABI 6
	llScopeSignal          = 1 << 1
	llCreateRulesetVersion = 1 << 0
	llCreateRulesetErrata  = 1 << 1
	llRulePathBeneath      = 1
)

// pathBeneathAttr is struct landlock_path_beneath_attr (packed: the
// kernel reads 12 bytes).
type pathBeneathAttr struct {
	allowedAccess uint64
	parentFD      int32
}

// rulesetAttr is struct landlock_ruleset_attr up to the scoped field (ABI 6).
type rulesetAttr struct {
	fs, net, scoped uint64
}

// LandlockABI returns the kernel's Landlock ABI version, or why there is none.
func LandlockABI() (int, error) {
	v, _, e := syscall.Syscall(sysLandlockCreateRuleset, 0, 0, llCreateRulesetVersion)
	switch {
	case e == syscall.ENOSYS:
		return 0, errors.New("the kernel is built without Landlock (CONFIG_SECURITY_LANDLOCK)")
	case e == syscall.EOPNOTSUPP:
		return 0, errors.New("Landlock is disabled at boot: add landlock to the lsm= kernel parameter")
	case e != 0:
		return 0, wrap("landlock_create_ruleset", e)
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
		a.net = llNetBindTCP | llNetConnectTCP
	}
	if abi >= 5 {
		a.fs |= llIoctlDev
	}
	if abi >= 6 {
		a.scoped = llScopeAbstractUnix
		errata, _, e := syscall.Syscall(sysLandlockCreateRuleset, 0, 0, llCreateRulesetErrata)
		if e == 0 && errata&llErrataScopeSignal != 0 {
			a.scoped |= llScopeSignal
		}
	}
	if abi >= 9 {
		a.fs |= llResolveUnx
	}
	if abi >= 10 {
		a.net |= llNetBindUDP | llNetConnectSendUDP
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
	rs, _, e := syscall.Syscall(sysLandlockCreateRuleset, uintptr(unsafe.Pointer(&h)), unsafe.Sizeof(h), 0)
	if e != 0 {
		return "", wrap("landlock_create_ruleset", e)
	}
	defer syscall.Close(int(rs))
	for _, r := range rules {
		if r.Private && !private {
			continue
		}
		fd, err := syscall.Open(r.Path, oPath|syscall.O_CLOEXEC, 0)
		if err != nil {
			if err == syscall.ENOENT {
				continue // not in this tree (an optional device, say)
			}
			return "", wrap("landlock rule for "+r.Path, err)
		}
		access := accessRights(r.Access, h.fs)
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			access &= llFileRights
		}
		attr := pathBeneathAttr{allowedAccess: access, parentFD: int32(fd)}
		_, _, e := syscall.Syscall6(sysLandlockAddRule, rs, llRulePathBeneath,
			uintptr(unsafe.Pointer(&attr)), 0, 0, 0)
		syscall.Close(fd)
		if e != 0 {
			return "", wrap("landlock rule for "+r.Path, e)
		}
	}
	if _, _, e := syscall.Syscall(sysLandlockRestrictSelf, rs, 0, 0); e != 0 {
		return "", wrap("landlock_restrict_self", e)
	}
	detail := "ABI " + itoa(abi)
	if h.net != 0 {
		detail += ", TCP denied"
	}
	if h.scoped&llScopeSignal != 0 {
		detail += ", signals scoped"
	}
	return detail, nil
}
