// Package airlocksys holds the Airlock systems the benchmark exists for:
// airlock-go (a Go plugin on the process tier), airlock-rust (a Rust plugin on
// the process tier) and airlock-go-sandboxed (the Go plugin with the
// process tier's containment switched on).
//
// ============================================================================
// TO FILL IN (lead): each constructor below returns ErrAbsent until it is
// wired to the public airlock API, and an absent system is simply left out of
// the run and listed as absent in the report; no number is ever invented for
// it. To wire one:
//
//  1. Build the echo plugin in New (env.GoBuild(ctx, env.RepoDir(), "./...")
//     for Go; cargo for Rust) and lay out a plugin dir with its airlock.toml
//     exporting "echo".
//  2. New creates the host once: h, err := airlock.NewHost(ctx).
//  3. Load calls h.Load(ctx, dir) and returns a Plugin whose Call is
//     p.Call(ctx, "echo", payload), whose PID is the process running the
//     plugin's code, and whose Close is p.Close(ctx).
//  4. System.Close calls h.Close(ctx).
//
// The bench module's go.mod already has
// `replace github.com/airlockhq/airlock => ../`, so importing the root package
// needs only a `require github.com/airlockhq/airlock v0.0.0` line.
// Set Concurrent to true if one plugin overlaps concurrent calls (it should).
// ============================================================================
package airlocksys

import (
	"context"
	"fmt"

	"github.com/airlockhq/airlock/bench/system"
)

// Specs returns the Airlock systems. Their targets are in package report.
func Specs() []system.Spec {
	return []system.Spec{
		{Name: system.AirlockGo, Role: system.RoleCandidate, Concurrent: true, New: newGo},
		{Name: system.AirlockRust, Role: system.RoleCandidate, Concurrent: true, New: newRust},
		{Name: system.AirlockGoSandb, Role: system.RoleCandidate, Concurrent: true, Sandboxed: true, New: newGoSandboxed},
	}
}

// newGo starts the airlock-go system: NewHost, then Load of a Go echo plugin
// built with sdk/go on the process tier, without containment.
//
// TODO(lead): wire to the public API (see the package comment).
func newGo(context.Context, *system.Env) (system.System, error) {
	return nil, fmt.Errorf("%s: not wired to the airlock API yet (bench/system/airlocksys): %w", system.AirlockGo, system.ErrAbsent)
}

// newRust starts the airlock-rust system: NewHost, then Load of a Rust echo
// plugin built with sdk/rust on the process tier, without containment.
//
// TODO(lead): wire to the public API (see the package comment).
func newRust(context.Context, *system.Env) (system.System, error) {
	return nil, fmt.Errorf("%s: not wired to the airlock API yet (bench/system/airlocksys): %w", system.AirlockRust, system.ErrAbsent)
}

// newGoSandboxed starts the airlock-go-sandboxed system: the airlock-go plugin
// with every containment the machine offers applied (namespaces, seccomp,
// landlock, rlimits). If this machine offers none, it should return ErrAbsent
// with the reason rather than measure an unsandboxed plugin under this name.
//
// TODO(lead): wire to the public API (see the package comment).
func newGoSandboxed(context.Context, *system.Env) (system.System, error) {
	return nil, fmt.Errorf("%s: not wired to the airlock API yet (bench/system/airlocksys): %w", system.AirlockGoSandb, system.ErrAbsent)
}
