package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/airlockhq/airlock/internal/sockio"
	"github.com/airlockhq/airlock/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// socketpair returns the two ends of a real AF_UNIX stream socketpair, the
// transport the host uses.
func socketpair(t testing.TB) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds := rawSocketpair(t)
	return unixConn(t, fds[0]), unixConn(t, fds[1])
}

func rawSocketpair(t testing.TB) [2]int {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds
}

// unixConn adopts fd as a *net.UnixConn, in the runtime's poller.
func unixConn(t testing.TB, fd int) *net.UnixConn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "socketpair")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.UnixConn)
}

// sockpair is a real AF_UNIX stream socketpair with its ends wrapped as
// the host (sockio.Conn) and the Go SDK (pluginEnd) wrap them.
func sockpair(t testing.TB) (*sockio.Conn, pluginSocket) {
	t.Helper()
	fds := rawSocketpair(t)
	c, err := sockio.New(unixConn(t, fds[0]))
	if err != nil {
		t.Fatal(err)
	}
	return c, pluginEnd(t, fds[1])
}

// pluginSocket is what the Go SDK's end of the socket offers.
type pluginSocket interface {
	io.ReadWriteCloser
	WriteBuffers([][]byte) (int64, error)
	SetReadDeadline(time.Time) error
	SyscallConn() (syscall.RawConn, error)
}

func newConn(rwc io.ReadWriteCloser, opts Options) *Conn {
	return New(rwc, wire.NewReader(rwc, 64<<10, wire.DefaultMaxFrame), opts)
}

// pair connects a host-side and a plugin-side Conn and closes both when the
// test ends. The host side shares a Watcher, as a real host does, so host
// callers read their own replies.
func pair(t testing.TB, host, plugin Options) (*Conn, *Conn) {
	t.Helper()
	w, err := NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	host.Watcher = w
	a, b := sockpair(t)
	return pairWith(t, a, b, host, plugin, w.Close)
}

// pairNoWatcher is pair without a Watcher, over plain net.UnixConns: a
// goroutine always reads the host side, as on platforms without epoll.
func pairNoWatcher(t testing.TB, host, plugin Options) (*Conn, *Conn) {
	a, b := socketpair(t)
	return pairWith(t, a, b, host, plugin, func() {})
}

func pairWith(t testing.TB, a, b io.ReadWriteCloser, host, plugin Options, after func()) (*Conn, *Conn) {
	t.Helper()
	host.Role, plugin.Role = RoleHost, RolePlugin
	h, p := newConn(a, host), newConn(b, plugin)
	t.Cleanup(func() {
		h.Close(nil)
		p.Close(nil)
		after()
	})
	return h, p
}

// echo serves every function by returning its input, except a few names
// with special behaviour.
func echo(ctx context.Context, req *Request) ([]byte, error) {
	switch req.Function {
	case "block":
		<-ctx.Done()
		return nil, ctx.Err()
	case "panic":
		panic("boom")
	case "fail":
		return nil, Errorf(wire.CodeBadInput, "bad: %s", req.Payload)
	}
	return req.Payload, nil
}

func TestConn_CallsBothDirections_Hammer(t *testing.T) {
	h, p := pair(t, Options{Handler: echo}, Options{Handler: echo})
	const goroutines, calls = 64, 200
	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				in := fmt.Appendf(nil, "g%d-i%d", g, i)
				conn, fn := h, "echo"
				if i%4 == 0 {
					conn, fn = p, "kv.echo" // a host call, from the plugin side
				}
				out, err := conn.Call(context.Background(), fn, time.Second, []byte("tok"), in)
				if err != nil || !bytes.Equal(out, in) {
					failures.Add(1)
					t.Errorf("call %s: got %q, %v", in, out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d calls failed", failures.Load())
	}
}

func TestConn_LargePayloadsBothWays(t *testing.T) {
	h, p := pair(t, Options{Handler: echo}, Options{Handler: echo})
	for _, size := range []int{0, 1, copyLimit, copyLimit + 1, 1 << 20, wire.DefaultMaxFrame - 64} {
		in := bytes.Repeat([]byte{byte(size)}, size)
		for _, c := range []*Conn{h, p} {
			out, err := c.Call(context.Background(), "echo", 0, nil, in)
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("size %d: len(out)=%d err=%v", size, len(out), err)
			}
		}
	}
}

func TestConn_TooLargeRefusedBeforeSending(t *testing.T) {
	h, _ := pair(t, Options{MaxSend: wire.MinMaxFrame}, Options{Handler: echo})
	_, err := h.Call(context.Background(), "echo", 0, nil, make([]byte, wire.MinMaxFrame))
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodeTooLarge || e.Remote {
		t.Fatalf("got %v, want a local too_large error", err)
	}
	if out, err := h.Call(context.Background(), "echo", 0, nil, []byte("ok")); err != nil || string(out) != "ok" {
		t.Fatalf("connection unusable after a refused call: %q %v", out, err)
	}
}

func TestConn_DeadlineReachesHandler(t *testing.T) {
	seen := make(chan error, 1)
	h, _ := pair(t, Options{}, Options{Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) > time.Second {
			seen <- fmt.Errorf("handler deadline %v (set=%v), want within 1s", dl, ok)
			return nil, nil
		}
		<-ctx.Done()
		seen <- ctx.Err()
		return nil, ctx.Err()
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := h.Call(ctx, "wait", 0, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller got %v, want DeadlineExceeded", err)
	}
	if err := <-seen; !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Fatalf("handler saw %v", err)
	}
}

func TestConn_FunctionTimeoutShorterThanContext(t *testing.T) {
	h, _ := pair(t, Options{}, Options{Handler: echo})
	_, err := h.Call(context.Background(), "block", 30*time.Millisecond, nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodeDeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline_exceeded matching context.DeadlineExceeded", err)
	}
}

func TestConn_CancelReachesHandler(t *testing.T) {
	started := make(chan struct{})
	seen := make(chan error, 1)
	h, _ := pair(t, Options{}, Options{Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		close(started)
		<-ctx.Done()
		seen <- ctx.Err()
		return nil, ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	if _, err := h.Call(ctx, "wait", 0, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("caller got %v, want Canceled", err)
	}
	if err := <-seen; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler saw %v, want Canceled (from the CANCEL frame)", err)
	}
}

func TestConn_PanicBecomesErrorAndServingContinues(t *testing.T) {
	h, _ := pair(t, Options{}, Options{Handler: echo})
	_, err := h.Call(context.Background(), "panic", 0, nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodePanic || !e.Remote {
		t.Fatalf("got %v, want a remote panic error", err)
	}
	if out, err := h.Call(context.Background(), "echo", 0, nil, []byte("after")); err != nil || string(out) != "after" {
		t.Fatalf("call after panic: %q %v", out, err)
	}
}

func TestConn_HandlerErrorCode(t *testing.T) {
	h, _ := pair(t, Options{}, Options{Handler: echo})
	_, err := h.Call(context.Background(), "fail", 0, nil, []byte("x"))
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodeBadInput || e.Message != "bad: x" {
		t.Fatalf("got %#v", err)
	}
}

func TestConn_CloseFailsEveryPendingCallOnce(t *testing.T) {
	started := make(chan struct{}, 100)
	h, _ := pair(t, Options{}, Options{Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	const n = 50
	errs := make(chan error, n*2)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.Call(context.Background(), "wait", 0, nil, nil)
			errs <- err
		}()
	}
	for range n {
		<-started
	}
	h.Close(errors.New("plugin died"))
	wg.Wait()
	close(errs)
	count := 0
	for err := range errs {
		count++
		if !errors.Is(err, ErrClosed) || err.Error() != "connection closed: plugin died" {
			t.Fatalf("pending call got %v", err)
		}
	}
	if count != n {
		t.Fatalf("%d resolutions for %d calls", count, n)
	}
	if _, err := h.Call(context.Background(), "echo", 0, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
}

func TestConn_CloseErrorHookShapesPendingErrors(t *testing.T) {
	exit := errors.New("exit status 3")
	h, p := pair(t, Options{CloseError: func(cause error) error { return fmt.Errorf("plugin exited: %w", exit) }},
		Options{Handler: echo})
	done := make(chan error, 1)
	go func() {
		_, err := h.Call(context.Background(), "block", 0, nil, nil)
		done <- err
	}()
	for h.InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.Close(nil) // the plugin side goes away: the host reads EOF
	if err := <-done; !errors.Is(err, exit) {
		t.Fatalf("got %v, want the CloseError hook's error", err)
	}
}

func TestConn_InFlightLimitAndAbandonedSlots(t *testing.T) {
	release := make(chan struct{})
	h, _ := pair(t, Options{MaxInFlight: 2}, Options{Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		if req.Function == "stubborn" {
			<-release // ignores cancellation on purpose
			return []byte("late"), nil
		}
		return req.Payload, nil
	}})
	// Two stubborn calls time out but keep their slots: the handler has
	// not answered.
	for range 2 {
		if _, err := h.Call(context.Background(), "stubborn", 20*time.Millisecond, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stubborn call: %v", err)
		}
	}
	if n, since := h.OldestAbandoned(); n != 2 || since.IsZero() {
		t.Fatalf("OldestAbandoned = %d, %v; want 2 calls", n, since)
	}
	// A third call waits for a slot until its deadline, then is overloaded.
	_, err := h.Call(context.Background(), "echo", 30*time.Millisecond, nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodeOverloaded {
		t.Fatalf("call without a slot: %v, want overloaded", err)
	}
	// The late replies free the slots.
	close(release)
	for {
		if n, _ := h.OldestAbandoned(); n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if out, err := h.Call(context.Background(), "echo", time.Second, nil, []byte("ok")); err != nil || string(out) != "ok" {
		t.Fatalf("after late replies: %q %v", out, err)
	}
	if got := h.Stats().LateReplies.Load(); got != 2 {
		t.Fatalf("LateReplies = %d, want 2", got)
	}
}

func TestConn_PingPong(t *testing.T) {
	h, _ := pair(t, Options{}, Options{Handler: echo})
	if since, err := h.Ping(time.Now()); err != nil || !since.IsZero() {
		t.Fatalf("first ping: %v %v", since, err)
	}
	for h.pingSent.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
}

func TestConn_GarbageIsAProtocolError(t *testing.T) {
	a, b := socketpair(t)
	h := newConn(a, Options{Role: RoleHost})
	defer h.Close(nil)
	defer b.Close()
	tests := [][]byte{
		wire.Hello{Versions: wire.Supported}.AppendFrame(nil),             // wrong phase
		wire.Call{Function: "x"}.AppendFrame(nil, 1),                      // wrong direction
		append(wire.AppendHeader(nil, wire.KindResult, 1, 2), 0xff, 0xff), // body overrun
		wire.AppendHeader(nil, wire.KindResult, 1, wire.DefaultMaxFrame),  // oversized
	}
	_, _ = b.Write(tests[0])
	<-h.Done()
	var pe *ProtocolError
	if !errors.As(h.Err(), &pe) {
		t.Fatalf("Err = %v, want *ProtocolError", h.Err())
	}
	for i, frame := range tests[1:] {
		a, b := socketpair(t)
		h := newConn(a, Options{Role: RoleHost})
		_, _ = b.Write(frame)
		<-h.Done()
		if !errors.As(h.Err(), &pe) {
			t.Errorf("case %d: Err = %v, want *ProtocolError", i+1, h.Err())
		}
		h.Close(nil)
		b.Close()
	}
}

func TestConn_SkipsUnknownKinds(t *testing.T) {
	a, b := socketpair(t)
	p := newConn(b, Options{Role: RolePlugin, Handler: echo})
	defer p.Close(nil)
	defer a.Close()
	_, _ = a.Write(wire.AppendFrame(nil, wire.Frame{Kind: 0x41, Body: []byte("future")}))
	_, _ = a.Write(wire.Call{Function: "echo", Payload: []byte("hi")}.AppendFrame(nil, 1))
	r := wire.NewReader(a, 4096, wire.DefaultMaxFrame)
	hd, err := r.Next()
	if err != nil || hd.Kind != wire.KindResult || hd.ID != 1 {
		t.Fatalf("got %+v %v, want RESULT 1", hd, err)
	}
	if p.Stats().UnknownKinds.Load() != 1 {
		t.Fatalf("UnknownKinds = %d", p.Stats().UnknownKinds.Load())
	}
}

func TestConn_DrainRefusesNewCallsAndWaits(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	h, p := pair(t, Options{}, Options{Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		if req.Function == "slow" {
			close(started)
			<-release
		}
		return []byte("done"), nil
	}})
	slow := make(chan error, 1)
	go func() { _, err := h.Call(context.Background(), "slow", 0, nil, nil); slow <- err }()
	<-started
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(context.Background()) }()
	for {
		p.mu.Lock()
		d := p.draining
		p.mu.Unlock()
		if d {
			break
		}
		time.Sleep(time.Millisecond)
	}
	_, err := h.Call(context.Background(), "quick", 0, nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodeUnavailable {
		t.Fatalf("call during drain: %v, want unavailable", err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("in-flight call during drain: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
}

func BenchmarkConn_Call64B(b *testing.B) {
	h, _ := pair(b, Options{}, Options{Handler: echo})
	in := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Call(context.Background(), "echo", 0, nil, in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConn_DeadlinesExpireEachCallOnItsOwn(t *testing.T) {
	h, _ := pair(t, Options{}, Options{Handler: echo})
	// Deadlines added in an order the heap must sort, some shorter than the
	// timer already armed, all blocked in the handler.
	timeouts := []time.Duration{200, 20, 120, 60, 10, 300, 40}
	errs := make(chan error, len(timeouts))
	start := time.Now()
	for _, ms := range timeouts {
		go func() {
			_, err := h.Call(context.Background(), "block", ms*time.Millisecond, nil, nil)
			errs <- err
		}()
	}
	for range timeouts {
		err := <-errs
		var e *Error
		if !errors.As(err, &e) || e.Code != wire.CodeDeadlineExceeded {
			t.Fatalf("got %v, want deadline_exceeded", err)
		}
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("the deadlines did not fire")
	}
	// Every abandoned call was answered by the handler (its context ended).
	for {
		if n, _ := h.OldestAbandoned(); n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCallCtx_DerivedContextsAndAfterFunc(t *testing.T) {
	seen := make(chan string, 4)
	h, _ := pair(t, Options{}, Options{Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		if r, ok := RequestFrom(ctx); !ok || r.ID != req.ID {
			seen <- "RequestFrom failed"
		}
		child, cancel := context.WithTimeout(ctx, time.Hour) // derived: must end with its parent
		defer cancel()
		context.AfterFunc(ctx, func() { seen <- "afterfunc" })
		<-child.Done()
		seen <- child.Err().Error()
		return nil, ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := h.Call(ctx, "wait", 0, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	got := map[string]bool{<-seen: true, <-seen: true}
	if !got["afterfunc"] || !got[context.Canceled.Error()] {
		t.Fatalf("handler saw %v", got)
	}
}

func TestCallCtx_ErrReportsAPassedDeadlineEvenBeforeTheTimer(t *testing.T) {
	cc := &callCtx{dl: deadline{at: time.Now().Add(-time.Millisecond), index: -1}}
	if !errors.Is(cc.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v", cc.Err())
	}
	select {
	case <-cc.Done():
	default:
		t.Fatal("Done is not closed after Err reported the deadline")
	}
}

// TestConn_WithoutWatcher runs the essentials with a goroutine always
// reading the host side, the fallback where epoll is missing.
func TestConn_WithoutWatcher(t *testing.T) {
	h, p := pairNoWatcher(t, Options{Handler: echo}, Options{Handler: echo})
	if h.watch != nil {
		t.Fatal("the host side has a watcher")
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				in := fmt.Appendf(nil, "%d-%d", g, i)
				if out, err := h.Call(context.Background(), "echo", time.Second, nil, in); err != nil || !bytes.Equal(out, in) {
					t.Errorf("call: %q %v", out, err)
					return
				}
				if out, err := p.Call(context.Background(), "kv.echo", time.Second, []byte("t"), in); err != nil || !bytes.Equal(out, in) {
					t.Errorf("host call: %q %v", out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := h.Call(context.Background(), "block", 20*time.Millisecond, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
}

// TestConn_IdleHostStillReads checks that frames the plugin sends while no
// host call is waiting (log records, host calls from its own goroutines,
// pongs) are read: the watcher must hand them to a reader.
// postLogAndWait sends a LOG frame for call id from the plugin side and
// waits until the host side's OnLog (feeding logs) has it; unread says
// what failed if it never arrives.
func postLogAndWait(t *testing.T, p *Conn, logs <-chan uint64, id uint64, unread string) {
	t.Helper()
	if err := p.Post(wire.Log{Message: "ping"}.AppendFrame(nil, id)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-logs:
		if got != id {
			t.Fatalf("log for call %d, want %d", got, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(unread)
	}
}

func TestConn_IdleHostStillReads(t *testing.T) {
	logs := make(chan uint64, 4)
	h, p := pair(t, Options{Handler: echo, OnLog: func(id uint64, _ []byte) { logs <- id }}, Options{Handler: echo})
	// Let the host side go idle: one call, then nothing pending.
	if _, err := h.Call(context.Background(), "echo", time.Second, nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	postLogAndWait(t, p, logs, 77, "a log record sent while the host was idle was never read")
	// A host call from the plugin while the host is idle is served.
	if out, err := p.Call(context.Background(), "kv.echo", time.Second, []byte("t"), []byte("hi")); err != nil || string(out) != "hi" {
		t.Fatalf("host call while idle: %q %v", out, err)
	}
	if _, err := h.Ping(time.Now()); err != nil {
		t.Fatal(err)
	}
	for h.pingSent.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
}

// TestConn_ReadingCallerIsInterrupted checks a caller that reads its own
// reply still ends at its context's end or its timeout, while another
// caller's reply arrives normally.
func TestConn_ReadingCallerIsInterrupted(t *testing.T) {
	h, _ := pair(t, Options{}, Options{Handler: echo})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := h.Call(ctx, "block", 0, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled reading caller: %v", err)
	}
	if _, err := h.Call(context.Background(), "block", 20*time.Millisecond, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out reading caller: %v", err)
	}
	// After interruptions the connection reads cleanly.
	if out, err := h.Call(context.Background(), "echo", time.Second, nil, bytes.Repeat([]byte("z"), 100_000)); err != nil || len(out) != 100_000 {
		t.Fatalf("call after interruptions: %d bytes, %v", len(out), err)
	}
}

// TestConn_WatcherClosedUnderLiveConns checks closing a host's watcher
// while connections still use it strands none of them: an idle connection
// still receives what its peer sends, and calls keep working.
func TestConn_WatcherClosedUnderLiveConns(t *testing.T) {
	w, err := NewWatcher()
	if err != nil {
		t.Skipf("no watcher on this platform: %v", err)
	}
	logs := make(chan uint64, 4)
	a, b := sockpair(t)
	h, p := pairWith(t, a, b, Options{Watcher: w, Handler: echo, OnLog: func(id uint64, _ []byte) { logs <- id }}, Options{Handler: echo}, func() {})
	if _, err := h.Call(context.Background(), "echo", time.Second, nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	w.Close() // the host side is idle: its role is free and its watch armed
	postLogAndWait(t, p, logs, 5, "a frame sent after the watcher closed was never read")
	for i := range 100 {
		if out, err := h.Call(context.Background(), "echo", time.Second, nil, []byte{byte(i)}); err != nil || len(out) != 1 || out[0] != byte(i) {
			t.Fatalf("call %d after the watcher closed: %v %v", i, out, err)
		}
	}
	// A connection made after the watcher closed reads for itself too.
	c, d := sockpair(t)
	h2, _ := pairWith(t, c, d, Options{Watcher: w}, Options{Handler: echo}, func() {})
	if out, err := h2.Call(context.Background(), "echo", time.Second, nil, []byte("y")); err != nil || string(out) != "y" {
		t.Fatalf("new connection on a closed watcher: %q %v", out, err)
	}
}

// TestConn_PluginReadsWhileALargeReplyDrains checks a plugin keeps reading
// while a reply larger than the socket's buffer waits for the host to read
// it: a second call must reach its handler before the host has read a
// byte of the first reply.
func TestConn_PluginReadsWhileALargeReplyDrains(t *testing.T) {
	t.Run("call alone", func(t *testing.T) { testReadsWhileALargeReplyDrains(t, false) })
	t.Run("call in a batch", func(t *testing.T) { testReadsWhileALargeReplyDrains(t, true) })
}

// testReadsWhileALargeReplyDrains has the host send a call whose reply is
// far larger than the socket buffers, then (batched: in the same write) a
// second call, and read nothing until the second call has reached its
// handler.
func testReadsWhileALargeReplyDrains(t *testing.T, batched bool) {
	host, b := sockpair(t)
	defer host.Close()
	second := make(chan struct{})
	big := bytes.Repeat([]byte{'b'}, 3<<20) // far more than a socketpair buffers
	p := newConn(b, Options{Role: RolePlugin, Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		if req.Function == "big" {
			return big, nil
		}
		close(second)
		return req.Payload, nil
	}})
	defer p.Close(nil)
	if p.watch == nil {
		t.Skip("no watcher on this platform: a worker reads instead")
	}
	if batched {
		burst(t, host, "big", "small")
	} else {
		if _, err := host.Write(wire.Call{Function: "big"}.AppendFrame(nil, 1)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the plugin is now blocked writing the big reply
		if _, err := host.Write(wire.Call{Function: "small", Payload: []byte("s")}.AppendFrame(nil, 2)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("the second call was not read while the first reply waited for the host")
	}
	// Both replies arrive, in the order they were written.
	r := wire.NewReader(host, 64<<10, wire.DefaultMaxFrame)
	for _, want := range []uint64{1, 2} {
		h, err := r.Next()
		if err != nil || h.Kind != wire.KindResult || h.ID != want {
			t.Fatalf("got %+v, %v; want RESULT %d", h, err, want)
		}
	}
}

// TestConn_CallEndsAtItsDeadlineWhenThePeerStopsReading covers a peer that
// stops reading its socket: a call whose frame is stuck half-written ends
// at its own deadline (or its context's), and the connection fails saying
// why; a call whose frame was still queued behind it ends at its deadline
// without failing the connection.
func TestConn_CallEndsAtItsDeadlineWhenThePeerStopsReading(t *testing.T) {
	big := make([]byte, 3<<20) // far more than a socketpair buffers
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     time.Duration
		want    error
	}{
		{"own timeout", 200 * time.Millisecond, 0, context.DeadlineExceeded},
		{"context deadline", 0, 200 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWatcher()
			if err != nil {
				t.Skip(err)
			}
			defer w.Close()
			a, deaf := sockpair(t)
			defer deaf.Close() // open, never read
			h := newConn(a, Options{Role: RoleHost, Watcher: w})
			defer h.Close(nil)
			ctx := context.Background()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			start := time.Now()
			_, err = h.Call(ctx, "f", tc.timeout, nil, big)
			took := time.Since(start)
			t.Logf("returned after %v: %v", took, err)
			if !errors.Is(err, tc.want) || took > time.Second {
				t.Fatalf("Call returned %v after %v; want %v at its deadline", err, took, tc.want)
			}
			select {
			case <-h.Done():
				if !errors.Is(h.Err(), ErrNotReading) {
					t.Fatalf("connection failed with %v, want ErrNotReading", h.Err())
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the connection is still open with a half-written frame")
			}
		})
	}

	t.Run("queued behind the stuck frame", func(t *testing.T) {
		a, deaf := sockpair(t)
		defer deaf.Close()
		h := newConn(a, Options{Role: RoleHost})
		defer h.Close(nil)
		first := make(chan error, 1)
		go func() {
			_, err := h.Call(context.Background(), "f", 10*time.Second, nil, big)
			first <- err
		}()
		time.Sleep(50 * time.Millisecond) // the first frame is now stuck half-written
		start := time.Now()
		_, err := h.Call(context.Background(), "g", 200*time.Millisecond, nil, make([]byte, copyLimit+1))
		if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
			t.Fatalf("queued call returned %v after %v; want its deadline", err, took)
		}
		if err := h.Err(); err != nil {
			t.Fatalf("the connection failed (%v) for a call that never started writing", err)
		}
		h.Close(nil)
		if err := <-first; err == nil {
			t.Fatal("the stuck call succeeded")
		}
	})
}

// countingConn counts the writes made on a socket.
type countingConn struct {
	pluginSocket
	writes atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.pluginSocket.Write(b)
}

func (c *countingConn) WriteBuffers(bufs [][]byte) (int64, error) {
	c.writes.Add(1)
	return c.pluginSocket.WriteBuffers(bufs)
}

// burst writes calls to functions fns, with ids 1, 2, ..., in one write,
// so that the plugin finds them all in one read.
func burst(t *testing.T, host io.Writer, fns ...string) {
	t.Helper()
	var b []byte
	for i, fn := range fns {
		b = wire.Call{Function: fn, Payload: fmt.Appendf(nil, "call %d", i+1)}.AppendFrame(b, uint64(i+1))
	}
	if _, err := host.Write(b); err != nil {
		t.Fatal(err)
	}
}

// readReplies reads frames from the plugin until n replies came, answering
// each HOSTCALL with its own payload. It returns the replies by call id.
func readReplies(t *testing.T, host io.ReadWriter, n int, each func(id uint64)) map[uint64]string {
	t.Helper()
	got := map[uint64]string{}
	r := wire.NewReader(host, 64<<10, wire.DefaultMaxFrame)
	for len(got) < n {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("after %d replies: %v", len(got), err)
		}
		body, err := r.Body(nil)
		if err != nil {
			t.Fatal(err)
		}
		switch h.Kind {
		case wire.KindResult:
			m, err := wire.DecodeResult(body)
			if err != nil {
				t.Fatal(err)
			}
			got[h.ID] = string(m.Payload)
			if each != nil {
				each(h.ID)
			}
		case wire.KindHostCall:
			m, err := wire.DecodeHostCall(body)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := host.Write(wire.Result{Payload: append([]byte("host: "), m.Payload...)}.AppendFrame(nil, h.ID)); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected %v frame", h.Kind)
		}
	}
	return got
}

// TestConn_PluginAnswersABurstInOneWrite covers batches: calls found in
// one read run on the reading goroutine, and their replies go out together
// instead of one write each.
func TestConn_PluginAnswersABurstInOneWrite(t *testing.T) {
	host, b := sockpair(t)
	defer host.Close()
	counted := &countingConn{pluginSocket: b}
	p := newConn(counted, Options{Role: RolePlugin, Handler: echo})
	defer p.Close(nil)
	const n = 16
	fns := make([]string, n)
	for i := range fns {
		fns[i] = "echo"
	}
	burst(t, host, fns...)
	got := readReplies(t, host, n, nil)
	for i := 1; i <= n; i++ {
		if want := fmt.Sprintf("call %d", i); got[uint64(i)] != want {
			t.Fatalf("reply %d is %q, want %q", i, got[uint64(i)], want)
		}
	}
	// The first 15 calls each found the next one buffered: one write for
	// their replies; the last one, found alone, answers on its own.
	if w := counted.writes.Load(); w > 2 {
		t.Fatalf("%d replies took %d writes; want them batched into 2", n, w)
	}
}

// TestConn_HeldReplyWrittenWhenABurstEndsInAnotherFrame covers a burst
// whose last frame is not a call: the call before it ran as a batch and
// held its reply back, and a frame that needs no answer (here a cancel for
// no call; a reply to the plugin's own call is the same) ends the burst.
// The held reply must go out although nothing else arrives.
func TestConn_HeldReplyWrittenWhenABurstEndsInAnotherFrame(t *testing.T) {
	host, b := sockpair(t)
	defer host.Close()
	p := newConn(b, Options{Role: RolePlugin, Handler: echo})
	defer p.Close(nil)
	frames := wire.Call{Function: "echo", Payload: []byte("call 1")}.AppendFrame(nil, 1)
	frames = wire.AppendEmpty(frames, wire.KindCancel, 99)
	if _, err := host.Write(frames); err != nil {
		t.Fatal(err)
	}
	if err := host.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := readReplies(t, host, 1, nil); got[1] != "call 1" {
		t.Fatalf("reply %q, want %q", got[1], "call 1")
	}
}

// TestConn_BatchWatchdogFreesTheRestOfABurst covers a handler that blocks
// in the middle of a batch: after the watchdog's patience, another
// goroutine reads and serves the rest of the burst, so a handler waiting on
// the calls behind it is not a deadlock.
func TestConn_BatchWatchdogFreesTheRestOfABurst(t *testing.T) {
	host, b := sockpair(t)
	defer host.Close()
	release := make(chan struct{})
	p := newConn(b, Options{Role: RolePlugin, Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		if req.Function == "wait" {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
				return nil, errors.New("the calls behind this one were never served")
			}
		}
		return req.Payload, nil
	}})
	defer p.Close(nil)
	burst(t, host, "wait", "echo", "echo", "echo")
	answered := 0
	got := readReplies(t, host, 4, func(id uint64) {
		if answered++; answered == 3 {
			close(release) // the three calls behind "wait" are answered
		}
	})
	if got[1] != "call 1" {
		t.Fatalf("the blocked call answered %q", got[1])
	}
	if p.Stats().BatchCuts.Load() == 0 {
		t.Fatal("the watchdog did not take the reading role from the blocked call")
	}
}

// TestConn_BatchCallMayCallThePeer covers a handler of a batch that calls
// the host: it gives up the reading role before it waits, so its reply is
// read without waiting for the watchdog (which this test switches off).
func TestConn_BatchCallMayCallThePeer(t *testing.T) {
	host, b := sockpair(t)
	defer host.Close()
	var self atomic.Pointer[Conn]
	p := newConn(b, Options{Role: RolePlugin, batchPatience: time.Hour, Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		if req.Function == "ask" {
			return self.Load().Call(ctx, "lookup", 0, nil, req.Payload)
		}
		return req.Payload, nil
	}})
	defer p.Close(nil)
	self.Store(p)
	burst(t, host, "ask", "echo", "echo")
	got := readReplies(t, host, 3, nil)
	if got[1] != "host: call 1" || got[2] != "call 2" || got[3] != "call 3" {
		t.Fatalf("replies %v", got)
	}
	if n := p.Stats().BatchCuts.Load(); n != 0 {
		t.Fatalf("the watchdog cut %d batch calls; the handler's own call should have handed the role on", n)
	}
}

// TestConn_PluginRunsLargeCallsOfAStreamOnTheReadingGoroutine covers calls
// too large for two to fit in the read buffer: when a call is read, the
// next has started to arrive but is not whole. Such a call runs as part of
// a batch, on the goroutine that read it, instead of handing the reading
// role to another goroutine per call; the handlers therefore never overlap
// (the watchdog is switched off, so none is cut from its batch).
func TestConn_PluginRunsLargeCallsOfAStreamOnTheReadingGoroutine(t *testing.T) {
	host, b := sockpair(t)
	defer host.Close()
	// Four 40 KiB calls, all queued in the socket before the plugin reads:
	// each read of the 64 KiB buffer ends inside the next call.
	const n, size = 4, 40 << 10
	var frames []byte
	for i := 1; i <= n; i++ {
		payload := bytes.Repeat([]byte{byte('a' + i)}, size)
		frames = wire.Call{Function: "echo", Payload: payload}.AppendFrame(frames, uint64(i))
	}
	if _, err := host.Write(frames); err != nil {
		t.Fatal(err)
	}
	var running, most atomic.Int32
	p := newConn(b, Options{Role: RolePlugin, batchPatience: time.Hour, Handler: func(ctx context.Context, req *Request) ([]byte, error) {
		now := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond) // time enough for another goroutine to read and start the next call
		return req.Payload, nil
	}})
	defer p.Close(nil)
	got := readReplies(t, host, n, nil)
	for i := 1; i <= n; i++ {
		if want := strings.Repeat(string(rune('a'+i)), size); got[uint64(i)] != want {
			t.Fatalf("reply %d is %d bytes starting %.8q, want %d bytes of %q", i, len(got[uint64(i)]), got[uint64(i)], size, rune('a'+i))
		}
	}
	if m := most.Load(); m != 1 {
		t.Fatalf("%d handlers ran at once: calls were handed to other goroutines instead of running where they were read", m)
	}
}

// TestConn_CallerGivesUpTheReadingRoleWhenItsWriteWaits checks a host
// caller that took the reading role before sending (the idle connection's
// fast path) gives it up when its write has to wait for the plugin to
// read. The plugin here first writes more log records than the socket
// holds and only then reads: if the caller kept the role while blocked in
// its write, nobody would read those records, and both sides would wait on
// each other until the call's deadline.
func TestConn_CallerGivesUpTheReadingRoleWhenItsWriteWaits(t *testing.T) {
	for _, size := range []int{16 << 10, 1 << 20} { // copied into the frame; written from the caller's slice
		t.Run(fmt.Sprint(size), func(t *testing.T) { testCallerGivesUpTheRole(t, size) })
	}
}

func testCallerGivesUpTheRole(t *testing.T, size int) {
	w, err := NewWatcher()
	if err != nil {
		t.Skip(err)
	}
	defer w.Close()
	a, peer := sockpair(t)
	defer peer.Close()

	// Fill the host-to-plugin direction, so that the call's write waits.
	filled := fillSocket(t, a)
	var logs atomic.Int64
	h := newConn(a, Options{Role: RoleHost, Watcher: w, OnLog: func(uint64, []byte) { logs.Add(1) }})
	defer h.Close(nil)

	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	payload := bytes.Repeat([]byte("p"), size)
	go func() {
		out, err := h.Call(context.Background(), "echo", 5*time.Second, nil, payload)
		done <- result{out, err}
	}()
	time.Sleep(50 * time.Millisecond) // the call is now waiting in its write

	// The plugin: 4 MiB of log records (the host must read them for these
	// writes to finish), then the filler, then the call, answered.
	const records = 256
	rec := wire.Log{Message: string(bytes.Repeat([]byte("l"), 16<<10))}.AppendFrame(nil, 0)
	for i := range records {
		if _, err := peer.Write(rec); err != nil {
			t.Fatalf("log record %d: %v (nobody read the host's side while its call waited to write)", i, err)
		}
	}
	if _, err := io.CopyN(io.Discard, peer, int64(filled)); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(peer, 64<<10, wire.DefaultMaxFrame)
	hd, err := r.Next()
	if err != nil || hd.Kind != wire.KindCall {
		t.Fatalf("plugin read %v, %v; want the call", hd, err)
	}
	body, err := r.Body(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.DecodeCall(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Write(wire.Result{Payload: m.Payload}.AppendFrame(nil, hd.ID)); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || !bytes.Equal(got.out, payload) {
		t.Fatalf("call returned %d bytes, %v; want its payload back", len(got.out), got.err)
	}
	if n := logs.Load(); n != records {
		t.Fatalf("host read %d log records, want %d", n, records)
	}
}

// fillSocket writes to s until its send buffer is full, and returns how
// many bytes that took.
func fillSocket(t *testing.T, s *sockio.Conn) int {
	t.Helper()
	raw, err := s.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	total := 0
	err = raw.Control(func(fd uintptr) {
		for {
			n, err := syscall.Write(int(fd), chunk)
			if err != nil {
				return
			}
			total += n
		}
	})
	if err != nil || total == 0 {
		t.Fatalf("fill the socket: wrote %d bytes, %v", total, err)
	}
	return total
}
