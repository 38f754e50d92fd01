package airlock_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/testing/fixture"
	"github.com/airlockhq/airlock/policy"
)

// rateAPI serves /rates?base=USD and counts its requests.
func rateAPI(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/rates" || r.URL.Query().Get("base") != "USD" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"base":"USD","rates":{"EUR":0.9,"JPY":150.5}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// ratesDir lays out the rates example from its real manifest.
func ratesDir(t *testing.T) string {
	t.Helper()
	m, err := os.ReadFile("examples/rates/airlock.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(m), `program = "bin/rates"`, `program = "plugin"`, 1)
	i := strings.Index(text, `sha256 = "`)
	text = text[:i] + `sha256 = "$SHA256"` + text[i+len(`sha256 = "`)+65:]
	return fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/examples/rates"), text)
}

// ratesPolicy is examples/rates/policy.toml pointed at srv.
func ratesPolicy(t *testing.T, srv *httptest.Server) *policy.Policy {
	t.Helper()
	p, err := policy.Load("examples/rates/policy.toml")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	p.Plugins["rates"].Config["api_url"] = "http://localhost:" + u.Port()
	return p
}

func capHost(t *testing.T, cfg airlock.HostConfig) (*airlock.Host, *logSink) {
	t.Helper()
	sink := &logSink{}
	h, err := airlock.NewHostWithConfig(context.Background(), cfg.WithLogger(slog.New(sink.handler())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h, sink
}

type conversion struct {
	AmountCents int64   `json:"amount_cents"`
	Rate        float64 `json:"rate"`
	Source      string  `json:"source"`
}

func TestCapabilities_RatesPlugin(t *testing.T) {
	srv, hits := rateAPI(t)
	state := t.TempDir()
	dir := ratesDir(t)
	cfg := airlock.NewHostConfig().WithStateDir(state).WithPolicy(ratesPolicy(t, srv))
	h, _ := capHost(t, cfg)
	p, err := h.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	req := map[string]any{"amount_cents": 1000, "from": "usd", "to": "eur"}
	for i, want := range []string{"api", "cache"} {
		got, err := airlock.CallJSON[conversion](context.Background(), p, "convert", req)
		if err != nil {
			t.Fatalf("convert %d: %v", i, err)
		}
		if got.AmountCents != 900 || got.Source != want {
			t.Fatalf("convert %d = %+v, want 900 cents from %s", i, got, want)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("the rate API was asked %d times; the second conversion should come from kv", hits.Load())
	}

	// The decision, per capability, with reasons.
	decisions := map[string]airlock.CapabilityStatus{}
	for _, c := range p.Status().Capabilities {
		decisions[c.Name] = c
	}
	for name, want := range map[string]string{"http": "narrowed", "kv": "narrowed", "clock": "granted", "config": "granted", "fs.read": "denied", "log": "granted"} {
		if got := decisions[name].Decision; got != want {
			t.Errorf("%s decision = %q, want %q (%v)", name, got, want, decisions[name].Reasons)
		}
	}
	if r := strings.Join(decisions["fs.read"].Reasons, " "); !strings.Contains(r, "rates must use live rates") {
		t.Errorf("fs.read denial does not give the policy's reason: %q", r)
	}
	if decisions["http"].Calls != 1 || decisions["kv"].Calls < 3 {
		t.Errorf("host-call counters: http %d, kv %d", decisions["http"].Calls, decisions["kv"].Calls)
	}

	// A capability that was not granted is refused, typed and audited.
	_, err = p.Call(context.Background(), "offline", nil)
	if !errors.Is(err, airlock.ErrPermissionDenied) || !strings.Contains(err.Error(), "holds no fs.read token") {
		t.Fatalf("offline: %v, want the plugin to relay the host call's permission_denied", err)
	}

	// The kv cache survives the host: a new host on the same state
	// directory converts from cache without asking the API.
	h.Close(context.Background())
	h2, _ := capHost(t, cfg)
	p2, err := h2.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := airlock.CallJSON[conversion](context.Background(), p2, "convert", req)
	if err != nil || got.Source != "cache" || hits.Load() != 1 {
		t.Fatalf("after a host restart: %+v %v (API hits %d)", got, err, hits.Load())
	}
	h2.Close(context.Background())

	// The audit log has the activation decisions and the refusal.
	res, err := audit.ReadFile(filepath.Join(state, airlock.AuditFileName), audit.Filter{Plugin: "rates", Denied: true})
	if err != nil {
		t.Fatal(err)
	}
	var denied, refused bool
	for _, r := range res.Records {
		denied = denied || (r.Decision == audit.Denied && r.Capability == "fs.read")
		refused = refused || (r.Decision == audit.Refused && r.Function == "fs.read.file" && r.Code == "permission_denied")
	}
	if !denied || !refused || res.Skipped != 0 {
		t.Fatalf("audit records (denied %v, refused %v, skipped %d): %+v", denied, refused, res.Skipped, res.Records)
	}
}

const hostcallManifest = `
name = "misbehave"
version = "1.0.0"
[entry]
program = "plugin"
sha256 = "$SHA256"
[functions.hostcall]
[functions.forge]
[capabilities.http]
hosts = ["api.rates.example", "localhost"]
[capabilities.clock]
[capabilities."acme.search"]
scope = ["books", "movies"]
`

func hostcall(t *testing.T, p *airlock.Plugin, function string, payload any, caveat map[string]any) map[string]any {
	t.Helper()
	in := map[string]any{"function": function, "payload": payload}
	if caveat != nil {
		in["caveat"] = caveat
	}
	out, err := airlock.CallJSON[map[string]any](context.Background(), p, "hostcall", in)
	if err != nil {
		t.Fatalf("hostcall %s: %v", function, err)
	}
	return out
}

func TestCapabilities_HTTPRefusesPrivateAddresses(t *testing.T) {
	srv, hits := rateAPI(t)
	u, _ := url.Parse(srv.URL)
	// api.rates.example is allowlisted, but the resolver (stubbed here; the
	// system resolver in production) points it at private or metadata
	// addresses: the host refuses to connect.
	answers := map[string]string{}
	pol := &policy.Policy{Plugins: map[string]policy.Plugin{"misbehave": {Capabilities: map[string]policy.Rule{
		"http": {Hosts: []string{"api.rates.example"}}}}}}
	cfg := airlock.WithResolver(airlock.NewHostConfig().WithPolicy(pol), func(ctx context.Context, host string) ([]netip.Addr, error) {
		if a, ok := answers[host]; ok {
			return []netip.Addr{netip.MustParseAddr(a)}, nil
		}
		return nil, fmt.Errorf("no such host %q", host)
	})
	h, _ := capHost(t, cfg)
	p, err := h.Load(context.Background(), fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/internal/testing/misbehave"), hostcallManifest))
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1", "169.254.169.254", "10.0.0.1", "::1"} {
		answers["api.rates.example"] = addr
		out := hostcall(t, p, "http.fetch", map[string]any{"method": "GET", "url": "http://api.rates.example:" + u.Port() + "/rates?base=USD"}, nil)
		if out["code"] != "permission_denied" {
			t.Errorf("fetch via a name resolving to %s: %v, want permission_denied", addr, out)
		}
	}
	// Direct addresses and names outside the allowlist never get that far.
	for _, target := range []string{srv.URL + "/rates?base=USD", "http://169.254.169.254/latest/meta-data/"} {
		out := hostcall(t, p, "http.fetch", map[string]any{"method": "GET", "url": target}, nil)
		if out["code"] != "permission_denied" {
			t.Errorf("fetch %s: %v, want permission_denied", target, out)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback server was reached %d times", hits.Load())
	}
}

// search is an embedder's capability: it answers queries on named indexes
// and tells the host which index a call touches.
type search struct{ calls atomic.Int64 }

func (*search) Name() string        { return "acme.search" }
func (*search) Functions() []string { return []string{"acme.search.query"} }
func (s *search) Call(ctx context.Context, c *airlock.HostCall) ([]byte, error) {
	s.calls.Add(1)
	var q struct{ Index, Q string }
	if err := json.Unmarshal(c.Payload, &q); err != nil {
		return nil, fmt.Errorf("%w: %v", airlock.ErrBadInput, err)
	}
	return json.Marshal(map[string]any{"hits": []string{q.Index + ":" + q.Q}, "plugin": c.Plugin, "scope": c.Scope})
}
func (*search) Scope(function string, payload []byte) ([]string, error) {
	var q struct{ Index string }
	if err := json.Unmarshal(payload, &q); err != nil {
		return nil, fmt.Errorf("%w: %v", airlock.ErrBadInput, err)
	}
	return []string{q.Index}, nil
}

func TestCapabilities_EmbedderCapabilityTokensAndAudit(t *testing.T) {
	state := t.TempDir()
	s := &search{}
	pol := &policy.Policy{Plugins: map[string]policy.Plugin{"misbehave": {Capabilities: map[string]policy.Rule{
		"acme.search": {Scope: []string{"books"}}, // the plugin asked for books and movies
		"clock":       {},
	}}}}
	cfg := airlock.WithTokenTTL(airlock.NewHostConfig().WithStateDir(state).WithPolicy(pol).WithCapability(s), 300*time.Millisecond)
	h, _ := capHost(t, cfg)
	p, err := h.Load(context.Background(), fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/internal/testing/misbehave"), hostcallManifest))
	if err != nil {
		t.Fatal(err)
	}

	out := hostcall(t, p, "acme.search.query", map[string]string{"index": "books", "q": "go"}, nil)
	if hits, _ := out["hits"].([]any); len(hits) != 1 || hits[0] != "books:go" || out["plugin"] != "misbehave" {
		t.Fatalf("granted query: %v", out)
	}
	if out := hostcall(t, p, "acme.search.query", map[string]string{"index": "movies", "q": "go"}, nil); out["code"] != "permission_denied" {
		t.Fatalf("query outside the granted scope: %v", out)
	}
	if out := hostcall(t, p, "http.fetch", map[string]string{"method": "GET", "url": "http://localhost/"}, nil); out["code"] != "permission_denied" {
		t.Fatalf("http, which the policy does not grant: %v", out)
	}
	if s.calls.Load() != 1 {
		t.Fatalf("the capability ran %d times; refused calls must not reach it", s.calls.Load())
	}

	// Tokens live 300ms here; the host re-mints them at half-life, so calls
	// keep working long after the first tokens expired.
	time.Sleep(900 * time.Millisecond)
	if out := hostcall(t, p, "clock.now", struct{}{}, nil); out["unix_nano"] == nil {
		t.Fatalf("clock after the first tokens expired: %v", out)
	}
	// Rotating keys hands out new tokens without a restart.
	pid := p.Status().PID
	if err := h.RotateKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := hostcall(t, p, "clock.now", struct{}{}, nil); out["unix_nano"] == nil || p.Status().PID != pid {
		t.Fatalf("clock after key rotation: %v (pid %d → %d)", out, pid, p.Status().PID)
	}
	// The plugin narrows its own token: a caveat can only take away.
	if out := hostcall(t, p, "acme.search.query", map[string]string{"index": "books", "q": "x"}, map[string]any{"scope": []string{"movies"}}); out["code"] != "permission_denied" {
		t.Fatalf("query after narrowing the token to movies (never granted): %v", out)
	}
	// A forged token is refused and audited as invalid.
	if _, err := p.Call(context.Background(), "forge", []byte("not a real token")); err != nil {
		t.Fatal(err)
	}
	var res audit.Result
	waitFor(t, "the forged token's audit record", func() bool {
		res, _ = audit.ReadFile(filepath.Join(state, airlock.AuditFileName), audit.Filter{Plugin: "misbehave", Denied: true})
		return slices.ContainsFunc(res.Records, func(r audit.Record) bool { return r.Code == "invalid_token" })
	})
	codes := map[string]bool{}
	for _, r := range res.Records {
		codes[r.Capability+"/"+r.Decision+"/"+r.Code] = true
	}
	for _, want := range []string{"acme.search/refused/permission_denied", "http/refused/permission_denied", "http/denied/"} {
		if !codes[want] {
			t.Errorf("no audit record %s in %v", want, codes)
		}
	}
}

// TestCapabilities_PluginNarrowsItsOwnToken runs against both SDKs: a
// plugin attenuates its token (Go: Plugin.Attenuate, Rust:
// Context::attenuate), the host verifies the chain and intersects the
// caveat, and the narrowing survives the fresh tokens of a key rotation.
func TestCapabilities_PluginNarrowsItsOwnToken(t *testing.T) {
	eachLanguage(t, func(t *testing.T, l lang) {
		s := &search{}
		pol := &policy.Policy{Plugins: map[string]policy.Plugin{"misbehave": {Capabilities: map[string]policy.Rule{
			"acme.search": {Scope: []string{"books", "movies"}},
		}}}}
		h, _ := capHost(t, airlock.NewHostConfig().WithPolicy(pol).WithCapability(s))
		p, err := h.Load(context.Background(), fixture.PluginDir(t, l.bin(t), hostcallManifest))
		if err != nil {
			t.Fatal(err)
		}
		query := func(index string, caveat map[string]any) map[string]any {
			return hostcall(t, p, "acme.search.query", map[string]string{"index": index, "q": "x"}, caveat)
		}
		if out := query("movies", nil); out["hits"] == nil {
			t.Fatalf("movies before narrowing: %v", out)
		}
		// Keep only books: movies is refused from now on, books still works.
		if out := query("books", map[string]any{"scope": []string{"books"}}); out["hits"] == nil {
			t.Fatalf("books with the narrowing caveat: %v", out)
		}
		if out := query("movies", nil); out["code"] != "permission_denied" {
			t.Fatalf("movies after narrowing to books: %v", out)
		}
		// Fresh tokens (a key rotation re-grants them) keep the narrowing.
		if err := h.RotateKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
		if out := query("movies", nil); out["code"] != "permission_denied" {
			t.Fatalf("movies after a key rotation: %v", out)
		}
		if out := query("books", nil); out["hits"] == nil {
			t.Fatalf("books after a key rotation: %v", out)
		}
		// A caveat cannot widen: asking for movies back changes nothing.
		if out := query("movies", map[string]any{"scope": []string{"books", "movies"}}); out["code"] != "permission_denied" {
			t.Fatalf("movies after a caveat that names it again: %v", out)
		}
		// Narrowing a capability that was not granted fails the call.
		_, err = airlock.CallJSON[map[string]any](context.Background(), p, "hostcall",
			map[string]any{"function": "clock.now", "payload": struct{}{}, "caveat": map[string]any{"ops": []string{"clock.now"}}})
		var ce *airlock.CallError
		if !errors.As(err, &ce) || ce.Code != airlock.CodeInternal || !strings.Contains(ce.Message, `granted no "clock" token`) {
			t.Fatalf("attenuating a capability that was not granted: %v", err)
		}
		if n := s.calls.Load(); n != 3 {
			t.Fatalf("the capability ran %d times, want 3: refused calls must not reach it", n)
		}
	})
}

func TestHostConfig_InvalidPolicy(t *testing.T) {
	bad := &policy.Policy{Plugins: map[string]policy.Plugin{"x": {Capabilities: map[string]policy.Rule{"http": {}}}}}
	_, err := airlock.NewHostWithConfig(context.Background(), airlock.NewHostConfig().WithPolicy(bad))
	if err == nil || !strings.Contains(err.Error(), "hosts") {
		t.Fatalf("got %v, want the policy's problem", err)
	}
}
