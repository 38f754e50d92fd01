package airlock

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/airlockhq/airlock/internal/capability"
	"github.com/airlockhq/airlock/internal/wire"
	"github.com/airlockhq/airlock/policy"
)

// Capability is something the host does for plugins that the embedder
// provides: a search index, a billing API, a feature flag store. Register
// it with HostConfig.WithCapability. It goes through exactly what the
// built-in capabilities go through: a plugin requests it in its manifest
// ([capabilities."acme.search"]), the operator's policy grants it (with
// scope strings), the host mints a token, verifies it on every call, applies
// its rate and byte budget, and audits refusals. Call only runs for calls
// that passed all of that.
//
// Implementations must be safe for concurrent use.
type Capability interface {
	// Name is the capability's name as manifests and policies write it,
	// e.g. "acme.search" (lowercase, dot-separated).
	Name() string
	// Functions lists the host functions it serves: the name, a dot and an
	// operation ("acme.search.query").
	Functions() []string
	// Call serves one verified call. Return an error wrapping
	// ErrPermissionDenied, ErrBadInput, ErrTooLarge, ErrRateLimited or
	// ErrBudgetExceeded to choose the code the plugin sees; anything else is
	// internal.
	Call(ctx context.Context, call *HostCall) ([]byte, error)
}

// CapabilityScoper is implemented by a Capability whose calls touch named
// things (indexes, accounts): Scope says which scope strings a call needs,
// and the host refuses the call with permission_denied unless the plugin's
// token holds all of them.
type CapabilityScoper interface {
	Scope(function string, payload []byte) ([]string, error)
}

// HostCall is one call from a plugin to an embedder's capability, after the
// host verified its token.
type HostCall struct {
	Plugin   string
	Instance string
	Function string
	// Scope is what the plugin's token allows: the scope strings the policy
	// granted, possibly narrowed by the plugin. Read-only.
	Scope   []string
	Payload []byte
}

// embedded adapts a Capability to the broker's interface.
type embedded struct{ c Capability }

func (e embedded) Name() string        { return e.c.Name() }
func (e embedded) Functions() []string { return e.c.Functions() }

func (e embedded) Call(ctx context.Context, c *capability.Call) ([]byte, error) {
	out, err := e.c.Call(ctx, &HostCall{Plugin: c.Plugin, Instance: c.Instance, Function: c.Function,
		Scope: slices.Clone(c.Scope.Names), Payload: c.Payload})
	return out, brokerError(err)
}

// embeddedScoper adds the scope check for capabilities that implement
// CapabilityScoper.
type embeddedScoper struct {
	embedded
	s CapabilityScoper
}

func (e embeddedScoper) Access(function string, payload []byte) (capability.Access, error) {
	names, err := e.s.Scope(function, payload)
	if err != nil {
		return capability.Access{}, brokerError(err)
	}
	return capability.Access{Function: function, Names: names}, nil
}

// brokerError maps the public sentinels an embedder returns to the broker's,
// which choose the protocol code.
func brokerError(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range []struct{ public, internal error }{
		{ErrPermissionDenied, capability.ErrPermissionDenied},
		{ErrBadInput, capability.ErrBadInput},
		{ErrTooLarge, capability.ErrTooLarge},
		{ErrRateLimited, capability.ErrRateLimited},
		{ErrBudgetExceeded, capability.ErrBudgetExceeded},
	} {
		if errors.Is(err, m.public) {
			return fmt.Errorf("%w: %w", m.internal, err)
		}
	}
	return err
}

func adaptCapability(c Capability) capability.Capability {
	if s, ok := c.(CapabilityScoper); ok {
		return embeddedScoper{embedded{c}, s}
	}
	return embedded{c}
}

// CapabilityStatus is what a plugin was granted of one capability and how
// it used it.
type CapabilityStatus struct {
	Name     string
	Decision string   // "granted", "narrowed" or "denied"
	Reasons  []string // why it was denied, or what was narrowed
	Calls    uint64   // host calls admitted
	BytesIn  uint64   // payload bytes admitted
	BytesOut uint64   // response bytes returned
	Refused  map[string]uint64
}

func capabilityStatus(d policy.Decision, stats []capability.Stat) []CapabilityStatus {
	out := make([]CapabilityStatus, 0, len(d.Items))
	for _, it := range d.Items {
		cs := CapabilityStatus{Name: it.Capability, Decision: it.Outcome.String(), Reasons: it.Reasons}
		for _, s := range stats {
			if s.Plugin == d.Plugin && s.Capability == it.Capability {
				cs.Calls, cs.BytesIn, cs.BytesOut, cs.Refused = s.Calls, s.BytesIn, s.BytesOut, s.Refused
			}
		}
		out = append(out, cs)
	}
	return out
}

// tokensOf orders an activation's tokens for a GRANT frame.
func tokensOf(m map[string][]byte) []wire.Token {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	toks := make([]wire.Token, 0, len(names))
	for _, n := range names {
		toks = append(toks, wire.Token{Capability: n, Token: m[n]})
	}
	return toks
}
