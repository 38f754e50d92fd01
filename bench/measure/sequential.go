package measure

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// sequential measures one call at a time on one plugin per system, for each
// payload size. It loads the plugin that throughput reuses.
func (r *runner) sequential(ctx context.Context, res *Results) error {
	for _, e := range r.systems {
		ps, err := r.loadN(ctx, e, 1)
		if err != nil {
			return err
		}
		e.plugin = ps[0]
	}
	for _, plan := range r.cfg.Sequential {
		out, err := r.sequentialSize(ctx, plan)
		if err != nil {
			return fmt.Errorf("%d-byte payload: %w", plan.Size, err)
		}
		res.Sequential = append(res.Sequential, out...)
	}
	return nil
}

func (r *runner) sequentialSize(ctx context.Context, plan SequentialPlan) ([]SequentialResult, error) {
	payload := makePayload(plan.Size)
	for _, e := range r.systems {
		tctx, cancel := r.turn(ctx)
		for range plan.Warmup {
			if err := call(tctx, e, e.plugin, payload); err != nil {
				cancel()
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
		cancel()
	}

	type tally struct {
		samples        []time.Duration
		allocs, nbytes uint64
	}
	tallies := map[*entry]*tally{}
	for _, e := range r.systems {
		tallies[e] = &tally{samples: make([]time.Duration, 0, plan.Calls)}
	}
	var before, after runtime.MemStats
	for range rounds(plan.Calls, plan.Batch) {
		for _, e := range r.order(r.systems) {
			t := tallies[e]
			n := min(plan.Batch, plan.Calls-len(t.samples))
			tctx, cancel := r.turn(ctx)
			runtime.ReadMemStats(&before)
			for range n {
				start := time.Now()
				reply, err := e.plugin.Call(tctx, payload)
				took := time.Since(start)
				if err == nil {
					err = checkEcho(e, payload, reply)
				}
				if err != nil {
					cancel()
					return nil, fmt.Errorf("%s: %w", e.spec.Name, err)
				}
				t.samples = append(t.samples, took)
			}
			runtime.ReadMemStats(&after)
			cancel()
			t.allocs += after.Mallocs - before.Mallocs
			t.nbytes += after.TotalAlloc - before.TotalAlloc
		}
	}

	var out []SequentialResult
	for _, e := range r.systems {
		t := tallies[e]
		n := float64(max(len(t.samples), 1))
		out = append(out, SequentialResult{
			System:        e.spec.Name,
			Size:          plan.Size,
			Latency:       Summarize(t.samples),
			AllocsPerCall: float64(t.allocs) / n,
			BytesPerCall:  float64(t.nbytes) / n,
		})
	}
	return out, nil
}
