package report

import (
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/bench/measure"
	"github.com/airlockhq/airlock/bench/system"
)

// results builds a run where the floor answers 64 B in 10 µs (p99 20 µs), the
// floor-mux does 1000 calls/s with 64 callers, a floor start takes 1 ms and a
// floor child holds 2 MiB; go-plugin gRPC answers 64 B in 60 µs; and a
// candidate's numbers are the floor's scaled by the factors given.
func results(p50, p99, tput, cold, rss float64) *measure.Results {
	us := func(f float64) time.Duration { return time.Duration(f * float64(time.Microsecond)) }
	r := &measure.Results{Mode: "full", Systems: []measure.SystemInfo{
		{Name: system.Floor, Role: system.RoleFloor},
		{Name: system.FloorMux, Role: system.RoleFloor, Concurrent: true},
		{Name: system.GoPluginGRPC, Role: system.RoleComparison, Concurrent: true},
		{Name: "cand", Role: system.RoleCandidate, Concurrent: true},
		{Name: "sandboxed", Role: system.RoleCandidate, Sandboxed: true},
		{Name: "absent", Role: system.RoleCandidate, Absent: "not wired"},
	}}
	seq := func(name string, f50, f99 float64) {
		r.Sequential = append(r.Sequential, measure.SequentialResult{
			System: name, Size: measure.B64, Latency: measure.Summary{N: 1, P50: us(10 * f50), P99: us(20 * f99)},
		})
	}
	seq(system.Floor, 1, 1)
	seq(system.GoPluginGRPC, 6, 6)
	seq("cand", p50, p99)
	r.Throughput = []measure.ThroughputResult{
		{System: system.FloorMux, Size: measure.B64, Callers: 64, PerSecond: 1000},
		{System: "cand", Size: measure.B64, Callers: 64, PerSecond: 1000 * tput},
	}
	r.ColdStart = []measure.ColdStartResult{
		{System: system.Floor, Latency: measure.Summary{N: 1, P50: time.Millisecond}},
		{System: "cand", Latency: measure.Summary{N: 1, P50: time.Duration(cold * float64(time.Millisecond))}},
		{System: "sandboxed", Latency: measure.Summary{N: 1, P50: 10 * time.Millisecond}},
	}
	r.IdleRSS = []measure.IdleRSSResult{
		{System: system.Floor, MedianVmRSSKiB: 2048},
		{System: "cand", MedianVmRSSKiB: int64(2048 * rss)},
	}
	return r
}

func find(ts []Target, sys, id string) Target {
	for _, t := range ts {
		if t.System == sys && t.ID == id {
			return t
		}
	}
	return Target{Status: "missing"}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		run    *measure.Results
		sys    string
		id     string
		status Status
	}{
		{"p50 at the limit is met", results(1.2, 1, 1, 1, 1), "cand", "seq-p50-64B", Met},
		{"p50 over the limit is missed", results(1.25, 1, 1, 1, 1), "cand", "seq-p50-64B", Missed},
		{"p99 within 1.5x is met", results(1, 1.5, 1, 1, 1), "cand", "seq-p99-64B", Met},
		{"p99 over 1.5x is missed", results(1, 1.6, 1, 1, 1), "cand", "seq-p99-64B", Missed},
		{"a size that was not run is not measured", results(1, 1, 1, 1, 1), "cand", "seq-p50-1MiB", NotMeasured},
		{"throughput at 0.9x floor-mux is met", results(1, 1, 0.9, 1, 1), "cand", "tput-64-64B", Met},
		{"throughput below 0.9x is missed", results(1, 1, 0.89, 1, 1), "cand", "tput-64-64B", Missed},
		{"throughput of a sequential system is n/a", results(1, 1, 1, 1, 1), "sandboxed", "tput-64-64B", NotApplicable},
		{"cold start 1.3x is met", results(1, 1, 1, 1.3, 1), "cand", "cold-start", Met},
		{"cold start 1.4x is missed", results(1, 1, 1, 1.4, 1), "cand", "cold-start", Missed},
		{"cold start of a sandboxed system is n/a", results(1, 1, 1, 1, 1), "sandboxed", "cold-start", NotApplicable},
		{"idle RSS 1.5x is met", results(1, 1, 1, 1, 1.5), "cand", "idle-rss", Met},
		{"idle RSS 2x is missed", results(1, 1, 1, 1, 2), "cand", "idle-rss", Missed},
		{"4x faster than gRPC (60 vs 15 µs) is met", results(1.5, 1, 1, 1, 1), "cand", "vs-grpc-64B", Met},
		{"3x faster than gRPC (60 vs 20 µs) is missed", results(2, 1, 1, 1, 1), "cand", "vs-grpc-64B", Missed},
		{"gRPC is not compared with itself", results(1, 1, 1, 1, 1), system.GoPluginGRPC, "vs-grpc-64B", NotApplicable},
		{"go-plugin is evaluated too", results(1, 1, 1, 1, 1), system.GoPluginGRPC, "seq-p50-64B", Missed},
		{"floors are not evaluated", results(1, 1, 1, 1, 1), system.Floor, "seq-p50-64B", "missing"},
		{"absent systems are not evaluated", results(1, 1, 1, 1, 1), "absent", "seq-p50-64B", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := find(Evaluate(tt.run), tt.sys, tt.id)
			if got.Status != tt.status {
				t.Errorf("%s %s = %s (ratio %.3f), want %s", tt.sys, tt.id, got.Status, got.Ratio, tt.status)
			}
		})
	}
}

func TestEvaluate_MissingFloorIsNotMeasured(t *testing.T) {
	r := results(1, 1, 1, 1, 1)
	r.Sequential = r.Sequential[1:] // drop the floor's numbers
	if got := find(Evaluate(r), "cand", "seq-p50-64B"); got.Status != NotMeasured {
		t.Errorf("without the floor's numbers the p50 target is %s, want %s", got.Status, NotMeasured)
	}
}

func TestWriteMarkdown_MarksTargetsAndAbsentSystems(t *testing.T) {
	var b strings.Builder
	if err := WriteMarkdown(&b, results(1.25, 1, 1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"1.25× missed", // the candidate's p50 cell
		"Absent (not wired yet, no numbers): `absent`",
		"| 64 B | cand | 12.5 µs | 1.25× |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestSizeNames(t *testing.T) {
	tests := []struct {
		size     int
		name, id string
	}{
		{64, "64 B", "64B"},
		{4096, "4 KiB", "4KiB"},
		{65536, "64 KiB", "64KiB"},
		{1 << 20, "1 MiB", "1MiB"},
		{1000, "1000 B", "1000B"},
	}
	for _, tt := range tests {
		if got := sizeName(tt.size); got != tt.name {
			t.Errorf("sizeName(%d) = %q, want %q", tt.size, got, tt.name)
		}
		if got := sizeID(tt.size); got != tt.id {
			t.Errorf("sizeID(%d) = %q, want %q", tt.size, got, tt.id)
		}
	}
}
