// Package manifest reads and checks airlock.toml, the file in a plugin's
// folder that declares what the plugin is, what it exports, what it needs and
// how it must be run.
//
// It is a public leaf package: it imports nothing from Airlock, so the host,
// the CLI and an embedder's own tooling can all read manifests the same way.
//
// # Why strict?
//
// A manifest is written by hand and read by a host that must not guess. Parse
// refuses unknown keys (with their line numbers), and Validate returns every
// problem at once, each naming the field and how to fix it, so an author fixes
// a manifest in one pass instead of one error at a time.
package manifest

import (
	"maps"
	"slices"
	"time"
)

// FileName is the manifest's file name inside a plugin folder.
const FileName = "airlock.toml"

// Manifest is a decoded airlock.toml. Zero values mean "use the default";
// Defaults returns a copy with every default filled in. Because zero means
// default, a key the file writes as zero ("0s", 0, "") is a validation
// error rather than a silent default.
//
// A Manifest is plain data: safe for concurrent reads, not for writes.
type Manifest struct {
	Name        string `toml:"name"`
	Version     string `toml:"version"`
	Description string `toml:"description"`
	// Tier is "process" (default) or "wasm" (reserved, not yet available).
	Tier Tier `toml:"tier"`

	Entry        Entry                        `toml:"entry"`
	Build        *Build                       `toml:"build"`
	Functions    map[string]Function          `toml:"functions"`
	Limits       Limits                       `toml:"limits"`
	Restart      Restart                      `toml:"restart"`
	Sandbox      Sandbox                      `toml:"sandbox"`
	Capabilities map[string]CapabilityRequest `toml:"capabilities"`

	// Dir is the folder the manifest was read from (absolute). It is not a
	// TOML key; Load sets it.
	Dir string `toml:"-"`

	// src records where each key was in the file, so that Validate can give
	// line numbers; nil for a Manifest built in Go.
	src *source
}

// Tier selects how a plugin runs.
type Tier string

// The tiers.
const (
	TierProcess Tier = "process"
	TierWasm    Tier = "wasm"
)

// Entry is the program the host starts.
type Entry struct {
	// Program is a path relative to the plugin folder.
	Program string   `toml:"program"`
	Args    []string `toml:"args"`
	// SHA256 is the hex digest of Program, checked before every start.
	SHA256 string `toml:"sha256"`
}

// Build is how `airlock build` produces Entry.Program.
type Build struct {
	// Command is an argv run in the plugin folder, e.g.
	// ["go", "build", "-o", "bin/plugin", "."].
	Command []string `toml:"command"`
}

// Function is one exported function.
type Function struct {
	Timeout    Duration `toml:"timeout"`    // default 30s
	Idempotent bool     `toml:"idempotent"` // safe to retry
	MaxInput   Size     `toml:"max_input"`  // default 1MiB
	MaxOutput  Size     `toml:"max_output"` // default 1MiB
	Rate       Rate     `toml:"rate"`       // per-function call rate; zero: unlimited
	Burst      int      `toml:"burst"`      // token-bucket burst for Rate; default max(1, rate per second)
}

// Limits is the plugin's envelope: lifecycle timeouts and resource caps. The
// operator's host configuration may narrow any of them, never widen.
type Limits struct {
	MaxConcurrency    int      `toml:"max_concurrency"`    // calls in flight; default 16
	StartupTimeout    Duration `toml:"startup_timeout"`    // exec to connected; default 5s
	NegotiateTimeout  Duration `toml:"negotiate_timeout"`  // HELLO to WELCOME; default 2s
	ShutdownTimeout   Duration `toml:"shutdown_timeout"`   // SHUTDOWN to exit before SIGKILL; default 5s
	HeartbeatInterval Duration `toml:"heartbeat_interval"` // PING period; default 1s
	HeartbeatTimeout  Duration `toml:"heartbeat_timeout"`  // unanswered PING before kill; default 5s
	CancelGrace       Duration `toml:"cancel_grace"`       // a cancelled call may run this long before the plugin counts as wedged; default 2s
	Rate              Rate     `toml:"rate"`               // calls into the plugin; zero: unlimited
	Burst             int      `toml:"burst"`
	LogRate           Rate     `toml:"log_rate"`  // log records and output lines; default 100/s
	LogBurst          int      `toml:"log_burst"` // default 200

	// Resource envelope, enforced by the sandbox where the machine allows.
	Memory    Size     `toml:"memory"`     // memory cgroup limit; default 256MiB
	CPU       float64  `toml:"cpu"`        // CPU share in cores (CFS quota); default 1
	CPUTime   Duration `toml:"cpu_time"`   // total CPU time per process (RLIMIT_CPU); default 1h
	Tasks     int      `toml:"tasks"`      // processes+threads (pids.max); default 64
	OpenFiles int      `toml:"open_files"` // RLIMIT_NOFILE; default 256
	Disk      Size     `toml:"disk"`       // private tmpfs size and RLIMIT_FSIZE; default 64MiB
}

// Restart is what the supervisor does when the plugin dies.
type Restart struct {
	Policy         RestartPolicy `toml:"policy"`          // default on-failure
	MaxRestarts    int           `toml:"max_restarts"`    // consecutive restarts before giving up; default 5
	BackoffInitial Duration      `toml:"backoff_initial"` // default 100ms
	BackoffMax     Duration      `toml:"backoff_max"`     // default 30s
	ResetAfter     Duration      `toml:"reset_after"`     // up this long resets the count; default 1m
}

// RestartPolicy names a restart behaviour.
type RestartPolicy string

// The restart policies.
const (
	RestartNever     RestartPolicy = "never"
	RestartOnFailure RestartPolicy = "on-failure"
)

// Sandbox is what the plugin asks of its containment.
type Sandbox struct {
	// Require lists protections that must be applied; the plugin refuses to
	// start when one is unavailable. Names as printed by `airlock doctor`.
	Require []string `toml:"require"`
	// ReadPaths and WritePaths are host paths the plugin asks to see inside
	// its sandbox (read-only or read-write); the operator may narrow them.
	ReadPaths  []string `toml:"read_paths"`
	WritePaths []string `toml:"write_paths"`
}

// CapabilityRequest is one capability the plugin asks for, keyed by the
// capability's name ("kv", "http", "fs.read", "fs.write", "clock", "random",
// "config", "log", or an embedder's own). Which scope fields apply depends on
// the capability; Validate rejects fields that do not.
type CapabilityRequest struct {
	// Common envelope.
	Rate   Rate `toml:"rate"`   // host calls per unit of time
	Burst  int  `toml:"burst"`  // token-bucket burst
	Budget Size `toml:"budget"` // bytes moved per minute across calls

	// Scope, per capability.
	Hosts       []string `toml:"hosts"`        // http: allowed host names (exact, or "*.example.com")
	Methods     []string `toml:"methods"`      // http: allowed methods
	MaxResponse Size     `toml:"max_response"` // http: response body cap
	Timeout     Duration `toml:"timeout"`      // http: per-request timeout
	Paths       []string `toml:"paths"`        // fs.read, fs.write: roots, relative to the plugin's data dir
	MaxFile     Size     `toml:"max_file"`     // fs.read, fs.write: per-file size cap
	Quota       Size     `toml:"quota"`        // kv: total bytes stored
	Keys        []string `toml:"keys"`         // config: keys the plugin may read
	Scope       []string `toml:"scope"`        // embedder capabilities: free-form scope strings
}

// Duration is a time.Duration written as a string with its unit ("250ms",
// "2s", "1m30s").
type Duration time.Duration

// Size is a byte count written as a string with its unit ("512B", "64KiB",
// "1MiB", "2GiB") or a plain integer of bytes.
type Size int64

// Rate is a number of events per unit of time, written "100/s", "10/m" or
// "5/h". The zero Rate means unlimited.
type Rate struct {
	Count float64
	Per   time.Duration
}

// FunctionNames returns the names of the exported functions, sorted.
func (m *Manifest) FunctionNames() []string {
	return slices.Sorted(maps.Keys(m.Functions))
}
