package measure

import (
	"context"
	"fmt"
	"time"
)

// coldStart times Load plus the first 64-byte call, from a host that is
// already running, for a fresh plugin each time. The binary is already built
// and, after the untimed first round, in the page cache: this is the cost of
// starting a plugin, not of building or reading it from disk.
func (r *runner) coldStart(ctx context.Context, res *Results) error {
	payload := makePayload(B64)
	samples := map[*entry][]time.Duration{}
	for run := -1; run < r.cfg.ColdStart.Runs; run++ { // run -1 warms up
		for _, e := range r.order(r.systems) {
			d, err := r.coldOnce(ctx, e, payload)
			if err != nil {
				return err
			}
			if run >= 0 {
				samples[e] = append(samples[e], d)
			}
		}
	}
	for _, e := range r.systems {
		res.ColdStart = append(res.ColdStart, ColdStartResult{System: e.spec.Name, Latency: Summarize(samples[e])})
	}
	return nil
}

func (r *runner) coldOnce(ctx context.Context, e *entry, payload []byte) (time.Duration, error) {
	tctx, cancel := r.turn(ctx)
	defer cancel()
	start := time.Now()
	p, err := e.sys.Load(tctx)
	if err != nil {
		return 0, fmt.Errorf("%s load: %w", e.spec.Name, err)
	}
	reply, err := p.Call(tctx, payload)
	took := time.Since(start)
	if err == nil {
		err = checkEcho(e, payload, reply)
	}
	if cerr := p.Close(tctx); err == nil && cerr != nil {
		err = fmt.Errorf("%s close: %w", e.spec.Name, cerr)
	}
	if err != nil {
		return 0, fmt.Errorf("%s first call: %w", e.spec.Name, err)
	}
	return took, nil
}
