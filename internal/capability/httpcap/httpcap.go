// Package httpcap is the http capability: HTTP requests made by the host on
// a plugin's behalf, only to allowlisted hosts and methods, with caps on
// time and response size.
//
// # SSRF and DNS rebinding
//
// An allowlisted name is not a safe destination: its DNS may point at the
// host's loopback, a private network or a cloud metadata endpoint, and may
// change between a check and a connect. So the host never lets the HTTP
// stack resolve names. Its dialer resolves the name itself (through an
// injectable Resolver), vets every address, and connects to a vetted
// address, not to the name: what was checked is what is dialled. Each
// redirect hop is a new request that passes the allowlist again and a new
// dial that is vetted again; more than MaxRedirects hops are refused.
//
// Loopback, private, link-local, shared (CGNAT), IPv4-embedding IPv6
// (NAT64, 6to4, Teredo) and documentation ranges are refused unless the
// grant sets allow_private. Unspecified, multicast, broadcast, reserved and
// cloud-metadata addresses (169.254.169.254, fd00:ec2::254) are refused
// always.
//
// Connections are pooled in two transports, one for grants that allow
// private ranges and one for those that do not, so a connection vetted
// under one rule is never reused under the other. Environment proxies are
// ignored.
package httpcap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/airlockhq/airlock/internal/capability"
	"github.com/airlockhq/airlock/policy"
)

// MaxRedirects is the most redirect hops one request follows.
const MaxRedirects = 5

// Resolver resolves host names. *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure the capability.
type Options struct {
	Resolver Resolver // nil: net.DefaultResolver
}

// HTTP is the http capability. It is safe for concurrent use.
type HTTP struct {
	resolver Resolver
	public   *http.Transport
	private  *http.Transport
}

// New returns the http capability.
func New(opts Options) *HTTP {
	h := &HTTP{resolver: opts.Resolver}
	if h.resolver == nil {
		h.resolver = net.DefaultResolver
	}
	h.public = h.transport(false)
	h.private = h.transport(true)
	return h
}

func (h *HTTP) transport(allowPrivate bool) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // never an environment proxy: it would dial for us, unvetted
		DialContext:           h.dialer(allowPrivate),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Close closes idle pooled connections.
func (h *HTTP) Close() {
	h.public.CloseIdleConnections()
	h.private.CloseIdleConnections()
}

func (*HTTP) Name() string        { return "http" }
func (*HTTP) Functions() []string { return []string{"http.fetch"} }

// Request is http.fetch's payload.
type Request struct {
	Method  string              `json:"method,omitempty"` // default GET
	URL     string              `json:"url"`
	Headers map[string][]string `json:"headers,omitempty"`
	Body    []byte              `json:"body,omitempty"` // base64 in JSON
}

// Response is http.fetch's result.
type Response struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers"`
	Body    []byte              `json:"body"`
	URL     string              `json:"url"` // after redirects
}

// BlockedError is a refused destination address. It matches
// capability.ErrPermissionDenied.
type BlockedError struct {
	Host   string
	Addr   netip.Addr
	Reason string
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("address %s of %q is %s; the host refuses to connect there", e.Addr, e.Host, e.Reason)
}

// Is makes BlockedError match capability.ErrPermissionDenied.
func (e *BlockedError) Is(target error) bool { return target == capability.ErrPermissionDenied }

func parse(payload []byte) (Request, *url.URL, error) {
	var r Request
	if err := capability.DecodeJSON(payload, &r); err != nil {
		return r, nil, err
	}
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	r.Method = strings.ToUpper(r.Method)
	u, err := checkURL(r.URL)
	if err != nil {
		return r, nil, err
	}
	return r, u, nil
}

func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: url %q: %v", capability.ErrBadInput, raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: url %q: only http and https are allowed", capability.ErrBadInput, raw)
	case u.User != nil:
		return nil, fmt.Errorf("%w: url %q: user info is not allowed; send credentials in a header", capability.ErrBadInput, raw)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%w: url %q has no host", capability.ErrBadInput, raw)
	}
	return u, nil
}

// Access reports the host and method of the request for the token check.
func (*HTTP) Access(_ string, payload []byte) (capability.Access, error) {
	r, u, err := parse(payload)
	if err != nil {
		return capability.Access{}, err
	}
	return capability.Access{Host: hostOf(u), Method: r.Method}, nil
}

func hostOf(u *url.URL) string {
	return strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
}

func allowedHost(scope *capability.Scope, u *url.URL) bool {
	h := hostOf(u)
	return slices.ContainsFunc(scope.Hosts, func(p string) bool { return policy.HostCovered(p, h) })
}

func (h *HTTP) Call(ctx context.Context, c *capability.Call) ([]byte, error) {
	r, u, err := parse(c.Payload)
	if err != nil {
		return nil, err
	}
	scope := c.Scope
	if !allowedHost(&scope, u) {
		return nil, fmt.Errorf("%w: host %q is not in the allowlist (%s)", capability.ErrPermissionDenied, hostOf(u), strings.Join(scope.Hosts, ", "))
	}
	if !slices.Contains(scope.Methods, r.Method) {
		return nil, fmt.Errorf("%w: method %s is not allowed (%s)", capability.ErrPermissionDenied, r.Method, strings.Join(scope.Methods, ", "))
	}
	timeout := time.Duration(scope.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = policy.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", capability.ErrBadInput, err)
	}
	for k, vs := range r.Headers {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Connection", "Content-Length", "Transfer-Encoding", "Proxy-Authorization", "Proxy-Connection", "Te", "Upgrade", "Keep-Alive", "Trailer":
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	tr := h.public
	if scope.AllowPrivate {
		tr = h.private
	}
	client := &http.Client{Transport: tr, CheckRedirect: func(next *http.Request, via []*http.Request) error {
		if len(via) > MaxRedirects {
			return fmt.Errorf("%w: more than %d redirects", capability.ErrPermissionDenied, MaxRedirects)
		}
		if next.URL.Scheme != "http" && next.URL.Scheme != "https" {
			return fmt.Errorf("%w: redirect to %q: only http and https are allowed", capability.ErrPermissionDenied, next.URL.Redacted())
		}
		if !allowedHost(&scope, next.URL) {
			return fmt.Errorf("%w: redirect to host %q, which is not in the allowlist (%s)", capability.ErrPermissionDenied, hostOf(next.URL), strings.Join(scope.Hosts, ", "))
		}
		if !slices.Contains(scope.Methods, next.Method) {
			return fmt.Errorf("%w: redirect would use method %s, which is not allowed", capability.ErrPermissionDenied, next.Method)
		}
		return nil
	}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fetchError(err)
	}
	defer resp.Body.Close()
	limit := scope.MaxResponse
	if limit <= 0 {
		limit = int64(policy.DefaultMaxResponse)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: response of %d bytes is more than the %d bytes granted", capability.ErrTooLarge, resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fetchError(err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: response is more than the %d bytes granted", capability.ErrTooLarge, limit)
	}
	return json.Marshal(Response{Status: resp.StatusCode, Headers: resp.Header, Body: body, URL: resp.Request.URL.String()})
}

// fetchError keeps the sentinels visible through url.Error and names
// timeouts plainly.
func fetchError(err error) error {
	switch {
	case errors.Is(err, capability.ErrPermissionDenied):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("fetch: %w", context.DeadlineExceeded)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("fetch: %w", context.Canceled)
	}
	return fmt.Errorf("fetch: %w", err)
}

// dialer returns a DialContext that resolves the name itself, vets the
// addresses and dials a vetted address.
func (h *HTTP) dialer(allowPrivate bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var addrs []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{ip}
		} else {
			addrs, err = h.resolver.LookupNetIP(ctx, "ip", host)
			if err != nil {
				return nil, fmt.Errorf("resolve %q: %w", host, err)
			}
		}
		var refused error
		var d net.Dialer
		var lastErr error
		for _, ip := range addrs {
			ip = ip.Unmap()
			if reason := Blocked(ip, allowPrivate); reason != "" {
				if refused == nil {
					refused = &BlockedError{Host: host, Addr: ip, Reason: reason}
				}
				continue
			}
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return conn, nil
			}
			lastErr = err
		}
		switch {
		case lastErr != nil:
			return nil, lastErr
		case refused != nil:
			return nil, refused
		default:
			return nil, fmt.Errorf("resolve %q: no addresses", host)
		}
	}
}

var (
	metadata = []netip.Addr{netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254")}
	always   = []struct {
		p      netip.Prefix
		reason string
	}{
		{netip.MustParsePrefix("0.0.0.0/8"), "in 0.0.0.0/8 (this network)"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
	}
	nonPublic = []struct {
		p      netip.Prefix
		reason string
	}{
		{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
		{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
		{netip.MustParsePrefix("192.0.2.0/24"), "documentation range"},
		{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking range"},
		{netip.MustParsePrefix("198.51.100.0/24"), "documentation range"},
		{netip.MustParsePrefix("203.0.113.0/24"), "documentation range"},
		{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (embeds an IPv4 address)"},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 (embeds an IPv4 address)"},
		{netip.MustParsePrefix("2002::/16"), "6to4 (embeds an IPv4 address)"},
		{netip.MustParsePrefix("2001::/32"), "Teredo (embeds an IPv4 address)"},
		{netip.MustParsePrefix("2001:db8::/32"), "documentation range"},
		{netip.MustParsePrefix("fec0::/10"), "site-local"},
	}
)

// Blocked returns why the host must not connect to ip, or "" when it may.
func Blocked(ip netip.Addr, allowPrivate bool) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "not a valid address"
	case slices.Contains(metadata, ip):
		return "a cloud metadata endpoint"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsLinkLocalMulticast():
		return "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, r := range always {
		if r.p.Contains(ip) {
			return r.reason
		}
	}
	if allowPrivate {
		return ""
	}
	switch {
	case ip.IsLoopback():
		return "loopback (grant allow_private to reach it)"
	case ip.IsPrivate():
		return "private (grant allow_private to reach it)"
	case ip.IsLinkLocalUnicast():
		return "link-local (grant allow_private to reach it)"
	}
	for _, r := range nonPublic {
		if r.p.Contains(ip) {
			return r.reason + " (grant allow_private to reach it)"
		}
	}
	return ""
}

var (
	_ capability.Capability = (*HTTP)(nil)
	_ capability.Scoper     = (*HTTP)(nil)
)
