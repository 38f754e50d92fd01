package measure

import "time"

// Config says how much of each measure to run. Full, Quick and Smoke are the
// three the command offers; a Config is plain data so a run's JSON records
// exactly what was measured.
type Config struct {
	Mode string `json:"mode"`
	// Seed fixes the order of turns within each round.
	Seed uint64 `json:"seed"`
	// TurnTimeout bounds one turn (a batch of calls, one cold start), so a
	// hung plugin fails the run instead of stalling it.
	TurnTimeout time.Duration `json:"turn_timeout_ns"`

	Sequential []SequentialPlan `json:"sequential"`
	Throughput ThroughputPlan   `json:"throughput"`
	ColdStart  ColdStartPlan    `json:"cold_start"`
	IdleRSS    IdleRSSPlan      `json:"idle_rss"`
	HostMemory HostMemoryPlan   `json:"host_memory"`
	Scaling    ScalingPlan      `json:"scaling"`
}

// SequentialPlan is one payload size of the sequential round-trip measure:
// Calls timed calls per system, taken Batch at a time in interleaved turns,
// after Warmup untimed calls.
type SequentialPlan struct {
	Size   int `json:"size"`
	Calls  int `json:"calls"`
	Batch  int `json:"batch"`
	Warmup int `json:"warmup"`
}

// ThroughputPlan runs, for every size and number of callers, Turns turns of
// Turn each per system, the callers calling back to back on one plugin.
type ThroughputPlan struct {
	Sizes   []int         `json:"sizes"`
	Callers []int         `json:"callers"`
	Turns   int           `json:"turns"`
	Turn    time.Duration `json:"turn_ns"`
}

// ColdStartPlan times Runs loads-plus-first-call per system, after one
// untimed round that warms the page cache.
type ColdStartPlan struct {
	Runs int `json:"runs"`
}

// IdleRSSPlan loads one plugin per system Rounds times, lets it sit idle for
// Settle after its first call, then reads its VmRSS.
type IdleRSSPlan struct {
	Rounds int           `json:"rounds"`
	Settle time.Duration `json:"settle_ns"`
}

// HostMemoryPlan loads Plugins idle plugins per system and divides the host's
// growth by that number.
type HostMemoryPlan struct {
	Plugins int `json:"plugins"`
}

// ScalingPlan measures a bystander plugin's sequential 64-byte latency (Calls
// calls, Batch per turn) while each count in Others of other plugins is
// loaded on the same host, each of them called BusyRate times a second.
type ScalingPlan struct {
	Others   []int   `json:"others"`
	Calls    int     `json:"calls"`
	Batch    int     `json:"batch"`
	BusyRate float64 `json:"busy_rate_per_s"`
}

// Sizes used throughout: the brief's four payloads.
const (
	B64   = 64
	KiB4  = 4 << 10
	KiB64 = 64 << 10
	MiB1  = 1 << 20
)

// Full is `make bench`: enough samples for stable p99s, about three minutes
// on two cores.
func Full() Config {
	return Config{
		Mode:        "full",
		Seed:        1,
		TurnTimeout: time.Minute,
		Sequential: []SequentialPlan{
			{Size: B64, Calls: 30000, Batch: 200, Warmup: 1000},
			{Size: KiB4, Calls: 30000, Batch: 200, Warmup: 1000},
			{Size: KiB64, Calls: 15000, Batch: 100, Warmup: 500},
			{Size: MiB1, Calls: 3000, Batch: 20, Warmup: 100},
		},
		Throughput: ThroughputPlan{Sizes: []int{B64, KiB64}, Callers: []int{8, 64}, Turns: 10, Turn: 300 * time.Millisecond},
		ColdStart:  ColdStartPlan{Runs: 100},
		IdleRSS:    IdleRSSPlan{Rounds: 5, Settle: 2 * time.Second},
		HostMemory: HostMemoryPlan{Plugins: 100},
		Scaling:    ScalingPlan{Others: []int{1, 10, 100}, Calls: 4000, Batch: 200, BusyRate: 100},
	}
}

// Quick is `make bench-quick`: every measure, a tenth of the samples. Its
// numbers show that everything runs, not how fast.
func Quick() Config {
	return Config{
		Mode:        "quick",
		Seed:        1,
		TurnTimeout: time.Minute,
		Sequential: []SequentialPlan{
			{Size: B64, Calls: 2000, Batch: 200, Warmup: 100},
			{Size: KiB4, Calls: 2000, Batch: 200, Warmup: 100},
			{Size: KiB64, Calls: 1000, Batch: 100, Warmup: 50},
			{Size: MiB1, Calls: 100, Batch: 10, Warmup: 10},
		},
		Throughput: ThroughputPlan{Sizes: []int{B64, KiB64}, Callers: []int{8, 64}, Turns: 2, Turn: 150 * time.Millisecond},
		ColdStart:  ColdStartPlan{Runs: 5},
		IdleRSS:    IdleRSSPlan{Rounds: 1, Settle: 300 * time.Millisecond},
		HostMemory: HostMemoryPlan{Plugins: 5},
		Scaling:    ScalingPlan{Others: []int{1, 10}, Calls: 400, Batch: 100, BusyRate: 100},
	}
}

// Smoke runs every measure once per system: one call per size, one short
// throughput turn, one cold start and so on. The smoke test uses it to prove
// that every system builds, loads, echoes and closes.
func Smoke() Config {
	return Config{
		Mode:        "smoke",
		Seed:        1,
		TurnTimeout: time.Minute,
		Sequential: []SequentialPlan{
			{Size: B64, Calls: 1, Batch: 1},
			{Size: KiB4, Calls: 1, Batch: 1},
			{Size: KiB64, Calls: 1, Batch: 1},
			{Size: MiB1, Calls: 1, Batch: 1},
		},
		Throughput: ThroughputPlan{Sizes: []int{B64, KiB64}, Callers: []int{8}, Turns: 1, Turn: 20 * time.Millisecond},
		ColdStart:  ColdStartPlan{Runs: 1},
		IdleRSS:    IdleRSSPlan{Rounds: 1},
		HostMemory: HostMemoryPlan{Plugins: 1},
		Scaling:    ScalingPlan{Others: []int{1}, Calls: 1, Batch: 1, BusyRate: 100},
	}
}
