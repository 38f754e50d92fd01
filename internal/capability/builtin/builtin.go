// Package builtin holds Airlock's small built-in capabilities (log, clock,
// random, config) and Register, which adds every built-in, including kv,
// http and fs, to a capability.Registry.
//
// Payloads are JSON objects; byte fields are base64 strings (Go's
// encoding/json []byte form). docs/capabilities.md lists every function.
package builtin

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/airlockhq/airlock/internal/capability"
	"github.com/airlockhq/airlock/internal/capability/fscap"
	"github.com/airlockhq/airlock/internal/capability/httpcap"
	"github.com/airlockhq/airlock/internal/capability/kv"
)

// Options configure the built-ins.
type Options struct {
	// StateDir holds kv.db; required for kv.
	StateDir string
	// Logger receives plugins' log.write records; nil discards them.
	Logger *slog.Logger
	// Now and Since are the clock; nil uses the real one.
	Now func() time.Time
	// Resolver resolves host names for http; nil uses net.DefaultResolver.
	Resolver httpcap.Resolver
}

// Register adds log, clock, random, config, http, fs.read and fs.write to
// reg, and kv when opts.StateDir is set (kv persists there; without a state
// directory the host does not offer kv, and requests for it are denied with
// that reason). It returns the kv store, or nil, which the caller closes on
// shutdown.
func Register(reg *capability.Registry, opts Options) (*kv.Store, error) {
	caps := []capability.Capability{
		NewLog(opts.Logger), NewClock(opts.Now), Random{}, Config{},
		httpcap.New(httpcap.Options{Resolver: opts.Resolver}),
		fscap.NewRead(), fscap.NewWrite(),
	}
	var store *kv.Store
	if opts.StateDir != "" {
		var err error
		if store, err = kv.Open(filepath.Join(opts.StateDir, kv.FileName)); err != nil {
			return nil, err
		}
		caps = append(caps, store)
	}
	for _, c := range caps {
		if err := reg.Register(c); err != nil {
			if store != nil {
				store.Close()
			}
			return nil, err
		}
	}
	return store, nil
}

func decode(payload []byte, v any) error {
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if err := capability.DecodeJSON(payload, v); err != nil {
		return err
	}
	return nil
}

// Log is the log capability: log.write hands a record to the host's logger
// with the plugin's name attached. Every plugin has it; the host's log
// budget limits it elsewhere.
type Log struct{ logger *slog.Logger }

// NewLog returns the log capability writing to logger (nil: discard).
func NewLog(logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{logger: logger}
}

func (*Log) Name() string        { return "log" }
func (*Log) Functions() []string { return []string{"log.write"} }

// LogRecord is log.write's payload.
type LogRecord struct {
	Level string            `json:"level"` // debug, info, warn, error; default info
	Msg   string            `json:"msg"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

func (l *Log) Call(ctx context.Context, c *capability.Call) ([]byte, error) {
	var r LogRecord
	if err := decode(c.Payload, &r); err != nil {
		return nil, err
	}
	var level slog.Level
	if r.Level != "" {
		if err := level.UnmarshalText([]byte(r.Level)); err != nil {
			return nil, fmt.Errorf("%w: level %q: use debug, info, warn or error", capability.ErrBadInput, r.Level)
		}
	}
	attrs := []slog.Attr{slog.String("plugin", c.Plugin), slog.String("instance", c.Instance)}
	keys := make([]string, 0, len(r.Attrs))
	for k := range r.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.String("plugin."+k, r.Attrs[k]))
	}
	l.logger.LogAttrs(ctx, level, r.Msg, attrs...)
	return []byte("{}"), nil
}

// Clock is the clock capability: clock.now (wall time) and clock.monotonic
// (nanoseconds since the host started the capability; only differences
// mean anything).
type Clock struct {
	now   func() time.Time
	start time.Time
}

// NewClock returns the clock capability; now nil uses time.Now.
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now, start: now()}
}

func (*Clock) Name() string        { return "clock" }
func (*Clock) Functions() []string { return []string{"clock.now", "clock.monotonic"} }

// ClockNow is clock.now's result.
type ClockNow struct {
	UnixNano int64  `json:"unix_nano"`
	RFC3339  string `json:"rfc3339"`
}

// ClockMonotonic is clock.monotonic's result.
type ClockMonotonic struct {
	Nanos int64 `json:"nanos"`
}

func (k *Clock) Call(_ context.Context, c *capability.Call) ([]byte, error) {
	now := k.now()
	switch c.Function {
	case "clock.now":
		return json.Marshal(ClockNow{UnixNano: now.UnixNano(), RFC3339: now.UTC().Format(time.RFC3339Nano)})
	default:
		return json.Marshal(ClockMonotonic{Nanos: int64(now.Sub(k.start))})
	}
}

// MaxRandom is the most bytes one random.bytes call returns.
const MaxRandom = 64 << 10

// Random is the random capability: random.bytes returns n bytes from
// crypto/rand, at most MaxRandom per call (the byte budget caps the rate).
type Random struct{}

func (Random) Name() string        { return "random" }
func (Random) Functions() []string { return []string{"random.bytes"} }

// RandomRequest is random.bytes's payload.
type RandomRequest struct {
	N int `json:"n"`
}

// RandomResult is random.bytes's result.
type RandomResult struct {
	Bytes []byte `json:"bytes"`
}

func (Random) Call(_ context.Context, c *capability.Call) ([]byte, error) {
	var r RandomRequest
	if err := decode(c.Payload, &r); err != nil {
		return nil, err
	}
	switch {
	case r.N < 0:
		return nil, fmt.Errorf("%w: n = %d must not be negative", capability.ErrBadInput, r.N)
	case r.N > MaxRandom:
		return nil, fmt.Errorf("%w: n = %d is more than %d bytes per call; make several calls", capability.ErrTooLarge, r.N, MaxRandom)
	}
	b := make([]byte, r.N)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("read random: %w", err)
	}
	return json.Marshal(RandomResult{Bytes: b})
}

// Config is the config capability: config.get returns one operator-set
// value, config.list the granted keys. Values come from the policy (the
// grant), keys from the token's scope.
type Config struct{}

func (Config) Name() string        { return "config" }
func (Config) Functions() []string { return []string{"config.get", "config.list"} }

// ConfigRequest is config.get's payload.
type ConfigRequest struct {
	Key string `json:"key"`
}

// ConfigValue is config.get's result.
type ConfigValue struct {
	Value string `json:"value"`
}

// ConfigKeys is config.list's result.
type ConfigKeys struct {
	Keys []string `json:"keys"`
}

// Access reads the key so the broker can check it against the token.
func (Config) Access(function string, payload []byte) (capability.Access, error) {
	if function != "config.get" {
		return capability.Access{}, nil
	}
	var r ConfigRequest
	if err := decode(payload, &r); err != nil {
		return capability.Access{}, err
	}
	if r.Key == "" {
		return capability.Access{}, fmt.Errorf("%w: config.get needs a key", capability.ErrBadInput)
	}
	return capability.Access{Key: r.Key}, nil
}

func (Config) Call(_ context.Context, c *capability.Call) ([]byte, error) {
	if c.Function == "config.list" {
		keys := slices.Clone(c.Scope.Keys)
		slices.Sort(keys)
		return json.Marshal(ConfigKeys{Keys: keys})
	}
	var r ConfigRequest
	if err := decode(c.Payload, &r); err != nil {
		return nil, err
	}
	if !slices.Contains(c.Scope.Keys, r.Key) {
		return nil, fmt.Errorf("%w: config key %q is not granted", capability.ErrPermissionDenied, r.Key)
	}
	v, ok := c.Grant.Config[r.Key]
	if !ok {
		return nil, fmt.Errorf("%w: config key %q has no value", capability.ErrNotFound, r.Key)
	}
	return json.Marshal(ConfigValue{Value: v})
}
