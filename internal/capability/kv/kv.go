// Package kv is the kv capability: a small persistent key-value store per
// plugin, on bbolt, with a quota on the bytes each plugin stores.
//
// One bbolt file (FileName in the host's state directory) holds every
// plugin's namespace as its own bucket. A plugin reaches only its own
// bucket: the namespace is the verified plugin name from the token, never
// something in the payload. Usage (key + value bytes) is kept next to the
// data and updated in the same transaction, so the quota survives restarts
// and crashes.
package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/airlockhq/airlock/internal/capability"
)

// FileName is the store's file name in the state directory.
const FileName = "kv.db"

// Limits of one entry and one listing.
const (
	MaxKey    = 1024
	MaxValue  = 16 << 20
	MaxList   = 1000
	listLimit = 100
)

var (
	pluginsBucket = []byte("plugins")
	dataBucket    = []byte("data")
	usageKey      = []byte("usage")
)

// Store is the kv capability. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating it and its directory if needed) the store at path.
// It fails after a second if another process holds the file.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open kv store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open kv store %s: another process holds it; give each host its own state directory: %w", path, err)
		}
		return nil, fmt.Errorf("open kv store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(pluginsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open kv store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close kv store: %w", err)
	}
	return nil
}

func (*Store) Name() string { return "kv" }
func (*Store) Functions() []string {
	return []string{"kv.get", "kv.put", "kv.delete", "kv.list"}
}

// Request is the payload of every kv function; each uses the fields it
// needs.
type Request struct {
	Key    string `json:"key,omitempty"`    // get, put, delete
	Value  []byte `json:"value,omitempty"`  // put (base64 in JSON)
	Prefix string `json:"prefix,omitempty"` // list
	After  string `json:"after,omitempty"`  // list: start after this key
	Limit  int    `json:"limit,omitempty"`  // list: default 100, at most 1000
}

// GetResult is kv.get's result.
type GetResult struct {
	Found bool   `json:"found"`
	Value []byte `json:"value,omitempty"`
}

// PutResult is kv.put's result: the namespace's usage after the put.
type PutResult struct {
	Used  int64 `json:"used"`
	Quota int64 `json:"quota"`
}

// DeleteResult is kv.delete's result.
type DeleteResult struct {
	Deleted bool `json:"deleted"`
}

// ListResult is kv.list's result; More says a further call with After set
// to the last key returns more.
type ListResult struct {
	Keys []string `json:"keys"`
	More bool     `json:"more"`
}

func (s *Store) Call(_ context.Context, c *capability.Call) ([]byte, error) {
	var r Request
	if err := capability.DecodeJSON(c.Payload, &r); err != nil {
		return nil, err
	}
	switch c.Function {
	case "kv.get":
		if err := checkKey(r.Key); err != nil {
			return nil, err
		}
		v, found, err := s.Get(c.Plugin, r.Key)
		if err != nil {
			return nil, err
		}
		return json.Marshal(GetResult{Found: found, Value: v})
	case "kv.put":
		if err := checkKey(r.Key); err != nil {
			return nil, err
		}
		used, err := s.Put(c.Plugin, r.Key, r.Value, c.Scope.Quota)
		if err != nil {
			return nil, err
		}
		return json.Marshal(PutResult{Used: used, Quota: c.Scope.Quota})
	case "kv.delete":
		if err := checkKey(r.Key); err != nil {
			return nil, err
		}
		deleted, err := s.Delete(c.Plugin, r.Key)
		if err != nil {
			return nil, err
		}
		return json.Marshal(DeleteResult{Deleted: deleted})
	case "kv.list":
		limit := r.Limit
		if limit <= 0 {
			limit = listLimit
		}
		if limit > MaxList {
			return nil, fmt.Errorf("%w: limit %d is more than %d", capability.ErrBadInput, limit, MaxList)
		}
		keys, more, err := s.List(c.Plugin, r.Prefix, r.After, limit)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ListResult{Keys: keys, More: more})
	}
	return nil, fmt.Errorf("%w %q", capability.ErrUnknownFunction, c.Function)
}

func checkKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("%w: key must not be empty", capability.ErrBadInput)
	case len(k) > MaxKey:
		return fmt.Errorf("%w: key of %d bytes is longer than %d", capability.ErrBadInput, len(k), MaxKey)
	case !utf8.ValidString(k):
		return fmt.Errorf("%w: key must be UTF-8", capability.ErrBadInput)
	}
	return nil
}

// Get returns plugin's value for key.
func (s *Store) Get(plugin, key string) ([]byte, bool, error) {
	var out []byte
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		ns := tx.Bucket(pluginsBucket).Bucket([]byte(plugin))
		if ns == nil {
			return nil
		}
		if v := ns.Bucket(dataBucket).Get([]byte(key)); v != nil {
			out, found = bytes.Clone(v), true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("kv get: %w", err)
	}
	return out, found, nil
}

// Put stores value under key in plugin's namespace if the namespace's
// usage stays within quota (bytes of keys plus values), and returns the
// new usage. Over quota, nothing changes and the error matches
// capability.ErrQuotaExceeded.
func (s *Store) Put(plugin, key string, value []byte, quota int64) (int64, error) {
	if len(value) > MaxValue {
		return 0, fmt.Errorf("%w: value of %d bytes is more than %d", capability.ErrTooLarge, len(value), MaxValue)
	}
	var used int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		ns, err := namespace(tx, plugin)
		if err != nil {
			return err
		}
		data := ns.Bucket(dataBucket)
		cur := usage(ns)
		old := data.Get([]byte(key))
		next := cur + int64(len(key)+len(value))
		if old != nil {
			next -= int64(len(key) + len(old))
		}
		if next > quota {
			return capability.QuotaError("kv quota exceeded for plugin %q: storing %d bytes under %q would use %d of %d bytes; delete keys or ask the operator for a larger quota",
				plugin, len(value), key, next, quota)
		}
		if err := data.Put([]byte(key), value); err != nil {
			return err
		}
		used = next
		return setUsage(ns, next)
	})
	if err != nil {
		if errors.Is(err, capability.ErrQuotaExceeded) {
			return 0, err
		}
		return 0, fmt.Errorf("kv put: %w", err)
	}
	return used, nil
}

// Delete removes key from plugin's namespace.
func (s *Store) Delete(plugin, key string) (bool, error) {
	deleted := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		ns := tx.Bucket(pluginsBucket).Bucket([]byte(plugin))
		if ns == nil {
			return nil
		}
		data := ns.Bucket(dataBucket)
		old := data.Get([]byte(key))
		if old == nil {
			return nil
		}
		n := int64(len(key) + len(old))
		if err := data.Delete([]byte(key)); err != nil {
			return err
		}
		deleted = true
		return setUsage(ns, max(0, usage(ns)-n))
	})
	if err != nil {
		return false, fmt.Errorf("kv delete: %w", err)
	}
	return deleted, nil
}

// List returns up to limit keys of plugin's namespace that start with
// prefix and sort after after.
func (s *Store) List(plugin, prefix, after string, limit int) ([]string, bool, error) {
	keys := []string{}
	more := false
	err := s.db.View(func(tx *bolt.Tx) error {
		ns := tx.Bucket(pluginsBucket).Bucket([]byte(plugin))
		if ns == nil {
			return nil
		}
		cur := ns.Bucket(dataBucket).Cursor()
		var k []byte
		if after != "" && after >= prefix {
			k, _ = cur.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, _ = cur.Next()
			}
		} else {
			k, _ = cur.Seek([]byte(prefix))
		}
		for ; k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = cur.Next() {
			if len(keys) == limit {
				more = true
				break
			}
			keys = append(keys, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("kv list: %w", err)
	}
	return keys, more, nil
}

// Usage returns the bytes plugin stores.
func (s *Store) Usage(plugin string) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		if ns := tx.Bucket(pluginsBucket).Bucket([]byte(plugin)); ns != nil {
			n = usage(ns)
		}
		return nil
	})
	return n, err
}

func namespace(tx *bolt.Tx, plugin string) (*bolt.Bucket, error) {
	if plugin == "" {
		return nil, errors.New("empty plugin name")
	}
	ns, err := tx.Bucket(pluginsBucket).CreateBucketIfNotExists([]byte(plugin))
	if err != nil {
		return nil, err
	}
	if _, err := ns.CreateBucketIfNotExists(dataBucket); err != nil {
		return nil, err
	}
	return ns, nil
}

func usage(ns *bolt.Bucket) int64 {
	v := ns.Get(usageKey)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(v))
}

func setUsage(ns *bolt.Bucket, n int64) error {
	return ns.Put(usageKey, binary.LittleEndian.AppendUint64(nil, uint64(n)))
}

var _ capability.Capability = (*Store)(nil)
