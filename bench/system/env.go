package system

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Env is what a system may use to prepare itself: where the bench module and
// the repository are, and a place to build plugin binaries. Builds are cached
// for the life of the Env, so several systems can share one plugin binary.
type Env struct {
	moduleDir string
	binDir    string

	mu     sync.Mutex
	builds map[string]string
}

// NewEnv returns an Env for the bench module at moduleDir that builds plugin
// binaries into binDir (created if missing).
func NewEnv(moduleDir, binDir string) (*Env, error) {
	abs, err := filepath.Abs(moduleDir)
	if err != nil {
		return nil, fmt.Errorf("resolve bench module dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(abs, "go.mod")); err != nil {
		return nil, fmt.Errorf("bench module dir %s has no go.mod (run from bench/ or pass -dir): %w", abs, err)
	}
	binAbs, err := filepath.Abs(binDir)
	if err != nil {
		return nil, fmt.Errorf("resolve plugin bin dir: %w", err)
	}
	if err := os.MkdirAll(binAbs, 0o755); err != nil {
		return nil, fmt.Errorf("create plugin bin dir: %w", err)
	}
	return &Env{moduleDir: abs, binDir: binAbs, builds: map[string]string{}}, nil
}

// ModuleDir is the absolute path of the bench module (bench/).
func (e *Env) ModuleDir() string { return e.moduleDir }

// RepoDir is the absolute path of the Airlock repository (bench/..).
func (e *Env) RepoDir() string { return filepath.Dir(e.moduleDir) }

// BinDir is where plugin binaries are built.
func (e *Env) BinDir() string { return e.binDir }

// GoBuild builds the Go main package pkg (a path relative to dir, such as
// "./internal/testing/floorecho") with the go command run in dir, and returns the
// binary's path. dir is usually ModuleDir or RepoDir. The same (dir, pkg) is
// built once per Env.
func (e *Env) GoBuild(ctx context.Context, dir, pkg string) (string, error) {
	key := dir + "\x00" + pkg
	e.mu.Lock()
	defer e.mu.Unlock()
	if bin, ok := e.builds[key]; ok {
		return bin, nil
	}
	name := strings.ReplaceAll(strings.Trim(filepath.ToSlash(pkg), "./"), "/", "-")
	bin := filepath.Join(e.binDir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, out.String())
	}
	e.builds[key] = bin
	return bin, nil
}
