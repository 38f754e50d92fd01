package measure

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// throughput measures completed calls per second on one plugin with many
// callers, for the systems whose plugins overlap concurrent calls. Each
// system's turns alternate with the others'; the first, untimed turn of each
// cell lets connection pools and buffers grow.
func (r *runner) throughput(ctx context.Context, res *Results) error {
	var conc []*entry
	for _, e := range r.systems {
		if e.spec.Concurrent {
			conc = append(conc, e)
		}
	}
	if len(conc) == 0 {
		r.log.Info("no concurrent system present; throughput skipped")
		return nil
	}
	plan := r.cfg.Throughput
	for _, size := range plan.Sizes {
		payload := makePayload(size)
		for _, callers := range plan.Callers {
			for _, e := range conc {
				if _, _, err := r.burst(ctx, e, payload, callers, min(plan.Turn, 100*time.Millisecond)); err != nil {
					return fmt.Errorf("warm-up, %d callers, %d bytes: %w", callers, size, err)
				}
			}
			calls := map[*entry]int64{}
			took := map[*entry]time.Duration{}
			for range plan.Turns {
				for _, e := range r.order(conc) {
					n, d, err := r.burst(ctx, e, payload, callers, plan.Turn)
					if err != nil {
						return fmt.Errorf("%d callers, %d bytes: %w", callers, size, err)
					}
					calls[e] += n
					took[e] += d
				}
			}
			for _, e := range conc {
				res.Throughput = append(res.Throughput, ThroughputResult{
					System:    e.spec.Name,
					Size:      size,
					Callers:   callers,
					Calls:     calls[e],
					Elapsed:   took[e],
					PerSecond: float64(calls[e]) / took[e].Seconds(),
				})
			}
		}
	}
	return nil
}

// burst runs callers goroutines that call back to back until d has passed,
// and returns the calls completed and the time until the last one returned.
func (r *runner) burst(ctx context.Context, e *entry, payload []byte, callers int, d time.Duration) (int64, time.Duration, error) {
	tctx, cancel := r.turn(ctx)
	defer cancel()
	var (
		total   atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	start := time.Now()
	stopAt := start.Add(d)
	for range callers {
		wg.Go(func() {
			for time.Now().Before(stopAt) {
				reply, err := e.plugin.Call(tctx, payload)
				if err == nil && len(reply) != len(payload) {
					err = fmt.Errorf("%s echoed %d bytes for a %d-byte payload", e.spec.Name, len(reply), len(payload))
				}
				if err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
				total.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		if errors.Is(first, context.Canceled) && ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		return 0, 0, fmt.Errorf("%s: %w", e.spec.Name, first)
	}
	return total.Load(), elapsed, nil
}
