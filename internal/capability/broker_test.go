package capability_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/capability"
	"github.com/airlockhq/airlock/internal/capability/builtin"
	"github.com/airlockhq/airlock/internal/wire"
	"github.com/airlockhq/airlock/manifest"
	"github.com/airlockhq/airlock/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// search is an embedder's own capability: it goes through the same policy,
// tokens, limits and audit as the built-ins.
type search struct{}

func (search) Name() string        { return "acme.search" }
func (search) Functions() []string { return []string{"acme.search.query"} }
func (search) Access(_ string, p []byte) (capability.Access, error) {
	var r struct {
		Index string `json:"index"`
	}
	if err := capability.DecodeJSON(p, &r); err != nil {
		return capability.Access{}, err
	}
	return capability.Access{Names: []string{"read:" + r.Index}}, nil
}
func (search) Call(_ context.Context, c *capability.Call) ([]byte, error) {
	return fmt.Appendf(nil, `{"hits":1,"plugin":%q}`, c.Plugin), nil
}

type resolver map[string]string

func (r resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	b         *capability.Broker
	clock     *clock
	auditPath string
	srv       *httptest.Server
	port      string
	dataDir   string
	tokens    map[string][]byte
	act       *capability.Activation
}

func weatherPolicy(dataDir string) *policy.Policy {
	return &policy.Policy{Plugins: map[string]policy.Plugin{
		policy.Default: {Capabilities: map[string]policy.Rule{policy.Clock: {}}},
		"weather": {
			Capabilities: map[string]policy.Rule{
				policy.KV:      {Quota: 64},
				policy.HTTP:    {Hosts: []string{"api.test", "meta.test"}, Methods: []string{"GET"}, AllowPrivate: true},
				policy.FSRead:  {Roots: map[string]string{"data": dataDir}},
				policy.FSWrite: {Deny: "weather only reads"},
				policy.Random:  {Rate: manifest.Rate{Count: 2, Per: time.Second}, Burst: 2, Budget: 200},
				"acme.search":  {Scope: []string{"read:books"}},
			},
			Config: map[string]string{"units": "metric", "api_key": "s3cret"},
		},
	}}
}

var weatherRequests = map[string]manifest.CapabilityRequest{
	"kv":          {Quota: 1 << 20},
	"http":        {Hosts: []string{"api.test", "meta.test", "evil.test"}},
	"fs.read":     {Paths: []string{"data"}},
	"fs.write":    {Paths: []string{"data"}},
	"random":      {},
	"clock":       {},
	"config":      {Keys: []string{"units"}},
	"acme.search": {Scope: []string{"read:books", "read:users"}},
	"teleport":    {},
}

func newEnv(t *testing.T) *env {
	t.Helper()
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "data")
	os.MkdirAll(dataDir, 0o755)
	os.WriteFile(filepath.Join(dataDir, "forecast.txt"), []byte("sunny"), 0o644)
	os.WriteFile(filepath.Join(tmp, "secret.txt"), []byte("secret"), 0o644)
	os.Symlink("../secret.txt", filepath.Join(dataDir, "esc"))

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	reg := capability.NewRegistry()
	store, err := builtin.Register(reg, builtin.Options{StateDir: filepath.Join(tmp, "state"),
		Resolver: resolver{"api.test": "127.0.0.1", "meta.test": "169.254.169.254", "evil.test": "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := reg.Register(search{}); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(tmp, "audit.jsonl")
	al, err := audit.Open(auditPath, audit.Options{Sync: audit.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	clk := &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	keys, err := capability.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	b, err := capability.NewBroker(capability.Config{Registry: reg, Policy: weatherPolicy(dataDir), Keyring: keys,
		Audit: al, Now: clk.Now, TokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	act, err := b.Activate(context.Background(), "weather", "i-1", weatherRequests)
	if err != nil {
		t.Fatal(err)
	}
	// Close pooled HTTP connections before goleak looks.
	t.Cleanup(func() {
		if c, ok := reg.Lookup("http"); ok {
			c.(interface{ Close() }).Close()
		}
	})
	return &env{b: b, clock: clk, auditPath: auditPath, srv: srv, port: port, dataDir: dataDir, tokens: act.Tokens, act: act}
}

func (e *env) call(fn string, tok []byte, payload string) ([]byte, error) {
	return e.b.Handle(context.Background(), "weather", "i-1", fn, tok, []byte(payload))
}

func codeOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return "ok"
	}
	var ce *capability.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error is not a *capability.Error: %v", err)
	}
	return ce.Code.String()
}

func TestBroker_Activate(t *testing.T) {
	e := newEnv(t)
	want := map[string]policy.Outcome{
		"kv": policy.Narrowed, "http": policy.Narrowed, "fs.read": policy.Granted, "fs.write": policy.Denied,
		"random": policy.Granted, "clock": policy.Granted, "config": policy.Granted, "acme.search": policy.Narrowed,
		"teleport": policy.Denied, "log": policy.Granted,
	}
	for _, it := range e.act.Decision.Items {
		if it.Outcome != want[it.Capability] {
			t.Errorf("%s: %v %q, want %v", it.Capability, it.Outcome, it.Reasons, want[it.Capability])
		}
		_, hasToken := e.tokens[it.Capability]
		if hasToken != (it.Outcome != policy.Denied) {
			t.Errorf("%s: token minted = %v for outcome %v", it.Capability, hasToken, it.Outcome)
		}
	}
	it, _ := e.act.Decision.Lookup("teleport")
	if !strings.Contains(strings.Join(it.Reasons, ""), "no capability named \"teleport\" is offered by this host") {
		t.Errorf("unregistered capability reason: %q", it.Reasons)
	}
	res, err := audit.ReadFile(e.auditPath, audit.Filter{Plugin: "weather"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != len(want) {
		t.Fatalf("%d activation records, want %d", len(res.Records), len(want))
	}
	for _, r := range res.Records {
		if r.Decision != want[r.Capability].String() || r.Instance != "i-1" {
			t.Errorf("record %+v", r)
		}
		if r.Decision != audit.Denied && (r.TokenID == "" || len(r.Scope) == 0) {
			t.Errorf("granted record without token id or scope: %+v", r)
		}
		if strings.Contains(string(r.Scope), "s3cret") || strings.Contains(string(r.Scope), "metric") {
			t.Errorf("config values leaked into the audit log: %s", r.Scope)
		}
		if r.Capability == "http" && !strings.Contains(r.Reason, `host "evil.test" not in policy allowlist for plugin "weather"`) {
			t.Errorf("http narrowing reason = %q", r.Reason)
		}
	}
}

// TestBroker_Capabilities calls every capability through Handle, allowed
// and refused, and checks the protocol code.
func TestBroker_Capabilities(t *testing.T) {
	e := newEnv(t)
	tk := e.tokens
	url := func(host string) string { return fmt.Sprintf(`{"url":"http://%s:%s/"}`, host, e.port) }
	tests := []struct {
		name, fn string
		tok      []byte
		payload  string
		code     string
		out      string // substring of the result
	}{
		{"log always granted", "log.write", tk["log"], `{"level":"warn","msg":"hi"}`, "ok", "{}"},
		{"clock.now", "clock.now", tk["clock"], `{}`, "ok", "unix_nano"},
		{"clock.monotonic", "clock.monotonic", tk["clock"], ``, "ok", "nanos"},
		{"random", "random.bytes", tk["random"], `{"n":8}`, "ok", "bytes"},
		{"random too many", "random.bytes", tk["random"], `{"n":100000}`, "too_large", ""},
		{"config granted key", "config.get", tk["config"], `{"key":"units"}`, "ok", "metric"},
		{"config key not requested", "config.get", tk["config"], `{"key":"api_key"}`, "permission_denied", ""},
		{"config list", "config.list", tk["config"], `{}`, "ok", `["units"]`},
		{"kv put", "kv.put", tk["kv"], `{"key":"k","value":"dmFsdWU="}`, "ok", `"used":6`},
		{"kv get", "kv.get", tk["kv"], `{"key":"k"}`, "ok", `"value":"dmFsdWU="`},
		{"kv over quota", "kv.put", tk["kv"], `{"key":"big","value":"` + strings.Repeat("QUFB", 30) + `"}`, "budget_exceeded", ""},
		{"kv bad input", "kv.get", tk["kv"], `{"nope":1}`, "bad_input", ""},
		{"http allowed", "http.fetch", tk["http"], url("api.test"), "ok", `"status":200`},
		{"http host narrowed away", "http.fetch", tk["http"], url("evil.test"), "permission_denied", ""},
		{"http metadata by allowlisted name", "http.fetch", tk["http"], url("meta.test"), "permission_denied", ""},
		{"http method", "http.fetch", tk["http"], `{"method":"POST","url":"http://api.test/"}`, "permission_denied", ""},
		{"fs.read allowed", "fs.read.file", tk["fs.read"], `{"path":"data/forecast.txt"}`, "ok", "c3Vubnk="},
		{"fs.read symlink escape", "fs.read.file", tk["fs.read"], `{"path":"data/esc"}`, "permission_denied", ""},
		{"fs.read dotdot", "fs.read.file", tk["fs.read"], `{"path":"data/../secret.txt"}`, "permission_denied", ""},
		{"fs.write denied: no token, read token refused", "fs.write.file", tk["fs.read"], `{"path":"data/x","data":""}`, "invalid_token", ""},
		{"embedder allowed", "acme.search.query", tk["acme.search"], `{"index":"books"}`, "ok", `"hits":1`},
		{"embedder scope narrowed away", "acme.search.query", tk["acme.search"], `{"index":"users"}`, "permission_denied", ""},
		{"unknown function", "teleport.go", tk["clock"], `{}`, "unknown_function", ""},
		{"token of another capability", "kv.get", tk["clock"], `{"key":"k"}`, "invalid_token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := e.call(tt.fn, tt.tok, tt.payload)
			if got := codeOf(t, err); got != tt.code {
				t.Fatalf("code %s (%v), want %s", got, err, tt.code)
			}
			if tt.out != "" && !strings.Contains(string(out), tt.out) {
				t.Errorf("result %s does not contain %s", out, tt.out)
			}
		})
	}
	// Every refusal of a security-relevant kind is in the audit log, with
	// the function, code and token id.
	res, err := audit.ReadFile(e.auditPath, audit.Filter{Denied: true})
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]audit.Record{}
	for _, r := range res.Records {
		if r.Decision == audit.Refused {
			refused[r.Function+" "+r.Code] = r
		}
	}
	for _, tt := range tests {
		if tt.code == "ok" || tt.code == "bad_input" {
			continue
		}
		r, ok := refused[tt.fn+" "+tt.code]
		if !ok {
			t.Errorf("no audit record for refused %s (%s)", tt.fn, tt.code)
			continue
		}
		if r.TokenID == "" || r.Plugin != "weather" || r.Instance != "i-1" || r.Reason == "" {
			t.Errorf("audit record incomplete: %+v", r)
		}
	}
}

func TestBroker_TokenAttacks(t *testing.T) {
	e := newEnv(t)
	good := e.tokens["kv"]
	tampered := bytes.Clone(good)
	tampered[len(tampered)-40] ^= 1
	forgerKeys, _ := capability.NewKeyring()
	forged, _ := forgerKeys.Mint(capability.Claims{Plugin: "weather", Instance: "i-1", Capability: "kv",
		Scope: capability.Scope{Ops: []string{"kv.get"}, Quota: 1 << 30}, IssuedAt: e.clock.Now().UnixMilli(), Expiry: e.clock.Now().Add(time.Hour).UnixMilli()})

	check := func(name string, plugin, instance string, tok []byte, wantCheck string) {
		t.Helper()
		_, err := e.b.Handle(context.Background(), plugin, instance, "kv.get", tok, []byte(`{"key":"k"}`))
		var te *capability.TokenError
		if codeOf(t, err) != "invalid_token" || !errors.As(err, &te) || te.Check != wantCheck {
			t.Errorf("%s: %v (want check %q)", name, err, wantCheck)
		}
	}
	check("tampered", "weather", "i-1", tampered, "signature")
	check("forged", "weather", "i-1", forged, "signature") // forger's key id 1 collides with ours, its secret does not
	check("other plugin", "thief", "i-1", good, "plugin")
	check("other instance", "weather", "i-2", good, "instance")
	check("garbage", "weather", "i-1", []byte("token"), "format")

	// Re-activation replaces tokens: the old ones are revoked.
	act2, err := e.b.Activate(context.Background(), "weather", "i-1", weatherRequests)
	if err != nil {
		t.Fatal(err)
	}
	check("superseded by re-activation", "weather", "i-1", good, "revoked")
	fresh := act2.Tokens["kv"]
	if _, err := e.call("kv.get", fresh, `{"key":"k"}`); err != nil {
		t.Fatal(err)
	}
	// Key rotation: live tokens keep working; Reissue moves to the new key
	// and revokes the old tokens.
	if _, err := e.b.Keyring().Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.call("kv.get", fresh, `{"key":"k"}`); err != nil {
		t.Errorf("token signed before rotation: %v", err)
	}
	re, err := e.b.Reissue("weather", "i-1")
	if err != nil {
		t.Fatal(err)
	}
	if c, _, _ := capability.Inspect(re["kv"]); c.KeyID != e.b.Keyring().Current() {
		t.Errorf("reissued token key %d, current %d", c.KeyID, e.b.Keyring().Current())
	}
	check("reissued away", "weather", "i-1", fresh, "revoked")
	if _, err := e.call("kv.get", re["kv"], `{"key":"k"}`); err != nil {
		t.Errorf("reissued token: %v", err)
	}
	// Expiry.
	e.clock.Add(2 * time.Hour)
	check("expired", "weather", "i-1", re["kv"], "expiry")
	// Deactivation.
	e.clock.Add(-2 * time.Hour)
	e.b.Deactivate("weather", "i-1")
	check("deactivated", "weather", "i-1", re["kv"], "revoked")

	res, _ := audit.ReadFile(e.auditPath, audit.Filter{Denied: true})
	n := 0
	for _, r := range res.Records {
		if r.Code == "invalid_token" {
			n++
		}
	}
	if n != 9 {
		t.Errorf("%d invalid_token audit records, want 9", n)
	}
}

func TestBroker_RateAndBudget(t *testing.T) {
	e := newEnv(t)
	tok := e.tokens["random"] // 2/s, burst 2, 200 bytes per minute
	codes := []string{}
	for range 3 {
		_, err := e.call("random.bytes", tok, `{"n":1}`)
		codes = append(codes, codeOf(t, err))
	}
	if strings.Join(codes, ",") != "ok,ok,rate_limited" {
		t.Errorf("burst of 3 calls: %v", codes)
	}
	e.clock.Add(time.Second)
	if _, err := e.call("random.bytes", tok, `{"n":1}`); err != nil {
		t.Errorf("after refill: %v", err)
	}
	// Responses charge the byte budget: 100 random bytes are ~150 bytes of
	// JSON; the next call finds the budget in debt.
	e.clock.Add(time.Second)
	if _, err := e.call("random.bytes", tok, `{"n":100}`); err != nil {
		t.Fatalf("first large call: %v", err)
	}
	e.clock.Add(time.Second)
	if _, err := e.call("random.bytes", tok, `{"n":100}`); codeOf(t, err) != "budget_exceeded" {
		t.Errorf("budget: %v", err)
	}
	// An attenuated token with a lower rate has its own bucket as well.
	e.clock.Add(time.Minute)
	att, err := capability.Attenuate(tok, capability.Caveat{Envelope: &capability.Envelope{Rate: 0.5, Burst: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := e.call("random.bytes", att, `{"n":1}`)
	e.clock.Add(time.Second)
	_, err2 := e.call("random.bytes", att, `{"n":1}`)
	if codeOf(t, err1) != "ok" || codeOf(t, err2) != "rate_limited" {
		t.Errorf("attenuated rate: %v, %v", err1, err2)
	}
	var st capability.Stat
	for _, s := range e.b.Stats() {
		if s.Plugin == "weather" && s.Capability == "random" {
			st = s
		}
	}
	if st.Calls != 5 || st.Refused["rate_limited"] != 2 || st.Refused["budget_exceeded"] != 1 || st.BytesOut == 0 || st.Envelope.Rate != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestBroker_AttenuatedScope(t *testing.T) {
	e := newEnv(t)
	att, err := capability.Attenuate(e.tokens["http"], capability.Caveat{Hosts: []string{"meta.test"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.call("http.fetch", att, fmt.Sprintf(`{"url":"http://api.test:%s/"}`, e.port))
	if codeOf(t, err) != "permission_denied" {
		t.Errorf("attenuated token reached a host it dropped: %v", err)
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		code wire.Code
	}{
		{capability.ErrUnknownFunction, wire.CodeUnknownFunction},
		{fmt.Errorf("x: %w", capability.ErrBadInput), wire.CodeBadInput},
		{capability.ErrNotFound, wire.CodeBadInput},
		{capability.ErrPermissionDenied, wire.CodePermissionDenied},
		{&capability.TokenError{Check: "expiry", Err: capability.ErrTokenExpired}, wire.CodeInvalidToken},
		{&capability.TokenError{Check: "scope", Err: capability.ErrPermissionDenied}, wire.CodePermissionDenied},
		{capability.ErrRateLimited, wire.CodeRateLimited},
		{capability.QuotaError("q"), wire.CodeBudgetExceeded},
		{capability.ErrTooLarge, wire.CodeTooLarge},
		{context.DeadlineExceeded, wire.CodeDeadlineExceeded},
		{context.Canceled, wire.CodeCancelled},
		{errors.New("disk on fire"), wire.CodeInternal},
		{&capability.Error{Code: wire.CodeRateLimited, Err: errors.New("x")}, wire.CodeRateLimited},
	}
	for _, tt := range tests {
		if got := capability.CodeOf(tt.err); got != tt.code {
			t.Errorf("CodeOf(%v) = %v, want %v", tt.err, got, tt.code)
		}
	}
}

func TestRegistry_Register(t *testing.T) {
	reg := capability.NewRegistry()
	if err := reg.Register(search{}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(search{}); err == nil {
		t.Error("duplicate registration accepted")
	}
	for _, bad := range []capability.Capability{badCap{"Bad", []string{"Bad.x"}}, badCap{"x", []string{"y.get"}}, badCap{"x", nil}, badCap{"x", []string{"x.a.b"}}} {
		if err := reg.Register(bad); err == nil {
			t.Errorf("registered %+v", bad)
		}
	}
}

type badCap struct {
	name string
	fns  []string
}

func (b badCap) Name() string        { return b.name }
func (b badCap) Functions() []string { return b.fns }
func (badCap) Call(context.Context, *capability.Call) ([]byte, error) {
	return nil, nil
}

func BenchmarkHandle(b *testing.B) {
	reg := capability.NewRegistry()
	store, err := builtin.Register(reg, builtin.Options{StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	br, err := capability.NewBroker(capability.Config{Registry: reg, Policy: &policy.Policy{Plugins: map[string]policy.Plugin{
		"p": {Capabilities: map[string]policy.Rule{policy.Clock: {Rate: manifest.Rate{Count: 1e9, Per: time.Second}, Budget: 1 << 40}}}}}})
	if err != nil {
		b.Fatal(err)
	}
	act, err := br.Activate(context.Background(), "p", "i", map[string]manifest.CapabilityRequest{"clock": {}})
	if err != nil {
		b.Fatal(err)
	}
	tok := act.Tokens["clock"]
	for b.Loop() {
		if _, err := br.Handle(context.Background(), "p", "i", "clock.monotonic", tok, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBroker_Hammer runs host calls, re-activations, rotations and stats
// from many goroutines at once (run with -race).
func TestBroker_Hammer(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				switch {
				case g == 0 && i%50 == 0:
					e.b.Activate(context.Background(), "weather", "i-1", weatherRequests)
				case g == 1 && i%50 == 0:
					e.b.Keyring().Rotate()
				case g == 2:
					e.b.Stats()
				default:
					e.call("kv.put", e.tokens["kv"], fmt.Sprintf(`{"key":"k%d","value":"eA=="}`, i%5))
					e.call("clock.now", e.tokens["clock"], `{}`)
				}
			}
		})
	}
	wg.Wait()
}
