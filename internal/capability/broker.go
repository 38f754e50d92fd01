package capability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/wire"
	"github.com/airlockhq/airlock/manifest"
	"github.com/airlockhq/airlock/policy"
)

// DefaultTokenTTL is how long minted tokens live when Config.TokenTTL is
// zero. Reissue mints fresh ones for a running instance.
const DefaultTokenTTL = 24 * time.Hour

// Config configures a Broker.
type Config struct {
	Registry *Registry      // required: the capabilities this host offers
	Policy   *policy.Policy // nil: deny everything but log
	Keyring  *Keyring       // nil: a fresh random keyring
	Audit    *audit.Log     // nil: no audit file (refusals still reach Logger)
	Logger   *slog.Logger   // nil: discard
	Now      func() time.Time
	TokenTTL time.Duration
}

// Broker is the host's capability dispatcher, one per host: it activates
// plugin instances (decide, audit, mint) and handles their host calls
// (verify, route, scope, envelope, call, audit). It is safe for concurrent
// use; two Brokers share nothing.
type Broker struct {
	reg     *Registry
	policy  atomic.Pointer[policy.Policy]
	keys    *Keyring
	audit   *audit.Log
	logger  *slog.Logger
	now     func() time.Time
	ttl     time.Duration
	limiter *Limiter

	mu     sync.RWMutex
	active map[instanceKey]*activation
}

type instanceKey struct{ plugin, instance string }

type activation struct {
	grants   map[string]policy.Grant
	tokenIDs map[string]string // capability → root token id
}

// Activation is the result of activating one plugin instance.
type Activation struct {
	Plugin   string
	Instance string
	Decision policy.Decision
	// Tokens holds one token per granted capability; hand them to the
	// plugin, which presents them with its host calls.
	Tokens map[string][]byte
	Expiry time.Time
}

// NewBroker returns a broker.
func NewBroker(cfg Config) (*Broker, error) {
	if cfg.Registry == nil {
		return nil, errors.New("new broker: a Registry is required")
	}
	b := &Broker{reg: cfg.Registry, keys: cfg.Keyring, audit: cfg.Audit, logger: cfg.Logger, now: cfg.Now, ttl: cfg.TokenTTL,
		limiter: NewLimiter(), active: make(map[instanceKey]*activation)}
	if b.keys == nil {
		k, err := NewKeyring()
		if err != nil {
			return nil, fmt.Errorf("new broker: %w", err)
		}
		b.keys = k
	}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.ttl <= 0 {
		b.ttl = DefaultTokenTTL
	}
	if cfg.Policy != nil {
		if err := cfg.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("new broker: %w", err)
		}
	}
	b.policy.Store(cfg.Policy)
	return b, nil
}

// Keyring returns the broker's keyring, for rotation.
func (b *Broker) Keyring() *Keyring { return b.keys }

// SetPolicy replaces the policy for later activations. Running instances
// keep their grants until re-activated.
func (b *Broker) SetPolicy(p *policy.Policy) error {
	if p != nil {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("set policy: %w", err)
		}
	}
	b.policy.Store(p)
	return nil
}

// Activate decides what the instance gets, writes one audit record per
// capability, configures the envelopes and mints one token per granted
// capability. Re-activating an instance replaces its grants and tokens.
// The error is only for failures of the host (audit, randomness); denials
// are in the Decision.
func (b *Broker) Activate(ctx context.Context, plugin, instance string, requests map[string]manifest.CapabilityRequest) (*Activation, error) {
	if plugin == "" || instance == "" {
		return nil, errors.New("activate: plugin and instance are required")
	}
	d := policy.Decide(b.policy.Load(), plugin, requests)
	for i, it := range d.Items {
		if _, ok := b.reg.Lookup(it.Capability); !ok {
			d.Items[i] = policy.Item{Capability: it.Capability, Outcome: policy.Denied,
				Reasons: []string{fmt.Sprintf("%s: no capability named %q is offered by this host (it offers %s)", it.Capability, it.Capability, strings.Join(b.reg.Functions(), ", "))}}
		}
	}
	now := b.now()
	exp := now.Add(b.ttl)
	act := &activation{grants: make(map[string]policy.Grant), tokenIDs: make(map[string]string)}
	out := &Activation{Plugin: plugin, Instance: instance, Decision: d, Tokens: make(map[string][]byte), Expiry: exp}
	var auditErr error
	for _, it := range d.Items {
		rec := audit.Record{Time: now, Plugin: plugin, Instance: instance, Capability: it.Capability,
			Decision: it.Outcome.String(), Reason: strings.Join(it.Reasons, "; ")}
		if it.Outcome != policy.Denied {
			c, _ := b.reg.Lookup(it.Capability)
			claims := Claims{Plugin: plugin, Instance: instance, Capability: it.Capability,
				Scope: scopeOf(it.Grant, functionsOf(c)), Envelope: envelopeOf(it.Grant),
				IssuedAt: now.UnixMilli(), Expiry: exp.UnixMilli()}
			tok, err := b.keys.Mint(claims)
			if err != nil {
				return nil, fmt.Errorf("activate %s: %w", plugin, err)
			}
			id := TokenID(tok)
			out.Tokens[it.Capability] = tok
			act.grants[it.Capability] = it.Grant
			act.tokenIDs[it.Capability] = id
			b.limiter.Configure(plugin, it.Capability, claims.Envelope)
			rec.TokenID = id
			rec.Scope = auditScope(it.Grant)
		}
		if err := b.writeAudit(ctx, rec); err != nil && auditErr == nil {
			auditErr = err
		}
	}
	if auditErr != nil {
		// An activation that cannot be audited does not happen.
		return nil, fmt.Errorf("activate %s: %w", plugin, auditErr)
	}
	b.mu.Lock()
	b.active[instanceKey{plugin, instance}] = act
	b.mu.Unlock()
	return out, nil
}

// Reissue mints fresh tokens (new ids, new expiry, current key) for an
// active instance's existing grants, e.g. before the old ones expire or
// after Keyring.Remove. The old tokens stop working.
func (b *Broker) Reissue(plugin, instance string) (map[string][]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	act, ok := b.active[instanceKey{plugin, instance}]
	if !ok {
		return nil, fmt.Errorf("reissue: plugin %q instance %q is not active", plugin, instance)
	}
	now := b.now()
	toks := make(map[string][]byte, len(act.grants))
	ids := make(map[string]string, len(act.grants))
	for name, g := range act.grants {
		c, ok := b.reg.Lookup(name)
		if !ok {
			continue
		}
		tok, err := b.keys.Mint(Claims{Plugin: plugin, Instance: instance, Capability: name, Scope: scopeOf(g, functionsOf(c)),
			Envelope: envelopeOf(g), IssuedAt: now.UnixMilli(), Expiry: now.Add(b.ttl).UnixMilli()})
		if err != nil {
			return nil, fmt.Errorf("reissue: %w", err)
		}
		toks[name], ids[name] = tok, TokenID(tok)
	}
	act.tokenIDs = ids
	return toks, nil
}

// Deactivate forgets an instance; its tokens stop working at once.
func (b *Broker) Deactivate(plugin, instance string) {
	b.mu.Lock()
	delete(b.active, instanceKey{plugin, instance})
	b.mu.Unlock()
}

// Stats returns the counters of every plugin×capability.
func (b *Broker) Stats() []Stat { return b.limiter.Stats() }

// Handle serves one host call: verify the token, route the function, check
// the scope, charge the envelope, call the capability, charge the response.
// A returned error is always an *Error carrying the protocol code for the
// ERROR frame (see CodeOf); each refusal is audited.
func (b *Broker) Handle(ctx context.Context, plugin, instance, function string, token, payload []byte) ([]byte, error) {
	now := b.now()
	fail := func(capability string, claims *Claims, err error) ([]byte, error) {
		return nil, b.refuse(ctx, plugin, instance, function, capability, claims, token, err)
	}
	if len(token) == 0 {
		// The SDK sends no token for a capability it was never granted:
		// that is a denial, not a forgery.
		c, ok := b.reg.Function(function)
		if !ok {
			return fail("", nil, fmt.Errorf("%w %q; this host offers %s", ErrUnknownFunction, function, strings.Join(b.reg.Functions(), ", ")))
		}
		return fail(c.Name(), nil, fmt.Errorf("%w: plugin %q holds no %s token: the capability was not granted to it (its status and the audit log give the reason)",
			ErrPermissionDenied, plugin, c.Name()))
	}
	claims, err := b.keys.Open(token, plugin, instance, now)
	if err != nil {
		return fail("", nil, err)
	}
	c, ok := b.reg.Function(function)
	if !ok {
		return fail(claims.Capability, claims, fmt.Errorf("%w %q; this host offers %s", ErrUnknownFunction, function, strings.Join(b.reg.Functions(), ", ")))
	}
	if c.Name() != claims.Capability {
		return fail(claims.Capability, claims, tokenErr("capability", ErrInvalidToken, "minted for %q, presented for %s", claims.Capability, function))
	}
	b.mu.RLock()
	act := b.active[instanceKey{plugin, instance}]
	var grant policy.Grant
	live := false
	if act != nil {
		grant, live = act.grants[claims.Capability]
		live = live && act.tokenIDs[claims.Capability] == claims.ID
	}
	b.mu.RUnlock()
	if !live {
		return fail(claims.Capability, claims, tokenErr("revoked", ErrInvalidToken, "token %s is no longer active for plugin %q instance %q (deactivated, re-activated or reissued)", claims.ID, plugin, instance))
	}
	access := Access{Function: function}
	if s, ok := c.(Scoper); ok {
		a, err := s.Access(function, payload)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				err = fmt.Errorf("%w: %w", ErrBadInput, err)
			}
			return fail(claims.Capability, claims, err)
		}
		access = a
		access.Function = function
	}
	if err := allows(claims, access); err != nil {
		return fail(claims.Capability, claims, err)
	}
	tokenKey := ""
	if claims.Caveats > 0 {
		tokenKey = string(token[len(token)-sigSize:])
	}
	if err := b.limiter.Admit(plugin, claims.Capability, tokenKey, claims.Envelope, len(payload), now); err != nil {
		return fail(claims.Capability, claims, err)
	}
	out, err := c.Call(ctx, &Call{Plugin: plugin, Instance: instance, Function: function, Grant: grant,
		Scope: claims.Scope, TokenID: claims.ID, Payload: payload})
	if err != nil {
		return fail(claims.Capability, claims, err)
	}
	if err := b.limiter.Charge(plugin, claims.Capability, tokenKey, claims.Envelope, len(out), b.now()); err != nil {
		return fail(claims.Capability, claims, err)
	}
	return out, nil
}

// audited lists the codes whose refusals are security-relevant and written
// to the audit log; other failures (not found, deadline…) are the plugin's
// business and only counted.
var audited = map[wire.Code]bool{
	wire.CodeInvalidToken: true, wire.CodePermissionDenied: true, wire.CodeRateLimited: true,
	wire.CodeBudgetExceeded: true, wire.CodeUnknownFunction: true, wire.CodeTooLarge: true,
}

func (b *Broker) refuse(ctx context.Context, plugin, instance, function, capability string, claims *Claims, token []byte, err error) error {
	code := CodeOf(err)
	if capability == "" {
		capability = "?"
	}
	b.limiter.Refused(plugin, capability, code.String())
	if audited[code] {
		rec := audit.Record{Plugin: plugin, Instance: instance, Capability: capability, Function: function,
			Decision: audit.Refused, Code: code.String(), Reason: err.Error()}
		if claims != nil {
			rec.TokenID = claims.ID
			rec.Scope, _ = json.Marshal(claims.Scope)
		} else {
			rec.TokenID = TokenID(token) // unverified: what the token claims
		}
		if aerr := b.writeAudit(ctx, rec); aerr != nil {
			b.logger.ErrorContext(ctx, "audit write failed", slog.Any("err", aerr))
		}
	}
	return &Error{Code: code, Plugin: plugin, Instance: instance, Function: function, Err: err}
}

func (b *Broker) writeAudit(ctx context.Context, rec audit.Record) error {
	if b.audit != nil {
		return b.audit.Write(ctx, rec)
	}
	level := slog.LevelInfo
	if rec.Denial() {
		level = slog.LevelWarn
	}
	b.logger.LogAttrs(ctx, level, "audit", slog.String("plugin", rec.Plugin), slog.String("instance", rec.Instance),
		slog.String("capability", rec.Capability), slog.String("function", rec.Function), slog.String("decision", rec.Decision),
		slog.String("code", rec.Code), slog.String("reason", rec.Reason), slog.String("token_id", rec.TokenID))
	return nil
}

// scopeOf turns a grant into a token scope.
func scopeOf(g policy.Grant, functions []string) Scope {
	return Scope{
		Ops: functions, Hosts: g.Hosts, Methods: g.Methods, AllowPrivate: g.AllowPrivate,
		MaxResponse: int64(g.MaxResponse), TimeoutMS: time.Duration(g.Timeout).Milliseconds(),
		Paths: g.Paths, MaxFile: int64(g.MaxFile), Quota: int64(g.Quota), Keys: g.Keys, Names: g.Scope,
	}
}

func envelopeOf(g policy.Grant) Envelope {
	e := Envelope{Burst: g.Burst, Budget: int64(g.Budget)}
	if g.Rate.Per > 0 && g.Rate.Count > 0 {
		e.Rate = g.Rate.Count / g.Rate.Per.Seconds()
	}
	if math.IsInf(e.Rate, 0) || math.IsNaN(e.Rate) {
		e.Rate = 0
	}
	return e
}

// auditScope is the grant as written to the audit log: config values are
// left out (they may be secrets), host directories are kept for operators.
func auditScope(g policy.Grant) json.RawMessage {
	g.Config = nil
	b, err := json.Marshal(g)
	if err != nil {
		return nil
	}
	return b
}
