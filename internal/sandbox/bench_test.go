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
