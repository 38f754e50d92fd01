// Package report turns a run's measurements into what people read: the
// targets Airlock is held to, each marked met or missed, a Markdown table of
// absolute numbers with their ratios to the floor from the same run, and the
// raw JSON.
package report

import (
	"fmt"
	"strings"

	"github.com/airlockhq/airlock/bench/measure"
	"github.com/airlockhq/airlock/bench/system"
)

// Status is the verdict on one target for one system.
type Status string

// Verdicts. NotMeasured means the run lacked a number the target needs (a
// measure left out, or its reference system absent); NotApplicable means the
// target does not concern the system (cold start of a sandboxed plugin).
const (
	Met           Status = "met"
	Missed        Status = "missed"
	NotMeasured   Status = "not measured"
	NotApplicable Status = "n/a"
)

// Target is one target evaluated for one system.
type Target struct {
	ID     string  `json:"id"`
	Text   string  `json:"target"`
	System string  `json:"system"`
	Ratio  float64 `json:"ratio,omitempty"`
	Limit  float64 `json:"limit"`
	AtMost bool    `json:"at_most"`
	Status Status  `json:"status"`
}

// goal is a target before it meets a system: a limit on a ratio the run can
// compute, for the systems it applies to.
type goal struct {
	id, text string
	limit    float64
	atMost   bool // ratio ≤ limit when true, ratio ≥ limit when false
	applies  func(measure.SystemInfo) bool
	ratio    func(r *measure.Results, name string) (float64, bool)
}

// Goals, from issue 6. Every ratio is to a reference measured in the same run.
func goals() []goal {
	var gs []goal
	for _, size := range []int{measure.B64, measure.KiB4, measure.KiB64, measure.MiB1} {
		limit := 1.2
		if size == measure.MiB1 {
			limit = 1.1
		}
		gs = append(gs, goal{
			id:      "seq-p50-" + sizeID(size),
			text:    fmt.Sprintf("sequential p50 at %s ≤ %.1f× floor", sizeName(size), limit),
			limit:   limit,
			atMost:  true,
			applies: always,
			ratio:   seqRatio(size, func(s measure.Summary) float64 { return float64(s.P50) }),
		})
	}
	for _, size := range []int{measure.B64, measure.KiB4, measure.KiB64, measure.MiB1} {
		gs = append(gs, goal{
			id:      "seq-p99-" + sizeID(size),
			text:    fmt.Sprintf("sequential p99 at %s ≤ 1.5× floor p99", sizeName(size)),
			limit:   1.5,
			atMost:  true,
			applies: always,
			ratio:   seqRatio(size, func(s measure.Summary) float64 { return float64(s.P99) }),
		})
	}
	for _, size := range []int{measure.B64, measure.KiB64} {
		gs = append(gs, goal{
			id:      "tput-64-" + sizeID(size),
			text:    fmt.Sprintf("throughput, 64 callers, %s ≥ 0.9× floor-mux", sizeName(size)),
			limit:   0.9,
			applies: func(s measure.SystemInfo) bool { return s.Concurrent },
			ratio: func(r *measure.Results, name string) (float64, bool) {
				x, ok1 := r.ThroughputOf(name, size, 64)
				ref, ok2 := r.ThroughputOf(system.FloorMux, size, 64)
				return x.PerSecond / ref.PerSecond, ok1 && ok2 && ref.PerSecond > 0
			},
		})
	}
	gs = append(gs,
		goal{
			id:      "cold-start",
			text:    "cold start (load → first reply) p50 ≤ 1.3× floor exec + first echo (unsandboxed)",
			limit:   1.3,
			atMost:  true,
			applies: func(s measure.SystemInfo) bool { return !s.Sandboxed },
			ratio: func(r *measure.Results, name string) (float64, bool) {
				x, ok1 := r.ColdStartOf(name)
				ref, ok2 := r.ColdStartOf(system.Floor)
				return float64(x.Latency.P50) / float64(ref.Latency.P50), ok1 && ok2 && ref.Latency.N > 0 && x.Latency.N > 0
			},
		},
		goal{
			id:      "idle-rss",
			text:    "idle plugin VmRSS ≤ 1.5× floor child's",
			limit:   1.5,
			atMost:  true,
			applies: always,
			ratio: func(r *measure.Results, name string) (float64, bool) {
				x, ok1 := r.IdleRSSOf(name)
				ref, ok2 := r.IdleRSSOf(system.Floor)
				return float64(x.MedianVmRSSKiB) / float64(ref.MedianVmRSSKiB), ok1 && ok2 && ref.MedianVmRSSKiB > 0
			},
		},
		goal{
			id:      "vs-grpc-64B",
			text:    "≥ 4× faster than go-plugin gRPC at 64 B (p50)",
			limit:   4,
			applies: func(s measure.SystemInfo) bool { return s.Name != system.GoPluginGRPC },
			ratio: func(r *measure.Results, name string) (float64, bool) {
				x, ok1 := r.SequentialOf(name, measure.B64)
				ref, ok2 := r.SequentialOf(system.GoPluginGRPC, measure.B64)
				return float64(ref.Latency.P50) / float64(x.Latency.P50), ok1 && ok2 && x.Latency.P50 > 0
			},
		},
	)
	return gs
}

func always(measure.SystemInfo) bool { return true }

// seqRatio is a sequential statistic of a system over the floor's.
func seqRatio(size int, stat func(measure.Summary) float64) func(*measure.Results, string) (float64, bool) {
	return func(r *measure.Results, name string) (float64, bool) {
		x, ok1 := r.SequentialOf(name, size)
		ref, ok2 := r.SequentialOf(system.Floor, size)
		return stat(x.Latency) / stat(ref.Latency), ok1 && ok2 && stat(ref.Latency) > 0
	}
}

// Evaluate checks every target for every present system that is not a floor.
// Comparison systems (go-plugin) are evaluated too, to show how far the
// incumbent is from the bar; only candidates are held to it.
func Evaluate(r *measure.Results) []Target {
	var out []Target
	for _, s := range r.Present() {
		if s.Role == system.RoleFloor {
			continue
		}
		for _, g := range goals() {
			t := Target{ID: g.id, Text: g.text, System: s.Name, Limit: g.limit, AtMost: g.atMost}
			switch ratio, ok := g.ratio(r, s.Name); {
			case !g.applies(s):
				t.Status = NotApplicable
			case !ok:
				t.Status = NotMeasured
			default:
				t.Ratio = ratio
				t.Status = Missed
				if (g.atMost && ratio <= g.limit) || (!g.atMost && ratio >= g.limit) {
					t.Status = Met
				}
			}
			out = append(out, t)
		}
	}
	return out
}

// sizeName is a payload size as people write it.
func sizeName(size int) string {
	switch {
	case size >= 1<<20 && size%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", size>>20)
	case size >= 1<<10 && size%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", size>>10)
	default:
		return fmt.Sprintf("%d B", size)
	}
}

// sizeID is a payload size for an identifier: 64B, 4KiB, 1MiB.
func sizeID(size int) string {
	return strings.ReplaceAll(sizeName(size), " ", "")
}
