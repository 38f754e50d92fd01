package airlock_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testing/fixture"
)

func TestMain(m *testing.M) { fixture.Main(m) }

const misbehaveManifest = `
name = "misbehave"
version = "1.0.0"

[entry]
program = "plugin"
args = ["-mode=%s"]
sha256 = "$SHA256"

[functions.echo]
max_input = "4MiB"
max_output = "4MiB"
[functions.sleep]
[functions.deadline]
timeout = "5s"
[functions.hang]
[functions.panic]
[functions.fail]
[functions.crash]
[functions.garbage]
[functions.oversized]
[functions.flood]
[functions.log]

[limits]
max_concurrency = 64
startup_timeout = "2s"
negotiate_timeout = "1s"
heartbeat_interval = "100ms"
heartbeat_timeout = "600ms"
cancel_grace = "400ms"
shutdown_timeout = "2s"
log_rate = "50/s"
log_burst = 50

[restart]
policy = "on-failure"
max_restarts = 20
backoff_initial = "10ms"
backoff_max = "40ms"
`

// logSink collects log records for assertions.
type logSink struct {
	mu      sync.Mutex
	records []slog.Record
}

func (s *logSink) handler() slog.Handler { return sinkHandler{s: s} }

// sinkHandler adds the attributes of With to each record it passes on.
type sinkHandler struct {
	s     *logSink
	attrs []slog.Attr
}

func (h sinkHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h sinkHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.s.mu.Lock()
	h.s.records = append(h.s.records, r)
	h.s.mu.Unlock()
	return nil
}
func (h sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sinkHandler{s: h.s, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h sinkHandler) WithGroup(string) slog.Handler { return h }

// find returns the first record whose message contains msg and whose
// attributes include every key=value in attrs.
func (s *logSink) find(msg string, attrs ...string) (slog.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.records {
		if !strings.Contains(r.Message, msg) {
			continue
		}
		have := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { have[a.Key] = a.Value.String(); return true })
		ok := true
		for i := 0; i+1 < len(attrs); i += 2 {
			if have[attrs[i]] != attrs[i+1] {
				ok = false
			}
		}
		if ok {
			return r, true
		}
	}
	return slog.Record{}, false
}

func (s *logSink) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.records {
		if strings.Contains(r.Message, msg) {
			n++
		}
	}
	return n
}

func newHost(t *testing.T) (*airlock.Host, *logSink) {
	t.Helper()
	sink := &logSink{}
	h, err := airlock.NewHostWithConfig(context.Background(), airlock.NewHostConfig().WithLogger(slog.New(sink.handler())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Close(ctx)
	})
	return h, sink
}

// lang is one plugin SDK the conformance tests run against: the same
// misbehaving plugin, written with each SDK.
type lang struct {
	name string
	sdk  string // prefix of the SDK name the plugin reports
	bin  func(t *testing.T) string
}

var languages = []lang{
	{"go", "airlock-go/", func(t *testing.T) string {
		return fixture.GoBinary(t, fixture.Module+"/internal/testing/misbehave")
	}},
	{"rust", "airlock-rust/", func(t *testing.T) string {
		return fixture.RustBinary(t, "internal/testing/misbehave-rust", "misbehave")
	}},
}

// eachLanguage runs f once per SDK: one test table, both languages.
func eachLanguage(t *testing.T, f func(t *testing.T, l lang)) {
	for _, l := range languages {
		t.Run(l.name, func(t *testing.T) { f(t, l) })
	}
}

// dir lays out l's misbehaving plugin started with -mode=mode.
func (l lang) dir(t *testing.T, mode string) string {
	return fixture.PluginDir(t, l.bin(t), fmt.Sprintf(misbehaveManifest, mode))
}

func (l lang) load(t *testing.T, h *airlock.Host) *airlock.Plugin {
	t.Helper()
	p, err := h.Load(context.Background(), l.dir(t, "serve"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// misbehaveDir and loadMisbehave use the Go plugin, for tests about the
// host rather than the SDK.
func misbehaveDir(t *testing.T, mode string) string {
	return fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/internal/testing/misbehave"), fmt.Sprintf(misbehaveManifest, mode))
}

func loadMisbehave(t *testing.T, h *airlock.Host) *airlock.Plugin {
	t.Helper()
	p, err := h.Load(context.Background(), misbehaveDir(t, "serve"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func call(t *testing.T, p *airlock.Plugin, fn, in string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := p.Call(ctx, fn, []byte(in))
	if err != nil {
		t.Fatalf("%s(%q): %v", fn, in, err)
	}
	return string(out)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHost_Load_Negotiates(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, _ := newHost(t)
		p := l.load(t, h)
		st := p.Status()
		if st.State != airlock.StateOperate || st.Protocol != 1 || !strings.HasPrefix(st.SDK, l.sdk) || st.PID == 0 {
			t.Fatalf("status after load: %+v", st)
		}
		if got := call(t, p, "echo", "hi"); got != "hi" {
			t.Fatalf("echo = %q", got)
		}
		if _, ok := h.Plugin("misbehave"); !ok {
			t.Fatal("Host.Plugin does not find the loaded plugin")
		}
	})
}

func TestHost_Load_VersionMismatch(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		t.Run("plugin speaks only a newer version", func(t *testing.T) {
			h, _ := newHost(t)
			_, err := h.Load(context.Background(), l.dir(t, "wrong-version"))
			if !errors.Is(err, airlock.ErrVersionMismatch) || !strings.Contains(err.Error(), "host speaks v1, plugin speaks v9") {
				t.Fatalf("got %v, want a version mismatch naming both ranges", err)
			}
		})
		t.Run("host speaks only a newer version", func(t *testing.T) {
			sink := &logSink{}
			h, err := airlock.NewHostWithConfig(context.Background(),
				airlock.WithProtocolVersions(airlock.NewHostConfig().WithLogger(slog.New(sink.handler())), 2, 3))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close(context.Background())
			_, err = h.Load(context.Background(), l.dir(t, "serve"))
			if !errors.Is(err, airlock.ErrVersionMismatch) || !strings.Contains(err.Error(), "host speaks v2–v3, plugin speaks v1") {
				t.Fatalf("got %v, want the plugin's refusal naming both ranges", err)
			}
		})
	})
}

func TestHost_Load_Failures(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		tests := []struct {
			mode  string
			stage string
			want  []string
		}{
			{"exit-during-handshake", "init", []string{"exited with status 7", "giving up during the handshake on purpose"}},
			{"garbage", "init", []string{"does not speak the Airlock protocol"}},
			{"no-welcome", "init", []string{"no answer to hello within limits.startup_timeout"}},
			{"missing-export", "negotiate", []string{"does not export: crash, deadline"}},
		}
		for _, tc := range tests {
			t.Run(tc.mode, func(t *testing.T) {
				h, _ := newHost(t)
				_, err := h.Load(context.Background(), l.dir(t, tc.mode))
				var le *airlock.LoadError
				if !errors.As(err, &le) || le.Stage != tc.stage {
					t.Fatalf("got %v, want a *LoadError at stage %s", err, tc.stage)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if len(h.Plugins()) != 0 {
					t.Fatal("a failed load left a plugin registered")
				}
			})
		}
	})
}

func TestHost_Load_DigestMismatchRefused(t *testing.T) {
	h, _ := newHost(t)
	dir := misbehaveDir(t, "serve")
	m, _ := os.ReadFile(dir + "/airlock.toml")
	wrong := strings.Repeat("ab", 32)
	sum, _ := fixture.Digest(dir + "/plugin")
	os.WriteFile(dir+"/airlock.toml", bytes.Replace(m, []byte(sum), []byte(wrong), 1), 0o644)
	_, err := h.Load(context.Background(), dir)
	if !errors.Is(err, airlock.ErrDigestMismatch) {
		t.Fatalf("got %v, want ErrDigestMismatch", err)
	}
	for _, w := range []string{dir + "/plugin", sum, wrong} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
}

func TestHost_Load_BadManifest(t *testing.T) {
	h, _ := newHost(t)
	dir := t.TempDir()
	os.WriteFile(dir+"/airlock.toml", []byte("name = \"x\"\nversion = \"1.0.0\"\nbogus = 1\n"), 0o644)
	_, err := h.Load(context.Background(), dir)
	var le *airlock.LoadError
	if !errors.As(err, &le) || le.Stage != "manifest" || !strings.Contains(err.Error(), "airlock.toml:3") {
		t.Fatalf("got %v, want a manifest error with a line number", err)
	}
}

func TestPlugin_Call_HammerFromManyGoroutines(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, _ := newHost(t)
		p := l.load(t, h)
		const goroutines, perGoroutine = 64, 10_000 / 64
		var wrong atomic.Int64
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perGoroutine + 1 {
					in := fmt.Sprintf("%d/%d/%s", g, i, strings.Repeat("z", (g*i)%300))
					out, err := p.Call(context.Background(), "echo", []byte(in))
					if err != nil || string(out) != in {
						wrong.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if n := wrong.Load(); n != 0 {
			t.Fatalf("%d of %d calls were wrong", n, goroutines*(perGoroutine+1))
		}
		if st := p.Status(); st.Calls < 10_000 || st.Failed != 0 || st.Restarts != 0 {
			t.Fatalf("status after the hammer: %+v", st)
		}
	})
}

func TestPlugin_Call_DeadlineReachesHandler(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, _ := newHost(t)
		p := l.load(t, h)
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		var got struct {
			HasDeadline bool  `json:"has_deadline"`
			LeftMS      int64 `json:"left_ms"`
		}
		got, err := airlock.CallJSON[struct {
			HasDeadline bool  `json:"has_deadline"`
			LeftMS      int64 `json:"left_ms"`
		}](ctx, p, "deadline", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !got.HasDeadline || got.LeftMS > 1500 || got.LeftMS < 500 {
			t.Fatalf("handler saw deadline=%v with %d ms left; want the caller's ~1500 ms", got.HasDeadline, got.LeftMS)
		}
		// Without a caller deadline the manifest's timeout (5s) applies.
		out, err := p.Call(context.Background(), "deadline", nil)
		if err != nil || json.Unmarshal(out, &got) != nil || !got.HasDeadline || got.LeftMS > 5000 || got.LeftMS < 4000 {
			t.Fatalf("without a caller deadline: %s %v", out, err)
		}
	})
}

func TestPlugin_Call_DeadlineAndCancelEndTheHandler(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, sink := newHost(t)
		p := l.load(t, h)

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := p.Call(ctx, "sleep", []byte("10000"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want DeadlineExceeded", err)
		}
		// The handler's own deadline and the host's CANCEL race; either ends it.
		waitFor(t, "the handler to report its deadline", func() bool { return sink.count("handler saw its context end") == 1 })

		ctx, cancel = context.WithCancel(context.Background())
		go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		_, err = p.Call(ctx, "sleep", []byte("10000"))
		var ce *airlock.CallError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &ce) || ce.Code != airlock.CodeCancelled {
			t.Fatalf("got %v, want a cancelled *CallError", err)
		}
		waitFor(t, "the handler to report its cancellation", func() bool {
			_, ok := sink.find("handler saw its context end", "plugin.err", context.Canceled.Error())
			return ok && sink.count("handler saw its context end") == 2
		})
	})
}

func TestPlugin_Call_TypedErrors(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, _ := newHost(t)
		p := l.load(t, h)
		tests := []struct {
			fn, in   string
			sentinel error
			code     airlock.Code
			text     string
		}{
			{"panic", "", airlock.ErrPanic, airlock.CodePanic, "boom on purpose"},
			{"fail", "x", airlock.ErrBadInput, airlock.CodeBadInput, `refusing "x"`},
			{"nosuch", "", airlock.ErrUnknownFunction, airlock.CodeUnknownFunction, "it exports: crash, deadline, echo"},
			{"echo", strings.Repeat("x", 4<<20+1), airlock.ErrTooLarge, airlock.CodeTooLarge, "max_input"},
		}
		for _, tc := range tests {
			t.Run(tc.fn, func(t *testing.T) {
				_, err := p.Call(context.Background(), tc.fn, []byte(tc.in))
				var ce *airlock.CallError
				if !errors.Is(err, tc.sentinel) || !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(err.Error(), tc.text) {
					t.Fatalf("got %v, want %v (%v) mentioning %q", err, tc.code, tc.sentinel, tc.text)
				}
				// The plugin keeps serving.
				if got := call(t, p, "echo", "still here"); got != "still here" {
					t.Fatalf("echo after %s = %q", tc.fn, got)
				}
			})
		}
		if st := p.Status(); st.Restarts != 0 {
			t.Fatalf("typed errors restarted the plugin: %+v", st)
		}
	})
}

func TestPlugin_Call_CrashMidCallFailsPendingCallsAndRestarts(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, _ := newHost(t)
		p := l.load(t, h)
		firstPID := p.Status().PID

		const pending = 8
		errs := make(chan error, pending)
		for range pending {
			go func() {
				_, err := p.Call(context.Background(), "sleep", []byte("20000"))
				errs <- err
			}()
		}
		waitFor(t, "the calls to be in flight", func() bool { return p.Status().InFlight == pending })

		start := time.Now()
		_, crashErr := p.Call(context.Background(), "crash", nil)
		for _, err := range append([]error{crashErr}, collect(errs, pending)...) {
			var ce *airlock.CallError
			var ee *airlock.ExitError
			if !errors.Is(err, airlock.ErrExited) || !errors.As(err, &ce) || ce.Code != airlock.CodeExited || !errors.As(err, &ee) {
				t.Fatalf("pending call got %v, want an exited *CallError", err)
			}
			if ee.ExitCode != 3 || ee.PID != firstPID || !strings.Contains(strings.Join(ee.Stderr, "\n"), "crashing mid-call on purpose") {
				t.Fatalf("exit details: %+v", ee)
			}
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Fatalf("pending calls took %v to fail; they must fail at once", waited)
		}
		// The next call waits for the restart and succeeds on a new process.
		if got := call(t, p, "echo", "after restart"); got != "after restart" {
			t.Fatalf("echo after restart = %q", got)
		}
		st := p.Status()
		if st.PID == firstPID || st.Restarts != 1 || st.Crashes != 1 || !strings.Contains(st.LastExit, "status 3") {
			t.Fatalf("status after restart: %+v", st)
		}
	})
}

// stopProcess sends SIGSTOP to pid and returns once every thread has
// stopped. kill(2) returns before the stop takes hold: one thread takes the
// signal and then stops the others, so a thread already awake could still
// answer a call sent at once (CI saw exactly that).
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every thread of the plugin to stop", func() bool {
		dir := fmt.Sprintf("/proc/%d/task", pid)
		tasks, err := os.ReadDir(dir)
		if err != nil || len(tasks) == 0 {
			return false
		}
		for _, task := range tasks {
			stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
			if err != nil {
				return false
			}
			// The state follows the ")" that closes the command name.
			i := bytes.LastIndexByte(stat, ')')
			if i < 0 || i+2 >= len(stat) || stat[i+2] != 'T' {
				return false
			}
		}
		return true
	})
}

func collect(ch chan error, n int) []error {
	var out []error
	for range n {
		out = append(out, <-ch)
	}
	return out
}

func TestPlugin_Watchdog(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		tests := []struct {
			name   string
			wedge  bool // freeze the whole process from outside, as a debugger or a stuck kernel call would
			reason string
		}{
			// hang ignores cancellation: it outlives cancel_grace.
			{"hung handler", false, "cancelled call(s) still running"},
			// A stopped process answers no heartbeat.
			{"wedged process", true, "no answer to a heartbeat"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				h, _ := newHost(t)
				p := l.load(t, h)
				firstPID := p.Status().PID
				if tc.wedge {
					stopProcess(t, firstPID)
					_, err := p.Call(context.Background(), "echo", nil)
					var ee *airlock.ExitError
					if !errors.As(err, &ee) || ee.Signal != "SIGKILL" || !strings.Contains(ee.Reason, tc.reason) {
						t.Fatalf("call to the wedged plugin got %v, want the watchdog's kill", err)
					}
				} else {
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					defer cancel()
					if _, err := p.Call(ctx, "hang", nil); !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("got %v, want the caller's deadline", err)
					}
				}
				waitFor(t, "the watchdog to kill and restart the plugin", func() bool {
					st := p.Status()
					return st.WatchdogKills == 1 && st.State == airlock.StateOperate && st.PID != firstPID
				})
				if st := p.Status(); !strings.Contains(st.LastExit, tc.reason) {
					t.Fatalf("LastExit %q does not give the watchdog's reason %q", st.LastExit, tc.reason)
				}
				if got := call(t, p, "echo", "alive"); got != "alive" {
					t.Fatalf("echo = %q", got)
				}
			})
		}
	})
}

func TestPlugin_ProtocolViolationKillsOnlyThatPlugin(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		for _, fn := range []string{"garbage", "oversized"} {
			t.Run(fn, func(t *testing.T) {
				h, sink := newHost(t)
				p := l.load(t, h)
				bystanderDir := fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/examples/echo"), echoManifest)
				bystander, err := h.Load(context.Background(), bystanderDir)
				if err != nil {
					t.Fatal(err)
				}
				_, err = p.Call(context.Background(), fn, nil)
				var ee *airlock.ExitError
				if !errors.As(err, &ee) || !strings.Contains(ee.Reason, "protocol violation") {
					t.Fatalf("got %v, want the call to fail with the protocol violation", err)
				}
				if _, ok := sink.find("plugin broke the protocol"); !ok {
					t.Fatal("no log record of the protocol violation")
				}
				if got := call(t, bystander, "echo", "unaffected"); got != "unaffected" {
					t.Fatalf("bystander echo = %q", got)
				}
				waitFor(t, "the restart", func() bool { return p.Status().State == airlock.StateOperate })
				if st := p.Status(); st.ProtocolErrs != 1 {
					t.Fatalf("ProtocolErrs = %d", st.ProtocolErrs)
				}
			})
		}
	})
}

const echoManifest = `
name = "echo"
version = "1.0.0"
[entry]
program = "plugin"
sha256 = "$SHA256"
[functions.echo]
max_input = "4MiB"
max_output = "4MiB"
`

func TestPlugin_Close_Drains(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, _ := newHost(t)
		p := l.load(t, h)
		pid := p.Status().PID
		inflight := make(chan error, 1)
		go func() {
			out, err := p.Call(context.Background(), "sleep", []byte("300"))
			if err == nil && string(out) != "slept" {
				err = fmt.Errorf("sleep returned %q", out)
			}
			inflight <- err
		}()
		waitFor(t, "the call to be in flight", func() bool { return p.Status().InFlight == 1 })
		closed := make(chan struct{})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.Close(ctx)
			close(closed)
		}()
		waitFor(t, "draining", func() bool { return p.Status().State == airlock.StateDraining })
		if _, err := p.Call(context.Background(), "echo", nil); !errors.Is(err, airlock.ErrClosed) {
			t.Fatalf("call during drain: %v, want ErrClosed", err)
		}
		if err := <-inflight; err != nil {
			t.Fatalf("the in-flight call did not complete during the drain: %v", err)
		}
		<-closed
		if st := p.Status(); st.State != airlock.StateStopped {
			t.Fatalf("state after Close: %v", st.State)
		}
		if processAlive(pid) {
			t.Fatalf("plugin process %d survived Close", pid)
		}
		if _, ok := h.Plugin("misbehave"); ok {
			t.Fatal("closed plugin is still registered with its host")
		}
	})
}

func TestPlugin_Close_ForcesAHungPlugin(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, _ := newHost(t)
		p := l.load(t, h)
		pid := p.Status().PID
		errc := make(chan error, 1)
		go func() { _, err := p.Call(context.Background(), "hang", nil); errc <- err }()
		waitFor(t, "the call to be in flight", func() bool { return p.Status().InFlight == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		p.Close(ctx)
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("Close took %v", took)
		}
		if err := <-errc; !errors.Is(err, airlock.ErrExited) {
			t.Fatalf("the hung call got %v, want ErrExited", err)
		}
		if processAlive(pid) {
			t.Fatalf("plugin process %d survived Close", pid)
		}
	})
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func TestPlugin_OutputFloodIsBounded(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, sink := newHost(t)
		p := l.load(t, h)
		if got := call(t, p, "flood", "20000"); got != "flooded" {
			t.Fatalf("flood = %q", got)
		}
		waitFor(t, "the flood to be counted", func() bool { return p.Status().LogDropped > 0 })
		kept := sink.count("plugin output") + sink.count("log flood")
		if kept > 500 {
			t.Fatalf("%d flood records reached the log; the budget is 50/s with a burst of 50", kept)
		}
		if got := call(t, p, "echo", "calm"); got != "calm" {
			t.Fatalf("echo after flood = %q", got)
		}
	})
}

func TestPlugin_LogRecordsReachHostLog(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		h, sink := newHost(t)
		p := l.load(t, h)
		call(t, p, "log", "hello\x1b[31m")
		r, ok := sink.find("plugin says", "plugin.text", "hello\x1b[31m", "plugin.req.size", "10", "plugin", "misbehave")
		if !ok {
			t.Fatal("the plugin's record did not reach the host's log with its attributes")
		}
		if r.Level != slog.LevelWarn {
			t.Fatalf("level %v, want warn", r.Level)
		}
	})
}

func TestHost_TwoHostsAreIndependent(t *testing.T) {
	h1, _ := newHost(t)
	h2, _ := newHost(t)
	p1 := loadMisbehave(t, h1)
	p2 := loadMisbehave(t, h2) // the same name in another host is fine
	h1.Close(context.Background())
	if got := call(t, p2, "echo", "h2"); got != "h2" {
		t.Fatalf("h2's plugin after h1 closed: %q", got)
	}
	if _, err := p1.Call(context.Background(), "echo", nil); !errors.Is(err, airlock.ErrClosed) {
		t.Fatalf("h1's plugin after h1 closed: %v", err)
	}
}

func TestHost_Load_DuplicateName(t *testing.T) {
	h, _ := newHost(t)
	loadMisbehave(t, h)
	_, err := h.Load(context.Background(), misbehaveDir(t, "serve"))
	if err == nil || !strings.Contains(err.Error(), `a plugin named "misbehave" is already loaded`) {
		t.Fatalf("got %v", err)
	}
}

func TestHostConfig_Invalid(t *testing.T) {
	_, err := airlock.NewHostWithConfig(context.Background(), airlock.NewHostConfig().WithMaxFrame(10))
	if err == nil || !strings.Contains(err.Error(), "choose a size between") {
		t.Fatalf("got %v", err)
	}
}

// TestPlugin_SameProtectionsInEveryLanguage checks a Rust plugin runs under
// exactly the sandbox a Go plugin gets: the same protections applied, and
// with seccomp every thread of the running process filtered.
func TestPlugin_SameProtectionsInEveryLanguage(t *testing.T) {
	applied := map[string][]string{}
	eachLanguage(t, func(t *testing.T, l lang) {
		h, _ := newHost(t)
		p := l.load(t, h)
		if _, err := p.Call(context.Background(), "echo", []byte("x")); err != nil {
			t.Fatal(err)
		}
		st := p.Status()
		var names []string
		for _, ps := range st.Protections {
			if ps.Applied {
				names = append(names, ps.Name)
			}
		}
		applied[l.name] = names
		t.Logf("%s plugin, pid %d: applied %v", l.name, st.PID, names)
		if !slices.Contains(names, "seccomp") {
			t.Logf("seccomp not applied here (%v); thread filter check skipped", st.Protections)
			return
		}
		for tid, s := range threadStatuses(t, st.PID) {
			if statusField(s, "Seccomp") != "2" {
				t.Errorf("thread %s of the %s plugin is not under the seccomp filter", tid, l.name)
			}
		}
	})
	want, ok := applied[languages[0].name]
	for _, l := range languages[1:] {
		if got, ran := applied[l.name]; ok && ran && !slices.Equal(got, want) {
			t.Errorf("%s plugin got protections %v, %s got %v", l.name, got, languages[0].name, want)
		}
	}
}

// TestHost_WithLauncher starts sandboxed plugins through a dedicated
// launcher (cmd/airlock-launcher) and checks they get exactly the
// protections the default launcher (the host's own binary) gives them.
func TestHost_WithLauncher(t *testing.T) {
	launcher := fixture.GoBinary(t, fixture.Module+"/cmd/airlock-launcher")
	applied := func(p *airlock.Plugin) []string {
		var names []string
		for _, ps := range p.Status().Protections {
			if ps.Applied {
				names = append(names, ps.Name)
			}
		}
		return names
	}
	def, _ := newHost(t)
	want := applied(loadMisbehave(t, def))

	h, err := airlock.NewHostWithConfig(context.Background(), airlock.NewHostConfig().
		WithLogger(slog.New(slog.DiscardHandler)).WithLauncher(launcher))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	p := loadMisbehave(t, h)
	if got := call(t, p, "echo", "via the dedicated launcher"); got != "via the dedicated launcher" {
		t.Fatalf("echo = %q", got)
	}
	if got := applied(p); !slices.Equal(got, want) {
		t.Fatalf("protections with the dedicated launcher %v, with the host binary %v", got, want)
	}
	if len(want) == 0 {
		t.Log("no protection is available on this machine: only the start itself was compared")
	}

	// The path is really what starts: a program that is not a launcher
	// fails the load instead of running the plugin unprotected.
	bad, err := airlock.NewHostWithConfig(context.Background(), airlock.NewHostConfig().
		WithLogger(slog.New(slog.DiscardHandler)).WithLauncher("/bin/true"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bad.Close(context.Background()) })
	if _, err := bad.Load(context.Background(), misbehaveDir(t, "serve")); err == nil {
		t.Fatal("a plugin loaded through /bin/true as its launcher")
	} else {
		t.Logf("load through /bin/true: %v", err)
	}
}

func TestHostConfig_WithLauncherRejectsBadPaths(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "launcher")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"bin/airlock-launcher", "not an absolute path"},
		{filepath.Join(t.TempDir(), "missing"), "no such file"},
		{notExec, "not an executable file"},
		{t.TempDir(), "not an executable file"},
	} {
		_, err := airlock.NewHostWithConfig(context.Background(), airlock.NewHostConfig().WithLauncher(tc.path))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "go build") {
			t.Errorf("WithLauncher(%q): %v; want an error saying %q and how to build one", tc.path, err, tc.want)
		}
	}
}

// TestPlugin_CallToAPluginThatStopsReading: a plugin that stops reading
// its connection leaves a large call's frame half-written. The call still
// ends at its caller's deadline, and the plugin is killed for it at once
// (not later by the heartbeat watchdog) and started afresh.
func TestPlugin_CallToAPluginThatStopsReading(t *testing.T) {
	h, sink := newHost(t)
	p, err := h.Load(context.Background(), misbehaveDir(t, "deaf"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = p.Call(ctx, "echo", make([]byte, 3<<20)) // far more than a socket buffers
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call to a plugin that stopped reading: %v, want its deadline", err)
	}
	waitFor(t, "the plugin to be killed for not reading", func() bool {
		return sink.count("plugin stopped reading its connection; killing it") > 0
	})
	waitFor(t, "a restart", func() bool { return p.Status().Restarts > 0 })
}
