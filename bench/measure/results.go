package measure

import (
	"time"

	"github.com/airlockhq/airlock/bench/system"
)

// Results is everything one run measured. Durations are nanoseconds in JSON
// (fields ending in _ns), memory is in KiB or bytes as the field name says.
type Results struct {
	Mode    string        `json:"mode"`
	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Machine Machine       `json:"machine"`
	Config  Config        `json:"config"`
	Systems []SystemInfo  `json:"systems"`

	Sequential []SequentialResult `json:"sequential"`
	Throughput []ThroughputResult `json:"throughput"`
	ColdStart  []ColdStartResult  `json:"cold_start"`
	IdleRSS    []IdleRSSResult    `json:"idle_rss"`
	HostMemory []HostMemoryResult `json:"host_memory"`
	Scaling    []ScalingResult    `json:"scaling"`
}

// SystemInfo lists a system of the catalogue; Absent says why it did not run.
type SystemInfo struct {
	Name       string      `json:"name"`
	Role       system.Role `json:"role"`
	Concurrent bool        `json:"concurrent"`
	Sandboxed  bool        `json:"sandboxed"`
	Absent     string      `json:"absent,omitempty"`
}

// SequentialResult is one system's round trips at one payload size, one call
// at a time. Allocations are the host process's, averaged over the timed
// calls.
type SequentialResult struct {
	System        string  `json:"system"`
	Size          int     `json:"size"`
	Latency       Summary `json:"latency"`
	AllocsPerCall float64 `json:"host_allocs_per_call"`
	BytesPerCall  float64 `json:"host_bytes_per_call"`
}

// ThroughputResult is one system's completed calls per second on one plugin
// with Callers goroutines calling back to back.
type ThroughputResult struct {
	System    string        `json:"system"`
	Size      int           `json:"size"`
	Callers   int           `json:"callers"`
	Calls     int64         `json:"calls"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	PerSecond float64       `json:"calls_per_s"`
}

// ColdStartResult is the time from Load to the first call's reply.
type ColdStartResult struct {
	System  string  `json:"system"`
	Latency Summary `json:"latency"`
}

// IdleRSSResult is the resident memory of an idle plugin process, one sample
// per round, from /proc/<pid>/status.
type IdleRSSResult struct {
	System         string  `json:"system"`
	VmRSSKiB       []int64 `json:"vm_rss_kib"`
	RssAnonKiB     []int64 `json:"rss_anon_kib"`
	MedianVmRSSKiB int64   `json:"median_vm_rss_kib"`
	MedianAnonKiB  int64   `json:"median_rss_anon_kib"`
}

// HostMemoryResult is how much the host process grows per idle loaded
// plugin: live heap after a collection, resident memory after returning free
// pages to the OS, and goroutines.
type HostMemoryResult struct {
	System              string  `json:"system"`
	Plugins             int     `json:"plugins"`
	HeapBytesPerPlugin  float64 `json:"heap_bytes_per_plugin"`
	RSSBytesPerPlugin   float64 `json:"rss_bytes_per_plugin"`
	GoroutinesPerPlugin float64 `json:"goroutines_per_plugin"`
}

// ScalingResult is a bystander plugin's sequential 64-byte latency while
// Others plugins on the same host are called BusyOffered times a second in
// all. BusyKeptUp is the share of the busy calls due by the end of each turn
// that were made: a fast host stays a few percent under 1 (a call due just
// before a turn ends may not have started), a host that falls behind is well
// under it.
type ScalingResult struct {
	System      string  `json:"system"`
	Others      int     `json:"others"`
	Latency     Summary `json:"latency"`
	BusyOffered float64 `json:"busy_offered_per_s"`
	BusyKeptUp  float64 `json:"busy_kept_up"`
}

// SequentialOf returns the sequential result of a system at a size.
func (r *Results) SequentialOf(name string, size int) (SequentialResult, bool) {
	for _, x := range r.Sequential {
		if x.System == name && x.Size == size {
			return x, true
		}
	}
	return SequentialResult{}, false
}

// ThroughputOf returns the throughput result of a system at a size and
// number of callers.
func (r *Results) ThroughputOf(name string, size, callers int) (ThroughputResult, bool) {
	for _, x := range r.Throughput {
		if x.System == name && x.Size == size && x.Callers == callers {
			return x, true
		}
	}
	return ThroughputResult{}, false
}

// ColdStartOf returns the cold-start result of a system.
func (r *Results) ColdStartOf(name string) (ColdStartResult, bool) {
	for _, x := range r.ColdStart {
		if x.System == name {
			return x, true
		}
	}
	return ColdStartResult{}, false
}

// IdleRSSOf returns the idle-RSS result of a system.
func (r *Results) IdleRSSOf(name string) (IdleRSSResult, bool) {
	for _, x := range r.IdleRSS {
		if x.System == name {
			return x, true
		}
	}
	return IdleRSSResult{}, false
}

// ScalingOf returns the scaling result of a system with others plugins busy.
func (r *Results) ScalingOf(name string, others int) (ScalingResult, bool) {
	for _, x := range r.Scaling {
		if x.System == name && x.Others == others {
			return x, true
		}
	}
	return ScalingResult{}, false
}

// Present returns the systems that ran, in catalogue order.
func (r *Results) Present() []SystemInfo {
	var out []SystemInfo
	for _, s := range r.Systems {
		if s.Absent == "" {
			out = append(out, s)
		}
	}
	return out
}
