package policy

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/manifest"
)

func weatherPolicy() *Policy {
	return &Policy{Plugins: map[string]Plugin{
		Default: {Capabilities: map[string]Rule{
			Clock:  {},
			Random: {Rate: manifest.Rate{Count: 10, Per: time.Second}, Budget: 64 * KiB},
		}},
		"weather": {
			Capabilities: map[string]Rule{
				HTTP: {Hosts: []string{"api.weather.example", "*.tiles.example"}, Methods: []string{"GET", "HEAD"},
					MaxResponse: 2 * MiB, Timeout: manifest.Duration(5 * time.Second), Rate: manifest.Rate{Count: 20, Per: time.Second}},
				KV:            {Quota: 10 * MiB},
				FSRead:        {Roots: map[string]string{"data": "/srv/w/data", "data/deep": "/mnt/deep"}},
				FSWrite:       {Deny: "weather only reads"},
				Random:        {Deny: "deterministic please"},
				"acme.search": {Scope: []string{"read:index"}},
			},
			Config: map[string]string{"units": "metric", "retries": "3"},
		},
	}}
}

func TestDecide(t *testing.T) {
	p := weatherPolicy()
	tests := []struct {
		name    string
		plugin  string
		cap     string
		req     manifest.CapabilityRequest
		outcome Outcome
		reason  string // substring of the joined reasons
		check   func(t *testing.T, g Grant)
	}{
		{name: "http exact and wildcard host", plugin: "weather", cap: HTTP,
			req: manifest.CapabilityRequest{Hosts: []string{"api.weather.example", "a.tiles.example"}, Methods: []string{"get"}}, outcome: Granted,
			check: func(t *testing.T, g Grant) {
				if !slices.Equal(g.Hosts, []string{"api.weather.example", "a.tiles.example"}) || !slices.Equal(g.Methods, []string{"GET"}) {
					t.Errorf("grant = %+v", g)
				}
				if g.MaxResponse != DefaultMaxResponse || time.Duration(g.Timeout) != 5*time.Second || g.AllowPrivate {
					t.Errorf("limits = %v %v %v", g.MaxResponse, g.Timeout, g.AllowPrivate)
				}
				if g.Rate.Count != 20 || g.Burst != 20 || g.Budget != DefaultBudget {
					t.Errorf("envelope = %+v %d %d", g.Rate, g.Burst, g.Budget)
				}
			}},
		{name: "http host not allowlisted", plugin: "weather", cap: HTTP,
			req: manifest.CapabilityRequest{Hosts: []string{"api.weather.example", "evil.com"}}, outcome: Narrowed,
			reason: `http: host "evil.com" not in policy allowlist for plugin "weather"`,
			check: func(t *testing.T, g Grant) {
				if !slices.Equal(g.Hosts, []string{"api.weather.example"}) {
					t.Errorf("hosts = %v", g.Hosts)
				}
			}},
		{name: "http only bad hosts", plugin: "weather", cap: HTTP,
			req: manifest.CapabilityRequest{Hosts: []string{"evil.com", "tiles.example"}}, outcome: Denied,
			reason: `host "tiles.example" not in policy allowlist`},
		{name: "http wildcard wider than policy", plugin: "weather", cap: HTTP,
			req: manifest.CapabilityRequest{Hosts: []string{"*.weather.example"}}, outcome: Denied, reason: `host "*.weather.example" not in policy allowlist`},
		{name: "http method narrowed", plugin: "weather", cap: HTTP,
			req: manifest.CapabilityRequest{Hosts: []string{"api.weather.example"}, Methods: []string{"GET", "POST"}}, outcome: Narrowed,
			reason: "method POST not allowed by policy"},
		{name: "http caps narrowed", plugin: "weather", cap: HTTP,
			req: manifest.CapabilityRequest{Hosts: []string{"api.weather.example"}, MaxResponse: 8 * MiB, Timeout: manifest.Duration(time.Minute),
				Rate: manifest.Rate{Count: 1000, Per: time.Second}}, outcome: Narrowed,
			reason: "max_response 8MiB exceeds the policy cap 2MiB",
			check: func(t *testing.T, g Grant) {
				if g.MaxResponse != 2*MiB || time.Duration(g.Timeout) != 5*time.Second || g.Rate.Count != 20 {
					t.Errorf("grant = %+v", g)
				}
			}},
		{name: "http no hosts requested", plugin: "weather", cap: HTTP, req: manifest.CapabilityRequest{}, outcome: Denied, reason: "the manifest lists no hosts"},
		{name: "kv default quota", plugin: "weather", cap: KV, outcome: Granted,
			check: func(t *testing.T, g Grant) {
				if g.Quota != DefaultQuota {
					t.Errorf("quota = %d", g.Quota)
				}
			}},
		{name: "kv quota within cap", plugin: "weather", cap: KV, req: manifest.CapabilityRequest{Quota: 4 * MiB}, outcome: Granted,
			check: func(t *testing.T, g Grant) {
				if g.Quota != 4*MiB {
					t.Errorf("quota = %d", g.Quota)
				}
			}},
		{name: "kv quota over cap", plugin: "weather", cap: KV, req: manifest.CapabilityRequest{Quota: 20 * MiB}, outcome: Narrowed,
			reason: `kv: quota 20MiB exceeds the policy cap 10MiB for plugin "weather"; granted 10MiB`},
		{name: "no rule: deny by default", plugin: "other", cap: KV, outcome: Denied,
			reason: `kv: no policy rule grants "kv" to plugin "other"; add a [plugins.other.capabilities.kv] table`},
		{name: "explicit deny", plugin: "weather", cap: FSWrite, req: manifest.CapabilityRequest{Paths: []string{"data"}}, outcome: Denied,
			reason: `fs.write: denied by policy for plugin "weather": weather only reads`},
		{name: "plugin deny overrides default allow", plugin: "weather", cap: Random, outcome: Denied, reason: "deterministic please"},
		{name: "default section applies", plugin: "other", cap: Random, outcome: Granted,
			check: func(t *testing.T, g Grant) {
				if g.Rate.Count != 10 || g.Budget != 64*KiB {
					t.Errorf("envelope = %+v %d", g.Rate, g.Budget)
				}
			}},
		{name: "clock from default", plugin: "weather", cap: Clock, outcome: Granted},
		{name: "fs paths mapped to roots", plugin: "weather", cap: FSRead,
			req: manifest.CapabilityRequest{Paths: []string{"data", "data/sub/x", "data/deep/y"}}, outcome: Granted,
			check: func(t *testing.T, g Grant) {
				want := map[string]string{"data": "/srv/w/data", "data/sub/x": "/srv/w/data/sub/x", "data/deep/y": "/mnt/deep/y"}
				for k, v := range want {
					if g.Roots[k] != v {
						t.Errorf("root %q = %q, want %q", k, g.Roots[k], v)
					}
				}
				if g.MaxFile != DefaultMaxFile {
					t.Errorf("max_file = %d", g.MaxFile)
				}
			}},
		{name: "fs path outside roots and escapes", plugin: "weather", cap: FSRead,
			req: manifest.CapabilityRequest{Paths: []string{"data", "etc", "../data", "/data", "datax"}}, outcome: Narrowed,
			reason: `path "etc" is not under any root the policy maps for plugin "weather"`,
			check: func(t *testing.T, g Grant) {
				if !slices.Equal(g.Paths, []string{"data"}) {
					t.Errorf("paths = %v", g.Paths)
				}
			}},
		{name: "fs no paths", plugin: "weather", cap: FSRead, outcome: Denied, reason: "lists no paths"},
		{name: "config granted keys only", plugin: "weather", cap: Config, req: manifest.CapabilityRequest{Keys: []string{"units", "secret"}}, outcome: Narrowed,
			reason: `config: key "secret" has no value in the policy for plugin "weather"`,
			check: func(t *testing.T, g Grant) {
				if len(g.Config) != 1 || g.Config["units"] != "metric" || !slices.Equal(g.Keys, []string{"units"}) {
					t.Errorf("config = %v keys %v", g.Config, g.Keys)
				}
			}},
		{name: "config without values", plugin: "other", cap: Config, req: manifest.CapabilityRequest{Keys: []string{"units"}}, outcome: Denied,
			reason: "no config values are set for plugin \"other\""},
		{name: "embedder scope narrowed", plugin: "weather", cap: "acme.search", req: manifest.CapabilityRequest{Scope: []string{"read:index", "write:index"}}, outcome: Narrowed,
			reason: `scope "write:index" not allowed by policy`,
			check: func(t *testing.T, g Grant) {
				if !slices.Equal(g.Scope, []string{"read:index"}) {
					t.Errorf("scope = %v", g.Scope)
				}
			}},
		{name: "embedder scope denied", plugin: "weather", cap: "acme.search", req: manifest.CapabilityRequest{Scope: []string{"admin"}}, outcome: Denied},
		{name: "log always granted", plugin: "nobody", cap: Log, outcome: Granted,
			check: func(t *testing.T, g Grant) {
				if g.Rate != (manifest.Rate{}) || g.Budget != 0 {
					t.Errorf("log envelope should be unlimited here: %+v", g)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(p, tt.plugin, map[string]manifest.CapabilityRequest{tt.cap: tt.req})
			it, ok := d.Lookup(tt.cap)
			if !ok {
				t.Fatalf("no item for %s in %+v", tt.cap, d)
			}
			if it.Outcome != tt.outcome {
				t.Fatalf("outcome = %v, want %v (reasons %q)", it.Outcome, tt.outcome, it.Reasons)
			}
			joined := strings.Join(it.Reasons, "\n")
			if tt.reason != "" && !strings.Contains(joined, tt.reason) {
				t.Errorf("reasons %q do not contain %q", joined, tt.reason)
			}
			if tt.outcome == Granted && len(it.Reasons) != 0 {
				t.Errorf("granted item has reasons %q", it.Reasons)
			}
			if tt.outcome != Granted && len(it.Reasons) == 0 {
				t.Error("denied or narrowed item without a reason")
			}
			if tt.outcome == Denied && it.Grant.Capability != "" {
				t.Errorf("denied item carries a grant %+v", it.Grant)
			}
			if tt.check != nil {
				tt.check(t, it.Grant)
			}
		})
	}
}

func TestDecide_AlwaysLogAndSorted(t *testing.T) {
	d := Decide(nil, "x", map[string]manifest.CapabilityRequest{"kv": {}, "clock": {}, "http": {Hosts: []string{"a.example"}}})
	var names []string
	for _, it := range d.Items {
		names = append(names, it.Capability)
		if it.Capability != Log && it.Outcome != Denied {
			t.Errorf("nil policy granted %s", it.Capability)
		}
	}
	if !slices.Equal(names, []string{"clock", "http", "kv", "log"}) {
		t.Errorf("items = %v", names)
	}
	if len(d.Grants()) != 1 {
		t.Errorf("grants = %v", d.Grants())
	}
}

func TestHostCovered(t *testing.T) {
	tests := []struct {
		pat, host string
		want      bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "API.example.com.", true},
		{"api.example.com", "x.api.example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "evilexample.com", false},
		{"*.example.com", "*.example.com", true},
		{"*.example.com", "*.a.example.com", true},
		{"a.example.com", "*.example.com", false},
		{"*.a.example.com", "*.example.com", false},
	}
	for _, tt := range tests {
		if got := HostCovered(tt.pat, tt.host); got != tt.want {
			t.Errorf("HostCovered(%q, %q) = %v, want %v", tt.pat, tt.host, got, tt.want)
		}
	}
}

// TestDecide_NeverWider draws random requests and rules and checks that every
// grant lies inside both: hosts covered by the request and by the policy,
// methods in both, every number at most both.
func TestDecide_NeverWider(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	hosts := []string{"a.example", "b.example", "x.a.example", "*.a.example", "*.example", "c.other"}
	methods := []string{"GET", "POST", "PUT", "HEAD"}
	sizes := []manifest.Size{0, 1, KiB, MiB, 3 * MiB, 20 * MiB}
	rates := []manifest.Rate{{}, {Count: 1, Per: time.Second}, {Count: 100, Per: time.Minute}, {Count: 1000, Per: time.Second}}
	pick := func(from []string) []string {
		var out []string
		for _, s := range from {
			if r.IntN(2) == 0 {
				out = append(out, s)
			}
		}
		return out
	}
	for i := range 5000 {
		rule := Rule{Hosts: pick(hosts), Methods: pick(methods), MaxResponse: sizes[r.IntN(len(sizes))],
			Rate: rates[r.IntN(len(rates))], Budget: sizes[r.IntN(len(sizes))], Burst: r.IntN(5), Quota: sizes[r.IntN(len(sizes))]}
		req := manifest.CapabilityRequest{Hosts: pick(hosts), Methods: pick(methods), MaxResponse: sizes[r.IntN(len(sizes))],
			Rate: rates[r.IntN(len(rates))], Budget: sizes[r.IntN(len(sizes))], Burst: r.IntN(5), Quota: sizes[r.IntN(len(sizes))]}
		p := &Policy{Plugins: map[string]Plugin{"p": {Capabilities: map[string]Rule{HTTP: rule, KV: rule}}}}
		d := Decide(p, "p", map[string]manifest.CapabilityRequest{HTTP: req, KV: req})
		for _, it := range d.Items {
			if it.Outcome == Denied || it.Capability == Log {
				continue
			}
			g := it.Grant
			for _, h := range g.Hosts {
				if !slices.Contains(req.Hosts, h) || !slices.ContainsFunc(rule.Hosts, func(p string) bool { return HostCovered(p, h) }) {
					t.Fatalf("case %d: host %q granted outside request %v or rule %v", i, h, req.Hosts, rule.Hosts)
				}
			}
			for _, m := range g.Methods {
				inReq := slices.Contains(req.Methods, m) || (len(req.Methods) == 0 && m == "GET")
				inRule := slices.Contains(rule.Methods, m) || (len(rule.Methods) == 0 && m == "GET")
				if !inReq || !inRule {
					t.Fatalf("case %d: method %s granted outside request %v or rule %v", i, m, req.Methods, rule.Methods)
				}
			}
			atMost := func(name string, got, a, b manifest.Size) {
				if (a > 0 && got > a) || (b > 0 && got > b) || got <= 0 {
					t.Fatalf("case %d: %s %d wider than request %d or rule %d", i, name, got, a, b)
				}
			}
			atMost("budget", g.Budget, req.Budget, rule.Budget)
			if it.Capability == HTTP {
				atMost("max_response", g.MaxResponse, req.MaxResponse, rule.MaxResponse)
			} else {
				atMost("quota", g.Quota, req.Quota, rule.Quota)
			}
			ps := perSecond(g.Rate)
			if (req.Rate.Per > 0 && ps > perSecond(req.Rate)) || (rule.Rate.Per > 0 && ps > perSecond(rule.Rate)) {
				t.Fatalf("case %d: rate %+v wider than request %+v or rule %+v", i, g.Rate, req.Rate, rule.Rate)
			}
			if (req.Burst > 0 && g.Burst > req.Burst) || (rule.Burst > 0 && g.Burst > rule.Burst) || g.Burst < 1 {
				t.Fatalf("case %d: burst %d wider than request %d or rule %d", i, g.Burst, req.Burst, rule.Burst)
			}
		}
	}
}
