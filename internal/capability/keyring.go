package capability

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/token"
)

// KeySize is the length of a signing key: 32 random bytes, HMAC-SHA256's
// block-sized strength.
const KeySize = 32

// Keyring holds the host's token keys: the current one, which signs new
// tokens, and previous ones, which still verify the tokens they signed.
// Keys never leave the host.
//
// # Rotation
//
// Rotate makes a fresh key current. Tokens already handed to plugins stay
// valid until their own expiry, so no plugin has to be restarted or
// re-handed tokens; the old key is kept only for verification and Prune
// drops it once the last token it signed has expired. To cut off a leaked
// key at once, call Remove: its tokens fail with check "key", and the
// plugins holding them must be re-activated.
//
// A Keyring is safe for concurrent use.
type Keyring struct {
	mu      sync.RWMutex
	current uint32
	keys    map[uint32]*signingKey

	// verified caches the effective claims of token bytes whose signature
	// chain checked out, so a token presented on every host call is
	// decoded once. Expiry, plugin, instance and the key's presence are
	// still checked on every call.
	cacheMu  sync.Mutex
	verified map[string]Claims
}

// Bounds of the verified-token cache.
const (
	cacheEntries  = 4096
	cacheTokenMax = 2048 // longer tokens are verified every time
)

type signingKey struct {
	secret   []byte
	notAfter int64 // Unix ms: latest expiry of a token signed with this key
}

// NewKeyring returns a keyring with one fresh random key.
func NewKeyring() (*Keyring, error) {
	k := &Keyring{keys: make(map[uint32]*signingKey)}
	if _, err := k.Rotate(); err != nil {
		return nil, err
	}
	return k, nil
}

// NewKeyringWithKey returns a keyring whose current key is secret (at
// least KeySize bytes) under id, for hosts that share or persist keys and
// for tests.
func NewKeyringWithKey(id uint32, secret []byte) (*Keyring, error) {
	if len(secret) < KeySize {
		return nil, fmt.Errorf("new keyring: key is %d bytes; use at least %d random bytes", len(secret), KeySize)
	}
	return &Keyring{current: id, keys: map[uint32]*signingKey{id: {secret: slices.Clone(secret)}}}, nil
}

// Rotate makes a new random key current and returns its id. Previous keys
// keep verifying the tokens they signed.
func (k *Keyring) Rotate() (uint32, error) {
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return 0, fmt.Errorf("rotate key: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	id := k.current + 1
	for k.keys[id] != nil || id == 0 {
		id++
	}
	k.keys[id] = &signingKey{secret: secret}
	k.current = id
	return id, nil
}

// Current returns the id of the key that signs new tokens.
func (k *Keyring) Current() uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Remove drops a key; tokens it signed stop verifying. The current key
// cannot be removed: Rotate first.
func (k *Keyring) Remove(id uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if id == k.current {
		return errors.New("remove key: it is the current key; Rotate first")
	}
	delete(k.keys, id)
	return nil
}

// Prune drops previous keys whose every token has expired by now, and
// returns how many it dropped.
func (k *Keyring) Prune(now time.Time) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for id, key := range k.keys {
		if id != k.current && key.notAfter <= now.UnixMilli() {
			delete(k.keys, id)
			n++
		}
	}
	return n
}

// Keys returns the ids of the keys that verify tokens, sorted.
func (k *Keyring) Keys() []uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return slices.Sorted(maps.Keys(k.keys))
}

// Mint signs claims with the current key. It fills in ID when empty and
// requires Plugin, Instance, Capability, a non-empty Scope.Ops and an
// Expiry after IssuedAt.
func (k *Keyring) Mint(c Claims) ([]byte, error) {
	switch {
	case c.Plugin == "" || c.Instance == "" || c.Capability == "":
		return nil, errors.New("mint token: plugin, instance and capability are required")
	case len(c.Scope.Ops) == 0:
		return nil, errors.New("mint token: scope allows no function")
	case c.Expiry <= c.IssuedAt:
		return nil, errors.New("mint token: expiry must come after issue time")
	}
	if c.ID == "" {
		id, err := newTokenID(func(b []byte) error { _, err := rand.Read(b); return err })
		if err != nil {
			return nil, fmt.Errorf("mint token: %w", err)
		}
		c.ID = id
	}
	claims, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("mint token: %w", err)
	}
	k.mu.Lock()
	id := k.current
	key := k.keys[id]
	key.notAfter = max(key.notAfter, c.Expiry)
	secret := key.secret
	k.mu.Unlock()
	return token.Encode(id, claims, nil, func(signed []byte) []byte { return token.Chain(secret, signed, nil) })
}

// Open verifies tok's format, key, signature chain and expiry, and that it
// was minted for plugin and instance, then returns its effective claims
// (the root's narrowed by every caveat). Each failure is a *TokenError
// naming the check.
func (k *Keyring) Open(tok []byte, plugin, instance string, now time.Time) (*Claims, error) {
	c, err := k.authentic(tok)
	if err != nil {
		return nil, err
	}
	if ms := now.UnixMilli(); ms >= c.Expiry {
		return nil, tokenErr("expiry", ErrTokenExpired, "expired at %s", time.UnixMilli(c.Expiry).UTC().Format(time.RFC3339Nano))
	}
	if c.Plugin != plugin {
		return nil, tokenErr("plugin", ErrInvalidToken, "minted for plugin %q, presented by %q", c.Plugin, plugin)
	}
	if c.Instance != instance {
		return nil, tokenErr("instance", ErrInvalidToken, "minted for instance %q, presented by %q", c.Instance, instance)
	}
	return &c, nil
}

// authentic checks format, key and signature chain and returns the
// effective claims, from the cache when these exact bytes passed before and
// their key is still held.
func (k *Keyring) authentic(tok []byte) (Claims, error) {
	if len(tok) <= cacheTokenMax {
		k.cacheMu.Lock()
		c, ok := k.verified[string(tok)]
		k.cacheMu.Unlock()
		if ok {
			k.mu.RLock()
			held := k.keys[c.KeyID] != nil
			k.mu.RUnlock()
			if held {
				return c, nil
			}
		}
	}
	c, err := k.verify(tok)
	if err != nil {
		return Claims{}, err
	}
	if len(tok) <= cacheTokenMax {
		k.cacheMu.Lock()
		if k.verified == nil || len(k.verified) >= cacheEntries {
			k.verified = make(map[string]Claims)
		}
		k.verified[string(tok)] = c
		k.cacheMu.Unlock()
	}
	return c, nil
}

func (k *Keyring) verify(tok []byte) (Claims, error) {
	t, err := parseToken(tok)
	if err != nil {
		return Claims{}, err
	}
	k.mu.RLock()
	key := k.keys[t.KeyID]
	k.mu.RUnlock()
	if key == nil {
		return Claims{}, tokenErr("key", ErrInvalidToken, "signed with key %d, which this host does not hold (rotated out or from another host); re-activate the plugin for fresh tokens", t.KeyID)
	}
	if !hmac.Equal(token.Chain(key.secret, t.Signed, t.Caveats), t.Sig) {
		return Claims{}, tokenErr("signature", ErrInvalidToken, "signature does not match: the token was altered or forged")
	}
	// Authentic from here on: decode strictly anyway, so that a caveat this
	// host does not understand fails closed instead of being ignored.
	var c Claims
	if err := strictJSON(t.Claims, &c); err != nil {
		return Claims{}, tokenErr("format", ErrInvalidToken, "claims: %v", err)
	}
	c.KeyID = t.KeyID
	for i, raw := range t.Caveats {
		var cv Caveat
		if err := strictJSON(raw, &cv); err != nil {
			return Claims{}, tokenErr("caveat", ErrInvalidToken, "caveat %d: %v", i+1, err)
		}
		narrow(&c, cv)
	}
	c.Caveats = len(t.Caveats)
	return c, nil
}

// Verify is Open, then checks that the token is for capability and that its
// scope covers access.
func (k *Keyring) Verify(tok []byte, plugin, instance, capability string, access Access, now time.Time) (*Claims, error) {
	c, err := k.Open(tok, plugin, instance, now)
	if err != nil {
		return nil, err
	}
	if c.Capability != capability {
		return nil, tokenErr("capability", ErrInvalidToken, "minted for %q, presented for %q", c.Capability, capability)
	}
	if err := allows(c, access); err != nil {
		return nil, err
	}
	return c, nil
}
