// Package system defines what the benchmark measures: a System is one way of
// hosting plugins (a raw socketpair, hashicorp/go-plugin, Airlock), and a
// Plugin is one loaded plugin process that echoes what it is sent.
//
// Every system answers the same four questions the harness asks (load a
// plugin, call it, tell its process id, close it), so the measures in package
// measure treat the floor, the incumbent and Airlock alike and can interleave
// their turns in one run.
package system

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Names of the systems the report compares. The targets are ratios to the
// floors, and one target is a ratio to go-plugin's gRPC path, so the report
// finds them by these names.
const (
	Floor          = "floor"
	FloorMux       = "floor-mux"
	GoPluginGRPC   = "go-plugin-grpc"
	GoPluginNetRPC = "go-plugin-netrpc"
	AirlockGo      = "airlock-go"
	AirlockRust    = "airlock-rust"
	AirlockGoSandb = "airlock-go-sandboxed"
)

// ErrAbsent marks a system that cannot run yet (for example because the code
// it measures is not written). The harness leaves such a system out of the run
// and says so; it never invents numbers for it.
var ErrAbsent = errors.New("system absent from this run")

// Role says how the report treats a system.
type Role int

const (
	// RoleFloor is a reference: the best a hand-written transport does.
	RoleFloor Role = iota + 1
	// RoleComparison is a system users compare Airlock with (go-plugin).
	RoleComparison
	// RoleCandidate is Airlock itself, held to the targets.
	RoleCandidate
)

// String returns the role's name as it appears in the JSON results.
func (r Role) String() string {
	switch r {
	case RoleFloor:
		return "floor"
	case RoleComparison:
		return "comparison"
	case RoleCandidate:
		return "candidate"
	default:
		return fmt.Sprintf("Role(%d)", int(r))
	}
}

// MarshalText makes a Role read as its name in JSON.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a Role's name, so that results files load back.
func (r *Role) UnmarshalText(b []byte) error {
	for _, role := range []Role{RoleFloor, RoleComparison, RoleCandidate} {
		if string(b) == role.String() {
			*r = role
			return nil
		}
	}
	return fmt.Errorf("unknown role %q: want floor, comparison or candidate", b)
}

// Spec describes one system and how to start it.
type Spec struct {
	Name string
	Role Role
	// Concurrent is true when one Plugin serves many concurrent callers with
	// calls overlapping on its connection. Only such systems take part in the
	// throughput measure; the sequential floor does not.
	Concurrent bool
	// Sandboxed is true when plugins run under OS containment; the cold-start
	// target applies to unsandboxed systems only.
	Sandboxed bool
	// New builds what the system needs (plugin binaries) and returns a host
	// ready to load plugins. It returns an error wrapping ErrAbsent when the
	// system cannot run yet. Its time is not measured.
	New func(ctx context.Context, env *Env) (System, error)
}

// System is a host of one kind. One System loads many plugins, so host-side
// memory per plugin is measured the way an embedder would pay it.
type System interface {
	// Load starts one plugin and returns when it is ready to be called.
	// The cold-start measure times Load plus the first Call.
	Load(ctx context.Context) (Plugin, error)
	// Close releases what the host holds. Plugins are closed first.
	Close(ctx context.Context) error
}

// Plugin is one loaded plugin whose only function echoes its payload.
type Plugin interface {
	// Call sends payload to the plugin's echo function and returns the reply.
	// The harness does not modify payload while a call is in flight, and
	// expects a reply that the caller owns.
	Call(ctx context.Context, payload []byte) ([]byte, error)
	// PID is the process id whose memory counts as the plugin's (the process
	// that runs the plugin's code), read from /proc/<pid>/status.
	PID() int
	// Close stops the plugin and waits for its process to exit.
	Close(ctx context.Context) error
}

// Select returns the specs whose names are in the comma-separated list, in
// the catalogue's order, or all of them when list is empty. An unknown name is
// an error that lists the known ones.
func Select(specs []Spec, list string) ([]Spec, error) {
	if strings.TrimSpace(list) == "" {
		return specs, nil
	}
	want := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			want[name] = true
		}
	}
	var out []Spec
	var known []string
	for _, s := range specs {
		known = append(known, s.Name)
		if want[s.Name] {
			out = append(out, s)
			delete(want, s.Name)
		}
	}
	for name := range want {
		return nil, fmt.Errorf("unknown system %q: choose from %s", name, strings.Join(known, ", "))
	}
	return out, nil
}
