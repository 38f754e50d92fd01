// Package supervisor runs one plugin through its lifecycle and keeps it
// serving: start, negotiate, activate, operate under a watchdog, restart
// with backoff after a crash, and drain on close. The root package's Plugin
// is a thin public face over a Supervisor.
//
// # Lifecycle
//
//  1. init: verify the entry's sha256, start the process (proc), bounded by
//     limits.startup_timeout.
//  2. negotiate: HELLO → WELCOME, bounded by limits.negotiate_timeout; the
//     exports must cover the manifest's functions.
//  3. activate: GRANT the capability tokens; the instance starts serving.
//  4. operate: calls flow; a watchdog pings every heartbeat_interval and
//     kills a plugin that leaves a ping unanswered for heartbeat_timeout or
//     keeps running a cancelled call past cancel_grace.
//  5. drain: new calls are refused; in-flight calls run until the close
//     deadline; then SHUTDOWN, SIGTERM, and SIGKILL of the whole tree.
//  6. stopped, or failed when the first start fails or restarts are spent.
//
// A stage that fails undoes what it started: the process is killed and
// reaped, the connection closed. A crash during operate fails every pending
// call at once with the exit status and the last stderr lines, then the
// restart policy decides: backoff with jitter, calls arriving meanwhile wait
// for the new instance up to their deadline.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/airlockhq/airlock/internal/clock"
	"github.com/airlockhq/airlock/internal/proc"
	"github.com/airlockhq/airlock/internal/rpc"
	"github.com/airlockhq/airlock/internal/wire"
	"github.com/airlockhq/airlock/manifest"
)

// Config is what a Supervisor needs. Manifest must already carry its
// defaults (manifest.Defaults) and the operator's narrowing.
type Config struct {
	Manifest *manifest.Manifest
	Logger   *slog.Logger
	Clock    clock.Clock // nil: real time
	Rand     *rand.Rand  // jitter source; nil: a random seed
	Host     string      // host software name and version, sent in HELLO
	MaxFrame int         // largest frame the host accepts
	Versions wire.VersionRange
	Digests  *DigestCache
	// Contain wraps each process in a sandbox; nil runs a plain child. exe
	// is the entry program as verified against its digest: the sandbox
	// must run that file.
	Contain func(ctx context.Context, cmd *exec.Cmd, exe *os.File, instance string) (proc.Containment, error)
	// HostCalls serves the plugin's HOSTCALLs; nil refuses them.
	HostCalls func(instance string) rpc.Handler
	// Grant returns the tokens to GRANT an instance at activation.
	Grant func(instance string) ([]wire.Token, error)
	// Ended is called once an instance's process has exited and its
	// connection closed (to revoke its tokens).
	Ended func(instance string)
	// Env is added to the plugin's minimal environment.
	Env []string
	// Watcher is the host's socket watcher, shared by its plugins'
	// connections (see rpc.Watcher); nil keeps a reading goroutine per
	// connection.
	Watcher *rpc.Watcher
}

// Supervisor keeps one plugin running. It is safe for concurrent use.
type Supervisor struct {
	cfg    Config
	m      *manifest.Manifest
	log    *slog.Logger
	clk    clock.Clock
	budget *rate.Limiter // log records and output lines
	rateMu sync.Mutex    // guards rnd
	rnd    *rand.Rand

	limiter   *rate.Limiter            // calls into the plugin; nil: unlimited
	fnLimiter map[string]*rate.Limiter // per function
	fnTimeout map[string]time.Duration

	cur atomic.Pointer[current] // what Call routes to

	mu        sync.Mutex
	state     State
	restarts  int // consecutive restarts
	total     int // all restarts
	lastExit  *proc.ExitError
	lastErr   error
	instSeq   int
	closing   bool
	closed    chan struct{} // closed when the supervisor stopped for good
	closeOnce sync.Once
	loop      sync.WaitGroup // the monitor (and restart) goroutine
	stateWait chan struct{}  // closed and replaced on every state change
	inst      *instance

	gate       gate
	counts     counters
	violations violations
}

// current is the routing snapshot Call reads without a lock.
type current struct {
	state State
	inst  *instance     // set when state is StateOperate
	ready chan struct{} // closed when the next state change happens
	err   error         // why the plugin is not serving, for StateFailed / StateStopped
}

type counters struct {
	calls, failed, rateLimited atomic.Uint64
	retried                    atomic.Uint64
	watchdogKills, crashes     atomic.Uint64
	protocolErrors             atomic.Uint64
	logDropped                 atomic.Uint64
}

// violations counts, per limit name, the times the plugin was ended by a
// limit of its envelope.
type violations struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (v *violations) add(limit string) {
	v.mu.Lock()
	if v.n == nil {
		v.n = map[string]uint64{}
	}
	v.n[limit]++
	v.mu.Unlock()
}

func (v *violations) snapshot() map[string]uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]uint64, len(v.n))
	for k, n := range v.n {
		out[k] = n
	}
	return out
}

// Start runs the lifecycle up to operate. When the first start fails the
// error says which stage failed and why, and nothing is left running.
func Start(ctx context.Context, cfg Config) (*Supervisor, error) {
	m := cfg.Manifest
	s := &Supervisor{
		cfg:       cfg,
		m:         m,
		log:       cfg.Logger,
		clk:       cfg.Clock,
		rnd:       cfg.Rand,
		closed:    make(chan struct{}),
		stateWait: make(chan struct{}),
		fnLimiter: map[string]*rate.Limiter{},
		fnTimeout: map[string]time.Duration{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	if s.rnd == nil {
		s.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if s.cfg.Digests == nil {
		s.cfg.Digests = NewDigestCache()
	}
	if !s.cfg.Versions.Valid() {
		s.cfg.Versions = wire.Supported
	}
	if s.cfg.MaxFrame == 0 {
		s.cfg.MaxFrame = wire.DefaultMaxFrame
	}
	s.budget = newLimiter(m.Limits.LogRate, m.Limits.LogBurst)
	s.limiter = newLimiter(m.Limits.Rate, m.Limits.Burst)
	for name, fn := range m.Functions {
		s.fnTimeout[name] = time.Duration(fn.Timeout)
		if l := newLimiter(fn.Rate, fn.Burst); l != nil {
			s.fnLimiter[name] = l
		}
	}
	s.publish(StateInit, nil, nil)

	inst, err := s.startInstance(ctx)
	if err != nil {
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		s.publish(StateFailed, nil, err)
		s.markClosed()
		return nil, err
	}
	s.operate(inst)
	return s, nil
}

func (s *Supervisor) markClosed() { s.closeOnce.Do(func() { close(s.closed) }) }

func newLimiter(r manifest.Rate, burst int) *rate.Limiter {
	if r.IsZero() {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	return rate.NewLimiter(rate.Limit(r.PerSecond()), burst)
}

// publish records a state change, logs it, and wakes calls waiting for one.
func (s *Supervisor) publish(st State, inst *instance, err error) {
	s.mu.Lock()
	prev := s.state
	s.state = st
	s.inst = inst
	wake := s.stateWait
	s.stateWait = make(chan struct{})
	s.cur.Store(&current{state: st, inst: inst, ready: s.stateWait, err: err})
	s.mu.Unlock()
	close(wake)
	if prev != st {
		attrs := []any{"from", prev.String(), "to", st.String()}
		if inst != nil {
			attrs = append(attrs, "instance", inst.id, "pid", inst.proc.Pid())
		}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		s.log.Info("plugin state", attrs...)
	}
}

// operate makes inst the serving instance and watches it until it exits.
func (s *Supervisor) operate(inst *instance) {
	s.mu.Lock()
	inst.startedAt = s.clk.Now()
	s.mu.Unlock()
	s.publish(StateOperate, inst, nil)
	s.loop.Add(1)
	go s.watchdog(inst)
	go s.monitor(inst)
}

// monitor waits for inst to end and decides what happens next.
func (s *Supervisor) monitor(inst *instance) {
	defer s.loop.Done()
	<-inst.ended
	exit := inst.proc.Exit()

	s.mu.Lock()
	closing := s.closing
	s.lastExit = exit
	uptime := s.clk.Now().Sub(inst.startedAt)
	if uptime >= time.Duration(s.m.Restart.ResetAfter) {
		s.restarts = 0
	}
	s.mu.Unlock()
	if closing {
		return // Close owns the rest
	}
	s.counts.crashes.Add(1)
	if exit.Limit != "" {
		s.violations.add(exit.Limit)
		s.log.Error("plugin hit a limit of its envelope", "instance", inst.id, "limit", exit.Limit, "err", exit)
	} else {
		s.log.Warn("plugin exited", "instance", inst.id, "err", exit, "uptime", uptime.Round(time.Millisecond))
	}
	s.restartLoop(exit)
}

// restartLoop restarts the plugin per its policy until an instance operates,
// restarts are spent, or the supervisor closes.
func (s *Supervisor) restartLoop(cause error) {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return
		}
		if s.m.Restart.Policy == manifest.RestartNever || s.restarts >= s.m.Restart.MaxRestarts {
			err := fmt.Errorf("plugin %s stopped: restart policy %q allows no more restarts (%d so far); last failure: %w",
				s.m.Name, s.m.Restart.Policy, s.restarts, cause)
			if s.m.Restart.Policy == manifest.RestartNever {
				err = fmt.Errorf("plugin %s stopped: restart policy is \"never\"; it failed with: %w", s.m.Name, cause)
			}
			s.lastErr = err
			s.mu.Unlock()
			s.publish(StateFailed, nil, err)
			s.markClosed()
			return
		}
		attempt := s.restarts
		s.restarts++
		s.total++
		s.mu.Unlock()

		delay := s.backoff(attempt)
		s.publish(StateRestarting, nil, cause)
		s.log.Info("restarting plugin", "attempt", attempt+1, "backoff", delay)
		t := s.clk.NewTimer(delay)
		select {
		case <-t.C():
		case <-s.closeRequested():
			t.Stop()
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.closeRequested():
				cancel()
			case <-ctx.Done():
			}
		}()
		inst, err := s.startInstance(ctx)
		cancel()
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		if err == nil {
			if closing {
				inst.kill("the plugin is closing")
				<-inst.ended
				return
			}
			s.operate(inst)
			return
		}
		s.mu.Lock()
		s.lastErr = err
		closing = s.closing
		s.mu.Unlock()
		if closing {
			return
		}
		s.log.Warn("restart failed", "attempt", attempt+1, "err", err)
		cause = err
	}
}

// backoff returns the wait before restart attempt n (0-based): exponential
// from backoff_initial, capped at backoff_max, with "equal jitter" (half
// fixed, half random) so plugins that crashed together do not restart in
// lockstep.
func (s *Supervisor) backoff(n int) time.Duration {
	s.rateMu.Lock()
	f := s.rnd.Float64()
	s.rateMu.Unlock()
	return Backoff(n, time.Duration(s.m.Restart.BackoffInitial), time.Duration(s.m.Restart.BackoffMax), f)
}

// Backoff is the pure backoff function: attempt n, bounds, and a random
// fraction in [0, 1).
func Backoff(n int, initial, max time.Duration, random float64) time.Duration {
	d := initial
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + time.Duration(float64(d-half)*random)
}

// closeRequested is closed once Close has begun.
func (s *Supervisor) closeRequested() <-chan struct{} { return s.gate.closingCh() }

// Manifest returns the manifest the plugin runs under.
func (s *Supervisor) Manifest() *manifest.Manifest { return s.m }

// errClosing is returned to calls made after Close began.
var errClosing = errors.New("the plugin is closing")
