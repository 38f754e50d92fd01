package capability

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/airlockhq/airlock/policy"
)

// Capability is one thing the host can do for a plugin: kv, http, fs.read,
// or an embedder's own. The broker verifies the token, checks the scope and
// the envelope and writes the audit record; the capability only does the
// work, and checks its scope again where it acts.
//
// Implementations must be safe for concurrent use: calls from many plugins
// and instances arrive at once.
type Capability interface {
	// Name is the capability's name, as in manifests and policies ("kv").
	Name() string
	// Functions lists the host functions it serves. Each is the name
	// followed by a dot and an operation ("kv.get").
	Functions() []string
	// Call performs one host call. Errors should wrap this package's
	// sentinels (ErrBadInput, ErrNotFound, ErrPermissionDenied, ErrTooLarge,
	// ErrQuotaExceeded…) so the plugin gets the right code.
	Call(ctx context.Context, c *Call) ([]byte, error)
}

// Scoper is implemented by capabilities whose calls need more than the
// function name from the token's scope: Access decodes the payload and says
// what the call touches (host, path, key…), so the broker can refuse a call
// outside the token's scope before Call runs. A payload it cannot decode is
// an error wrapping ErrBadInput.
type Scoper interface {
	Access(function string, payload []byte) (Access, error)
}

// Call is one host call, after the broker verified its token.
type Call struct {
	Plugin   string
	Instance string
	Function string // e.g. "kv.get"
	// Grant is the effective grant from the policy decision at activation:
	// host-side details such as fs roots and config values live here.
	Grant policy.Grant
	// Scope is the verified token's effective scope. It may be narrower
	// than Grant when the plugin attenuated its token; what the call may do
	// is bounded by Scope.
	Scope   Scope
	TokenID string
	Payload []byte
}

// Op returns the operation part of the function name ("get" in "kv.get").
func (c *Call) Op() string {
	return c.Function[strings.LastIndexByte(c.Function, '.')+1:]
}

var functionRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

// Registry holds the capabilities a host offers. Built-in and embedder
// capabilities register the same way and go through the same policy,
// tokens, limits and audit. It is safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	caps  map[string]Capability
	funcs map[string]Capability
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{caps: make(map[string]Capability), funcs: make(map[string]Capability)}
}

// Register adds c. It fails when the name or a function is taken, or a
// function is not namespaced under the name.
func (r *Registry) Register(c Capability) error {
	name := c.Name()
	if !functionRE.MatchString(name+".x") || strings.Contains(name, "..") {
		return fmt.Errorf("register capability %q: names are lowercase words separated by dots, e.g. \"acme.search\"", name)
	}
	fns := c.Functions()
	if len(fns) == 0 {
		return fmt.Errorf("register capability %q: it serves no function", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.caps[name]; dup {
		return fmt.Errorf("register capability %q: already registered", name)
	}
	for _, fn := range fns {
		if !functionRE.MatchString(fn) || !strings.HasPrefix(fn, name+".") || strings.Contains(strings.TrimPrefix(fn, name+"."), ".") {
			return fmt.Errorf("register capability %q: function %q must be %q followed by one lowercase operation, e.g. %q", name, fn, name+".", name+".get")
		}
		if other, dup := r.funcs[fn]; dup {
			return fmt.Errorf("register capability %q: function %q is already served by %q", name, fn, other.Name())
		}
	}
	r.caps[name] = c
	for _, fn := range fns {
		r.funcs[fn] = c
	}
	return nil
}

// Lookup returns the capability called name.
func (r *Registry) Lookup(name string) (Capability, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.caps[name]
	return c, ok
}

// Function returns the capability that serves fn.
func (r *Registry) Function(fn string) (Capability, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.funcs[fn]
	return c, ok
}

// Functions lists every function, sorted.
func (r *Registry) Functions() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.funcs))
}

// functionsOf returns c's functions, sorted, as a fresh slice.
func functionsOf(c Capability) []string {
	fns := slices.Clone(c.Functions())
	slices.Sort(fns)
	return fns
}

// DecodeJSON decodes a host call's JSON payload strictly (unknown fields are
// errors) into v; failures wrap ErrBadInput and name the problem.
func DecodeJSON(payload []byte, v any) error {
	if err := strictJSON(payload, v); err != nil {
		return fmt.Errorf("%w: decode JSON payload: %v", ErrBadInput, err)
	}
	return nil
}
