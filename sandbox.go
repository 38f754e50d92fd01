package airlock

import (
	"context"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/airlockhq/airlock/internal/proc"
	"github.com/airlockhq/airlock/internal/sandbox"
	"github.com/airlockhq/airlock/manifest"
)

// Protection names a mechanism of the process tier's sandbox, as used in a
// manifest's sandbox.require, HostConfig.WithRequire, Status and Doctor.
// See docs/security.md.
type Protection = string

// Protections returns every protection name.
func Protections() []Protection { return sandbox.Protections() }

// Mechanism is one protection as this machine offers it.
type Mechanism struct {
	Name      string
	Available bool
	Reason    string // why it is unavailable, and what would fix it
	Detail    string // how it is provided, e.g. "ABI 7"
}

// Doctor tries each protection of the process tier's sandbox on this
// machine for real and reports which work and why the others do not. It
// starts short-lived test processes; it does not load plugins.
func Doctor(ctx context.Context) []Mechanism {
	return mechanisms(sandbox.Probe(ctx))
}

func mechanisms(r sandbox.Report) []Mechanism {
	out := make([]Mechanism, 0, len(r.Mechanisms))
	for _, m := range r.Mechanisms {
		out = append(out, Mechanism{Name: m.Name, Available: m.Available, Reason: m.Reason, Detail: m.Detail})
	}
	return out
}

// containment adapts a sandbox to what the process runner needs, and
// tells which limit of the envelope, if any, ended the plugin.
type containment struct {
	*sandbox.Sandbox
	cpuTime time.Duration
}

func (c containment) Limit(sig syscall.Signal, cpu time.Duration) string {
	ev := c.Events()
	switch {
	case ev.OOMKills > 0:
		return "memory"
	case sig == syscall.SIGSYS:
		return "seccomp"
	case sig == syscall.SIGXCPU, sig == syscall.SIGKILL && c.cpuTime > 0 && cpu >= rlimitCPU(c.cpuTime)-cpuSlack:
		// The kernel sends the hard limit's SIGKILL once the process has
		// used RLIMIT_CPU's whole seconds; any other SIGKILL comes earlier.
		return "cpu_time"
	case sig == syscall.SIGXFSZ:
		return "disk"
	}
	return ""
}

var _ proc.Containment = containment{}

// rlimitCPU is the RLIMIT_CPU the sandbox sets for a cpu_time limit: whole
// seconds, rounded up.
func rlimitCPU(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}

// cpuSlack covers the difference between the CPU time the kernel checks
// RLIMIT_CPU against and the one /proc reports after the kill: up to 130 ms
// less was measured for a Go plugin spinning on four threads.
const cpuSlack = 500 * time.Millisecond

// sandboxSpec builds the sandbox of one instance of m: the manifest's
// envelope (already narrowed by the host's limits), the paths the host
// allows of those the manifest asks for, and the required protections of
// both.
func (h *Host) sandboxSpec(m *manifest.Manifest, instance string) sandbox.Spec {
	l := m.Limits
	return sandbox.Spec{
		Name:       m.Name,
		Instance:   instance,
		Dir:        m.Dir,
		Program:    filepath.FromSlash(m.Entry.Program),
		ReadPaths:  allowedPaths(m.Sandbox.ReadPaths, h.cfg.readPaths),
		WritePaths: allowedPaths(m.Sandbox.WritePaths, h.cfg.writePaths),
		Memory:     int64(l.Memory),
		CPU:        l.CPU,
		CPUTime:    time.Duration(l.CPUTime),
		Tasks:      l.Tasks,
		OpenFiles:  l.OpenFiles,
		Disk:       int64(l.Disk),
		Require:    union(m.Sandbox.Require, h.cfg.require),
		IDs:        h.ids,
		Machine:    h.machine,
		Launcher:   h.cfg.launcher,
	}
}

// contain returns the supervisor's hook that sandboxes each instance.
func (h *Host) contain(p *Plugin, m *manifest.Manifest, logger *slog.Logger) func(context.Context, *exec.Cmd, *os.File, string) (proc.Containment, error) {
	return func(ctx context.Context, cmd *exec.Cmd, exe *os.File, instance string) (proc.Containment, error) {
		spec := h.sandboxSpec(m, instance)
		spec.Exec = exe // run the file whose digest was checked, not the path again
		sb, err := sandbox.Prepare(ctx, cmd, spec, logger)
		if err != nil {
			return nil, err
		}
		p.setSandbox(sb)
		return containment{Sandbox: sb, cpuTime: spec.CPUTime}, nil
	}
}

// allowedPaths keeps the requested paths that are, or lie beneath, a path
// the host allows.
func allowedPaths(requested, allowed []string) []string {
	var out []string
	for _, r := range requested {
		for _, a := range allowed {
			if r == a || strings.HasPrefix(r, strings.TrimSuffix(a, "/")+"/") {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// narrowLimits applies the host's caps to a manifest's limits: every field
// the host sets bounds the plugin's, which can be lower but never higher.
func narrowLimits(l, caps manifest.Limits) manifest.Limits {
	lower := func(v *manifest.Duration, c manifest.Duration) {
		if c > 0 && (*v == 0 || *v > c) {
			*v = c
		}
	}
	lowerSize := func(v *manifest.Size, c manifest.Size) {
		if c > 0 && (*v == 0 || *v > c) {
			*v = c
		}
	}
	lowerInt := func(v *int, c int) {
		if c > 0 && (*v == 0 || *v > c) {
			*v = c
		}
	}
	lowerRate := func(v *manifest.Rate, c manifest.Rate) {
		if !c.IsZero() && (v.IsZero() || v.PerSecond() > c.PerSecond()) {
			*v = c
		}
	}
	lowerInt(&l.MaxConcurrency, caps.MaxConcurrency)
	lower(&l.StartupTimeout, caps.StartupTimeout)
	lower(&l.NegotiateTimeout, caps.NegotiateTimeout)
	lower(&l.ShutdownTimeout, caps.ShutdownTimeout)
	lower(&l.HeartbeatTimeout, caps.HeartbeatTimeout)
	lower(&l.CancelGrace, caps.CancelGrace)
	lowerRate(&l.Rate, caps.Rate)
	lowerInt(&l.Burst, caps.Burst)
	lowerRate(&l.LogRate, caps.LogRate)
	lowerInt(&l.LogBurst, caps.LogBurst)
	lowerSize(&l.Memory, caps.Memory)
	if caps.CPU > 0 && (l.CPU == 0 || l.CPU > caps.CPU) {
		l.CPU = caps.CPU
	}
	lower(&l.CPUTime, caps.CPUTime)
	lowerInt(&l.Tasks, caps.Tasks)
	lowerInt(&l.OpenFiles, caps.OpenFiles)
	lowerSize(&l.Disk, caps.Disk)
	return l
}

// ProtectionStatus says whether a protection was applied to a plugin's
// running process, and why not.
type ProtectionStatus struct {
	Name    string
	Applied bool
	Reason  string // why it was not applied
}

func protectionStatus(sb *sandbox.Sandbox, enabled bool) []ProtectionStatus {
	if !enabled {
		out := make([]ProtectionStatus, 0, len(sandbox.Protections()))
		for _, name := range sandbox.Protections() {
			out = append(out, ProtectionStatus{Name: name, Reason: "the host runs plugins without a sandbox (HostConfig.WithSandbox(false))"})
		}
		return out
	}
	if sb == nil {
		return nil
	}
	var out []ProtectionStatus
	for _, m := range sb.Status().Mechanisms {
		out = append(out, ProtectionStatus{Name: m.Name, Applied: m.Available, Reason: m.Reason})
	}
	return out
}

// newIDPool gives each plugin instance its own host uid when the host runs
// as root (the only case where it can map other uids).
func newIDPool(log *slog.Logger) *sandbox.IDPool {
	if os.Geteuid() != 0 {
		return nil
	}
	ids, err := sandbox.NewIDPool(sandbox.DefaultIDFirst, sandbox.DefaultIDCount, sandbox.DefaultIDLockFile)
	if err != nil {
		log.Warn("plugins will share the overflow uid 65534: cannot reserve a uid per plugin", "err", err)
		return nil
	}
	return ids
}
