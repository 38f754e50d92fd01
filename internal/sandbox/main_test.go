//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/sandbox/launcher"

	"github.com/airlockhq/airlock/internal/testing/attack"
	"github.com/airlockhq/airlock/internal/testing/fixture"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// Fixtures built once per test binary.
var (
	fixtureDir    string   // 0755 directory holding the built programs
	victimPath    string   // internal/testing/victim, static
	launcherPath  string   // cmd/airlock-launcher: a launcher binary smaller than the test binary
	dynVictimPath string   // the same, dynamically linked (cgo, external linker), or ""
	fullRequire   []string // every protection this machine offers: hostile tests require them all
	testIDs       *IDPool  // distinct host uids for plugins (root only)
	fixtureErr    error
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
	case "unprivileged":
		os.Exit(runUnprivilegedHelper())
	default:
		os.Exit(runHelper())
	}
	cleanup := setupFixtures()
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		cleanup()
		os.Exit(code)
	}))
}

func setupFixtures() func() {
	dir, err := os.MkdirTemp("", "airlock-sandbox-test-")
	if err != nil {
		fixtureErr = err
		return func() {}
	}
	cleanup := func() { os.RemoveAll(dir) }
	// The plugin's uid must reach the programs.
	if err := os.Chmod(dir, 0o755); err != nil {
		fixtureErr = err
		return cleanup
	}
	fixtureDir = dir
	victimPath = filepath.Join(dir, "victim")
	if out, err := exec.Command("go", "build", "-o", victimPath, "../testing/victim").CombinedOutput(); err != nil {
		fixtureErr = fmt.Errorf("build the victim: %v\n%s", err, out)
		return cleanup
	}
	launcherPath = filepath.Join(dir, "launcher")
	if out, err := exec.Command("go", "build", "-o", launcherPath, "../../cmd/airlock-launcher").CombinedOutput(); err != nil {
		fixtureErr = fmt.Errorf("build the launcher: %v\n%s", err, out)
		return cleanup
	}
	// /bin/true, for the spawn benchmarks' C yardstick.
	if b, err := os.ReadFile("/bin/true"); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "true"), b, 0o755)
	}
	dyn := filepath.Join(dir, "victim-dynamic")
	build := exec.Command("go", "build", "-ldflags=-linkmode=external", "-o", dyn, "../testing/victim")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err == nil {
		dynVictimPath = dyn
	} else {
		fmt.Fprintf(os.Stderr, "no dynamically linked victim (tests using it will skip): %v\n%s", err, out)
	}
	if os.Geteuid() == 0 {
		// A range of its own, so these tests never collide with a real host.
		testIDs, err = NewIDPool(0x7e000000, 4096, filepath.Join(dir, "ids.lock"))
		if err != nil {
			fixtureErr = err
			return cleanup
		}
	}
	fullRequire = Probe(context.Background()).Available()
	return cleanup
}

func needFixtures(t *testing.T) {
	t.Helper()
	if fixtureErr != nil {
		t.Fatalf("test fixtures: %v", fixtureErr)
	}
}

// needFull skips unless this machine offers the whole sandbox (root, all
// namespaces, cgroups): the hostile tests assert the full envelope.
func needFull(t *testing.T) {
	t.Helper()
	needFixtures(t)
	if os.Geteuid() != 0 {
		t.Skip("the full sandbox (cgroups, a uid per plugin) needs a root host")
	}
	for _, p := range Protections() {
		if !strings.Contains(" "+strings.Join(fullRequire, " ")+" ", " "+p+" ") {
			t.Skipf("this machine lacks %s: %s", p, Probe(context.Background()).Get(p).Reason)
		}
	}
}

// pluginDir makes a fresh plugin folder holding the victim (hard-linked or
// copied) and returns it.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	openUp(t, dir)
	if err := os.Link(victimPath, filepath.Join(dir, "victim")); err != nil {
		copyFile(t, victimPath, filepath.Join(dir, "victim"), 0o755)
	}
	return dir
}

// openUp makes dir and its parents up to the temp root traversable by
// others (t.TempDir creates them 0700).
func openUp(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o055); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

// run is one sandboxed victim run.
type run struct {
	sb      *Sandbox
	cmd     *exec.Cmd
	res     attack.Result
	hasRes  bool
	stdout  string
	stderr  string
	waitErr error
	events  Events
	uid     int
	dirs    []string // the plugin's cgroup directories
}

// signal returns the signal that ended the victim, or 0.
func (r *run) signal() syscall.Signal {
	var ee *exec.ExitError
	if errors.As(r.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

func (r *run) exitCode() int {
	var ee *exec.ExitError
	if errors.As(r.waitErr, &ee) {
		return ee.ExitCode()
	}
	if r.waitErr != nil {
		return -1
	}
	return 0
}

// cappedBuffer keeps the first cap bytes written and discards the rest, so
// a flood can be drained without holding it.
type cappedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	cap int
	n   int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += int64(len(p))
	if room := c.cap - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// opts adjust one run: out and err, when set, receive the plugin's stdout
// or stderr instead of a buffer; disable makes the named protections
// unavailable, as on a machine without them.
type opts struct {
	out, err io.Writer
	disable  []string
}

// start prepares and starts the victim in a sandbox built from spec
// (Dir, Program, Name, IDs filled in when empty).
func start(t *testing.T, spec Spec, o opts, args ...string) (*run, *cappedBuffer, *cappedBuffer) {
	t.Helper()
	needFixtures(t)
	if spec.Dir == "" {
		spec.Dir = fixtureDir
	}
	if spec.Program == "" {
		spec.Program = "victim"
	}
	if spec.Name == "" {
		spec.Name = "victim"
	}
	if spec.Instance == "" {
		spec.Instance = strings.ReplaceAll(t.Name(), "/", "_")
	}
	if spec.IDs == nil {
		spec.IDs = testIDs
	}
	cmd := exec.Command(filepath.Join(spec.Dir, spec.Program), args...)
	cmd.Args[0] = spec.Program
	cmd.Env = []string{"AIRLOCK_PLUGIN=victim"}
	outBuf := &cappedBuffer{cap: 1 << 20}
	errBuf := &cappedBuffer{cap: 1 << 20}
	cmd.Stdout, cmd.Stderr = outBuf, errBuf
	if o.out != nil {
		cmd.Stdout = o.out
	}
	if o.err != nil {
		cmd.Stderr = o.err
	}
	// fd 3, as the process tier passes its socketpair.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host, child := os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "plugin")
	t.Cleanup(func() { host.Close() })
	cmd.ExtraFiles = []*os.File{child}
	cmd.WaitDelay = 2 * time.Second

	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := prepareWithout(ctx, cmd, spec, logger, o.disable)
	if err != nil {
		child.Close()
		t.Fatalf("Prepare: %v", err)
	}
	if err := cmd.Start(); err != nil {
		child.Close()
		sb.Close()
		t.Fatalf("Start: %v", err)
	}
	child.Close()
	r := &run{sb: sb, cmd: cmd, uid: sb.UID()}
	if sb.group != nil {
		r.dirs = sb.group.Dirs()
	}
	if err := sb.Started(); err != nil {
		_ = cmd.Wait()
		sb.Close()
		t.Fatalf("Started: %v", err)
	}
	return r, outBuf, errBuf
}

// finish waits for the victim (killing it after limit), closes the
// sandbox, and parses the result line.
func (r *run) finish(t *testing.T, limit time.Duration, out, errOut *cappedBuffer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case r.waitErr = <-done:
	case <-time.After(limit):
		t.Errorf("the victim was still running after %s; killing it", limit)
		_ = r.sb.Kill()
		r.waitErr = <-done
	}
	if err := r.sb.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	r.events = r.sb.Events()
	if out != nil {
		r.stdout = out.String()
	}
	if errOut != nil {
		r.stderr = errOut.String()
	}
	line, _, _ := strings.Cut(r.stdout, "\n")
	if json.Unmarshal([]byte(line), &r.res) == nil && r.res.Mode != "" {
		r.hasRes = true
	}
	t.Logf("victim: wait=%v events=%+v\nstdout: %.600s\nstderr: %.600s", r.waitErr, r.events, r.stdout, r.stderr)
}

// runVictim runs one attack to the end.
func runVictim(t *testing.T, spec Spec, args ...string) *run {
	t.Helper()
	r, out, errOut := start(t, spec, opts{}, args...)
	r.finish(t, time.Minute, out, errOut)
	return r
}

// assertNothingLeft checks that no process runs as the plugin's uid and
// that its cgroups are gone.
func assertNothingLeft(t *testing.T, r *run) {
	t.Helper()
	for _, d := range r.dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s survived Close (stat: %v)", d, err)
		}
	}
	if r.uid == overflowID || r.uid == os.Geteuid() {
		return // a shared uid: other processes may legitimately hold it
	}
	if pids := fixture.PIDsOfUID(r.uid); len(pids) > 0 {
		t.Errorf("processes of the plugin's uid %d survived: %v", r.uid, pids)
	}
}

// standIn starts a process that plays the host for attacks that aim at
// one: it runs as the test's uid, outside any sandbox, with a secret in
// its environment.
func standIn(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "3600")
	cmd.Env = []string{"AIRLOCK_SECRET=stand-in-secret-7f3a"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// assertUntouched checks the stand-in is alive, not stopped, not traced.
func assertUntouched(t *testing.T, p *exec.Cmd) {
	t.Helper()
	if err := p.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the stand-in host is gone: %v", err)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok && strings.TrimSpace(v) != "0" {
			t.Errorf("the stand-in host is traced by %s", strings.TrimSpace(v))
		}
		if v, ok := strings.CutPrefix(line, "State:"); ok && strings.Contains(v, "stopped") {
			t.Errorf("the stand-in host is stopped: %s", strings.TrimSpace(v))
		}
	}
}

// readLine reads the first line a running victim prints.
func readLine(t *testing.T, r io.Reader) attack.Result {
	t.Helper()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("read the victim's result: %v", err)
	}
	var res attack.Result
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("decode the victim's result %q: %v", line, err)
	}
	return res
}

// prepareWithout is Prepare on a machine that lacks the disabled
// protections.
func prepareWithout(ctx context.Context, cmd *exec.Cmd, spec Spec, logger *slog.Logger, disable []string) (*Sandbox, error) {
	if len(disable) == 0 {
		return Prepare(ctx, cmd, spec, logger)
	}
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	m := detectMachine(spec.CgroupParent)
	for _, name := range disable {
		setUnavailable(&m.report, name, "disabled by the test")
	}
	if err := checkRequire(spec.Require, m.report); err != nil {
		return nil, err
	}
	return prepare(ctx, cmd, spec, logger, launcher.ModeRun, m)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
