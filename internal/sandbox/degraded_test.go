//go:build linux

package sandbox

import (
	"github.com/airlockhq/airlock/internal/testing/fixture"

	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDegraded runs attacks on a machine that lacks one or more
// mechanisms (disabled here): Applied must say exactly what is missing, and
// the remaining layers must still stop the attack.
func TestDegraded(t *testing.T) {
	needFull(t)
	cases := []struct {
		name    string
		disable []string
		spec    Spec
		args    func(t *testing.T) []string
		check   func(t *testing.T, r *run)
	}{
		{
			name:    "no mountns: Landlock still hides the host's files",
			disable: []string{MountNS},
			args:    func(*testing.T) []string { return []string{"read-shadow"} },
			check:   func(t *testing.T, r *run) { wantErrno(t, r, "EACCES") },
		},
		{
			name:    "no mountns: without the private /tmp, /tmp is not writable",
			disable: []string{MountNS},
			args:    func(*testing.T) []string { return []string{"disk-fill", "/tmp", "1"} },
			check:   func(t *testing.T, r *run) { wantErrno(t, r, "EACCES") },
		},
		{
			name:    "no mountns, no Landlock: the plugin's uid still cannot read root's files",
			disable: []string{MountNS, Landlock},
			args:    func(*testing.T) []string { return []string{"read-shadow"} },
			check:   func(t *testing.T, r *run) { wantErrno(t, r, "EACCES") },
		},
		{
			name:    "no Landlock: the empty network namespace still cuts loopback",
			disable: []string{Landlock},
			args:    func(*testing.T) []string { return []string{"net-tcp-loopback", "9"} },
			check:   func(t *testing.T, r *run) { wantErrno(t, r, "ENETUNREACH") },
		},
		{
			name:    "no seccomp: the pid namespace still hides the host from ptrace",
			disable: []string{Seccomp},
			args: func(t *testing.T) []string {
				return []string{"ptrace-host", strconv.Itoa(standIn(t).Process.Pid)}
			},
			check: func(t *testing.T, r *run) { wantErrno(t, r, "ESRCH") },
		},
		{
			name:    "no seccomp: without capabilities mount still fails",
			disable: []string{Seccomp},
			args:    func(*testing.T) []string { return []string{"try-syscalls"} },
			check: func(t *testing.T, r *run) {
				if !r.hasRes {
					t.Fatalf("no result (wait: %v)", r.waitErr)
				}
				for _, name := range []string{"mount", "kexec_load", "init_module", "setns", "bpf", "perf_event_open"} {
					if got := r.res.Calls[name]; got == "OK" {
						t.Errorf("%s succeeded without the seccomp filter", name)
					}
				}
				if got := r.res.Calls["ptrace"]; got != "ESRCH" {
					t.Errorf("ptrace = %s, want ESRCH (allowed, but nothing to trace)", got)
				}
			},
		},
		{
			name:    "no pidns: the host is visible, but signals to it are refused",
			disable: []string{PidNS},
			args: func(t *testing.T) []string {
				return []string{"kill-host", strconv.Itoa(standIn(t).Process.Pid)}
			},
			check: func(t *testing.T, r *run) { wantErrno(t, r, "EPERM") },
		},
		{
			name:    "no pidns: an orphan left behind dies with the plugin, and Wait returns",
			disable: []string{PidNS},
			args:    func(*testing.T) []string { return []string{"setsid-orphan"} },
			check: func(t *testing.T, r *run) {
				if !r.hasRes || r.res.PID == 0 {
					t.Fatalf("no orphan reported: %+v", r.res)
				}
				if r.events.TreeKills < 1 {
					t.Errorf("Events.TreeKills = %d: the sandbox did not kill what the plugin left", r.events.TreeKills)
				}
				if slices.Contains(fixture.PIDsOfUID(r.uid), r.res.PID) {
					t.Errorf("the orphan %d survived", r.res.PID)
				}
			},
		},
		{
			name:    "no userns: the launcher drops to the plugin's uid itself",
			disable: []string{UserNS},
			args:    func(*testing.T) []string { return []string{"ids"} },
			check: func(t *testing.T, r *run) {
				if !r.hasRes {
					t.Fatalf("no result (wait: %v)", r.waitErr)
				}
				u := strconv.Itoa(r.uid)
				want := "uid=" + u + "," + u + "," + u + " gid=" + u + "," + u + "," + u + " groups=[] capeff=0000000000000000"
				if r.res.Detail != want {
					t.Errorf("ids = %q, want %q", r.res.Detail, want)
				}
			},
		},
		{
			name:    "no cgroups: RLIMIT_NPROC still stops a fork bomb",
			disable: []string{CgroupMemory, CgroupPids, CgroupCPU, CgroupKill},
			spec:    Spec{Tasks: 32},
			args:    func(*testing.T) []string { return []string{"fork-bomb"} },
			check: func(t *testing.T, r *run) {
				if !r.hasRes || r.res.Errno != "EAGAIN" || r.res.Count >= 32 {
					t.Errorf("fork bomb: %+v, want EAGAIN before 32 tasks", r.res)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			for _, p := range fullRequire {
				if !slices.Contains(tc.disable, p) {
					spec.Require = append(spec.Require, p)
				}
			}
			r, out, errOut := start(t, spec, opts{disable: tc.disable}, tc.args(t)...)
			applied := r.sb.Applied()
			r.finish(t, time.Minute, out, errOut)
			for _, p := range Protections() {
				if slices.Contains(tc.disable, p) == slices.Contains(applied, p) {
					t.Errorf("Applied = %v: wrong about %s (disabled: %v)", applied, p, tc.disable)
				}
			}
			st := r.sb.Status()
			for _, p := range tc.disable {
				if m := st.Get(p); m.Available || !strings.Contains(m.Reason, "disabled by the test") {
					t.Errorf("Status(%s) = %+v, want unavailable with the reason", p, m)
				}
			}
			tc.check(t, r)
			assertNothingLeft(t, r)
		})
	}
}
