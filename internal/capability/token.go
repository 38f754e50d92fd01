package capability

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/airlockhq/airlock/policy"
)

// Token layout constants; docs/capabilities.md is the specification.
const (
	tokenMagic    = "ALCT"
	TokenVersion  = 1
	headerSize    = 4 + 1 + 4 + 2 // magic, version, key id, claims length
	sigSize       = sha256.Size
	MaxCaveats    = 16
	MaxTokenSize  = 16 << 10
	rootDomainTag = "airlock capability token v1\x00"
)

// Scope is what a token allows. List fields allow nothing when empty.
type Scope struct {
	Ops          []string `json:"ops"`                     // host functions, e.g. "kv.get"
	Hosts        []string `json:"hosts,omitempty"`         // http
	Methods      []string `json:"methods,omitempty"`       // http
	AllowPrivate bool     `json:"allow_private,omitempty"` // http
	MaxResponse  int64    `json:"max_response,omitempty"`  // http, bytes
	TimeoutMS    int64    `json:"timeout_ms,omitempty"`    // http
	Paths        []string `json:"paths,omitempty"`         // fs.read, fs.write
	MaxFile      int64    `json:"max_file,omitempty"`      // fs.read, fs.write, bytes
	Quota        int64    `json:"quota,omitempty"`         // kv, bytes
	Keys         []string `json:"keys,omitempty"`          // config
	Names        []string `json:"scope,omitempty"`         // embedder capabilities
}

// Envelope is how often and how much. Zero means unlimited.
type Envelope struct {
	Rate   float64 `json:"rate,omitempty"`   // calls per second
	Burst  int     `json:"burst,omitempty"`  // token-bucket burst
	Budget int64   `json:"budget,omitempty"` // bytes per minute
}

// Claims are a token's contents. After verification they are the effective
// claims: the root's, narrowed by every caveat.
type Claims struct {
	ID         string   `json:"jti"` // 32 hex digits; shared by every attenuation of a token
	Plugin     string   `json:"plugin"`
	Instance   string   `json:"instance"`
	Capability string   `json:"cap"`
	Scope      Scope    `json:"scope"`
	Envelope   Envelope `json:"env"`
	IssuedAt   int64    `json:"iat"` // Unix milliseconds
	Expiry     int64    `json:"exp"` // Unix milliseconds
	// Set by verification, not encoded.
	KeyID   uint32 `json:"-"`
	Caveats int    `json:"-"`
}

// ExpiresAt returns the expiry as a time.
func (c *Claims) ExpiresAt() time.Time { return time.UnixMilli(c.Expiry) }

// Caveat narrows a token. Every field is optional; a zero field leaves that
// part of the scope as it was. Lists keep only what both the token and the
// caveat allow; numbers take the smaller value.
type Caveat struct {
	Ops         []string  `json:"ops,omitempty"`
	Hosts       []string  `json:"hosts,omitempty"`
	Methods     []string  `json:"methods,omitempty"`
	NoPrivate   bool      `json:"no_private,omitempty"`
	MaxResponse int64     `json:"max_response,omitempty"`
	TimeoutMS   int64     `json:"timeout_ms,omitempty"`
	Paths       []string  `json:"paths,omitempty"`
	MaxFile     int64     `json:"max_file,omitempty"`
	Keys        []string  `json:"keys,omitempty"`
	Names       []string  `json:"scope,omitempty"`
	Envelope    *Envelope `json:"env,omitempty"`
	Expiry      int64     `json:"exp,omitempty"` // Unix milliseconds
}

// rawToken is a token split into its parts, not yet verified.
type rawToken struct {
	keyID   uint32
	signed  []byte   // header + claims: the input of the root MAC
	claims  []byte   // JSON
	caveats [][]byte // JSON each
	sig     []byte
}

func parseToken(tok []byte) (*rawToken, error) {
	bad := func(format string, args ...any) error { return tokenErr("format", ErrInvalidToken, format, args...) }
	if len(tok) > MaxTokenSize {
		return nil, bad("%d bytes is more than the %d a token may have", len(tok), MaxTokenSize)
	}
	if len(tok) < headerSize+1+sigSize {
		return nil, bad("%d bytes is too short for a token", len(tok))
	}
	if string(tok[:4]) != tokenMagic {
		return nil, bad("does not start with %q; pass the token bytes the host handed out, unchanged", tokenMagic)
	}
	if tok[4] != TokenVersion {
		return nil, bad("version %d is not supported (this host reads version %d)", tok[4], TokenVersion)
	}
	t := &rawToken{keyID: binary.LittleEndian.Uint32(tok[5:9])}
	n := int(binary.LittleEndian.Uint16(tok[9:11]))
	rest := tok[headerSize:]
	if n == 0 || n > len(rest) {
		return nil, bad("claims length %d runs past the end", n)
	}
	t.claims, rest = rest[:n], rest[n:]
	t.signed = tok[:headerSize+n]
	if len(rest) < 1 {
		return nil, bad("missing caveat count")
	}
	count := int(rest[0])
	rest = rest[1:]
	if count > MaxCaveats {
		return nil, bad("%d caveats is more than %d", count, MaxCaveats)
	}
	for i := range count {
		if len(rest) < 2 {
			return nil, bad("caveat %d: length runs past the end", i+1)
		}
		m := int(binary.LittleEndian.Uint16(rest))
		rest = rest[2:]
		if m == 0 || m > len(rest) {
			return nil, bad("caveat %d: length %d runs past the end", i+1, m)
		}
		t.caveats = append(t.caveats, rest[:m])
		rest = rest[m:]
	}
	if len(rest) != sigSize {
		return nil, bad("signature is %d bytes, want %d", len(rest), sigSize)
	}
	t.sig = rest
	return t, nil
}

// chain computes the signature: the root MAC under key, then one link per
// caveat keyed by the previous link.
func chain(key []byte, signed []byte, caveats [][]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(rootDomainTag))
	m.Write(signed)
	sig := m.Sum(nil)
	for _, c := range caveats {
		sig = link(sig, c)
	}
	return sig
}

func link(prev, caveat []byte) []byte {
	m := hmac.New(sha256.New, prev)
	m.Write(caveat)
	return m.Sum(nil)
}

func encodeToken(keyID uint32, claims []byte, caveats [][]byte, sigFor func(signed []byte) []byte) ([]byte, error) {
	if len(claims) == 0 || len(claims) > math.MaxUint16 {
		return nil, fmt.Errorf("encode token: claims are %d bytes; at most %d", len(claims), math.MaxUint16)
	}
	buf := make([]byte, 0, headerSize+len(claims)+1+sigSize)
	buf = append(buf, tokenMagic...)
	buf = append(buf, TokenVersion)
	buf = binary.LittleEndian.AppendUint32(buf, keyID)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(claims)))
	buf = append(buf, claims...)
	signedLen := len(buf)
	buf = append(buf, byte(len(caveats)))
	for _, c := range caveats {
		buf = binary.LittleEndian.AppendUint16(buf, uint16(len(c)))
		buf = append(buf, c...)
	}
	buf = append(buf, sigFor(buf[:signedLen])...)
	if len(buf) > MaxTokenSize {
		return nil, fmt.Errorf("encode token: %d bytes is more than %d", len(buf), MaxTokenSize)
	}
	return buf, nil
}

// Attenuate returns a token that allows at most what tok allows, narrowed by
// c. It needs no key: the new link is keyed by tok's signature. It does not
// verify tok; a token that is not valid stays not valid.
func Attenuate(tok []byte, c Caveat) ([]byte, error) {
	t, err := parseToken(tok)
	if err != nil {
		return nil, fmt.Errorf("attenuate: %w", err)
	}
	if len(t.caveats) >= MaxCaveats {
		return nil, fmt.Errorf("attenuate: a token holds at most %d caveats", MaxCaveats)
	}
	cb, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("attenuate: encode caveat: %w", err)
	}
	if len(cb) > math.MaxUint16 {
		return nil, fmt.Errorf("attenuate: caveat is %d bytes; at most %d", len(cb), math.MaxUint16)
	}
	sig := link(t.sig, cb)
	return encodeToken(t.keyID, t.claims, append(slices.Clip(t.caveats), cb), func([]byte) []byte { return sig })
}

// Inspect decodes a token without verifying it, for display and debugging.
// Nothing it returns may be trusted.
func Inspect(tok []byte) (Claims, []Caveat, error) {
	t, err := parseToken(tok)
	if err != nil {
		return Claims{}, nil, err
	}
	var c Claims
	if err := strictJSON(t.claims, &c); err != nil {
		return Claims{}, nil, tokenErr("format", ErrInvalidToken, "claims: %v", err)
	}
	c.KeyID = t.keyID
	cavs := make([]Caveat, 0, len(t.caveats))
	for i, raw := range t.caveats {
		var cv Caveat
		if err := strictJSON(raw, &cv); err != nil {
			return Claims{}, nil, tokenErr("caveat", ErrInvalidToken, "caveat %d: %v", i+1, err)
		}
		cavs = append(cavs, cv)
	}
	return c, cavs, nil
}

// TokenID returns the token's id without verifying it (for logs of tokens
// that failed verification); "" when it cannot be read.
func TokenID(tok []byte) string {
	c, _, err := Inspect(tok)
	if err != nil || len(c.ID) > 64 {
		return ""
	}
	return c.ID
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after JSON value")
	}
	return nil
}

// narrow applies a caveat to effective claims.
func (c *Claims) narrow(cv Caveat) {
	s := &c.Scope
	if cv.Ops != nil {
		s.Ops = intersectExact(s.Ops, cv.Ops)
	}
	if cv.Hosts != nil {
		s.Hosts = intersectHosts(s.Hosts, cv.Hosts)
	}
	if cv.Methods != nil {
		s.Methods = intersectExact(s.Methods, upper(cv.Methods))
	}
	if cv.NoPrivate {
		s.AllowPrivate = false
	}
	if cv.Paths != nil {
		s.Paths = intersectPaths(s.Paths, cv.Paths)
	}
	if cv.Keys != nil {
		s.Keys = intersectExact(s.Keys, cv.Keys)
	}
	if cv.Names != nil {
		s.Names = intersectExact(s.Names, cv.Names)
	}
	s.MaxResponse = minLimit(s.MaxResponse, cv.MaxResponse)
	s.TimeoutMS = minLimit(s.TimeoutMS, cv.TimeoutMS)
	s.MaxFile = minLimit(s.MaxFile, cv.MaxFile)
	if e := cv.Envelope; e != nil {
		if e.Rate > 0 && (c.Envelope.Rate == 0 || e.Rate < c.Envelope.Rate) {
			c.Envelope.Rate = e.Rate
		}
		c.Envelope.Burst = int(minLimit(int64(c.Envelope.Burst), int64(e.Burst)))
		c.Envelope.Budget = minLimit(c.Envelope.Budget, e.Budget)
	}
	c.Expiry = minLimit(c.Expiry, cv.Expiry)
}

// minLimit returns the smaller of two limits where 0 means "no limit".
func minLimit(a, b int64) int64 {
	switch {
	case b <= 0:
		return a
	case a <= 0:
		return b
	default:
		return min(a, b)
	}
}

func intersectExact(have, want []string) []string {
	out := []string{}
	for _, w := range want {
		if slices.Contains(have, w) && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// intersectHosts keeps, for each pair, the narrower pattern when one covers
// the other.
func intersectHosts(have, want []string) []string {
	out := []string{}
	for _, w := range want {
		for _, h := range have {
			var keep string
			switch {
			case policy.HostCovered(h, w):
				keep = w
			case policy.HostCovered(w, h):
				keep = h
			default:
				continue
			}
			keep = strings.TrimSuffix(strings.ToLower(keep), ".")
			if !slices.Contains(out, keep) {
				out = append(out, keep)
			}
		}
	}
	return out
}

func intersectPaths(have, want []string) []string {
	out := []string{}
	for _, w := range want {
		w = path.Clean(w)
		for _, h := range have {
			var keep string
			switch {
			case pathUnder(w, h):
				keep = w
			case pathUnder(h, w):
				keep = h
			default:
				continue
			}
			if !slices.Contains(out, keep) {
				out = append(out, keep)
			}
		}
	}
	return out
}

// pathUnder reports whether p is root or beneath it (both clean, relative).
func pathUnder(p, root string) bool {
	return p == root || strings.HasPrefix(p, root+"/")
}

func upper(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToUpper(s)
	}
	return out
}

// Access is what one host call needs from a token's scope, as the
// capability reads it from the payload. Empty fields are not checked; a
// capability fills every field its calls depend on.
type Access struct {
	Function string   // always checked against Scope.Ops
	Host     string   // http
	Method   string   // http
	Path     string   // fs: clean, relative
	Key      string   // config
	Names    []string // embedder scope strings
}

// Allows checks that the claims cover a; the error is a *TokenError with
// check "scope" that matches ErrPermissionDenied.
func (c *Claims) Allows(a Access) error {
	deny := func(format string, args ...any) error {
		return tokenErr("scope", ErrPermissionDenied, format, args...)
	}
	s := &c.Scope
	if !slices.Contains(s.Ops, a.Function) {
		return deny("%s is not among the functions this token allows (%s)", a.Function, strings.Join(s.Ops, ", "))
	}
	if a.Host != "" && !slices.ContainsFunc(s.Hosts, func(h string) bool { return policy.HostCovered(h, a.Host) }) {
		return deny("host %q is not in the token's allowlist (%s)", a.Host, strings.Join(s.Hosts, ", "))
	}
	if a.Method != "" && !slices.Contains(s.Methods, strings.ToUpper(a.Method)) {
		return deny("method %s is not allowed (%s)", a.Method, strings.Join(s.Methods, ", "))
	}
	if a.Path != "" {
		p := a.Path
		if path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
			return deny("path %q must be clean and relative to a granted path", p)
		}
		if !slices.ContainsFunc(s.Paths, func(root string) bool { return pathUnder(p, root) }) {
			return deny("path %q is not beneath a granted path (%s)", p, strings.Join(s.Paths, ", "))
		}
	}
	if a.Key != "" && !slices.Contains(s.Keys, a.Key) {
		return deny("config key %q is not granted", a.Key)
	}
	for _, n := range a.Names {
		if !slices.Contains(s.Names, n) {
			return deny("scope %q is not granted", n)
		}
	}
	return nil
}

// newTokenID returns 16 random bytes in hex.
func newTokenID(rand func([]byte) error) (string, error) {
	var b [16]byte
	if err := rand(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
