// Package seccomp builds the seccomp-bpf filter every process-tier plugin
// runs under.
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
// and check each decision without installing anything. Encode lays the
// assembled program out as the kernel's struct sock_filter array, and the
// sandbox launcher (internal/sandbox/launcher) hands those bytes to
// seccomp(2) just before the plugin's execve: the launcher, a fresh process
// on every spawn, links neither this package nor its BPF assembler.
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
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"unsafe"

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

//go:generate go run gen_tables.go

// syscallEntry is one row of the generated syscall table.
type syscallEntry struct {
	name string
	nr   uint32
}

// Special returns the syscalls decided by their arguments or by a rule of
// their own rather than by the two lists.
func Special() []string { return []string{"clone", "clone3", "socket", "socketpair", "ioctl"} }

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
// Decisions:
//
//	arch != native                   → KILL_PROCESS
//	x32 number (amd64)               → KILL_PROCESS
//	clone with a CLONE_NEW* flag     → EPERM, other clones → ALLOW
//	socket, socketpair: AF_UNIX/INET/INET6 → ALLOW, other families → EAFNOSUPPORT
//	ioctl TIOCSTI or TIOCLINUX       → EPERM, other ioctls → ALLOW
//	clone3                           → ENOSYS (so libcs fall back to clone)
//	Allowed()                        → ALLOW
//	Denied()                         → EPERM
//	anything else                    → ENOSYS
//
// # Why a tree?
//
// Since Linux 5.11 the kernel, when a filter is installed, runs it once per
// syscall number to cache which numbers it always allows. A linear chain of
// ~400 comparisons made that cost about 0.45 ms on every plugin start; a
// balanced tree over the syscall numbers reaches any decision in about ten
// comparisons (and the program is shorter too, as runs of numbers share a
// decision). The syscall numbers are generated from go-seccomp-bpf's
// tables (gen_tables.go), whose own linear assembler is the reference the
// tests compare this program with.
func Build() ([]bpf.Instruction, error) {
	if len(syscallTable) == 0 {
		return nil, fmt.Errorf("build seccomp filter: no syscall table for %s", runtime.GOARCH)
	}
	numbers := make(map[string]uint32, len(syscallTable))
	for _, e := range syscallTable {
		numbers[e.name] = e.nr
	}
	decisions := map[uint32][]bpf.Instruction{}
	set := func(names []string, block ...bpf.Instruction) error {
		for _, name := range names {
			n, ok := numbers[name]
			if !ok {
				continue // not on this architecture
			}
			if _, dup := decisions[n]; dup {
				return fmt.Errorf("build seccomp filter: %s is decided twice", name)
			}
			decisions[n] = block
		}
		return nil
	}
	ret := func(v uint32) bpf.Instruction { return bpf.RetConstant{Val: v} }

	// The kernel reads these arguments as 32-bit values (clone's flags
	// through lower_32_bits, socket's int family, ioctl's unsigned int
	// command), so the low word decides. Each block ends in a return, so
	// the accumulator never needs the syscall number back.
	arg0 := bpf.LoadAbsolute{Off: argOffset(0), Size: 4}
	arg1 := bpf.LoadAbsolute{Off: argOffset(1), Size: 4}
	family := []bpf.Instruction{arg0}
	for i, fam := range socketFamilies {
		family = append(family, bpf.JumpIf{Cond: bpf.JumpEqual, Val: fam, SkipTrue: uint8(len(socketFamilies) - i)})
	}
	family = append(family, ret(RetEAFNOSUPPORT), ret(RetAllow))
	for _, err := range []error{
		set([]string{"clone"}, arg0,
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: cloneNamespaceFlags, SkipFalse: 1},
			ret(RetEPERM), ret(RetAllow)),
		set([]string{"socket", "socketpair"}, family...),
		set([]string{"ioctl"}, arg1,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ioctlTIOCSTI, SkipTrue: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ioctlTIOCLINUX, SkipTrue: 1},
			ret(RetAllow), ret(RetEPERM)),
		set([]string{"clone3"}, ret(RetENOSYS)),
		set(Allowed(), ret(RetAllow)),
		set(Denied(), ret(RetEPERM)),
	} {
		if err != nil {
			return nil, err
		}
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offsetArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArch, SkipTrue: 1},
		ret(RetKillProcess),
		bpf.LoadAbsolute{Off: offsetNr, Size: 4},
	}
	if runtime.GOARCH == "amd64" {
		// x32 numbers are [0x40000000, 0x80000000); larger ones (-1 …)
		// are merely unknown and get ENOSYS from the tree.
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 2},
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x80000000, SkipTrue: 1},
			ret(RetKillProcess),
		)
	}
	return append(prog, tree(segments(decisions))...), nil
}

// segment is a run of syscall numbers from start (to the next segment's
// start) that share one decision.
type segment struct {
	start uint32
	block []bpf.Instruction
}

// segments covers every number from 0 with runs of equal decisions;
// numbers without one get ENOSYS.
func segments(decisions map[uint32][]bpf.Instruction) []segment {
	nrs := make([]uint32, 0, len(decisions))
	for n := range decisions {
		nrs = append(nrs, n)
	}
	slices.Sort(nrs)
	enosys := []bpf.Instruction{bpf.RetConstant{Val: RetENOSYS}}
	var segs []segment
	add := func(start uint32, block []bpf.Instruction) {
		if n := len(segs); n > 0 && len(block) == 1 && len(segs[n-1].block) == 1 && block[0] == segs[n-1].block[0] {
			return // same constant decision: the run goes on
		}
		segs = append(segs, segment{start, block})
	}
	next := uint32(0)
	for _, n := range nrs {
		if n > next {
			add(next, enosys)
		}
		add(n, decisions[n])
		next = n + 1
	}
	if next != 0 { // not wrapped past 2^32-1
		add(next, enosys)
	}
	return segs
}

// tree is a binary search over segs; the accumulator holds the number.
func tree(segs []segment) []bpf.Instruction {
	if len(segs) == 1 {
		return segs[0].block
	}
	mid := len(segs) / 2
	left, right := tree(segs[:mid]), tree(segs[mid:])
	// nr >= pivot: take the long jump over the left half; else skip it.
	out := []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: segs[mid].start, SkipFalse: 1},
		bpf.Jump{Skip: uint32(len(left))},
	}
	out = append(out, left...)
	return append(out, right...)
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

// Assemble encodes a program for Encode.
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

// Encode lays out raw as the kernel's struct sock_filter array, in native
// byte order, for passing to another process.
func Encode(raw []Raw) []byte {
	b := make([]byte, 0, 8*len(raw))
	for _, r := range raw {
		b = binary.NativeEndian.AppendUint16(b, r.Op)
		b = append(b, r.Jt, r.Jf)
		b = binary.NativeEndian.AppendUint32(b, r.K)
	}
	return b
}
