package supervisor

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/clock"
	"github.com/airlockhq/airlock/internal/proc"
	"github.com/airlockhq/airlock/internal/testing/fixture"
	"github.com/airlockhq/airlock/internal/wire"
	"github.com/airlockhq/airlock/manifest"
)

func TestMain(m *testing.M) { fixture.Main(m) }

func TestBackoff(t *testing.T) {
	tests := []struct {
		n      int
		random float64
		want   time.Duration
	}{
		{0, 0, 50 * time.Millisecond},              // half of 100ms, no jitter
		{0, 0.999999, 99999950 * time.Nanosecond},  // up to the full 100ms
		{1, 0, 100 * time.Millisecond},             // 200ms nominal
		{3, 0.5, 600 * time.Millisecond},           // 800ms nominal: 400 + 200
		{10, 0, 5 * time.Second},                   // capped at 10s: half
		{60, 0.999999, 9999995 * time.Microsecond}, // no overflow after many attempts
	}
	for _, tc := range tests {
		got := Backoff(tc.n, 100*time.Millisecond, 10*time.Second, tc.random)
		if got != tc.want {
			t.Errorf("Backoff(%d, random %v) = %v, want %v", tc.n, tc.random, got, tc.want)
		}
	}
}

const manifestText = `
name = "misbehave"
version = "1.0.0"
[entry]
program = "plugin"
sha256 = "$SHA256"
[functions.echo]
[functions.crash]
[limits]
heartbeat_interval = "1h"
heartbeat_timeout = "2h"
[restart]
policy = "on-failure"
max_restarts = 2
backoff_initial = "1s"
backoff_max = "1m"
reset_after = "1h"
`

func start(t *testing.T, clk clock.Clock) *Supervisor {
	t.Helper()
	dir := fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/internal/testing/misbehave"), manifestText)
	m, err := manifest.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Config{Manifest: m.Defaults(), Clock: clk, Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func waitState(t *testing.T, s *Supervisor, want State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Status().State != want {
		if time.Now().After(deadline) {
			t.Fatalf("state is %v, want %v", s.Status().State, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSupervisor_RestartsOnTheInjectedClock crashes a real plugin and
// drives the restart backoff with a fake clock: nothing sleeps through a
// backoff, and the delays are the policy's.
func TestSupervisor_RestartsOnTheInjectedClock(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	s := start(t, clk)
	first := s.Status().PID

	for attempt := range 2 {
		if _, err := s.Call(context.Background(), "crash", nil); !errors.As(err, new(*ExitedError)) {
			t.Fatalf("crash: %v", err)
		}
		waitState(t, s, StateRestarting)
		// The backoff is between half and all of 1s doubled per attempt.
		backoff := waitTimer(t, clk, time.Minute)
		lo, hi := time.Second<<attempt/2, time.Second<<attempt
		if backoff < lo || backoff > hi {
			t.Fatalf("attempt %d: backoff %v, want within [%v, %v]", attempt, backoff, lo, hi)
		}
		// A call made now waits for the restart.
		done := make(chan error, 1)
		go func() {
			_, err := s.Call(context.Background(), "echo", []byte("waited"))
			done <- err
		}()
		clk.Advance(backoff)
		waitState(t, s, StateOperate)
		if err := <-done; err != nil {
			t.Fatalf("call during the restart: %v", err)
		}
	}
	if st := s.Status(); st.PID == first || st.Restarts != 2 {
		t.Fatalf("after two restarts: %+v", st)
	}

	// max_restarts = 2: the third crash is final.
	s.Call(context.Background(), "crash", nil)
	waitState(t, s, StateFailed)
	_, err := s.Call(context.Background(), "echo", nil)
	var ns *NotServingError
	if !errors.As(err, &ns) || ns.State != StateFailed || !strings.Contains(err.Error(), "allows no more restarts (2 so far)") {
		t.Fatalf("call after the last restart: %v", err)
	}
}

// waitTimer waits (in real time, bounded) for a fake timer shorter than
// below to be pending and returns its duration.
func waitTimer(t *testing.T, clk *clock.Fake, below time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, d := range clk.Timers() {
			if d < below {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no timer shorter than %v; pending: %v", below, clk.Timers())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDigestCache_RefusesAChangedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prog")
	os.WriteFile(path, []byte("one"), 0o755)
	c := NewDigestCache()
	sum := "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed" // sha256("one")
	f, err := c.Open(path, sum)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Same size, new content: the cached digest must not be reused.
	os.WriteFile(path, []byte("two"), 0o755)
	_, err = c.Open(path, sum)
	var de *DigestError
	if !errors.As(err, &de) || de.Got == sum {
		t.Fatalf("changed file: %v", err)
	}
}

// TestEnv_StatesTheMemoryLimit checks the plugin's environment carries its
// memory envelope, the hint the Go SDK sizes its collector to, and nothing
// of the host's.
func TestEnv_StatesTheMemoryLimit(t *testing.T) {
	t.Setenv("AIRLOCK_TEST_HOST_SECRET", "x")
	for _, tc := range []struct {
		memory manifest.Size
		want   string // "" means absent
	}{
		{256 << 20, "268435456"},
		{0, ""},
	} {
		m := manifest.Manifest{Name: "p"}
		m.Limits.Memory = tc.memory
		s := &Supervisor{m: &m}
		got, found := "", false
		for _, kv := range s.env("p-1") {
			if v, ok := strings.CutPrefix(kv, "AIRLOCK_MEMORY_LIMIT="); ok {
				got, found = v, true
			}
			if strings.HasPrefix(kv, "AIRLOCK_TEST_HOST_SECRET") {
				t.Errorf("the host's environment leaked: %s", kv)
			}
		}
		if got != tc.want || found != (tc.want != "") {
			t.Errorf("memory %d: AIRLOCK_MEMORY_LIMIT = %q (set %v), want %q", tc.memory, got, found, tc.want)
		}
	}
}

// TestSupervisor_RevokesTokensOfAnInstanceThatNeverRan: tokens are minted
// while the plugin starts, before its WELCOME; when the handshake then
// fails, what was minted is revoked (Ended), and an instance that runs
// keeps its tokens until it ends.
func TestSupervisor_RevokesTokensOfAnInstanceThatNeverRan(t *testing.T) {
	bin := fixture.GoBinary(t, fixture.Module+"/internal/testing/misbehave")
	tests := []struct {
		mode     string
		grantErr error
		wantErr  string // empty: Start succeeds
	}{
		{"exit-during-handshake", nil, "closed its connection during the handshake"},
		{"garbage", nil, "does not speak the Airlock protocol"},
		{"wrong-version", nil, "version"},
		{"serve", errors.New("the audit log is full"), "mint capability tokens: the audit log is full"},
		{"serve", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			text := strings.Replace(manifestText, "[entry]\n", "[entry]\nargs = [\"-mode="+tc.mode+"\"]\n", 1)
			m, err := manifest.Load(fixture.PluginDir(t, bin, text))
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var minted, ended []string
			cfg := Config{Manifest: m.Defaults(), Rand: rand.New(rand.NewPCG(1, 2)),
				Grant: func(instance string) ([]wire.Token, error) {
					mu.Lock()
					defer mu.Unlock()
					if tc.grantErr != nil {
						return nil, tc.grantErr
					}
					minted = append(minted, instance)
					return []wire.Token{{Capability: "log", Token: []byte("t")}}, nil
				},
				Ended: func(instance string) {
					mu.Lock()
					defer mu.Unlock()
					ended = append(ended, instance)
				},
			}
			s, err := Start(context.Background(), cfg)
			if tc.wantErr != "" {
				if err == nil {
					s.Close(context.Background())
					t.Fatalf("Start succeeded; want an error containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Start: %v; want an error containing %q", err, tc.wantErr)
				}
				mu.Lock()
				defer mu.Unlock()
				if tc.grantErr == nil && len(minted) != 1 {
					t.Fatalf("minted tokens for %q; want one instance's, minted while it started", minted)
				}
				if !slices.Equal(ended, minted) {
					t.Fatalf("minted tokens for %q, revoked %q: want every one revoked, once", minted, ended)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			if len(minted) != 1 || len(ended) != 0 {
				t.Errorf("a running instance: minted for %q, revoked %q; want one minted, none revoked", minted, ended)
			}
			mu.Unlock()
			s.Close(context.Background())
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(ended, minted) {
				t.Fatalf("after Close: minted for %q, revoked %q; want every one revoked", minted, ended)
			}
		})
	}
}

// TestSupervisor_ContainGetsTheCheckedProgram: the sandbox hook is handed
// the descriptor whose sha256 was checked, still open, so that the sandbox
// runs that file and not whatever the path names by then.
func TestSupervisor_ContainGetsTheCheckedProgram(t *testing.T) {
	dir := fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/internal/testing/misbehave"), manifestText)
	m, err := manifest.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m = m.Defaults()
	program, err := os.Stat(filepath.Join(m.Dir, filepath.FromSlash(m.Entry.Program)))
	if err != nil {
		t.Fatal(err)
	}
	var got os.FileInfo
	var gotErr error
	cfg := Config{Manifest: m, Rand: rand.New(rand.NewPCG(1, 2)),
		Contain: func(_ context.Context, _ *exec.Cmd, exe *os.File, _ string) (proc.Containment, error) {
			if exe == nil {
				gotErr = errors.New("no descriptor")
			} else {
				got, gotErr = exe.Stat() // fails if it was closed already
			}
			return nil, nil // a plain child: this test is about the hand-over
		},
	}
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	if gotErr != nil {
		t.Fatalf("the hook's descriptor: %v", gotErr)
	}
	if !os.SameFile(got, program) {
		t.Fatalf("the hook got %v, not the entry program", got.Name())
	}
}
