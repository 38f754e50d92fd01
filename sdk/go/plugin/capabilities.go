package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/airlockhq/airlock/internal/rpc"
)

// The host's built-in capabilities, as typed calls. Each works only if the
// plugin's manifest requests the capability and the operator's policy grants
// it; otherwise the call fails with code permission_denied (see CodeOf).
// Every call takes the handler's ctx: its deadline and cancellation bound
// the host call too. Payload formats are in docs/capabilities.md.
var (
	KV     kvCapability     // a key-value store private to the plugin, kept across restarts
	HTTP   httpCapability   // HTTP requests made by the host to allowlisted hosts
	FS     fsCapability     // files beneath directories the operator granted
	Clock  clockCapability  // wall-clock and monotonic time
	Random randomCapability // cryptographically random bytes
	Config configCapability // operator-provided settings
)

// CodeOf returns the protocol error code of an error from a host call (or
// from HostCall), or 0 when err carries none.
func CodeOf(err error) Code {
	var e *rpc.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Codes a host call may fail with, besides those handlers use.
const (
	CodeRateLimited    = Code(13)
	CodeBudgetExceeded = Code(14)
	CodeInvalidToken   = Code(15)
)

// call makes a host call with a JSON payload and decodes the JSON result.
func call(ctx context.Context, function string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	res, err := HostCall(ctx, function, b)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(res, out)
}

type kvCapability struct{}

// Get returns the value stored under key, and whether there was one.
func (kvCapability) Get(ctx context.Context, key string) ([]byte, bool, error) {
	var r struct {
		Found bool   `json:"found"`
		Value []byte `json:"value"`
	}
	err := call(ctx, "kv.get", map[string]string{"key": key}, &r)
	return r.Value, r.Found, err
}

// Put stores value under key. It fails with budget_exceeded when the
// plugin's quota would be exceeded.
func (kvCapability) Put(ctx context.Context, key string, value []byte) error {
	return call(ctx, "kv.put", map[string]any{"key": key, "value": value}, nil)
}

// Delete removes key and reports whether it existed.
func (kvCapability) Delete(ctx context.Context, key string) (bool, error) {
	var r struct {
		Deleted bool `json:"deleted"`
	}
	err := call(ctx, "kv.delete", map[string]string{"key": key}, &r)
	return r.Deleted, err
}

// List returns up to limit keys with prefix, after the key after (for
// paging), and whether more follow.
func (kvCapability) List(ctx context.Context, prefix, after string, limit int) ([]string, bool, error) {
	var r struct {
		Keys []string `json:"keys"`
		More bool     `json:"more"`
	}
	err := call(ctx, "kv.list", map[string]any{"prefix": prefix, "after": after, "limit": limit}, &r)
	return r.Keys, r.More, err
}

type httpCapability struct{}

// Request is an HTTP request the host makes for the plugin.
type Request struct {
	Method  string              `json:"method"`
	URL     string              `json:"url"`
	Headers map[string][]string `json:"headers,omitempty"`
	Body    []byte              `json:"body,omitempty"`
}

// Response is the host's answer to a Request.
type Response struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers"`
	Body    []byte              `json:"body"`
	URL     string              `json:"url"` // after redirects
}

// Fetch asks the host to make req. The host allows only the hosts and
// methods the operator granted, refuses private addresses unless granted,
// and caps the response size and time.
func (httpCapability) Fetch(ctx context.Context, req Request) (Response, error) {
	var r Response
	err := call(ctx, "http.fetch", req, &r)
	return r, err
}

// Get fetches url with GET.
func (h httpCapability) Get(ctx context.Context, url string) (Response, error) {
	return h.Fetch(ctx, Request{Method: "GET", URL: url})
}

type fsCapability struct{}

// ReadFile reads a file beneath a granted path, e.g. "data/rates.json".
func (fsCapability) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var r struct {
		Data []byte `json:"data"`
	}
	err := call(ctx, "fs.read.file", map[string]string{"path": path}, &r)
	return r.Data, err
}

// WriteFile writes (or with append, appends to) a file beneath a granted
// path.
func (fsCapability) WriteFile(ctx context.Context, path string, data []byte, append bool) error {
	return call(ctx, "fs.write.file", map[string]any{"path": path, "data": data, "append": append}, nil)
}

type clockCapability struct{}

// Now returns the host's wall-clock time.
func (clockCapability) Now(ctx context.Context) (time.Time, error) {
	var r struct {
		UnixNano int64 `json:"unix_nano"`
	}
	err := call(ctx, "clock.now", struct{}{}, &r)
	return time.Unix(0, r.UnixNano), err
}

type randomCapability struct{}

// Bytes returns n random bytes from the host (n ≤ 65536).
func (randomCapability) Bytes(ctx context.Context, n int) ([]byte, error) {
	var r struct {
		Bytes []byte `json:"bytes"`
	}
	err := call(ctx, "random.bytes", map[string]int{"n": n}, &r)
	return r.Bytes, err
}

type configCapability struct{}

// Get returns the operator's value for key.
func (configCapability) Get(ctx context.Context, key string) (string, error) {
	var r struct {
		Value string `json:"value"`
	}
	err := call(ctx, "config.get", map[string]string{"key": key}, &r)
	return r.Value, err
}
