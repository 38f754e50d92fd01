// Package token is the capability token format of docs/capabilities.md:
// parsing, encoding, the HMAC chain and attenuation. It knows nothing of
// keys, policy or verification; internal/capability mints and verifies
// tokens with it, and the Go plugin SDK attenuates them with it, so the
// format has one implementation. It imports only the standard library
// because the SDK does.
package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Layout constants; docs/capabilities.md is the specification.
const (
	Magic         = "ALCT"
	Version       = 1
	HeaderSize    = 4 + 1 + 4 + 2 // magic, version, key id, claims length
	SigSize       = sha256.Size
	MaxCaveats    = 16
	MaxSize       = 16 << 10
	RootDomainTag = "airlock capability token v1\x00"
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

// Raw is a token split into its parts, not yet verified.
type Raw struct {
	KeyID   uint32
	Signed  []byte   // header + claims: the input of the root MAC
	Claims  []byte   // JSON
	Caveats [][]byte // JSON each
	Sig     []byte
}

// FormatError reports bytes that are not a well-formed token. Part is
// "format", "claims" or "caveat".
type FormatError struct {
	Part string
	Msg  string
}

func (e *FormatError) Error() string { return "capability token: " + e.Part + ": " + e.Msg }

// Parse splits tok into its parts, checking only the layout.
func Parse(tok []byte) (*Raw, error) {
	bad := func(format string, args ...any) error {
		return &FormatError{Part: "format", Msg: fmt.Sprintf(format, args...)}
	}
	if len(tok) > MaxSize {
		return nil, bad("%d bytes is more than the %d a token may have", len(tok), MaxSize)
	}
	if len(tok) < HeaderSize+1+SigSize {
		return nil, bad("%d bytes is too short for a token", len(tok))
	}
	if string(tok[:4]) != Magic {
		return nil, bad("does not start with %q; pass the token bytes the host handed out, unchanged", Magic)
	}
	if tok[4] != Version {
		return nil, bad("version %d is not supported (this host reads version %d)", tok[4], Version)
	}
	t := &Raw{KeyID: binary.LittleEndian.Uint32(tok[5:9])}
	n := int(binary.LittleEndian.Uint16(tok[9:11]))
	rest := tok[HeaderSize:]
	if n == 0 || n > len(rest) {
		return nil, bad("claims length %d runs past the end", n)
	}
	t.Claims, rest = rest[:n], rest[n:]
	t.Signed = tok[:HeaderSize+n]
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
		t.Caveats = append(t.Caveats, rest[:m])
		rest = rest[m:]
	}
	if len(rest) != SigSize {
		return nil, bad("signature is %d bytes, want %d", len(rest), SigSize)
	}
	t.Sig = rest
	return t, nil
}

// Chain computes the signature: the root MAC under key, then one link per
// caveat keyed by the previous link.
func Chain(key []byte, signed []byte, caveats [][]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(RootDomainTag))
	m.Write(signed)
	sig := m.Sum(nil)
	for _, c := range caveats {
		sig = Link(sig, c)
	}
	return sig
}

// Link is one step of the chain: the next signature, keyed by the previous.
func Link(prev, caveat []byte) []byte {
	m := hmac.New(sha256.New, prev)
	m.Write(caveat)
	return m.Sum(nil)
}

// Encode lays out a token and signs it with sigFor(header+claims).
func Encode(keyID uint32, claims []byte, caveats [][]byte, sigFor func(signed []byte) []byte) ([]byte, error) {
	if len(claims) == 0 || len(claims) > math.MaxUint16 {
		return nil, fmt.Errorf("encode token: claims are %d bytes; at most %d", len(claims), math.MaxUint16)
	}
	buf := make([]byte, 0, HeaderSize+len(claims)+1+SigSize)
	buf = append(buf, Magic...)
	buf = append(buf, Version)
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
	if len(buf) > MaxSize {
		return nil, fmt.Errorf("encode token: %d bytes is more than %d", len(buf), MaxSize)
	}
	return buf, nil
}

// Attenuate returns a token that allows at most what tok allows, narrowed by
// c. It needs no key: the new link is keyed by tok's signature. It does not
// verify tok; a token that is not valid stays not valid.
func Attenuate(tok []byte, c Caveat) ([]byte, error) {
	t, err := Parse(tok)
	if err != nil {
		return nil, fmt.Errorf("attenuate: %w", err)
	}
	if len(t.Caveats) >= MaxCaveats {
		return nil, fmt.Errorf("attenuate: a token holds at most %d caveats", MaxCaveats)
	}
	cb, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("attenuate: encode caveat: %w", err)
	}
	if len(cb) > math.MaxUint16 {
		return nil, fmt.Errorf("attenuate: caveat is %d bytes; at most %d", len(cb), math.MaxUint16)
	}
	sig := Link(t.Sig, cb)
	return Encode(t.KeyID, t.Claims, append(slices.Clip(t.Caveats), cb), func([]byte) []byte { return sig })
}

// Inspect decodes a token without verifying it, for display and debugging.
// Nothing it returns may be trusted.
func Inspect(tok []byte) (Claims, []Caveat, error) {
	t, err := Parse(tok)
	if err != nil {
		return Claims{}, nil, err
	}
	var c Claims
	if err := StrictJSON(t.Claims, &c); err != nil {
		return Claims{}, nil, &FormatError{Part: "claims", Msg: err.Error()}
	}
	c.KeyID = t.KeyID
	cavs := make([]Caveat, 0, len(t.Caveats))
	for i, raw := range t.Caveats {
		var cv Caveat
		if err := StrictJSON(raw, &cv); err != nil {
			return Claims{}, nil, &FormatError{Part: "caveat", Msg: fmt.Sprintf("caveat %d: %v", i+1, err)}
		}
		cavs = append(cavs, cv)
	}
	return c, cavs, nil
}

// ID returns the token's id without verifying it (for logs of tokens
// that failed verification); "" when it cannot be read.
func ID(tok []byte) string {
	c, _, err := Inspect(tok)
	if err != nil || len(c.ID) > 64 {
		return ""
	}
	return c.ID
}

// StrictJSON decodes one JSON value, refusing unknown fields and trailing data.
func StrictJSON(b []byte, v any) error {
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
