// Package airlocksys holds the Airlock systems the benchmark exists for:
// airlock-go (a Go plugin on the process tier), airlock-rust (a Rust plugin on
// the process tier) and airlock-go-sandboxed (the Go plugin with the
// process tier's containment switched on).
//
// Each uses only the public airlock API, as an embedder would. A system
// whose plugin cannot be built on this machine returns ErrAbsent with the
// reason and is left out of the run; no number is invented for it.
package airlocksys

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/bench/system"
	"github.com/airlockhq/airlock/manifest"
)

// Specs returns the Airlock systems. Their targets are in package report.
func Specs() []system.Spec {
	return []system.Spec{
		{Name: system.AirlockGo, Role: system.RoleCandidate, Concurrent: true, New: newGo},
		{Name: system.AirlockRust, Role: system.RoleCandidate, Concurrent: true, New: newRust},
		{Name: system.AirlockGoSandb, Role: system.RoleCandidate, Concurrent: true, Sandboxed: true, New: newGoSandboxed},
	}
}

// newGo starts the airlock-go system: NewHost, then Load of the Go echo
// plugin (examples/echo, built with sdk/go) on the process tier, without
// containment.
func newGo(ctx context.Context, env *system.Env) (system.System, error) {
	bin, err := env.GoBuild(ctx, env.RepoDir(), "./examples/echo")
	if err != nil {
		return nil, err
	}
	return newHost(ctx, env, bin, false)
}

// host is an Airlock host that loads copies of one echo plugin, each under
// its own name (a host refuses two plugins of one name).
//
// The plugin folders are laid out before the run: hard links to one binary
// and a manifest with its digest. Linking changes the binary's ctime, which
// is part of the host's digest-cache key, so linking during the run would
// make every Load re-hash the binary; laid out first, the host hashes it
// once, as it does when it reloads a plugin it knows. (The one-off cost of
// verifying a never-seen binary is reported apart: docs/performance.md.)
type host struct {
	h       *airlock.Host
	bin     string
	root    string
	sum     string
	n       atomic.Int64
	prepped int64
}

// prepare is how many plugin folders are laid out before the run: more than
// any measure loads (the scaling measure's 100 others, a bystander, the cold
// starts).
const prepare = 400

func newHost(ctx context.Context, env *system.Env, bin string, sandboxed bool) (*host, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cfg := airlock.NewHostConfig().WithLogger(logger).WithSandbox(sandboxed)
	if sandboxed {
		// Every protection this machine offers, required: a missing one
		// fails the run instead of measuring less than the name says.
		var have []string
		for _, m := range airlock.Doctor(ctx) {
			if m.Available {
				have = append(have, m.Name)
			}
		}
		if len(have) == 0 {
			return nil, fmt.Errorf("%s: this machine offers no sandbox protection: %w", system.AirlockGoSandb, system.ErrAbsent)
		}
		cfg = cfg.WithRequire(have...)
	}
	h, err := airlock.NewHostWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(env.BinDir(), "airlock-plugins-")
	if err == nil && sandboxed {
		err = reachable(root, env.BinDir())
	}
	if err != nil {
		h.Close(ctx)
		return nil, err
	}
	sum, err := manifest.Digest(bin)
	if err != nil {
		h.Close(ctx)
		return nil, err
	}
	s := &host{h: h, bin: bin, root: root, sum: sum}
	for i := int64(1); i <= prepare; i++ {
		if err := s.layOut(i); err != nil {
			h.Close(ctx)
			return nil, err
		}
	}
	s.prepped = prepare
	return s, nil
}

// layOut makes plugin folder number i.
func (s *host) layOut(i int64) error {
	name := fmt.Sprintf("echo-%d", i)
	dir := filepath.Join(s.root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := os.Link(s.bin, filepath.Join(dir, "echo")); err != nil {
		return fmt.Errorf("lay out %s: %w", name, err)
	}
	return os.WriteFile(filepath.Join(dir, "airlock.toml"), fmt.Appendf(nil, echoManifest, name, s.sum), 0o644)
}

// echoManifest is an echo plugin's airlock.toml. The limits allow the
// benchmark's 64 concurrent callers and 1 MiB payloads.
const echoManifest = `name = %q
version = "1.0.0"
[entry]
program = "echo"
sha256 = %q
[functions.echo]
timeout = "30s"
max_input = "4MiB"
max_output = "4MiB"
[limits]
max_concurrency = 128
`

func (s *host) Load(ctx context.Context) (system.Plugin, error) {
	i := s.n.Add(1)
	if i > s.prepped {
		// Past the folders laid out before the run: make one now (and the
		// host hashes the binary again, since linking changed its ctime).
		if err := s.layOut(i); err != nil {
			return nil, err
		}
	}
	p, err := s.h.Load(ctx, filepath.Join(s.root, fmt.Sprintf("echo-%d", i)))
	if err != nil {
		return nil, err
	}
	return plugin{p}, nil
}

func (s *host) Close(ctx context.Context) error {
	err := s.h.Close(ctx)
	os.RemoveAll(s.root)
	return err
}

type plugin struct{ p *airlock.Plugin }

func (p plugin) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return p.p.Call(ctx, "echo", payload)
}
func (p plugin) PID() int                        { return p.p.Status().PID }
func (p plugin) Close(ctx context.Context) error { return p.p.Close(ctx) }

// newRust starts the airlock-rust system: NewHost, then Load of a Rust
// plugin built with sdk/rust (the conformance plugin, whose echo function
// answers like the Go one) on the process tier, without containment.
func newRust(ctx context.Context, env *system.Env) (system.System, error) {
	if _, err := exec.LookPath("cargo"); err != nil {
		return nil, fmt.Errorf("%s: cargo is not installed: %w", system.AirlockRust, system.ErrAbsent)
	}
	project := filepath.Join(env.RepoDir(), "internal", "testing", "misbehave-rust")
	cmd := exec.CommandContext(ctx, "cargo", "build", "--release", "--quiet", "--manifest-path", filepath.Join(project, "Cargo.toml"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: cargo build: %v\n%s", system.AirlockRust, err, out)
	}
	// A copy in the bin directory, like the Go plugins'.
	bin := filepath.Join(env.BinDir(), "misbehave-rust")
	if err := copyFile(filepath.Join(project, "target", "release", "misbehave"), bin); err != nil {
		return nil, err
	}
	return newHost(ctx, env, bin, false)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// newGoSandboxed starts the airlock-go system with the process tier's
// sandbox on, every protection this machine offers required.
func newGoSandboxed(ctx context.Context, env *system.Env) (system.System, error) {
	bin, err := env.GoBuild(ctx, env.RepoDir(), "./examples/echo")
	if err != nil {
		return nil, err
	}
	return newHost(ctx, env, bin, true)
}

// reachable makes our own directories (the plugin root and the bin
// directory, both temporary and 0700) searchable by the unprivileged uid a
// sandboxed plugin runs as, and checks the folders above them already are.
func reachable(ours ...string) error {
	for _, d := range ours {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	for d := filepath.Dir(ours[len(ours)-1]); d != "/"; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by other users, so a sandboxed plugin cannot reach its folder: run the benchmark from a directory under one that is", d)
		}
	}
	return nil
}
