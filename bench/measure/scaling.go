package measure

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock/bench/system"
)

// scaling measures a bystander plugin's sequential 64-byte latency while other
// plugins on the same host are busy. For each count of others, every system
// loads a bystander and that many others up front; then, turn by turn, one
// system's others are called BusyRate times a second each (paced, staggered
// across the interval) while its bystander takes a batch of timed calls.
//
// The load per busy plugin is fixed, so 100 others offer 100 times the load
// of one: the measure shows both whether the host's cost grows with the
// number of plugins and how a bystander fares as total traffic grows.
func (r *runner) scaling(ctx context.Context, res *Results) error {
	plan := r.cfg.Scaling
	payload := makePayload(B64)
	for _, others := range plan.Others {
		sets := map[*entry][]system.Plugin{}
		var all []system.Plugin
		for _, e := range r.systems {
			ps, err := r.loadN(ctx, e, others+1)
			if err != nil {
				r.closeAll(all)
				return err
			}
			sets[e] = ps
			all = append(all, ps...)
		}
		out, err := r.scalingWith(ctx, sets, others, payload)
		r.closeAll(all)
		if err != nil {
			return fmt.Errorf("%d others: %w", others, err)
		}
		res.Scaling = append(res.Scaling, out...)
	}
	return nil
}

func (r *runner) scalingWith(ctx context.Context, sets map[*entry][]system.Plugin, others int, payload []byte) ([]ScalingResult, error) {
	plan := r.cfg.Scaling
	interval := time.Duration(float64(time.Second) / plan.BusyRate)
	samples := map[*entry][]time.Duration{}
	busyDone := map[*entry]int64{}
	busyDue := map[*entry]int64{}
	for range rounds(plan.Calls, plan.Batch) {
		for _, e := range r.order(r.systems) {
			bystander, busy := sets[e][0], sets[e][1:]
			n := min(plan.Batch, plan.Calls-len(samples[e]))
			tctx, cancel := r.turn(ctx)
			load := startBusy(tctx, e, busy, payload, interval)
			// Let every busy caller reach its first call before timing.
			err := sleep(tctx, interval)
			for i := 0; i < n && err == nil; i++ {
				start := time.Now()
				var reply []byte
				reply, err = bystander.Call(tctx, payload)
				took := time.Since(start)
				if err == nil {
					err = checkEcho(e, payload, reply)
				}
				samples[e] = append(samples[e], took)
			}
			done, due, berr := load.stop()
			cancel()
			if err != nil {
				return nil, fmt.Errorf("%s bystander: %w", e.spec.Name, err)
			}
			if berr != nil {
				return nil, fmt.Errorf("%s busy plugin: %w", e.spec.Name, berr)
			}
			busyDone[e] += done
			busyDue[e] += due
		}
	}
	var out []ScalingResult
	for _, e := range r.systems {
		out = append(out, ScalingResult{
			System:      e.spec.Name,
			Others:      others,
			Latency:     Summarize(samples[e]),
			BusyOffered: float64(others) * plan.BusyRate,
			BusyKeptUp:  float64(busyDone[e]) / float64(max(busyDue[e], 1)),
		})
	}
	return out, nil
}

// busyLoad calls each of a set of plugins once per interval, each on its own
// goroutine, with start times spread over the first interval.
type busyLoad struct {
	start    time.Time
	interval time.Duration
	offsets  []time.Duration
	quit     chan struct{}
	wg       sync.WaitGroup
	calls    atomic.Int64

	mu  sync.Mutex
	err error
}

func startBusy(ctx context.Context, e *entry, plugins []system.Plugin, payload []byte, interval time.Duration) *busyLoad {
	b := &busyLoad{start: time.Now(), interval: interval, quit: make(chan struct{})}
	for i, p := range plugins {
		offset := interval * time.Duration(i) / time.Duration(len(plugins))
		b.offsets = append(b.offsets, offset)
		b.wg.Go(func() { b.pace(ctx, e, p, payload, offset) })
	}
	return b
}

func (b *busyLoad) pace(ctx context.Context, e *entry, p system.Plugin, payload []byte, offset time.Duration) {
	next := b.start.Add(offset)
	t := time.NewTimer(offset)
	defer t.Stop()
	for {
		select {
		case <-b.quit:
			return
		case <-t.C:
		}
		if err := call(ctx, e, p, payload); err != nil {
			b.mu.Lock()
			b.err = err
			b.mu.Unlock()
			return
		}
		b.calls.Add(1)
		next = next.Add(b.interval)
		if wait := time.Until(next); wait > 0 {
			t.Reset(wait)
		} else { // fell behind: go on at once, without catching up
			next = time.Now()
			t.Reset(0)
		}
	}
}

// stop ends the load. It returns the calls made, the calls that were due by
// then at the offered rate, and the first error a busy call met.
func (b *busyLoad) stop() (done, due int64, err error) {
	elapsed := time.Since(b.start)
	close(b.quit)
	b.wg.Wait()
	for _, off := range b.offsets {
		if elapsed >= off {
			due += 1 + int64((elapsed-off)/b.interval)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls.Load(), due, b.err
}
