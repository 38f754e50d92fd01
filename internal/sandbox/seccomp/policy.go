// Package seccomp builds and installs the seccomp-bpf filter every
// process-tier plugin runs under.
//
// The filter is an allowlist: the syscalls a Go or Rust program needs are
// allowed, a named set of dangerous ones fail with EPERM, and every other
// number fails with ENOSYS, so a runtime probing a newer call (clone3,
// futex_waitv …) falls back the way it would on an older kernel.
//
// # Why build and install separately?
//
// Build is a pure function from nothing to BPF instructions: it runs on the
// host, where tests can feed it to a BPF interpreter (golang.org/x/net/bpf)
// and check each decision without installing anything. Install is the only
// part that touches the kernel, and it runs in the sandbox launcher just
// before the plugin's execve.
//
// # Which denials kill?
//
// Only calls that cannot come from a correct program on this machine: a
// foreign audit architecture (a 32-bit int 0x80 call from a 64-bit process)
// and the x32 ABI. Both are classic ways around a filter, so the process is
// killed (SECCOMP_RET_KILL_PROCESS, SIGSYS). Every known but dangerous call
// (mount, ptrace, bpf …) returns EPERM instead: a plugin that tries one gets
// an error it can report, the attempt is visible in the plugin's own logs,
// and tests can assert the errno. Unknown numbers return ENOSYS.
package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
)

// Return values of the filter (SECCOMP_RET_* with the errno in the low bits).
const (
	RetAllow        uint32 = 0x7fff0000         // SECCOMP_RET_ALLOW
	RetKillProcess  uint32 = 0x80000000         // SECCOMP_RET_KILL_PROCESS
	RetErrno        uint32 = 0x00050000         // SECCOMP_RET_ERRNO
	RetEPERM               = RetErrno | 1       // EPERM
	RetENOSYS              = RetErrno | 38      // ENOSYS
	RetEAFNOSUPPORT        = RetErrno | 97      // EAFNOSUPPORT
	retSentinel            = uint32(0x00030000) // SECCOMP_RET_TRAP: never used by the policy, replaced by RetENOSYS
	x32SyscallBit          = uint32(0x40000000) // __X32_SYSCALL_BIT
	offsetNr               = 0                  // seccomp_data.nr
	offsetArch             = 4                  // seccomp_data.arch
)

// Flags that create namespaces; clone with any of them is refused.
const cloneNamespaceFlags = 0x00020000 | // CLONE_NEWNS
	0x02000000 | // CLONE_NEWCGROUP
	0x04000000 | // CLONE_NEWUTS
	0x08000000 | // CLONE_NEWIPC
	0x10000000 | // CLONE_NEWUSER
	0x20000000 | // CLONE_NEWPID
	0x40000000 // CLONE_NEWNET

// Terminal ioctls that inject input or poke the console.
const (
	ioctlTIOCSTI   = 0x5412
	ioctlTIOCLINUX = 0x541C
)

// Socket families a plugin may create: AF_UNIX, AF_INET, AF_INET6.
var socketFamilies = []uint32{1, 2, 10}

// Allowed returns the syscalls the plugin filter allows unconditionally, by
// name. Names missing from the running architecture's table (open on arm64,
// for example) are skipped by Build.
func Allowed() []string {
	return []string{
		// Files and descriptors.
		"read", "write", "open", "openat", "openat2", "close", "close_range", "creat",
		"stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
		"lseek", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
		"access", "faccessat", "faccessat2", "dup", "dup2", "dup3", "pipe", "pipe2",
		"fcntl", "flock", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
		"truncate", "ftruncate", "fallocate", "fadvise64", "readahead",
		"getdents", "getdents64", "getcwd", "chdir", "fchdir",
		"rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir",
		"link", "linkat", "unlink", "unlinkat", "symlink", "symlinkat", "readlink", "readlinkat",
		"mknod", "mknodat", "chmod", "fchmod", "fchmodat", "fchmodat2",
		"chown", "fchown", "lchown", "fchownat", "umask",
		"utime", "utimes", "utimensat", "futimesat",
		"setxattr", "lsetxattr", "fsetxattr", "getxattr", "lgetxattr", "fgetxattr",
		"listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
		"sendfile", "splice", "tee", "vmsplice", "copy_file_range", "cachestat",
		"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
		"memfd_create", "eventfd", "eventfd2", "signalfd", "signalfd4",
		"timerfd_create", "timerfd_settime", "timerfd_gettime",
		// Polling.
		"poll", "ppoll", "select", "pselect6",
		"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
		"io_setup", "io_destroy", "io_getevents", "io_pgetevents", "io_submit", "io_cancel",
		// Memory.
		"mmap", "munmap", "mprotect", "mremap", "msync", "mincore", "madvise", "brk",
		"mlock", "mlock2", "munlock", "mlockall", "munlockall", "membarrier",
		"pkey_mprotect", "pkey_alloc", "pkey_free", "map_shadow_stack", "mseal",
		// Processes and threads (clone is conditional, see Build).
		"fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
		"kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal",
		"getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
		"set_tid_address", "set_robust_list", "get_robust_list", "rseq", "restart_syscall",
		"arch_prctl", "set_thread_area", "get_thread_area", "prctl", "seccomp",
		"futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
		"sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
		"sched_getscheduler", "sched_setscheduler", "sched_getattr", "sched_setattr",
		"sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
		"getpriority", "setpriority", "getcpu",
		"getrlimit", "setrlimit", "prlimit64", "getrusage", "times", "sysinfo", "uname",
		// Identity (without capabilities these can only switch among the ids already held).
		"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
		"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
		"setgroups", "capget",
		// Signals.
		"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
		"rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "pause",
		// Time.
		"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
		"getitimer", "setitimer", "alarm",
		"timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
		// Sockets (socket and socketpair are conditional, see Build).
		"connect", "accept", "accept4", "bind", "listen", "shutdown",
		"sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
		"getsockname", "getpeername", "setsockopt", "getsockopt",
		// System V IPC, private to the plugin's IPC namespace.
		"shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
		"msgget", "msgsnd", "msgrcv", "msgctl",
		// Randomness and Landlock (which can only take rights away).
		"getrandom", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
	}
}

// Denied returns the dangerous syscalls the filter refuses with EPERM: they
// reach kernel attack surface, other processes, or system-wide state.
func Denied() []string {
	return []string{
		// Mounts and namespaces.
		"mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
		"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
		// Other processes.
		"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp", "process_madvise",
		// Kernel attack surface.
		"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
		"keyctl", "add_key", "request_key", "modify_ldt", "personality",
		"open_by_handle_at", "name_to_handle_at", "memfd_secret",
		"mbind", "set_mempolicy", "get_mempolicy", "migrate_pages", "move_pages", "set_mempolicy_home_node",
		"lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
		// System-wide state.
		"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
		"reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup",
		"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
		"iopl", "ioperm", "lookup_dcookie", "fanotify_init", "uselib", "ustat", "sysfs", "_sysctl",
		"capset",
	}
}

// Build returns the plugin filter for the running architecture. It is a
// pure function: the same binary always builds the same program.
//
// The program is laid out as:
//
//	load arch; arch != native        → KILL_PROCESS
//	load nr;   x32 number (amd64)    → KILL_PROCESS
//	clone with a CLONE_NEW* flag     → EPERM, other clones → ALLOW
//	socket, socketpair: AF_UNIX/INET/INET6 → ALLOW, other families → EAFNOSUPPORT
//	ioctl TIOCSTI or TIOCLINUX       → EPERM, other ioctls → ALLOW
//	clone3                           → ENOSYS (so libcs fall back to clone)
//	Allowed()                        → ALLOW
//	Denied()                         → EPERM
//	anything else                    → ENOSYS
//
// The argument rules are written here as blocks that always return: the
// library's own argument conditions fall through to the next rule with an
// argument, not the syscall number, in the accumulator. The library
// assembles the flat lists, which need no arguments.
func Build() ([]bpf.Instruction, error) {
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		return nil, fmt.Errorf("build seccomp filter: %w", err)
	}
	nr := func(name string) (uint32, bool) {
		n, ok := info.SyscallNames[name]
		return uint32(n), ok
	}
	known := func(names []string) []string {
		var out []string
		for _, n := range names {
			if _, ok := nr(n); ok {
				out = append(out, n)
			}
		}
		return out
	}

	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offsetArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: RetKillProcess},
		bpf.LoadAbsolute{Off: offsetNr, Size: 4},
	}
	if info.ID == arch.X86_64.ID {
		// x32 numbers are [0x40000000, 0x80000000); larger ones (-1 …)
		// are merely unknown and get ENOSYS at the end.
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 2},
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x80000000, SkipTrue: 1},
			bpf.RetConstant{Val: RetKillProcess},
		)
	}

	// Each rule: if nr matches, run a block that ends in a return.
	rule := func(name string, block ...bpf.Instruction) {
		n, ok := nr(name)
		if !ok {
			return
		}
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: n, SkipFalse: uint8(len(block))})
		prog = append(prog, block...)
	}
	// The kernel reads these arguments as 32-bit values (clone's flags
	// through lower_32_bits, socket's int family, ioctl's unsigned int
	// command), so the low word decides.
	arg0 := bpf.LoadAbsolute{Off: argOffset(0), Size: 4}
	arg1 := bpf.LoadAbsolute{Off: argOffset(1), Size: 4}
	rule("clone",
		arg0,
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: cloneNamespaceFlags, SkipFalse: 1},
		bpf.RetConstant{Val: RetEPERM},
		bpf.RetConstant{Val: RetAllow},
	)
	family := []bpf.Instruction{arg0}
	for i, fam := range socketFamilies {
		family = append(family, bpf.JumpIf{Cond: bpf.JumpEqual, Val: fam, SkipTrue: uint8(len(socketFamilies) - i)})
	}
	family = append(family, bpf.RetConstant{Val: RetEAFNOSUPPORT}, bpf.RetConstant{Val: RetAllow})
	rule("socket", family...)
	rule("socketpair", family...)
	rule("ioctl",
		arg1,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ioctlTIOCSTI, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ioctlTIOCLINUX, SkipTrue: 1},
		bpf.RetConstant{Val: RetAllow},
		bpf.RetConstant{Val: RetEPERM},
	)

	policy := libseccomp.Policy{
		DefaultAction: libseccomp.Action(retSentinel),
		Syscalls: []libseccomp.SyscallGroup{
			{Names: known([]string{"clone3"}), Action: libseccomp.Action(RetENOSYS)},
			{Names: known(Allowed()), Action: libseccomp.Action(RetAllow)},
			{Names: known(Denied()), Action: libseccomp.Action(RetEPERM)},
		},
	}
	body, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp policy: %w", err)
	}
	// The library ends the program with the default action; it only accepts
	// named actions there, so a sentinel stands in for ERRNO(ENOSYS).
	last, ok := body[len(body)-1].(bpf.RetConstant)
	if !ok || last.Val != retSentinel {
		return nil, errors.New("assemble seccomp policy: program does not end with the default action")
	}
	body[len(body)-1] = bpf.RetConstant{Val: RetENOSYS}
	return append(prog, body...), nil
}

// argOffset is the offset of the low 32 bits of argument i in struct
// seccomp_data.
func argOffset(i uint32) uint32 {
	off := 16 + 8*i
	if !littleEndian() {
		off += 4
	}
	return off
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// Raw is one assembled BPF instruction, as the kernel's struct sock_filter.
type Raw = bpf.RawInstruction

// Assemble encodes a program for Install.
func Assemble(prog []bpf.Instruction) ([]Raw, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	if len(raw) == 0 || len(raw) > 4096 {
		return nil, fmt.Errorf("assemble seccomp filter: %d instructions (must be 1 to 4096)", len(raw))
	}
	return raw, nil
}
