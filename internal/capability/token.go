package capability

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path"
	"slices"
	"strings"

	"github.com/airlockhq/airlock/internal/token"
	"github.com/airlockhq/airlock/policy"
)

// The token format lives in internal/token (shared with the Go SDK); these
// names keep the broker's code reading naturally.
type (
	Scope    = token.Scope
	Envelope = token.Envelope
	Claims   = token.Claims
	Caveat   = token.Caveat
)

// Token layout constants, from internal/token.
const (
	TokenVersion = token.Version
	MaxCaveats   = token.MaxCaveats
	MaxTokenSize = token.MaxSize
	sigSize      = sha256.Size
)

// parseToken splits tok, turning a format error into an invalid-token error.
func parseToken(tok []byte) (*token.Raw, error) {
	t, err := token.Parse(tok)
	return t, formatErr(err)
}

func formatErr(err error) error {
	var fe *token.FormatError
	if errors.As(err, &fe) {
		return tokenErr(fe.Part, ErrInvalidToken, "%s", fe.Msg)
	}
	return err
}

// Attenuate returns a token that allows at most what tok allows, narrowed by
// c. It needs no key: the new link is keyed by tok's signature. It does not
// verify tok; a token that is not valid stays not valid.
func Attenuate(tok []byte, c Caveat) ([]byte, error) {
	out, err := token.Attenuate(tok, c)
	return out, formatErr(err)
}

// Inspect decodes a token without verifying it, for display and debugging.
// Nothing it returns may be trusted.
func Inspect(tok []byte) (Claims, []Caveat, error) {
	c, cv, err := token.Inspect(tok)
	return c, cv, formatErr(err)
}

// TokenID returns the token's id without verifying it (for logs of tokens
// that failed verification); "" when it cannot be read.
func TokenID(tok []byte) string { return token.ID(tok) }

// strictJSON decodes one JSON value strictly.
func strictJSON(b []byte, v any) error { return token.StrictJSON(b, v) }

// narrow applies a caveat to effective claims.
func narrow(c *Claims, cv Caveat) {
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

// allows checks that the claims cover a; the error is a *TokenError with
// check "scope" that matches ErrPermissionDenied.
func allows(c *Claims, a Access) error {
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
