// Package measure runs the benchmark's measures over every present system in
// one process and one run, so each number can be divided by the floor's
// number from the same minutes on the same machine.
//
// # Interleaving
//
// No system gets a stretch of the machine to itself. Each measure proceeds in
// rounds; in every round each system takes one turn (a batch of calls, one
// throughput slice, one cold start), in an order shuffled per round from a
// fixed seed. A slow spell of the machine (a noisy neighbour, a frequency
// drop, page-cache churn) therefore lands on every system's samples alike,
// and no system always follows the same other.
//
// # What is timed
//
// A sequential call is timed from just before Plugin.Call to just after it
// returns, with the monotonic clock; the reply is checked (length and bytes)
// after the clock stops. Warm-up calls come first and are not recorded. The
// host's Go garbage collector is left alone: a system that allocates pays for
// its collections when they happen, and allocations per call are reported
// beside the latencies so the cost is visible.
package measure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/airlockhq/airlock/bench/system"
)

// Run measures every spec whose system starts, in the order given (floors
// first by convention). A spec that reports system.ErrAbsent is listed as
// absent; any other failure of any system ends the run with an error that
// names the system and the measure.
func Run(ctx context.Context, cfg Config, env *system.Env, specs []system.Spec, log *slog.Logger) (*Results, error) {
	res := &Results{Mode: cfg.Mode, Started: time.Now().UTC(), Machine: describeMachine(), Config: cfg}
	r := &runner{cfg: cfg, log: log, rng: rand.New(rand.NewPCG(cfg.Seed, 0))}
	defer r.closeSystems()

	for _, spec := range specs {
		info := SystemInfo{Name: spec.Name, Role: spec.Role, Concurrent: spec.Concurrent, Sandboxed: spec.Sandboxed}
		sys, err := spec.New(ctx, env)
		if errors.Is(err, system.ErrAbsent) {
			info.Absent = err.Error()
			log.Info("system absent", "system", spec.Name, "reason", err)
			res.Systems = append(res.Systems, info)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("prepare system %s: %w", spec.Name, err)
		}
		res.Systems = append(res.Systems, info)
		r.systems = append(r.systems, &entry{spec: spec, sys: sys})
		log.Info("system ready", "system", spec.Name)
	}
	if len(r.systems) == 0 {
		return nil, errors.New("no system could run: every system is absent")
	}

	phases := []struct {
		name string
		run  func(context.Context, *Results) error
	}{
		{"sequential", r.sequential},
		{"throughput", r.throughput},
		{"cold start", r.coldStart},
		{"idle rss", r.idleRSS},
		{"host memory", r.hostMemory},
		{"scaling", r.scaling},
	}
	for _, ph := range phases {
		start := time.Now()
		log.Info("measure", "phase", ph.name)
		if err := ph.run(ctx, res); err != nil {
			return nil, fmt.Errorf("%s: %w", ph.name, err)
		}
		log.Info("measured", "phase", ph.name, "took", time.Since(start).Round(time.Millisecond))
	}
	res.Elapsed = time.Since(res.Started)
	return res, nil
}

type runner struct {
	cfg     Config
	log     *slog.Logger
	rng     *rand.Rand
	systems []*entry
}

// entry is a present system and the plugin that the sequential and
// throughput measures share.
type entry struct {
	spec   system.Spec
	sys    system.System
	plugin system.Plugin
}

// order returns the given systems in a fresh shuffled order for one round.
func (r *runner) order(of []*entry) []*entry {
	out := make([]*entry, len(of))
	for i, j := range r.rng.Perm(len(of)) {
		out[i] = of[j]
	}
	return out
}

// turn is the context of one turn: the run's context bounded by TurnTimeout.
func (r *runner) turn(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.TurnTimeout)
}

func (r *runner) closeSystems() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range r.systems {
		if e.plugin != nil {
			if err := e.plugin.Close(ctx); err != nil {
				r.log.Warn("close plugin", "system", e.spec.Name, "err", err)
			}
		}
		if err := e.sys.Close(ctx); err != nil {
			r.log.Warn("close system", "system", e.spec.Name, "err", err)
		}
	}
}

// loadN loads n plugins of one system and calls each once, so that what is
// measured next is a plugin that has served a call.
func (r *runner) loadN(ctx context.Context, e *entry, n int) ([]system.Plugin, error) {
	payload := makePayload(B64)
	ps := make([]system.Plugin, 0, n)
	for range n {
		tctx, cancel := r.turn(ctx)
		p, err := e.sys.Load(tctx)
		if err == nil {
			ps = append(ps, p)
			err = call(tctx, e, p, payload)
		}
		cancel()
		if err != nil {
			r.closeAll(ps)
			return nil, fmt.Errorf("load %s plugin %d of %d: %w", e.spec.Name, len(ps), n, err)
		}
	}
	return ps, nil
}

// closeAll closes plugins, logging failures: a plugin that will not close is
// a finding, but the numbers already taken stand.
func (r *runner) closeAll(ps []system.Plugin) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range ps {
		if err := p.Close(ctx); err != nil {
			r.log.Warn("close plugin", "pid", p.PID(), "err", err)
		}
	}
}

// call makes one call and checks the echo.
func call(ctx context.Context, e *entry, p system.Plugin, payload []byte) error {
	reply, err := p.Call(ctx, payload)
	if err != nil {
		return fmt.Errorf("%s call: %w", e.spec.Name, err)
	}
	return checkEcho(e, payload, reply)
}

// checkEcho fails when a reply is not the payload it answers.
func checkEcho(e *entry, payload, reply []byte) error {
	if len(reply) != len(payload) {
		return fmt.Errorf("%s echoed %d bytes for a %d-byte payload", e.spec.Name, len(reply), len(payload))
	}
	if !bytes.Equal(reply, payload) {
		return fmt.Errorf("%s echoed %d bytes that differ from the payload", e.spec.Name, len(reply))
	}
	return nil
}

// makePayload returns size bytes of a pattern that a wrong or shifted echo
// would not reproduce.
func makePayload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i*31 + i>>8 + 7)
	}
	return p
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rounds is how many turns of batch it takes to reach total.
func rounds(total, batch int) int {
	return (total + batch - 1) / max(batch, 1)
}
