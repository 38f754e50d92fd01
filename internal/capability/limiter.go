package capability

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxTokenBuckets bounds the buckets kept for attenuated tokens with an
// envelope narrower than their grant's; the oldest is dropped first.
const maxTokenBuckets = 4096

// Limiter enforces envelopes: a token-bucket call rate and a byte budget
// per minute for each plugin×capability, plus one bucket per attenuated
// token that narrowed its envelope. It keeps the counters Stats reports.
// It is safe for concurrent use; time is passed in, never read.
type Limiter struct {
	mu      sync.Mutex
	buckets map[limKey]*bucket
	tokens  map[string]*bucket // by token signature
	order   []string           // insertion order of tokens, for eviction
}

type limKey struct{ plugin, capability string }

type bucket struct {
	env   Envelope
	calls *rate.Limiter // nil: unlimited
	bytes *rate.Limiter // nil: unlimited
	stat  Stat
}

// Stat is the status of one plugin×capability.
type Stat struct {
	Plugin     string
	Capability string
	Envelope   Envelope
	Calls      uint64            // calls admitted
	BytesIn    uint64            // payload bytes admitted
	BytesOut   uint64            // response bytes returned
	Refused    map[string]uint64 // refusals by protocol code name
}

// NewLimiter returns an empty limiter.
func NewLimiter() *Limiter {
	return &Limiter{buckets: make(map[limKey]*bucket), tokens: make(map[string]*bucket)}
}

func newBucket(env Envelope) *bucket {
	b := &bucket{env: env}
	if env.Rate > 0 {
		burst := env.Burst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(env.Rate)))
		}
		b.calls = rate.NewLimiter(rate.Limit(env.Rate), burst)
	}
	if env.Budget > 0 {
		burst := int(min(env.Budget, math.MaxInt32))
		b.bytes = rate.NewLimiter(rate.Limit(float64(env.Budget)/60), burst)
	}
	return b
}

// Configure sets the envelope of plugin×capability. A changed envelope
// starts a fresh bucket; an unchanged one keeps its state (a plugin cannot
// refill its bucket by restarting).
func (l *Limiter) Configure(plugin, capability string, env Envelope) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limKey{plugin, capability}
	if b, ok := l.buckets[k]; ok {
		if b.env == env {
			return
		}
		nb := newBucket(env)
		nb.stat = b.stat
		l.buckets[k] = nb
		return
	}
	l.buckets[k] = newBucket(env)
}

// bucketsFor returns the plugin×capability bucket and, when the token's
// envelope is narrower, the token's own bucket.
func (l *Limiter) bucketsFor(plugin, capability, tokenKey string, env Envelope) []*bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limKey{plugin, capability}
	root, ok := l.buckets[k]
	if !ok {
		root = newBucket(env)
		l.buckets[k] = root
	}
	if env == root.env || tokenKey == "" {
		return []*bucket{root}
	}
	tb, ok := l.tokens[tokenKey]
	if !ok {
		if len(l.order) >= maxTokenBuckets {
			delete(l.tokens, l.order[0])
			l.order = l.order[1:]
		}
		tb = newBucket(env)
		l.tokens[tokenKey] = tb
		l.order = append(l.order, tokenKey)
	}
	return []*bucket{root, tb}
}

// Admit charges one call and in payload bytes. tokenKey identifies the
// presented token and env is its effective envelope.
func (l *Limiter) Admit(plugin, capability, tokenKey string, env Envelope, in int, now time.Time) error {
	bs := l.bucketsFor(plugin, capability, tokenKey, env)
	for _, b := range bs {
		if b.calls != nil && !b.calls.AllowN(now, 1) {
			return fmt.Errorf("%w: %s allows %g calls per second (burst %d) for plugin %q; slow down", ErrRateLimited, capability, b.env.Rate, b.calls.Burst(), plugin)
		}
	}
	for _, b := range bs {
		if b.bytes == nil {
			continue
		}
		if in > b.bytes.Burst() {
			return fmt.Errorf("%w: a %d-byte payload is more than the %s budget of %d bytes per minute for plugin %q", ErrBudgetExceeded, in, capability, b.env.Budget, plugin)
		}
		if b.bytes.TokensAt(now) < float64(max(in, 0)) || (in > 0 && !b.bytes.AllowN(now, in)) {
			return fmt.Errorf("%w: %s budget of %d bytes per minute for plugin %q is spent; wait for it to refill", ErrBudgetExceeded, capability, b.env.Budget, plugin)
		}
	}
	l.mu.Lock()
	bs[0].stat.Calls++
	bs[0].stat.BytesIn += uint64(max(in, 0))
	l.mu.Unlock()
	return nil
}

// Charge charges out response bytes after a call. The budget may go into
// debt (later calls wait for it to refill); a response larger than the
// whole budget is refused.
func (l *Limiter) Charge(plugin, capability, tokenKey string, env Envelope, out int, now time.Time) error {
	if out <= 0 {
		return nil
	}
	bs := l.bucketsFor(plugin, capability, tokenKey, env)
	for _, b := range bs {
		if b.bytes == nil {
			continue
		}
		if r := b.bytes.ReserveN(now, out); !r.OK() {
			return fmt.Errorf("%w: a %d-byte response is more than the %s budget of %d bytes per minute for plugin %q", ErrBudgetExceeded, out, capability, b.env.Budget, plugin)
		}
	}
	l.mu.Lock()
	bs[0].stat.BytesOut += uint64(out)
	l.mu.Unlock()
	return nil
}

// Refused counts a refusal of plugin×capability under code.
func (l *Limiter) Refused(plugin, capability, code string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limKey{plugin, capability}
	b, ok := l.buckets[k]
	if !ok {
		b = &bucket{}
		l.buckets[k] = b
	}
	if b.stat.Refused == nil {
		b.stat.Refused = make(map[string]uint64)
	}
	b.stat.Refused[code]++
}

// Stats returns a snapshot of every plugin×capability, sorted.
func (l *Limiter) Stats() []Stat {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Stat, 0, len(l.buckets))
	for k, b := range l.buckets {
		s := b.stat
		s.Plugin, s.Capability, s.Envelope = k.plugin, k.capability, b.env
		if b.stat.Refused != nil {
			s.Refused = make(map[string]uint64, len(b.stat.Refused))
			for c, n := range b.stat.Refused {
				s.Refused[c] = n
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Plugin != out[j].Plugin {
			return out[i].Plugin < out[j].Plugin
		}
		return out[i].Capability < out[j].Capability
	})
	return out
}
