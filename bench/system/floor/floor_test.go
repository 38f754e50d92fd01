package floor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/airlockhq/airlock/bench/system"
)

// env builds the echo child once for the whole package's tests.
var env *system.Env

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "floor-test-")
	if err == nil {
		env, err = system.NewEnv("../..", dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// load starts one plugin of the named floor system.
func load(t *testing.T, mux bool) system.Plugin {
	t.Helper()
	newSys := newFloor
	if mux {
		newSys = newMux
	}
	sys, err := newSys(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sys.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlugin_EchoesEverySize(t *testing.T) {
	for _, mux := range []bool{false, true} {
		t.Run(fmt.Sprintf("mux=%v", mux), func(t *testing.T) {
			p := load(t, mux)
			defer p.Close(context.Background())
			for _, size := range []int{0, 1, 64, 4096, 65536, 1 << 20, 3<<20 + 5} {
				in := bytes.Repeat([]byte{byte(size), 0xA5, 0x3C}, size/3+1)[:size]
				out, err := p.Call(context.Background(), in)
				if err != nil {
					t.Fatalf("%d bytes: %v", size, err)
				}
				if !bytes.Equal(in, out) {
					t.Fatalf("%d bytes: echo differs (got %d bytes)", size, len(out))
				}
			}
		})
	}
}

// TestMux_ConcurrentCallersGetTheirOwnReplies checks the id routing: 64
// goroutines send distinct payloads at once and each must get its own back.
func TestMux_ConcurrentCallersGetTheirOwnReplies(t *testing.T) {
	p := load(t, true)
	defer p.Close(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			for i := range 200 {
				in := fmt.Appendf(nil, "caller %d call %d %s", g, i, bytes.Repeat([]byte("x"), g*37))
				out, err := p.Call(context.Background(), in)
				if err == nil && !bytes.Equal(in, out) {
					err = fmt.Errorf("caller %d got %q", g, out)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMux_CallAfterCloseFails(t *testing.T) {
	p := load(t, true)
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
	_, err := p.Call(context.Background(), []byte("late"))
	if !errors.Is(err, errClosed) {
		t.Fatalf("call after close: %v, want errClosed", err)
	}
}

func TestPlugin_HonoursCancelledContext(t *testing.T) {
	for _, mux := range []bool{false, true} {
		t.Run(fmt.Sprintf("mux=%v", mux), func(t *testing.T) {
			p := load(t, mux)
			defer p.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			cancel()
			if _, err := p.Call(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
				t.Fatalf("call with a cancelled context: %v, want context.Canceled", err)
			}
			// The plugin still works afterwards with a live context.
			if out, err := p.Call(context.Background(), []byte("ok")); err != nil || string(out) != "ok" {
				t.Fatalf("call after a cancelled one: %q, %v", out, err)
			}
		})
	}
}

func TestClose_ChildExits(t *testing.T) {
	p := load(t, false)
	pid := p.PID()
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("floor child %d still exists after Close", pid)
	}
}
