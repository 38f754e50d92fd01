package policy

import (
	"fmt"
	"math"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock/manifest"
)

// Outcome is what Decide did with one requested capability.
type Outcome uint8

// The outcomes. The zero Outcome is Denied, so a forgotten field fails closed.
const (
	Denied   Outcome = iota // nothing granted
	Granted                 // granted as requested
	Narrowed                // granted, but less than requested; Reasons say what was cut
)

func (o Outcome) String() string {
	switch o {
	case Denied:
		return "denied"
	case Granted:
		return "granted"
	case Narrowed:
		return "narrowed"
	default:
		return "outcome(" + strconv.Itoa(int(o)) + ")"
	}
}

// Grant is the effective grant of one capability: the intersection of the
// manifest's request, the policy's rule and the defaults. A zero Rate or
// Budget means unlimited (only "log" has them unless the policy sets them).
type Grant struct {
	Capability string

	// Envelope.
	Rate   manifest.Rate
	Burst  int
	Budget manifest.Size // bytes per minute

	// http.
	Hosts        []string
	Methods      []string
	AllowPrivate bool
	MaxResponse  manifest.Size
	Timeout      manifest.Duration

	// fs.read, fs.write: Paths the plugin may use, each mapped by Roots to
	// the host directory it resolves under.
	Paths   []string
	Roots   map[string]string
	MaxFile manifest.Size

	// kv.
	Quota manifest.Size

	// config: the granted keys and their values.
	Keys   []string
	Config map[string]string

	// Scope strings of an embedder's capability.
	Scope []string
}

// Item is the decision for one capability.
type Item struct {
	Capability string
	Outcome    Outcome
	Grant      Grant    // zero when Outcome is Denied
	Reasons    []string // why it was denied or what was narrowed; empty when Granted
}

// Decision is Decide's answer for one plugin.
type Decision struct {
	Plugin string
	Items  []Item // one per requested capability (and "log"), sorted by name
}

// Lookup returns the item for capability.
func (d Decision) Lookup(capability string) (Item, bool) {
	for _, it := range d.Items {
		if it.Capability == capability {
			return it, true
		}
	}
	return Item{}, false
}

// Grants returns the granted (and narrowed) capabilities by name.
func (d Decision) Grants() map[string]Grant {
	out := make(map[string]Grant, len(d.Items))
	for _, it := range d.Items {
		if it.Outcome != Denied {
			out[it.Capability] = it.Grant
		}
	}
	return out
}

// Decide returns the effective grant of each capability the plugin requests:
// the intersection of the request and the policy, never wider than either.
// Capabilities without a rule are denied. "log" is always granted, requested
// or not. Decide is pure: it reads p and requests and modifies neither; a nil
// p denies everything but log.
func Decide(p *Policy, plugin string, requests map[string]manifest.CapabilityRequest) Decision {
	d := Decision{Plugin: plugin}
	names := make([]string, 0, len(requests)+1)
	for name := range requests {
		names = append(names, name)
	}
	if _, ok := requests[Log]; !ok {
		names = append(names, Log)
	}
	sort.Strings(names)
	for _, name := range names {
		d.Items = append(d.Items, decideOne(p, plugin, name, requests[name]))
	}
	return d
}

// deciding accumulates one item's result.
type deciding struct {
	plugin, capability string
	reasons            []string
	grant              Grant
}

func (c *deciding) narrow(format string, args ...any) {
	c.reasons = append(c.reasons, c.capability+": "+fmt.Sprintf(format, args...))
}

func (c *deciding) deny(format string, args ...any) Item {
	return Item{Capability: c.capability, Outcome: Denied, Reasons: []string{c.capability + ": " + fmt.Sprintf(format, args...)}}
}

func (c *deciding) item() Item {
	if len(c.reasons) == 0 {
		return Item{Capability: c.capability, Outcome: Granted, Grant: c.grant}
	}
	return Item{Capability: c.capability, Outcome: Narrowed, Grant: c.grant, Reasons: c.reasons}
}

// lookup finds the rule for capability: the plugin's own, else the "*" one.
func lookup(p *Policy, plugin, capability string) (Rule, bool) {
	if p == nil {
		return Rule{}, false
	}
	if pl, ok := p.Plugins[plugin]; ok {
		if r, ok := pl.Capabilities[capability]; ok {
			return r, true
		}
	}
	if pl, ok := p.Plugins[Default]; ok {
		if r, ok := pl.Capabilities[capability]; ok {
			return r, true
		}
	}
	return Rule{}, false
}

func configValues(p *Policy, plugin string) map[string]string {
	if p == nil {
		return nil
	}
	if pl, ok := p.Plugins[plugin]; ok && pl.Config != nil {
		return pl.Config
	}
	return p.Plugins[Default].Config
}

func decideOne(p *Policy, plugin, name string, req manifest.CapabilityRequest) Item {
	c := &deciding{plugin: plugin, capability: name, grant: Grant{Capability: name}}
	rule, ok := lookup(p, plugin, name)

	if name == Log {
		// Always granted; a rule can only cap the envelope.
		c.envelope(req, rule, false)
		return c.item()
	}

	var config map[string]string
	if name == Config {
		config = configValues(p, plugin)
		if !ok && len(config) == 0 {
			return c.deny("no config values are set for plugin %q; add a [plugins.%s.config] table with the keys the plugin reads", plugin, tomlKey(plugin))
		}
	} else if !ok {
		return c.deny("no policy rule grants %q to plugin %q; add a [plugins.%s.capabilities.%s] table (or [plugins.\"*\".capabilities.%s] for every plugin) to the policy",
			name, plugin, tomlKey(plugin), tomlKey(name), tomlKey(name))
	}
	if rule.Deny != "" {
		return c.deny("denied by policy for plugin %q: %s", plugin, rule.Deny)
	}

	switch name {
	case HTTP:
		if it, denied := c.http(req, rule); denied {
			return it
		}
	case FSRead, FSWrite:
		if it, denied := c.fs(req, rule); denied {
			return it
		}
	case KV:
		c.grant.Quota = c.minSize("quota", req.Quota, rule.Quota, DefaultQuota)
	case Config:
		if it, denied := c.config(req, config); denied {
			return it
		}
	case Clock, Random:
	default:
		c.grant.Scope = c.intersect("scope", req.Scope, rule.Scope, func(want, have string) bool { return want == have })
		if len(req.Scope) > 0 && len(c.grant.Scope) == 0 {
			return Item{Capability: name, Outcome: Denied, Reasons: c.reasons}
		}
	}
	c.envelope(req, rule, true)
	return c.item()
}

func (c *deciding) http(req manifest.CapabilityRequest, rule Rule) (Item, bool) {
	if len(req.Hosts) == 0 {
		return c.deny("the manifest lists no hosts; add hosts = [\"api.example.com\"] to its [capabilities.http] table"), true
	}
	for _, h := range req.Hosts {
		h = normalizeHost(h)
		if checkHostPattern(h) != "" {
			c.narrow("host %q is not a valid host name or pattern", h)
			continue
		}
		if slices.ContainsFunc(rule.Hosts, func(pat string) bool { return HostCovered(pat, h) }) {
			if !slices.Contains(c.grant.Hosts, h) {
				c.grant.Hosts = append(c.grant.Hosts, h)
			}
			continue
		}
		c.narrow("host %q not in policy allowlist for plugin %q", h, c.plugin)
	}
	if len(c.grant.Hosts) == 0 {
		return Item{Capability: c.capability, Outcome: Denied, Reasons: c.reasons}, true
	}
	methods := upperAll(req.Methods)
	if len(methods) == 0 {
		methods = slices.Clone(defaultMethods)
	}
	allowed := upperAll(rule.Methods)
	if len(allowed) == 0 {
		allowed = defaultMethods
	}
	for _, m := range methods {
		if slices.Contains(allowed, m) {
			if !slices.Contains(c.grant.Methods, m) {
				c.grant.Methods = append(c.grant.Methods, m)
			}
			continue
		}
		c.narrow("method %s not allowed by policy for plugin %q (allowed: %s)", m, c.plugin, strings.Join(allowed, ", "))
	}
	if len(c.grant.Methods) == 0 {
		return Item{Capability: c.capability, Outcome: Denied, Reasons: c.reasons}, true
	}
	c.grant.AllowPrivate = rule.AllowPrivate
	c.grant.MaxResponse = c.minSize("max_response", req.MaxResponse, rule.MaxResponse, DefaultMaxResponse)
	c.grant.Timeout = c.minDuration("timeout", req.Timeout, rule.Timeout, manifest.Duration(DefaultTimeout))
	return Item{}, false
}

func (c *deciding) fs(req manifest.CapabilityRequest, rule Rule) (Item, bool) {
	if len(req.Paths) == 0 {
		return c.deny("the manifest lists no paths; add paths = [\"data\"] to its [capabilities.%q] table", c.capability), true
	}
	roots := make([]string, 0, len(rule.Roots))
	for r := range rule.Roots {
		roots = append(roots, r)
	}
	sort.Strings(roots)
	for _, p := range req.Paths {
		if msg := checkRelPath(p); msg != "" {
			c.narrow("%s", msg)
			continue
		}
		host, ok := resolveRoot(rule.Roots, p)
		if !ok {
			c.narrow("path %q is not under any root the policy maps for plugin %q (roots: %s)", p, c.plugin, strings.Join(roots, ", "))
			continue
		}
		if _, dup := c.grant.Roots[p]; dup {
			continue
		}
		if c.grant.Roots == nil {
			c.grant.Roots = make(map[string]string)
		}
		c.grant.Paths = append(c.grant.Paths, p)
		c.grant.Roots[p] = host
	}
	if len(c.grant.Paths) == 0 {
		return Item{Capability: c.capability, Outcome: Denied, Reasons: c.reasons}, true
	}
	c.grant.MaxFile = c.minSize("max_file", req.MaxFile, rule.MaxFile, DefaultMaxFile)
	return Item{}, false
}

// resolveRoot maps a plugin path to a host directory through the longest
// root that contains it.
func resolveRoot(roots map[string]string, p string) (string, bool) {
	best := ""
	for r := range roots {
		if (p == r || strings.HasPrefix(p, r+"/")) && len(r) > len(best) {
			best = r
		}
	}
	if best == "" {
		return "", false
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(p, best), "/")
	if rest == "" {
		return roots[best], true
	}
	return path.Join(roots[best], rest), true
}

func (c *deciding) config(req manifest.CapabilityRequest, values map[string]string) (Item, bool) {
	if len(req.Keys) == 0 {
		return c.deny("the manifest lists no keys; add keys = [\"name\"] to its [capabilities.config] table"), true
	}
	for _, k := range req.Keys {
		v, ok := values[k]
		if !ok {
			c.narrow("key %q has no value in the policy for plugin %q; set it under [plugins.%s.config]", k, c.plugin, tomlKey(c.plugin))
			continue
		}
		if c.grant.Config == nil {
			c.grant.Config = make(map[string]string)
		}
		if _, dup := c.grant.Config[k]; !dup {
			c.grant.Keys = append(c.grant.Keys, k)
			c.grant.Config[k] = v
		}
	}
	if len(c.grant.Keys) == 0 {
		return Item{Capability: c.capability, Outcome: Denied, Reasons: c.reasons}, true
	}
	return Item{}, false
}

// intersect keeps the wanted items that some allowed item covers, with a
// reason for each dropped one.
func (c *deciding) intersect(field string, want, allowed []string, covers func(want, have string) bool) []string {
	var out []string
	for _, w := range want {
		if slices.ContainsFunc(allowed, func(a string) bool { return covers(w, a) }) {
			if !slices.Contains(out, w) {
				out = append(out, w)
			}
			continue
		}
		c.narrow("%s %q not allowed by policy for plugin %q", field, w, c.plugin)
	}
	return out
}

// envelope sets rate, burst and budget. withDefaults applies the defaults
// where both request and rule are silent.
func (c *deciding) envelope(req manifest.CapabilityRequest, rule Rule, withDefaults bool) {
	rate := req.Rate
	if rule.Rate != (manifest.Rate{}) {
		if rate == (manifest.Rate{}) || perSecond(rule.Rate) < perSecond(rate) {
			if rate != (manifest.Rate{}) {
				c.narrow("rate %s exceeds the policy cap %s for plugin %q; granted %s", formatRate(rate), formatRate(rule.Rate), c.plugin, formatRate(rule.Rate))
			}
			rate = rule.Rate
		}
	}
	if rate == (manifest.Rate{}) && withDefaults {
		rate = manifest.Rate{Count: DefaultRatePerSecond, Per: time.Second}
	}
	c.grant.Rate = rate
	if rate != (manifest.Rate{}) {
		burst := req.Burst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(perSecond(rate))))
		}
		if rule.Burst > 0 && rule.Burst < burst {
			if req.Burst > 0 {
				c.narrow("burst %d exceeds the policy cap %d for plugin %q; granted %d", req.Burst, rule.Burst, c.plugin, rule.Burst)
			}
			burst = rule.Burst
		}
		c.grant.Burst = burst
	}
	budget := req.Budget
	if rule.Budget > 0 && (budget <= 0 || rule.Budget < budget) {
		if budget > 0 {
			c.narrow("budget %s per minute exceeds the policy cap %s for plugin %q; granted %s", FormatSize(budget), FormatSize(rule.Budget), c.plugin, FormatSize(rule.Budget))
		}
		budget = rule.Budget
	}
	if budget <= 0 && withDefaults {
		budget = DefaultBudget
	}
	c.grant.Budget = budget
}

// minSize is min(request or default, rule or default), with a reason when
// the rule cut the request.
func (c *deciding) minSize(field string, req, rule, def manifest.Size) manifest.Size {
	want := req
	if want <= 0 {
		want = def
	}
	if rule > 0 && rule < want {
		if req > 0 {
			c.narrow("%s %s exceeds the policy cap %s for plugin %q; granted %s", field, FormatSize(req), FormatSize(rule), c.plugin, FormatSize(rule))
		}
		return rule
	}
	return want
}

func (c *deciding) minDuration(field string, req, rule, def manifest.Duration) manifest.Duration {
	want := req
	if want <= 0 {
		want = def
	}
	if rule > 0 && rule < want {
		if req > 0 {
			c.narrow("%s %s exceeds the policy cap %s for plugin %q; granted %s", field, time.Duration(req), time.Duration(rule), c.plugin, time.Duration(rule))
		}
		return rule
	}
	return want
}

// HostCovered reports whether the allowlist pattern pat covers host, which
// may itself be a pattern: "api.example.com" is covered by itself and by
// "*.example.com"; "*.a.example.com" is covered by "*.example.com"; a
// pattern never covers its bare parent ("example.com").
func HostCovered(pat, host string) bool {
	pat, host = normalizeHost(pat), normalizeHost(host)
	if pat == host {
		return true
	}
	suffix, ok := strings.CutPrefix(pat, "*")
	if !ok || !strings.HasPrefix(suffix, ".") || !strings.HasSuffix(host, suffix) {
		return false
	}
	return strings.TrimSuffix(host, suffix) != ""
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func upperAll(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		out = append(out, strings.ToUpper(s))
	}
	return out
}

func perSecond(r manifest.Rate) float64 {
	if r.Per <= 0 {
		return math.Inf(1)
	}
	return r.Count / r.Per.Seconds()
}

func formatRate(r manifest.Rate) string {
	unit := r.Per.String()
	switch r.Per {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	}
	return strconv.FormatFloat(r.Count, 'g', -1, 64) + "/" + unit
}

// FormatSize writes n with the largest binary unit that divides it.
func FormatSize(n manifest.Size) string {
	for _, u := range sizeUnits {
		if u.mul > 1 && n != 0 && int64(n)%u.mul == 0 {
			return strconv.FormatInt(int64(n)/u.mul, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(n), 10) + "B"
}
