package plugin

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
)

// gcPercent is the SDK's default GOGC for a plugin (Go's own is 100).
//
// A plugin moves payloads through short-lived buffers: each call's input is
// allocated for its handler and dropped after the reply. With Go's default
// the heap target of a small plugin is its 4 MiB minimum, so a stream of
// 1 MiB calls ran a collection every three or four calls; interleaved on a
// 2-vCPU VM, GOGC 400 took the 1 MiB echo's p99 from 4.6–4.7 ms to
// 3.4–3.6 ms and its p50 down ~4% (docs/performance.md). The price is a
// busy plugin's heap growing to about four times its live data instead of
// two, which the memory limit below keeps inside the plugin's envelope.
const gcPercent = 400

// tuneGC sizes the garbage collector to the plugin: GOGC 400, and a soft
// memory limit of 90% of the envelope the host states in
// AIRLOCK_MEMORY_LIMIT, so that the collector works harder as the heap
// nears the limit instead of the plugin being killed at it. Whatever the
// plugin or its environment chose (GOGC, GOMEMLIMIT, or a call to
// debug.SetGCPercent or SetMemoryLimit before Serve) is left alone.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		if prev := debug.SetGCPercent(gcPercent); prev != 100 {
			debug.SetGCPercent(prev) // the plugin set its own
		}
	}
	if os.Getenv("GOMEMLIMIT") != "" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return
	}
	if n, err := strconv.ParseInt(os.Getenv("AIRLOCK_MEMORY_LIMIT"), 10, 64); err == nil && n > 0 {
		debug.SetMemoryLimit(n / 10 * 9)
	}
}
