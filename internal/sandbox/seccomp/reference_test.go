package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
)

// reference builds the same decisions as a linear program with
// go-seccomp-bpf's own assembler. It is slow to install (see Build) and
// exists so that tests can check Build against an independent assembler.
func reference() ([]bpf.Instruction, error) {
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	known := func(names []string) []string {
		var out []string
		for _, n := range names {
			if _, ok := info.SyscallNames[n]; ok {
				out = append(out, n)
			}
		}
		return out
	}
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
	// The argument rules, written as blocks that always return: the
	// library's own argument conditions fall through to the next rule with
	// an argument, not the syscall number, in the accumulator.
	full, err := Build()
	if err != nil {
		return nil, err
	}
	prefix := 4
	if runtime.GOARCH == "amd64" {
		prefix = 7
	}
	prog := slices.Clone(full[:prefix])
	nr := func(name string) uint32 { return uint32(info.SyscallNames[name]) }
	arg0 := bpf.LoadAbsolute{Off: argOffset(0), Size: 4}
	arg1 := bpf.LoadAbsolute{Off: argOffset(1), Size: 4}
	rule := func(name string, block ...bpf.Instruction) {
		if _, ok := info.SyscallNames[name]; ok {
			prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr(name), SkipFalse: uint8(len(block))})
			prog = append(prog, block...)
		}
	}
	rule("clone", arg0, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: cloneNamespaceFlags, SkipFalse: 1},
		bpf.RetConstant{Val: RetEPERM}, bpf.RetConstant{Val: RetAllow})
	for _, name := range []string{"socket", "socketpair"} {
		rule(name, arg0,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipTrue: 3},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 2, SkipTrue: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 10, SkipTrue: 1},
			bpf.RetConstant{Val: RetEAFNOSUPPORT}, bpf.RetConstant{Val: RetAllow})
	}
	rule("ioctl", arg1,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ioctlTIOCSTI, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ioctlTIOCLINUX, SkipTrue: 1},
		bpf.RetConstant{Val: RetAllow}, bpf.RetConstant{Val: RetEPERM})
	return append(prog, body...), nil
}

// TestTable_MatchesLibrary checks the generated table against
// go-seccomp-bpf's: regenerate (go generate) when this fails.
func TestTable_MatchesLibrary(t *testing.T) {
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		t.Skipf("go-seccomp-bpf has no table for %s", runtime.GOARCH)
	}
	have := map[string]uint32{}
	for _, e := range syscallTable {
		have[e.name] = e.nr
		if nr, ok := info.SyscallNames[e.name]; !ok || uint32(nr) != e.nr {
			t.Errorf("%s: table says %d, go-seccomp-bpf says %d (%v)", e.name, e.nr, nr, ok)
		}
	}
	if uint32(info.ID) != auditArch {
		t.Errorf("auditArch %#x, go-seccomp-bpf says %#x", auditArch, uint32(info.ID))
	}
	for _, n := range append(append(Allowed(), Denied()...), Special()...) {
		if _, ok := info.SyscallNames[n]; ok {
			if _, listed := have[n]; !listed {
				t.Errorf("%s exists on %s but is missing from the generated table: run go generate", n, runtime.GOARCH)
			}
		}
	}
}
