package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/airlockhq/airlock"
)

// The demo's plugins: the examples that a fresh clone can build with Go.
var demoPlugins = []string{"markdown", "pricing", "echo"}

// demoDoc is rendered by the markdown plugin: long enough that a render is
// in flight when the demo kills the plugin.
var demoDoc = strings.Repeat("# Airlock\n\nRuns *untrusted* plugins with **containment**: see [docs](https://example.com).\n\n- crash\n- hang\n- flood\n\n```go\nfmt.Println(\"hi\")\n```\n\n", 200)

func runDemo(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	examples := fs.String("examples", "examples", "the folder holding the example plugins")
	callers := fs.Int("callers", 16, "concurrent callers")
	calls := fs.Int("calls", 50, "calls per caller")
	logs := verbosity(fs, e)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: airlock demo [-examples DIR] [-callers N] [-calls N] [-v]\n\nBuilds and loads the example plugins, calls them concurrently, kills one mid-call, and accounts for every call.")
		fs.PrintDefaults()
	}
	if _, ok := parse(fs, e, args, 0, 0); !ok {
		return exitUsage
	}
	logs()
	out := e.stdout
	fmt.Fprintf(out, "Airlock %s demo\n\n1. Build the example plugins (airlock build)\n", airlock.Version)
	for _, name := range demoPlugins {
		if code := build(ctx, &env{stdout: prefixWriter{out, "   "}, stderr: e.stderr}, filepath.Join(*examples, name)); code != exitOK {
			return code
		}
	}

	fmt.Fprintln(out, "\n2. Load them: verify sha256, start, negotiate, activate")
	h, err := airlock.NewHostWithConfig(ctx, airlock.NewHostConfig().WithLogger(e.logger))
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitFailed
	}
	defer h.Close(context.Background())
	plugins := map[string]*airlock.Plugin{}
	for _, name := range demoPlugins {
		start := time.Now()
		p, err := h.Load(ctx, filepath.Join(*examples, name))
		if err != nil {
			return reportLoad(e, err)
		}
		st := p.Status()
		fmt.Fprintf(out, "   %-9s pid %-7d protocol v%d  %-17s exports %-16s loaded in %v\n",
			name, st.PID, st.Protocol, st.SDK, strings.Join(st.Exports, ","), time.Since(start).Round(100*time.Microsecond))
		plugins[name] = p
	}

	total := *callers * *calls
	fmt.Fprintf(out, "\n3. Call them concurrently: %d callers × %d calls, and kill markdown mid-call\n", *callers, *calls)
	victim := plugins["markdown"]
	pidBefore := victim.Status().PID
	type tally struct{ sent, ok, failed atomic.Int64 }
	tallies := map[string]*tally{}
	for _, n := range demoPlugins {
		tallies[n] = &tally{}
	}
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	killed := make(chan int, 1)
	go func() {
		// Wait until renders are in flight, then kill the process tree the
		// host started for markdown, the way a crash would.
		deadline := time.Now().Add(10 * time.Second)
		for victim.Status().InFlight < 2 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		inFlight := victim.Status().InFlight
		_ = syscall.Kill(pidBefore, syscall.SIGKILL)
		killed <- inFlight
	}()
	start := time.Now()
	for c := range *callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range *calls {
				name := demoPlugins[(c+i)%len(demoPlugins)]
				t := tallies[name]
				t.sent.Add(1)
				callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := demoCall(callCtx, plugins[name], i)
				cancel()
				if err != nil {
					t.failed.Add(1)
					firstFailure.CompareAndSwap(nil, err)
					continue
				}
				t.ok.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	inFlightAtKill := <-killed
	fmt.Fprintf(out, "   killed markdown (pid %d) with SIGKILL while %d of its calls were in flight\n\n", pidBefore, inFlightAtKill)

	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "   plugin\tsent\tok\tfailed\tretried\trestarts\tpid\t")
	var sent, ok, failed int64
	for _, name := range demoPlugins {
		t, st := tallies[name], plugins[name].Status()
		pid := fmt.Sprint(st.PID)
		if st.Restarts > 0 {
			pid = fmt.Sprintf("%d → %d", pidBefore, st.PID)
		}
		fmt.Fprintf(w, "   %s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", name, t.sent.Load(), t.ok.Load(), t.failed.Load(), st.Retried, st.Restarts, pid)
		sent, ok, failed = sent+t.sent.Load(), ok+t.ok.Load(), failed+t.failed.Load()
	}
	_ = w.Flush()
	fmt.Fprintf(out, "\n   every call accounted for: %d sent = %d ok + %d failed (%d calls in %v)\n", sent, ok, failed, total, elapsed.Round(time.Millisecond))
	if err, _ := firstFailure.Load().(error); err != nil {
		fmt.Fprintf(out, "   first failure: %v\n", err)
	}
	st := victim.Status()
	fmt.Fprintf(out, "   markdown restarted: state %s, %d restart(s); its last exit: %s\n", st.State, st.Restarts, st.LastExit)
	fmt.Fprintln(out, "   (render and toc are idempotent in markdown's manifest, so calls cut off by the kill were retried on the new process)")

	fmt.Fprintln(out, "\n4. Errors are typed and say why")
	showError(ctx, out, plugins["markdown"], "rendr", []byte("# typo"), 0)
	showError(ctx, out, plugins["pricing"], "quote", []byte(`{"items":[{"sku":"gizmo","quantity":0}],"region":"mars"}`), 0)
	showError(ctx, out, plugins["echo"], "echo", make([]byte, 5<<20), 0)
	showError(ctx, out, plugins["markdown"], "render", []byte(demoDoc), time.Microsecond)

	fmt.Fprintln(out, "\n5. Close: drain, shutdown, stop")
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.Close(closeCtx)
	for _, name := range demoPlugins {
		fmt.Fprintf(out, "   %-9s %s\n", name, plugins[name].Status().State)
	}
	if sent != ok+failed || sent != int64(total) {
		fmt.Fprintf(e.stderr, "airlock demo: calls were lost: %d sent, %d resolved, %d made\n", sent, ok+failed, total)
		return exitFailed
	}
	return exitOK
}

func demoCall(ctx context.Context, p *airlock.Plugin, i int) error {
	switch p.Name() {
	case "markdown":
		html, err := p.Call(ctx, "render", []byte(demoDoc))
		if err == nil && !strings.Contains(string(html), `<h1 id="airlock">Airlock</h1>`) {
			err = errors.New("markdown rendered something unexpected")
		}
		return err
	case "pricing":
		type quote struct {
			Total int64 `json:"total_cents"`
		}
		q, err := airlock.CallJSON[quote](ctx, p, "quote", map[string]any{
			"items": []map[string]any{{"sku": "widget", "quantity": 10 + i%5}}, "region": "us-or"})
		if err == nil && q.Total != int64(1799*(10+i%5)) {
			err = fmt.Errorf("pricing quoted %d", q.Total)
		}
		return err
	default:
		in := fmt.Appendf(nil, "call %d", i)
		out, err := p.Call(ctx, "echo", in)
		if err == nil && string(out) != string(in) {
			err = errors.New("echo answered something else")
		}
		return err
	}
}

func showError(ctx context.Context, out interface{ Write([]byte) (int, error) }, p *airlock.Plugin, fn string, in []byte, timeout time.Duration) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	_, err := p.Call(ctx, fn, in)
	var ce *airlock.CallError
	if errors.As(err, &ce) {
		fmt.Fprintf(out, "   %s.%s → %s: %s\n", p.Name(), fn, ce.Code, firstLine(ce.Message))
		return
	}
	fmt.Fprintf(out, "   %s.%s → %v\n", p.Name(), fn, err)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// prefixWriter indents everything written through it.
type prefixWriter struct {
	w      interface{ Write([]byte) (int, error) }
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	_, err := p.w.Write([]byte(indent(string(b), p.prefix) + "\n"))
	return len(b), err
}
