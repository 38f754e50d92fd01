package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/capability"
	"github.com/airlockhq/airlock/policy"
)

func TestLog_WritesWithPluginAttrs(t *testing.T) {
	var buf bytes.Buffer
	l := NewLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	_, err := l.Call(context.Background(), &capability.Call{Plugin: "weather", Instance: "i-1", Function: "log.write",
		Payload: []byte(`{"level":"warn","msg":"line\nbreak","attrs":{"city":"Oslo"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`"level":"WARN"`, `"msg":"line\nbreak"`, `"plugin":"weather"`, `"plugin.city":"Oslo"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line %s lacks %s", out, want)
		}
	}
	if _, err := l.Call(context.Background(), &capability.Call{Function: "log.write", Payload: []byte(`{"level":"loud"}`)}); !errors.Is(err, capability.ErrBadInput) {
		t.Errorf("bad level: %v", err)
	}
}

func TestClock(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(func() time.Time { return now })
	now = now.Add(1500 * time.Millisecond)
	out, _ := c.Call(context.Background(), &capability.Call{Function: "clock.monotonic"})
	if string(out) != `{"nanos":1500000000}` {
		t.Errorf("monotonic = %s", out)
	}
	out, _ = c.Call(context.Background(), &capability.Call{Function: "clock.now"})
	if !strings.Contains(string(out), `"rfc3339":"2030-01-01T00:00:01.5Z"`) {
		t.Errorf("now = %s", out)
	}
}

func TestRandom(t *testing.T) {
	out, err := Random{}.Call(context.Background(), &capability.Call{Function: "random.bytes", Payload: []byte(`{"n":32}`)})
	var r RandomResult
	if err != nil || json.Unmarshal(out, &r) != nil || len(r.Bytes) != 32 || bytes.Equal(r.Bytes, make([]byte, 32)) {
		t.Errorf("random: %s %v", out, err)
	}
	for p, want := range map[string]error{`{"n":-1}`: capability.ErrBadInput, `{"n":65537}`: capability.ErrTooLarge, `{"m":1}`: capability.ErrBadInput} {
		if _, err := (Random{}).Call(context.Background(), &capability.Call{Function: "random.bytes", Payload: []byte(p)}); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", p, err, want)
		}
	}
}

func TestConfig(t *testing.T) {
	call := &capability.Call{Function: "config.get", Grant: policy.Grant{Config: map[string]string{"units": "metric", "key": "s3cret"}},
		Scope: capability.Scope{Keys: []string{"units"}}}
	call.Payload = []byte(`{"key":"units"}`)
	if out, err := (Config{}).Call(context.Background(), call); err != nil || string(out) != `{"value":"metric"}` {
		t.Errorf("granted key: %s %v", out, err)
	}
	// A key with a value but outside the (possibly attenuated) scope.
	call.Payload = []byte(`{"key":"key"}`)
	if _, err := (Config{}).Call(context.Background(), call); !errors.Is(err, capability.ErrPermissionDenied) {
		t.Errorf("ungranted key: %v", err)
	}
	if a, err := (Config{}).Access("config.get", []byte(`{"key":"units"}`)); err != nil || a.Key != "units" {
		t.Errorf("Access = %+v %v", a, err)
	}
}

func TestRegister(t *testing.T) {
	// Without a state directory everything but kv is offered.
	reg := capability.NewRegistry()
	if store, err := Register(reg, Options{}); err != nil || store != nil {
		t.Fatalf("Register without a state directory = %v, %v", store, err)
	}
	if _, ok := reg.Lookup("kv"); ok {
		t.Error("kv is offered without a state directory")
	}
	if _, ok := reg.Lookup("http"); !ok {
		t.Error("http is not offered without a state directory")
	}
	reg = capability.NewRegistry()
	store, err := Register(reg, Options{StateDir: filepath.Join(t.TempDir(), "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	want := "clock.monotonic clock.now config.get config.list fs.read.file fs.read.list fs.read.stat fs.write.file fs.write.mkdir fs.write.remove http.fetch kv.delete kv.get kv.list kv.put log.write random.bytes"
	if got := strings.Join(reg.Functions(), " "); got != want {
		t.Errorf("functions = %s", got)
	}
	for _, name := range []string{"log", "clock", "random", "config", "kv", "http", "fs.read", "fs.write"} {
		if !policy.IsBuiltin(name) {
			t.Errorf("%s is registered but policy does not know it as built-in", name)
		}
	}
}
