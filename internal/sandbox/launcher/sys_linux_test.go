package launcher

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Each pair of zero-length arrays fails to compile unless the launcher's
// constant equals x/sys/unix's for the GOARCH being built: a negative
// array length is an error either way round. Vet or test the package with
// GOARCH set to check another architecture.
var (
	_ [sysCloseRange - unix.SYS_CLOSE_RANGE]struct{}
	_ [unix.SYS_CLOSE_RANGE - sysCloseRange]struct{}
	_ [sysOpenat2 - unix.SYS_OPENAT2]struct{}
	_ [unix.SYS_OPENAT2 - sysOpenat2]struct{}
	_ [sysLandlockCreateRuleset - unix.SYS_LANDLOCK_CREATE_RULESET]struct{}
	_ [unix.SYS_LANDLOCK_CREATE_RULESET - sysLandlockCreateRuleset]struct{}
	_ [sysLandlockAddRule - unix.SYS_LANDLOCK_ADD_RULE]struct{}
	_ [unix.SYS_LANDLOCK_ADD_RULE - sysLandlockAddRule]struct{}
	_ [sysLandlockRestrictSelf - unix.SYS_LANDLOCK_RESTRICT_SELF]struct{}
	_ [unix.SYS_LANDLOCK_RESTRICT_SELF - sysLandlockRestrictSelf]struct{}

	_ [oPath - unix.O_PATH]struct{}
	_ [unix.O_PATH - oPath]struct{}
	_ [prSetNoNewPrivs - unix.PR_SET_NO_NEW_PRIVS]struct{}
	_ [unix.PR_SET_NO_NEW_PRIVS - prSetNoNewPrivs]struct{}
	_ [prCapAmbient - unix.PR_CAP_AMBIENT]struct{}
	_ [unix.PR_CAP_AMBIENT - prCapAmbient]struct{}
	_ [prCapAmbientClearAll - unix.PR_CAP_AMBIENT_CLEAR_ALL]struct{}
	_ [unix.PR_CAP_AMBIENT_CLEAR_ALL - prCapAmbientClearAll]struct{}
	_ [prCapbsetDrop - unix.PR_CAPBSET_DROP]struct{}
	_ [unix.PR_CAPBSET_DROP - prCapbsetDrop]struct{}
	_ [prSetSecurebits - unix.PR_SET_SECUREBITS]struct{}
	_ [unix.PR_SET_SECUREBITS - prSetSecurebits]struct{}
	_ [seccompSetModeFilter - unix.SECCOMP_SET_MODE_FILTER]struct{}
	_ [unix.SECCOMP_SET_MODE_FILTER - seccompSetModeFilter]struct{}
	_ [closeRangeCloexec - unix.CLOSE_RANGE_CLOEXEC]struct{}
	_ [unix.CLOSE_RANGE_CLOEXEC - closeRangeCloexec]struct{}
	_ [resolveNoMagiclinks - unix.RESOLVE_NO_MAGICLINKS]struct{}
	_ [unix.RESOLVE_NO_MAGICLINKS - resolveNoMagiclinks]struct{}
	_ [resolveNoSymlinks - unix.RESOLVE_NO_SYMLINKS]struct{}
	_ [unix.RESOLVE_NO_SYMLINKS - resolveNoSymlinks]struct{}
	_ [linuxCapabilityVersion3 - unix.LINUX_CAPABILITY_VERSION_3]struct{}
	_ [unix.LINUX_CAPABILITY_VERSION_3 - linuxCapabilityVersion3]struct{}
	_ [clockMonotonic - unix.CLOCK_MONOTONIC]struct{}
	_ [unix.CLOCK_MONOTONIC - clockMonotonic]struct{}
	_ [atFDCWD - unix.AT_FDCWD]struct{}
	_ [unix.AT_FDCWD - atFDCWD]struct{}

	_ [llExecute - unix.LANDLOCK_ACCESS_FS_EXECUTE]struct{}
	_ [unix.LANDLOCK_ACCESS_FS_EXECUTE - llExecute]struct{}
	_ [llWriteFile - unix.LANDLOCK_ACCESS_FS_WRITE_FILE]struct{}
	_ [unix.LANDLOCK_ACCESS_FS_WRITE_FILE - llWriteFile]struct{}
	_ [llReadFile - unix.LANDLOCK_ACCESS_FS_READ_FILE]struct{}
	_ [unix.LANDLOCK_ACCESS_FS_READ_FILE - llReadFile]struct{}
	_ [llReadDir - unix.LANDLOCK_ACCESS_FS_READ_DIR]struct{}
	_ [unix.LANDLOCK_ACCESS_FS_READ_DIR - llReadDir]struct{}
	_ [llV1 - (unix.LANDLOCK_ACCESS_FS_MAKE_SYM<<1 - 1)]struct{}
	_ [(unix.LANDLOCK_ACCESS_FS_MAKE_SYM<<1 - 1) - llV1]struct{}
	_ [llRefer - unix.LANDLOCK_ACCESS_FS_REFER]struct{}
	_ [unix.LANDLOCK_ACCESS_FS_REFER - llRefer]struct{}
	_ [llTruncate - unix.LANDLOCK_ACCESS_FS_TRUNCATE]struct{}
	_ [unix.LANDLOCK_ACCESS_FS_TRUNCATE - llTruncate]struct{}
	_ [llIoctlDev - unix.LANDLOCK_ACCESS_FS_IOCTL_DEV]struct{}
	_ [unix.LANDLOCK_ACCESS_FS_IOCTL_DEV - llIoctlDev]struct{}
	_ [llResolveUnx - unix.LANDLOCK_ACCESS_FS_RESOLVE_UNIX]struct{}
	_ [unix.LANDLOCK_ACCESS_FS_RESOLVE_UNIX - llResolveUnx]struct{}
	_ [llNetBindTCP - unix.LANDLOCK_ACCESS_NET_BIND_TCP]struct{}
	_ [unix.LANDLOCK_ACCESS_NET_BIND_TCP - llNetBindTCP]struct{}
	_ [llNetConnectTCP - unix.LANDLOCK_ACCESS_NET_CONNECT_TCP]struct{}
	_ [unix.LANDLOCK_ACCESS_NET_CONNECT_TCP - llNetConnectTCP]struct{}
	_ [llNetBindUDP - unix.LANDLOCK_ACCESS_NET_BIND_UDP]struct{}
	_ [unix.LANDLOCK_ACCESS_NET_BIND_UDP - llNetBindUDP]struct{}
	_ [llNetConnectSendUDP - unix.LANDLOCK_ACCESS_NET_CONNECT_SEND_UDP]struct{}
	_ [unix.LANDLOCK_ACCESS_NET_CONNECT_SEND_UDP - llNetConnectSendUDP]struct{}
	_ [llScopeAbstractUnix - unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET]struct{}
	_ [unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET - llScopeAbstractUnix]struct{}
	_ [llScopeSignal - unix.LANDLOCK_SCOPE_SIGNAL]struct{}
	_ [unix.LANDLOCK_SCOPE_SIGNAL - llScopeSignal]struct{}
	_ [llCreateRulesetVersion - unix.LANDLOCK_CREATE_RULESET_VERSION]struct{}
	_ [unix.LANDLOCK_CREATE_RULESET_VERSION - llCreateRulesetVersion]struct{}
	_ [llCreateRulesetErrata - unix.LANDLOCK_CREATE_RULESET_ERRATA]struct{}
	_ [unix.LANDLOCK_CREATE_RULESET_ERRATA - llCreateRulesetErrata]struct{}
	_ [llRulePathBeneath - unix.LANDLOCK_RULE_PATH_BENEATH]struct{}
	_ [unix.LANDLOCK_RULE_PATH_BENEATH - llRulePathBeneath]struct{}

	// The structs the launcher defines have the kernel's layout.
	_ [unsafe.Sizeof(openHow{}) - unsafe.Sizeof(unix.OpenHow{})]struct{}
	_ [unsafe.Sizeof(unix.OpenHow{}) - unsafe.Sizeof(openHow{})]struct{}
	_ [unsafe.Sizeof(capHeader{}) - unsafe.Sizeof(unix.CapUserHeader{})]struct{}
	_ [unsafe.Sizeof(unix.CapUserHeader{}) - unsafe.Sizeof(capHeader{})]struct{}
	_ [unsafe.Sizeof(capData{}) - unsafe.Sizeof(unix.CapUserData{})]struct{}
	_ [unsafe.Sizeof(unix.CapUserData{}) - unsafe.Sizeof(capData{})]struct{}
	_ [unsafe.Sizeof(pathBeneathAttr{}) - unsafe.Sizeof(unix.LandlockPathBeneathAttr{})]struct{}
	_ [unsafe.Sizeof(unix.LandlockPathBeneathAttr{}) - unsafe.Sizeof(pathBeneathAttr{})]struct{}
)

// syscall's own Statfs_t.Flags and Rlimit are what the launcher uses.
var _ = syscall.Statfs_t{}.Flags
