package measure

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/airlockhq/airlock/bench/system"
)

// idleRSS loads one plugin per system, lets them all sit idle for Settle after
// their first call (a Go child's runtime returns start-up memory in the
// background), then reads VmRSS from /proc/<pid>/status. All systems' plugins
// are loaded and read together, once per round.
func (r *runner) idleRSS(ctx context.Context, res *Results) error {
	vm := map[*entry][]int64{}
	anon := map[*entry][]int64{}
	for range r.cfg.IdleRSS.Rounds {
		loaded := map[*entry]system.Plugin{}
		var all []system.Plugin
		for _, e := range r.order(r.systems) {
			ps, err := r.loadN(ctx, e, 1)
			if err != nil {
				r.closeAll(all)
				return err
			}
			loaded[e] = ps[0]
			all = append(all, ps[0])
		}
		err := sleep(ctx, r.cfg.IdleRSS.Settle)
		for _, e := range r.systems {
			if err != nil {
				break
			}
			var st map[string]int64
			st, err = procStatus(strconv.Itoa(loaded[e].PID()), "VmRSS", "RssAnon")
			if err != nil {
				err = fmt.Errorf("%s: %w", e.spec.Name, err)
				break
			}
			vm[e] = append(vm[e], st["VmRSS"])
			anon[e] = append(anon[e], st["RssAnon"])
		}
		r.closeAll(all)
		if err != nil {
			return err
		}
	}
	for _, e := range r.systems {
		res.IdleRSS = append(res.IdleRSS, IdleRSSResult{
			System:         e.spec.Name,
			VmRSSKiB:       vm[e],
			RssAnonKiB:     anon[e],
			MedianVmRSSKiB: median(vm[e]),
			MedianAnonKiB:  median(anon[e]),
		})
	}
	return nil
}

// hostMemory loads N idle plugins per system, one system at a time, and
// divides the host process's growth by N: live heap after a collection,
// resident memory after free pages went back to the OS, and goroutines.
func (r *runner) hostMemory(ctx context.Context, res *Results) error {
	n := r.cfg.HostMemory.Plugins
	for _, e := range r.systems {
		before, err := hostUsage()
		if err != nil {
			return err
		}
		ps, err := r.loadN(ctx, e, n)
		if err != nil {
			return err
		}
		after, err := hostUsage()
		r.closeAll(ps)
		if err != nil {
			return err
		}
		res.HostMemory = append(res.HostMemory, HostMemoryResult{
			System:              e.spec.Name,
			Plugins:             n,
			HeapBytesPerPlugin:  float64(int64(after.heap)-int64(before.heap)) / float64(n),
			RSSBytesPerPlugin:   float64(after.rss-before.rss) / float64(n),
			GoroutinesPerPlugin: float64(after.goroutines-before.goroutines) / float64(n),
		})
	}
	return nil
}

type usage struct {
	heap       uint64 // live heap bytes after a full collection
	rss        int64  // resident bytes after returning free memory
	goroutines int
}

func hostUsage() (usage, error) {
	debug.FreeOSMemory() // collects, then returns free pages
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st, err := procStatus("self", "VmRSS")
	if err != nil {
		return usage{}, err
	}
	return usage{heap: ms.HeapAlloc, rss: st["VmRSS"] * 1024, goroutines: runtime.NumGoroutine()}, nil
}
