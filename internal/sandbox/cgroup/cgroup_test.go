//go:build linux

package cgroup

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		file    string
		wantV1  map[string]string
		wantV2  string
		wantErr error
	}{
		{"mountinfo-hybrid", map[string]string{
			CPU: "/sys/fs/cgroup/cpu,cpuacct", Memory: "/sys/fs/cgroup/memory",
			Pids: "/sys/fs/cgroup/pids", Freezer: "/sys/fs/cgroup/freezer",
		}, "/sys/fs/cgroup/unified", nil},
		{"mountinfo-v2", map[string]string{}, "/sys/fs/cgroup", nil},
		{"mountinfo-none", map[string]string{}, "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			l, err := parseMountinfo(data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseMountinfo error = %v, want %v", err, tt.wantErr)
			}
			if l.V2 != tt.wantV2 {
				t.Errorf("V2 = %q, want %q", l.V2, tt.wantV2)
			}
			if len(l.V1) != len(tt.wantV1) {
				t.Errorf("V1 = %v, want %v", l.V1, tt.wantV1)
			}
			for c, mp := range tt.wantV1 {
				if l.V1[c] != mp {
					t.Errorf("V1[%s] = %q, want %q", c, l.V1[c], mp)
				}
			}
		})
	}
}

func TestName_OwnerRoundTrip(t *testing.T) {
	n := Name("my.plugin/../x", "blue 1", 4242, "ab12")
	if strings.ContainsAny(n, "/ ") {
		t.Fatalf("Name = %q: contains a path separator or space", n)
	}
	pid, ok := ownerPID(n)
	if !ok || pid != 4242 {
		t.Fatalf("ownerPID(%q) = %d, %v; want 4242, true", n, pid, ok)
	}
	if _, ok := ownerPID("some-other-group"); ok {
		t.Fatal("ownerPID accepted a name Name did not make")
	}
}

func needCgroups(t *testing.T) Layout {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	l, err := Detect()
	if err != nil {
		t.Skipf("no cgroups: %v", err)
	}
	return l
}

const testParent = "airlock-test"

func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func TestGroup_LimitsKillRemove(t *testing.T) {
	l := needCgroups(t)
	name := Name("cgtest", "1", os.Getpid(), strconv.FormatInt(time.Now().UnixNano(), 36))
	g, err := Create(l, testParent, name, Limits{Memory: 64 << 20, CPU: 0.5, Tasks: 32})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = g.Remove(context.Background()) })
	t.Logf("kill via %q, missing %v", g.KillMethod(), g.Missing())

	checks := []struct {
		ctl, v1file, v2file, want string
	}{
		{Memory, "memory.limit_in_bytes", "memory.max", strconv.Itoa(64 << 20)},
		{Pids, "pids.max", "pids.max", "32"},
		{CPU, "cpu.cfs_quota_us", "cpu.max", "50000"},
	}
	for _, c := range checks {
		ok, via := g.Limited(c.ctl)
		if !ok {
			t.Logf("%s not limited here: %s", c.ctl, g.Missing()[c.ctl])
			continue
		}
		file := filepath.Join(g.v1[c.ctl], c.v1file)
		if via == "v2" {
			file = filepath.Join(g.V2Dir(), c.v2file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(string(b)); len(got) == 0 || got[0] != c.want {
			t.Errorf("%s = %q, want %q", file, b, c.want)
		}
	}

	cmd := startSleeper(t)
	if err := g.Place(cmd.Process.Pid, false); err != nil {
		t.Fatalf("Place: %v", err)
	}
	pids, err := g.Procs()
	if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Fatalf("Procs = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	if g.KillMethod() == "" {
		t.Skip("no way to kill a cgroup here: " + g.Missing()["kill"])
	}
	if err := g.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("sleeper ended with %v, want SIGKILL", err)
	}
	dirs := g.Dirs()
	if err := g.Remove(context.Background()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Remove (stat: %v)", d, err)
		}
	}
	if err := g.Remove(context.Background()); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// TestBegin_V1Later: Begin makes only the v2 group; Ready makes the v1
// groups with their limits, once; a group never made ready is still
// removed whole.
func TestBegin_V1Later(t *testing.T) {
	l := needCgroups(t)
	if l.V2 == "" || len(l.V1) == 0 {
		t.Skip("needs the hybrid layout (v1 controllers and a v2 hierarchy)")
	}
	v1Dirs := func(name string) []string {
		var out []string
		for _, mp := range l.V1 {
			d := filepath.Join(mp, testParent, name)
			if _, err := os.Stat(d); err == nil && !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
		return out
	}
	name := Name("cgtest", "begin", os.Getpid(), strconv.FormatInt(time.Now().UnixNano(), 36))
	g, err := Begin(l, testParent, name, Limits{Memory: 64 << 20, Tasks: 32})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	t.Cleanup(func() { _ = g.Remove(context.Background()) })
	if _, err := os.Stat(g.V2Dir()); err != nil {
		t.Fatalf("v2 group after Begin: %v", err)
	}
	if d := v1Dirs(name); len(d) != 0 {
		t.Fatalf("v1 groups exist before Ready: %v", d)
	}
	if err := g.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := g.Ready(); err != nil {
		t.Fatalf("second Ready: %v", err)
	}
	if d := v1Dirs(name); len(d) == 0 {
		t.Fatal("no v1 group after Ready")
	}
	if ok, via := g.Limited(Pids); ok && via == "v1" {
		if b, err := os.ReadFile(filepath.Join(g.v1[Pids], "pids.max")); err != nil || strings.TrimSpace(string(b)) != "32" {
			t.Errorf("pids.max = %q, %v; want 32", b, err)
		}
	}

	// Remove without Ready: nothing may be left in any hierarchy.
	name2 := name + "x"
	g2, err := Begin(l, testParent, name2, Limits{Memory: 64 << 20, Tasks: 32})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	v2 := g2.V2Dir()
	if err := g2.Remove(context.Background()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(v2); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after Remove (stat: %v)", v2, err)
	}
	if d := v1Dirs(name2); len(d) != 0 {
		t.Errorf("v1 groups left after Remove: %v", d)
	}
}

func TestSweep_RemovesGroupsOfDeadHosts(t *testing.T) {
	l := needCgroups(t)
	const deadPID = 4194303 // above any pid_max, so never a live process
	stale := Name("cgtest", "stale", deadPID, strconv.FormatInt(time.Now().UnixNano(), 36))
	live := Name("cgtest", "live", os.Getpid(), strconv.FormatInt(time.Now().UnixNano(), 36))
	gs, err := Create(l, testParent, stale, Limits{Tasks: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gs.Remove(context.Background()) })
	gl, err := Create(l, testParent, live, Limits{Tasks: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gl.Remove(context.Background()) })
	orphan := startSleeper(t)
	if err := gs.Place(orphan.Process.Pid, false); err != nil {
		t.Fatal(err)
	}

	removed, err := Sweep(context.Background(), l, testParent)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	found := false
	for _, n := range removed {
		if n == live {
			t.Errorf("Sweep removed %s, whose host (this process) is alive", live)
		}
		found = found || n == stale
	}
	if !found {
		t.Errorf("Sweep removed %v; want it to include %s", removed, stale)
	}
	for _, d := range gs.Dirs() {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the sweep", d)
		}
	}
	if err := orphan.Wait(); err == nil {
		t.Error("the process left in the stale group was not killed")
	}
	for _, d := range gl.Dirs() {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("live group dir %s: %v", d, err)
		}
	}
}
