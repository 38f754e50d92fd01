package httpcap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/airlockhq/airlock/internal/capability"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stubResolver maps names to answers; a name with several answers returns
// them in turn, one per lookup (to play DNS rebinding).
type stubResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	lookups map[string]int
}

func (s *stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	i := min(s.lookups[host], len(a)-1)
	s.lookups[host]++
	return a[i], nil
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

type fixture struct {
	h    *HTTP
	srv  *httptest.Server
	port string
	res  *stubResolver
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Host", r.Host)
		fmt.Fprintf(w, "hello %s", r.Method)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 2000))) // chunked: no Content-Length up front
		w.(http.Flusher).Flush()
		w.Write([]byte(strings.Repeat("x", 2000)))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the client gives up
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	res := &stubResolver{lookups: map[string]int{}, answers: map[string][][]netip.Addr{
		"api.test":    {addrs("127.0.0.1")},
		"other.test":  {addrs("127.0.0.1")},
		"evil.test":   {addrs("127.0.0.1")},
		"meta.test":   {addrs("169.254.169.254")},
		"ten.test":    {addrs("10.0.0.1")},
		"zero.test":   {addrs("0.0.0.0")},
		"mapped.test": {addrs("::ffff:169.254.169.254")},
		"mixed.test":  {addrs("169.254.169.254", "127.0.0.1")},
		"rebind.test": {addrs("127.0.0.1"), addrs("169.254.169.254")},
		"pinned.test": {addrs("127.0.0.1")}, // exists only in the stub: success proves the IP was dialled
		"v6meta.test": {addrs("fd00:ec2::254")},
		"loop6.test":  {addrs("::1")},
		"linklo.test": {addrs("169.254.10.10")},
	}}
	h := New(Options{Resolver: res})
	t.Cleanup(h.Close)
	return &fixture{h: h, srv: srv, port: port, res: res}
}

func (f *fixture) url(host, path string) string {
	return "http://" + net.JoinHostPort(host, f.port) + path
}

func scope(allowPrivate bool, hosts ...string) capability.Scope {
	return capability.Scope{Ops: []string{"http.fetch"}, Hosts: hosts, Methods: []string{"GET", "HEAD"},
		AllowPrivate: allowPrivate, MaxResponse: 3000, TimeoutMS: 2000}
}

func (f *fixture) fetch(t *testing.T, s capability.Scope, req Request) (Response, error) {
	t.Helper()
	p, _ := json.Marshal(req)
	out, err := f.h.Call(context.Background(), &capability.Call{Plugin: "weather", Instance: "i", Function: "http.fetch", Scope: s, Payload: p})
	var resp Response
	if err == nil {
		if jerr := json.Unmarshal(out, &resp); jerr != nil {
			t.Fatal(jerr)
		}
	}
	return resp, err
}

func TestFetch_AllowedWithPrivateGrant(t *testing.T) {
	f := newFixture(t)
	resp, err := f.fetch(t, scope(true, "api.test"), Request{URL: f.url("api.test", "/hello")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Body) != "hello GET" {
		t.Errorf("response = %d %q", resp.Status, resp.Body)
	}
	if got := resp.Headers["X-Seen-Host"]; len(got) != 1 || !strings.HasPrefix(got[0], "api.test:") {
		t.Errorf("server saw Host %v; the name must still be sent", got)
	}
	// The stub-only name proves the dialler connected to the vetted IP.
	if _, err := f.fetch(t, scope(true, "pinned.test"), Request{URL: f.url("pinned.test", "/hello")}); err != nil {
		t.Errorf("pinned dial: %v", err)
	}
}

func TestFetch_SSRF(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name         string
		host         string
		allowPrivate bool
		reason       string
	}{
		{"loopback without grant", "api.test", false, "loopback"},
		{"metadata endpoint", "meta.test", false, "cloud metadata"},
		{"metadata even with private grant", "meta.test", true, "cloud metadata"},
		{"IPv6 metadata", "v6meta.test", true, "cloud metadata"},
		{"IPv4-mapped metadata", "mapped.test", true, "cloud metadata"},
		{"private 10/8", "ten.test", false, "private"},
		{"unspecified", "zero.test", true, "unspecified"},
		{"IPv6 loopback", "loop6.test", false, "loopback"},
		{"link-local", "linklo.test", false, "link-local"},
		{"IP literal loopback", "127.0.0.1", false, "loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.fetch(t, scope(tt.allowPrivate, tt.host), Request{URL: f.url(tt.host, "/hello")})
			var be *BlockedError
			if !errors.As(err, &be) || !errors.Is(err, capability.ErrPermissionDenied) {
				t.Fatalf("want a BlockedError matching ErrPermissionDenied, got %v", err)
			}
			if !strings.Contains(be.Reason, tt.reason) {
				t.Errorf("reason %q does not mention %q", be.Reason, tt.reason)
			}
			if capability.CodeOf(err).String() != "permission_denied" {
				t.Errorf("code = %v", capability.CodeOf(err))
			}
		})
	}
	// Mixed answers: the blocked address is skipped, the vetted one dialled.
	if _, err := f.fetch(t, scope(true, "mixed.test"), Request{URL: f.url("mixed.test", "/hello")}); err != nil {
		t.Errorf("mixed answers: %v", err)
	}
}

// TestFetch_Rebinding: the name resolves to an allowed address first and
// to the metadata endpoint on the next lookup; the second connection is
// vetted again and refused.
func TestFetch_Rebinding(t *testing.T) {
	f := newFixture(t)
	s := scope(true, "rebind.test")
	if _, err := f.fetch(t, s, Request{URL: f.url("rebind.test", "/hello"), Headers: map[string][]string{"Connection": {"close"}}}); err != nil {
		t.Fatalf("first lookup: %v", err)
	}
	f.h.Close() // no pooled connection: the next request dials again
	_, err := f.fetch(t, s, Request{URL: f.url("rebind.test", "/hello")})
	if !errors.Is(err, capability.ErrPermissionDenied) || !strings.Contains(err.Error(), "169.254.169.254") {
		t.Errorf("rebound lookup: %v", err)
	}
}

func TestFetch_Redirects(t *testing.T) {
	f := newFixture(t)
	s := scope(true, "api.test", "other.test")
	// To an allowlisted host: followed.
	resp, err := f.fetch(t, s, Request{URL: f.url("api.test", "/redirect?to="+url.QueryEscape(f.url("other.test", "/hello")))})
	if err != nil || string(resp.Body) != "hello GET" || !strings.Contains(resp.URL, "other.test") {
		t.Fatalf("allowed redirect: %+v %v", resp, err)
	}
	tests := []struct{ name, to, want string }{
		{"off the allowlist", f.url("evil.test", "/hello"), `redirect to host "evil.test"`},
		{"to metadata via allowlisted name", f.url("meta.test", "/hello"), `redirect to host "meta.test"`},
		{"to another scheme", "file:///etc/passwd", "only http and https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.fetch(t, s, Request{URL: f.url("api.test", "/redirect?to="+url.QueryEscape(tt.to))})
			if !errors.Is(err, capability.ErrPermissionDenied) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want permission denied mentioning %q", err, tt.want)
			}
		})
	}
	// A redirect loop stops at MaxRedirects.
	loop := f.url("api.test", "/redirect?to=")
	for range MaxRedirects + 1 {
		loop = f.url("api.test", "/redirect?to="+url.QueryEscape(loop))
	}
	if _, err := f.fetch(t, s, Request{URL: loop}); !errors.Is(err, capability.ErrPermissionDenied) {
		t.Errorf("redirect chain: %v", err)
	}
	// And an allowlisted name pointing at metadata, reached by redirect, is
	// refused at dial time even when the allowlist covers it.
	s2 := scope(true, "api.test", "meta.test")
	if _, err := f.fetch(t, s2, Request{URL: f.url("api.test", "/redirect?to="+url.QueryEscape(f.url("meta.test", "/")))}); !errors.As(err, new(*BlockedError)) {
		t.Errorf("redirect to allowlisted metadata name: %v", err)
	}
}

func TestFetch_ScopeAndInput(t *testing.T) {
	f := newFixture(t)
	s := scope(true, "api.test")
	tests := []struct {
		name     string
		req      Request
		sentinel error
	}{
		{"host not allowlisted", Request{URL: f.url("other.test", "/hello")}, capability.ErrPermissionDenied},
		{"method not allowed", Request{Method: "DELETE", URL: f.url("api.test", "/hello")}, capability.ErrPermissionDenied},
		{"file scheme", Request{URL: "file:///etc/passwd"}, capability.ErrBadInput},
		{"user info", Request{URL: "http://u:p@api.test/"}, capability.ErrBadInput},
		{"no host", Request{URL: "http:///x"}, capability.ErrBadInput},
		{"too large (chunked)", Request{URL: f.url("api.test", "/big")}, capability.ErrTooLarge},
		{"timeout", Request{URL: f.url("api.test", "/slow")}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := s
			if tt.name == "timeout" {
				sc.TimeoutMS = 100
			}
			_, err := f.fetch(t, sc, tt.req)
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("got %v, want %v", err, tt.sentinel)
			}
		})
	}
	a, err := f.h.Access("http.fetch", []byte(`{"method":"head","url":"https://API.Test./x"}`))
	if err != nil || a.Host != "api.test" || a.Method != "HEAD" {
		t.Errorf("Access = %+v, %v", a, err)
	}
}

func TestBlocked(t *testing.T) {
	tests := []struct {
		ip           string
		allowPrivate bool
		blocked      bool
	}{
		{"93.184.215.14", false, false}, {"2606:2800:21f:cb07:6820:80da:af6b:8b2c", false, false},
		{"127.0.0.1", false, true}, {"127.0.0.1", true, false}, {"10.1.2.3", false, true}, {"10.1.2.3", true, false},
		{"172.16.0.1", false, true}, {"192.168.1.1", false, true}, {"100.64.0.1", false, true}, {"fc00::1", false, true},
		{"fe80::1", false, true}, {"169.254.1.1", false, true}, {"169.254.169.254", true, true}, {"0.0.0.0", true, true},
		{"::", true, true}, {"224.0.0.1", true, true}, {"ff02::1", true, true}, {"255.255.255.255", true, true},
		{"240.0.0.1", true, true}, {"0.1.2.3", true, true}, {"::ffff:10.0.0.1", false, true}, {"64:ff9b::a00:1", false, true},
		{"2002:a00:1::", false, true}, {"::ffff:8.8.8.8", false, false},
	}
	for _, tt := range tests {
		got := Blocked(netip.MustParseAddr(tt.ip), tt.allowPrivate) != ""
		if got != tt.blocked {
			t.Errorf("Blocked(%s, private=%v) = %v, want %v", tt.ip, tt.allowPrivate, got, tt.blocked)
		}
	}
}
