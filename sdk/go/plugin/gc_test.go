package plugin

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestTuneGC checks the SDK's collector defaults and that it never
// overrides what the plugin or its environment chose. It changes the
// process's collector settings and restores them.
func TestTuneGC(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(percent); debug.SetMemoryLimit(limit) })
	reset := func() { debug.SetGCPercent(100); debug.SetMemoryLimit(math.MaxInt64) }

	tests := []struct {
		name        string
		env         map[string]string
		before      func()
		wantPercent int
		wantLimit   int64
	}{
		{"defaults, no envelope", nil, nil, gcPercent, math.MaxInt64},
		{"envelope stated", map[string]string{"AIRLOCK_MEMORY_LIMIT": "1000000"}, nil, gcPercent, 900000},
		{"GOGC in the environment", map[string]string{"GOGC": "100"}, nil, 100, math.MaxInt64},
		{"the plugin set its own percent", nil, func() { debug.SetGCPercent(50) }, 50, math.MaxInt64},
		{"GOMEMLIMIT in the environment", map[string]string{"GOMEMLIMIT": "1GiB", "AIRLOCK_MEMORY_LIMIT": "1000000"}, nil, gcPercent, math.MaxInt64},
		{"the plugin set its own limit", map[string]string{"AIRLOCK_MEMORY_LIMIT": "1000000"}, func() { debug.SetMemoryLimit(5 << 20) }, gcPercent, 5 << 20},
		{"a malformed envelope is ignored", map[string]string{"AIRLOCK_MEMORY_LIMIT": "lots"}, nil, gcPercent, math.MaxInt64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reset()
			for _, k := range []string{"GOGC", "GOMEMLIMIT", "AIRLOCK_MEMORY_LIMIT"} {
				t.Setenv(k, tc.env[k])
			}
			if tc.before != nil {
				tc.before()
			}
			tuneGC()
			if got := debug.SetGCPercent(-1); got != tc.wantPercent {
				t.Errorf("GC percent %d, want %d", got, tc.wantPercent)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit %d, want %d", got, tc.wantLimit)
			}
		})
	}
}
