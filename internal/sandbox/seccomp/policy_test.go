package seccomp

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
)

// seccompData encodes struct seccomp_data for x/net/bpf's VM. The kernel
// loads 32-bit words in native (little-endian) order; the VM loads them big
// endian, so each word is written big endian at its native offset.
func seccompData(nr uint32, auditArch uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], auditArch)
	for i, a := range args {
		off := 16 + 8*i
		binary.BigEndian.PutUint32(b[off:], uint32(a))       // low word first on little endian
		binary.BigEndian.PutUint32(b[off+4:], uint32(a>>32)) // then the high word
	}
	return b
}

func run(t *testing.T, vm *bpf.VM, nr uint32, auditArch uint32, args ...uint64) uint32 {
	t.Helper()
	out, err := vm.Run(seccompData(nr, auditArch, args...))
	if err != nil {
		t.Fatalf("run filter: %v", err)
	}
	return uint32(out)
}

func retName(r uint32) string {
	switch r {
	case RetAllow:
		return "ALLOW"
	case RetKillProcess:
		return "KILL_PROCESS"
	case RetEPERM:
		return "ERRNO(EPERM)"
	case RetENOSYS:
		return "ERRNO(ENOSYS)"
	case RetEAFNOSUPPORT:
		return "ERRNO(EAFNOSUPPORT)"
	}
	return fmt.Sprintf("%#x", r)
}

func newVM(t *testing.T) (*bpf.VM, *arch.Info) {
	t.Helper()
	prog, err := Build()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if _, err := Assemble(prog); err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("load filter into the BPF VM: %v", err)
	}
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	return vm, info
}

func TestBuild_Decisions_amd64(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the table below uses amd64 numbers and the x32 ABI")
	}
	vm, info := newVM(t)
	nr := func(name string) uint32 {
		n, ok := info.SyscallNames[name]
		if !ok {
			t.Fatalf("no syscall %q on amd64", name)
		}
		return uint32(n)
	}
	const (
		cloneThread  = 0x003d0f00 // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
		cloneNewUser = 0x10000000
		cloneNewNet  = 0x40000000
		sigchld      = 17
	)
	native := uint32(info.ID)
	tests := []struct {
		name string
		nr   uint32
		arch uint32
		args []uint64
		want uint32
	}{
		{"read is allowed", nr("read"), native, nil, RetAllow},
		{"futex is allowed", nr("futex"), native, nil, RetAllow},
		{"execve is allowed", nr("execve"), native, nil, RetAllow},
		{"exit_group is allowed", nr("exit_group"), native, nil, RetAllow},
		{"unknown number gets ENOSYS", 1023, native, nil, RetENOSYS},
		{"unassigned number gets ENOSYS", 400, native, nil, RetENOSYS},
		{"negative number gets ENOSYS", 0xffffffff, native, nil, RetENOSYS},
		{"clone3 gets ENOSYS so libc falls back", nr("clone3"), native, nil, RetENOSYS},
		{"clone for a thread is allowed", nr("clone"), native, []uint64{cloneThread}, RetAllow},
		{"clone for a fork is allowed", nr("clone"), native, []uint64{sigchld}, RetAllow},
		{"clone with CLONE_NEWUSER is denied", nr("clone"), native, []uint64{cloneNewUser | sigchld}, RetEPERM},
		{"clone with CLONE_NEWNET is denied", nr("clone"), native, []uint64{cloneNewNet | cloneThread}, RetEPERM},
		{"mount is denied", nr("mount"), native, nil, RetEPERM},
		{"ptrace is denied", nr("ptrace"), native, nil, RetEPERM},
		{"bpf is denied", nr("bpf"), native, nil, RetEPERM},
		{"unshare is denied", nr("unshare"), native, nil, RetEPERM},
		{"pidfd_getfd is denied", nr("pidfd_getfd"), native, nil, RetEPERM},
		{"io_uring_setup is denied", nr("io_uring_setup"), native, nil, RetEPERM},
		{"socket AF_UNIX is allowed", nr("socket"), native, []uint64{1}, RetAllow},
		{"socket AF_INET6 is allowed", nr("socket"), native, []uint64{10}, RetAllow},
		{"socket AF_NETLINK is refused", nr("socket"), native, []uint64{16}, RetEAFNOSUPPORT},
		{"socket AF_PACKET is refused", nr("socket"), native, []uint64{17}, RetEAFNOSUPPORT},
		{"socket AF_UNIX with junk high bits is decided on the low word", nr("socket"), native, []uint64{1<<32 | 1}, RetAllow},
		{"socketpair AF_UNIX is allowed", nr("socketpair"), native, []uint64{1}, RetAllow},
		{"ioctl FIONBIO is allowed", nr("ioctl"), native, []uint64{3, 0x5421}, RetAllow},
		{"ioctl TIOCSTI is denied", nr("ioctl"), native, []uint64{0, ioctlTIOCSTI}, RetEPERM},
		{"ioctl TIOCLINUX is denied", nr("ioctl"), native, []uint64{0, ioctlTIOCLINUX}, RetEPERM},
		{"ioctl TIOCSTI hidden in high bits is denied", nr("ioctl"), native, []uint64{0, 0xffffffff00000000 | ioctlTIOCSTI}, RetEPERM},
		{"ioctl with a sign-extended command is allowed", nr("ioctl"), native, []uint64{0, 0xffffffff80045430}, RetAllow},
		{"clone with CLONE_NEWPID in the low word and junk above is denied", nr("clone"), native, []uint64{0xdead000000000000 | 0x20000000 | sigchld}, RetEPERM},
		{"i386 arch is killed", 1, uint32(arch.I386.ID), nil, RetKillProcess},
		{"aarch64 arch on amd64 is killed", 1, uint32(arch.AARCH64.ID), nil, RetKillProcess},
		{"x32 read is killed", 0x40000000, native, nil, RetKillProcess},
		{"x32 execve is killed", 0x40000000 | 520, native, nil, RetKillProcess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(t, vm, tt.nr, tt.arch, tt.args...); got != tt.want {
				t.Errorf("filter returned %s, want %s", retName(got), retName(tt.want))
			}
		})
	}
}

func TestBuild_EveryListedSyscall(t *testing.T) {
	{
		goarch := runtime.GOARCH
		t.Run(goarch, func(t *testing.T) {
			vm, info := newVM(t)
			check := func(names []string, want uint32) int {
				n := 0
				for _, name := range names {
					num, ok := info.SyscallNames[name]
					if !ok {
						continue
					}
					n++
					if got := run(t, vm, uint32(num), uint32(info.ID)); got != want {
						t.Errorf("%s: filter returned %s, want %s", name, retName(got), retName(want))
					}
				}
				return n
			}
			if n := check(Allowed(), RetAllow); n < 150 {
				t.Errorf("only %d allowed syscalls exist on %s; the table looks wrong", n, goarch)
			}
			if n := check(Denied(), RetEPERM); n < 30 {
				t.Errorf("only %d denied syscalls exist on %s; the table looks wrong", n, goarch)
			}
		})
	}
}

func TestLists_Disjoint(t *testing.T) {
	allowed := map[string]bool{}
	for _, n := range Allowed() {
		if allowed[n] {
			t.Errorf("%s listed twice in Allowed", n)
		}
		allowed[n] = true
	}
	for _, n := range Denied() {
		if allowed[n] {
			t.Errorf("%s is both allowed and denied", n)
		}
	}
	for _, n := range []string{"clone", "clone3", "socket", "socketpair", "ioctl"} {
		if allowed[n] {
			t.Errorf("%s must be decided by its own rule, not the plain allowlist", n)
		}
	}
}

// TestBuild_MatchesReference checks the tree program against the linear
// one go-seccomp-bpf assembles, on every syscall number a process can
// pass and on the argument values the rules look at.
func TestBuild_MatchesReference(t *testing.T) {
	tree, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reference()
	if err != nil {
		t.Fatal(err)
	}
	treeVM, err := bpf.NewVM(tree)
	if err != nil {
		t.Fatal(err)
	}
	refVM, err := bpf.NewVM(ref)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := arch.GetInfo(runtime.GOARCH)
	t.Logf("tree: %d instructions, reference: %d", len(tree), len(ref))
	nrs := []uint32{0x3fffffff, 0x40000000, 0x40000001, 0x400001ff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff}
	for n := uint32(0); n < 2048; n++ {
		nrs = append(nrs, n)
	}
	argSets := [][]uint64{
		nil,
		{0x10000000 | 17}, {0x003d0f00}, {17},
		{1}, {2}, {10}, {16}, {1<<32 | 2},
		{0, ioctlTIOCSTI}, {0, ioctlTIOCLINUX}, {0, 0x5421}, {0, 0xffffffff00005412},
	}
	for _, a := range []uint32{uint32(info.ID), uint32(arch.I386.ID), uint32(arch.ARM.ID)} {
		for _, n := range nrs {
			for _, args := range argSets {
				got := run(t, treeVM, n, a, args...)
				want := run(t, refVM, n, a, args...)
				if got != want {
					t.Fatalf("nr %d arch %#x args %#x: tree says %s, reference says %s", n, a, args, retName(got), retName(want))
				}
			}
		}
	}
}
