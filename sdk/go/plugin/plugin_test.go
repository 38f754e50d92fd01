package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/airlockhq/airlock/internal/rpc"
	"github.com/airlockhq/airlock/internal/token"
	"github.com/airlockhq/airlock/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// host plays the host's side over a real socketpair: HELLO, WELCOME, GRANT,
// then calls. It records LOG frames and answers HOSTCALLs with hostCall.
type host struct {
	conn     *rpc.Conn
	welcome  wire.Welcome
	logs     chan wire.Log
	served   chan error
	hostCall rpc.Handler
}

func serve(t *testing.T, p *Plugin, grant []wire.Token, hostCall rpc.Handler) *host {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	toConn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "sp")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	hc, pc := toConn(fds[0]), toConn(fds[1])
	h := &host{logs: make(chan wire.Log, 16), served: make(chan error, 1), hostCall: hostCall}
	go func() { h.served <- p.ServeConn(pc) }()

	if _, err := hc.Write(wire.Hello{Versions: wire.Supported, MaxFrame: wire.DefaultMaxFrame, Host: "test", Plugin: "p", Instance: "i"}.AppendFrame(nil)); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(hc, 64<<10, wire.DefaultMaxFrame)
	hd, err := r.Next()
	if err != nil || hd.Kind != wire.KindWelcome {
		t.Fatalf("want WELCOME, got %v %v", hd.Kind, err)
	}
	body, _ := r.View()
	if h.welcome, err = wire.DecodeWelcome(body); err != nil {
		t.Fatal(err)
	}
	h.conn = rpc.New(hc, r, rpc.Options{Role: rpc.RoleHost, Handler: hostCall, OnLog: func(_ uint64, b []byte) {
		if l, err := wire.DecodeLog(b); err == nil {
			h.logs <- l
		}
	}})
	if err := h.conn.Send(wire.Grant{Tokens: grant}.AppendFrame(nil)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.conn.Close(nil)
		if err := <-h.served; err != nil {
			t.Errorf("Serve returned %v after the host closed", err)
		}
	})
	return h
}

func (h *host) call(fn string, in []byte) ([]byte, error) {
	return h.conn.Call(context.Background(), fn, 5*time.Second, nil, in)
}

func TestServe_NegotiatesAndServes(t *testing.T) {
	p := New("p", "1.0.0")
	p.Handle("upper", func(_ context.Context, in []byte) ([]byte, error) { return []byte(strings.ToUpper(string(in))), nil })
	type in struct{ A, B int }
	HandleJSON(p, "sum", func(_ context.Context, v in) (map[string]int, error) { return map[string]int{"sum": v.A + v.B}, nil })
	h := serve(t, p, nil, nil)

	if h.welcome.Version != 1 || h.welcome.SDK != "airlock-go/"+SDKVersion || strings.Join(h.welcome.Functions, ",") != "sum,upper" {
		t.Fatalf("welcome = %+v", h.welcome)
	}
	if out, err := h.call("upper", []byte("abc")); err != nil || string(out) != "ABC" {
		t.Fatalf("upper = %q %v", out, err)
	}
	if out, err := h.call("sum", []byte(`{"A":2,"B":3}`)); err != nil || string(out) != `{"sum":5}` {
		t.Fatalf("sum = %q %v", out, err)
	}
	_, err := h.call("sum", []byte(`not json`))
	var e *rpc.Error
	if !errors.As(err, &e) || e.Code != wire.CodeBadInput || !strings.Contains(e.Message, "decode sum input as JSON") {
		t.Fatalf("bad JSON: %v", err)
	}
	if _, err := h.call("nope", nil); !errors.As(err, &e) || e.Code != wire.CodeUnknownFunction || !strings.Contains(e.Message, "exports: sum, upper") {
		t.Fatalf("unknown function: %v", err)
	}
}

func TestServe_VersionMismatch(t *testing.T) {
	fds, _ := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	hf, pf := os.NewFile(uintptr(fds[0]), "h"), os.NewFile(uintptr(fds[1]), "p")
	defer hf.Close()
	done := make(chan error, 1)
	go func() { done <- New("p", "1").ServeConn(pf) }()
	hf.Write(wire.Hello{Versions: wire.VersionRange{Min: 7, Max: 9}, MaxFrame: wire.DefaultMaxFrame}.AppendFrame(nil))
	r := wire.NewReader(hf, 4096, wire.HandshakeMaxFrame)
	hd, err := r.Next()
	if err != nil || hd.Kind != wire.KindError || hd.ID != 0 {
		t.Fatalf("want ERROR 0, got %v %v", hd, err)
	}
	body, _ := r.View()
	f, _ := wire.DecodeFailure(body)
	if f.Code != wire.CodeVersionMismatch || !strings.Contains(f.Message, "host speaks v7–v9, plugin speaks v1") {
		t.Fatalf("failure = %+v", f)
	}
	var ee *exitCodeError
	if err := <-done; !errors.As(err, &ee) || ee.code != exitVersionMismatch {
		t.Fatalf("ServeConn = %v, want exit status %d", err, exitVersionMismatch)
	}
}

func TestLogRecordsCarryTheCallAndFlattenedAttributes(t *testing.T) {
	p := New("p", "1")
	p.SetLogLevel(slog.LevelDebug)
	lg := slog.New(p.logger.Handler()).With("plugin_attr", 1).WithGroup("req")
	p.Handle("log", func(ctx context.Context, _ []byte) ([]byte, error) {
		lg.DebugContext(ctx, "hello", "path", "/x", slog.Group("user", "id", 7))
		return nil, nil
	})
	h := serve(t, p, nil, nil)
	if _, err := h.call("log", nil); err != nil {
		t.Fatal(err)
	}
	l := <-h.logs
	got := map[string]string{}
	for _, a := range l.Attrs {
		got[a.Key] = a.Value
	}
	if l.Message != "hello" || l.Level != int32(slog.LevelDebug) || got["plugin_attr"] != "1" || got["req.path"] != "/x" || got["req.user.id"] != "7" {
		t.Fatalf("log = %+v", l)
	}
}

func TestHostCall_PresentsTheCapabilityTokenAndKeepsCaveats(t *testing.T) {
	claims, _ := json.Marshal(token.Claims{ID: "0123456789abcdef0123456789abcdef", Capability: "kv"})
	root, err := token.Encode(1, claims, nil, func(signed []byte) []byte { return token.Chain([]byte("k"), signed, nil) })
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan []byte, 4)
	p := New("p", "1")
	p.Handle("get", func(ctx context.Context, in []byte) ([]byte, error) {
		v, found, err := KV.Get(ctx, string(in))
		if err != nil || !found {
			return nil, err
		}
		return v, nil
	})
	p.Handle("clock", func(ctx context.Context, _ []byte) ([]byte, error) {
		_, err := Clock.Now(ctx)
		return nil, err
	})
	h := serve(t, p, []wire.Token{{Capability: "kv", Token: root}}, func(_ context.Context, req *rpc.Request) ([]byte, error) {
		seen <- append([]byte(nil), req.Token...)
		if req.Function != "kv.get" {
			return nil, rpc.Errorf(wire.CodePermissionDenied, "no %s", req.Function)
		}
		return []byte(`{"found":true,"value":"dmFsdWU="}`), nil
	})
	if out, err := h.call("get", []byte("k")); err != nil || string(out) != "value" {
		t.Fatalf("get = %q %v", out, err)
	}
	if tok := <-seen; string(tok) != string(root) {
		t.Fatal("the kv host call did not present the granted kv token")
	}
	// A capability that was not granted: no token, and the host's code.
	_, err = h.call("clock", nil)
	var e *rpc.Error
	if !errors.As(err, &e) || e.Code != wire.CodePermissionDenied {
		t.Fatalf("clock = %v", err)
	}
	if tok := <-seen; len(tok) != 0 {
		t.Fatal("a token was presented for a capability that was not granted")
	}
	// Attenuation narrows, and survives a fresh GRANT.
	if err := p.Attenuate("kv", Caveat{Keys: []string{"only"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.conn.Send(wire.Grant{Tokens: []wire.Token{{Capability: "kv", Token: root}}}.AppendFrame(nil)); err != nil {
		t.Fatal(err)
	}
	// The GRANT and the call share the connection, so the call sees it.
	h.call("get", []byte("k"))
	_, cavs, err := token.Inspect(<-seen)
	if err != nil || len(cavs) != 1 || cavs[0].Keys[0] != "only" {
		t.Fatalf("after a new grant the token carries caveats %+v (%v); the plugin's narrowing was lost", cavs, err)
	}
	if err := p.Attenuate("http", Caveat{}); err == nil {
		t.Fatal("attenuating a capability that was not granted succeeded")
	}
}

func TestHandle_ProgrammerErrorsPanic(t *testing.T) {
	for name, f := range map[string]func(p *Plugin){
		"bad name": func(p *Plugin) {
			p.Handle("Bad Name", func(context.Context, []byte) ([]byte, error) { return nil, nil })
		},
		"duplicate": func(p *Plugin) { p.Handle("a", nil) },
	} {
		p := New("p", "1")
		p.Handle("a", func(context.Context, []byte) ([]byte, error) { return nil, nil })
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f(p)
		}()
	}
}

func TestServe_NotHosted(t *testing.T) {
	t.Setenv("AIRLOCK_PROTOCOL", "")
	err := New("p", "1").Serve()
	if !errors.Is(err, ErrNotHosted) {
		t.Fatalf("Serve outside a host = %v", err)
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"render": true, "a": true, "kv.get_2-x": true, strings.Repeat("a", 64): true,
		"": false, "Render": false, "2fa": false, "_x": false, "a b": false, "ü": false, strings.Repeat("a", 65): false,
	} {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v, want %v", name, got, want)
		}
	}
}
