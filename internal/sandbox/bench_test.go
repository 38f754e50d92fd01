//go:build linux

package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/sandbox/launcher"
)

// The spawn benchmarks start a plugin that exits at once and wait for it:
// the victim's "true" mode (a Go program) and /bin/true (C, dynamically
// linked, the notes' yardstick). Plain is a child in its own process group,
// as the process tier starts one without a sandbox. Sandboxed is the full
// sandbox (Prepare, Start, Started, Wait, Close), with the launcher started
// by re-executing the host binary (here the test binary) or, for the
// DedicatedLauncher variant, a minimal binary (Spec.Launcher). Each reports
// the median, which a few slow outliers on a shared machine do not move.

type benchPlugin struct{ name, program, arg string }

func benchPlugins(b *testing.B) []benchPlugin {
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	ps := []benchPlugin{{"go-victim", "victim", "true"}}
	if _, err := os.Stat(filepath.Join(fixtureDir, "true")); err == nil {
		ps = append(ps, benchPlugin{"bin-true", "true", ""})
	}
	return ps
}

func (p benchPlugin) command() *exec.Cmd {
	if p.arg == "" {
		return exec.Command(filepath.Join(fixtureDir, p.program))
	}
	return exec.Command(filepath.Join(fixtureDir, p.program), p.arg)
}

func BenchmarkSpawn_Plain(b *testing.B) {
	for _, p := range benchPlugins(b) {
		b.Run(p.name, func(b *testing.B) {
			spawnBench(b, func() error {
				cmd := p.command()
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
				return cmd.Run()
			})
		})
	}
}

func BenchmarkSpawn_Sandboxed(b *testing.B) {
	for _, p := range benchPlugins(b) {
		b.Run(p.name, func(b *testing.B) { benchSandboxed(b, p, "") })
	}
}

func BenchmarkSpawn_SandboxedDedicatedLauncher(b *testing.B) {
	for _, p := range benchPlugins(b) {
		b.Run(p.name, func(b *testing.B) { benchSandboxed(b, p, launcherPath) })
	}
}

func benchSandboxed(b *testing.B, p benchPlugin, launcher string) {
	ctx := context.Background()
	// A host detects the machine once and reuses it.
	spec := Spec{Name: "bench", Instance: "1", Dir: fixtureDir, Program: p.program, IDs: testIDs,
		Launcher: launcher, Machine: DetectMachine("")}
	var applied []string
	spawnBench(b, func() error {
		cmd := p.command()
		s, err := Prepare(ctx, cmd, spec, nil)
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			s.Close()
			return err
		}
		err = s.Started()
		werr := cmd.Wait()
		applied = s.Applied()
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = werr
		}
		return err
	})
	if len(applied) != len(Protections()) {
		b.Errorf("applied only %v", applied)
	}
}

func spawnBench(b *testing.B, spawn func() error) {
	times := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if err := spawn(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(t0))
	}
	slices.Sort(times)
	if len(times) > 0 {
		b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms-median")
	}
}

// BenchmarkSpawn_Timeline runs the sandboxed spawn and logs, per step of
// the host and of the launcher, the median time since Prepare began and
// the median length of the step (since the previous step of the same
// side). Run with -v to see the table.
func BenchmarkSpawn_Timeline(b *testing.B) {
	for _, p := range benchPlugins(b) {
		for _, l := range []struct{ name, path string }{{"reexec", ""}, {"dedicated", launcherPath}} {
			b.Run(p.name+"/"+l.name, func(b *testing.B) { timelineBench(b, p, l.path) })
		}
	}
}

func timelineBench(b *testing.B, p benchPlugin, launcherBin string) {
	ctx := context.Background()
	spec := Spec{Name: "bench", Instance: "1", Dir: fixtureDir, Program: p.program, IDs: testIDs,
		Launcher: launcherBin, Machine: DetectMachine("")}
	type side struct {
		names []string
		at    map[string][]int64 // since Prepare began
		step  map[string][]int64 // since the previous launcher.Stamp of the same side
	}
	newSide := func() *side { return &side{at: map[string][]int64{}, step: map[string][]int64{}} }
	host, launch := newSide(), newSide()
	add := func(sd *side, st []launcher.Stamp, t0 int64) {
		for i, x := range st {
			if _, ok := sd.at[x.Stage]; !ok {
				sd.names = append(sd.names, x.Stage)
			}
			sd.at[x.Stage] = append(sd.at[x.Stage], x.At-t0)
			if i > 0 {
				sd.step[x.Stage] = append(sd.step[x.Stage], x.At-st[i-1].At)
			}
		}
	}
	spawnBench(b, func() error {
		cmd := p.command()
		s, err := Prepare(ctx, cmd, spec, nil)
		if err != nil {
			return err
		}
		beforeStart := launcher.Monotonic()
		if err := cmd.Start(); err != nil {
			s.Close()
			return err
		}
		afterStart := launcher.Monotonic()
		err = s.Started()
		werr := cmd.Wait()
		waited := launcher.Monotonic()
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		closed := launcher.Monotonic()
		if err == nil {
			err = werr
		}
		hs := slices.Clone(s.stamps)
		hs = append(hs, launcher.Stamp{Stage: "cmd.Start called", At: beforeStart}, launcher.Stamp{Stage: "cmd.Start returned", At: afterStart},
			launcher.Stamp{Stage: "cmd.Wait returned", At: waited}, launcher.Stamp{Stage: "Close returned", At: closed})
		slices.SortStableFunc(hs, func(a, b launcher.Stamp) int { return int(a.At - b.At) })
		t0 := s.stamps[0].At
		add(host, hs, t0)
		// The launcher's first step is timed from cmd.Start's return (its
		// exec is done then): Go runtime start and package inits.
		ls := append([]launcher.Stamp{{Stage: "cmd.Start returned", At: afterStart}}, s.launcherStamps...)
		add(launch, ls, t0)
		return err
	})
	med := func(v []int64) float64 {
		if len(v) == 0 {
			return 0
		}
		v = slices.Clone(v)
		slices.Sort(v)
		return float64(v[len(v)/2]) / 1e3
	}
	for _, sd := range []struct {
		name string
		s    *side
	}{{"host", host}, {"launcher", launch}} {
		b.Logf("%s step                      at(µs)  step(µs)", sd.name)
		for _, n := range sd.s.names {
			b.Logf("  %-28s %8.0f %8.0f", n, med(sd.s.at[n]), med(sd.s.step[n]))
		}
	}
}
