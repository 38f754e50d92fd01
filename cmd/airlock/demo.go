package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/policy"
)

// The demo's plugins, by folder under the examples: three in Go, and one
// in Rust when cargo is installed.
var goPlugins = []string{"markdown", "pricing", "echo"}

// rustPlugin is the Rust example's folder and plugin name.
const rustPlugin, rustName = "wordfreq-rust", "wordfreq"

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
	folders := append(slices.Clone(goPlugins), "rates")
	demoPlugins := slices.Clone(goPlugins)
	if _, err := exec.LookPath("cargo"); err == nil {
		folders = append(folders, rustPlugin)
		demoPlugins = append(demoPlugins, rustName)
	} else {
		fmt.Fprintf(out, "   (skipping the Rust example: cargo is not installed)\n")
	}
	for _, folder := range folders {
		if code := build(ctx, &env{stdout: prefixWriter{out, "   "}, stderr: e.stderr}, filepath.Join(*examples, folder)); code != exitOK {
			return code
		}
	}

	fmt.Fprintln(out, "\n2. Load them: verify sha256, start in a sandbox, negotiate, activate")
	h, err := airlock.NewHostWithConfig(ctx, airlock.NewHostConfig().WithLogger(e.logger))
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitFailed
	}
	defer h.Close(context.Background())
	plugins := map[string]*airlock.Plugin{}
	for _, name := range demoPlugins {
		start := time.Now()
		folder := name
		if name == rustName {
			folder = rustPlugin
		}
		p, err := h.Load(ctx, filepath.Join(*examples, folder))
		if err != nil {
			return reportLoad(e, err)
		}
		st := p.Status()
		applied := 0
		for _, pr := range st.Protections {
			if pr.Applied {
				applied++
			}
		}
		fmt.Fprintf(out, "   %-9s pid %-7d protocol v%d  %-19s exports %-17s sandbox %d/%d  loaded in %v\n",
			name, st.PID, st.Protocol, st.SDK, strings.Join(st.Exports, ","), applied, len(st.Protections), time.Since(start).Round(100*time.Microsecond))
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

	if code := demoCapabilities(ctx, e, *examples); code != exitOK {
		return code
	}

	fmt.Fprintln(out, "\n6. Close: drain, shutdown, stop")
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

// demoCapabilities runs the rates plugin against a local rate API under
// examples/rates/policy.toml: it can do only what the policy grants.
func demoCapabilities(ctx context.Context, e *env, examples string) int {
	out := e.stdout
	fmt.Fprintln(out, "\n5. Capabilities: the rates plugin can do only what the operator's policy grants")
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"base":"USD","rates":{"EUR":0.92,"GBP":0.79,"JPY":151.2}}`)
	}))
	defer api.Close()
	pol, err := policy.Load(filepath.Join(examples, "rates", "policy.toml"))
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	u, _ := url.Parse(api.URL)
	pol.Plugins["rates"].Config["api_url"] = "http://localhost:" + u.Port()
	state, err := os.MkdirTemp("", "airlock-demo-state-")
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitFailed
	}
	defer os.RemoveAll(state)
	fmt.Fprintf(out, "   a rate API listens on %s; the policy's api_url points there; state in %s\n", pol.Plugins["rates"].Config["api_url"], state)
	cfg := airlock.NewHostConfig().WithLogger(e.logger).WithStateDir(state).WithPolicy(pol)

	load := func() (*airlock.Host, *airlock.Plugin, int) {
		h, err := airlock.NewHostWithConfig(ctx, cfg)
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return nil, nil, exitFailed
		}
		p, err := h.Load(ctx, filepath.Join(examples, "rates"))
		if err != nil {
			h.Close(ctx)
			return nil, nil, reportLoad(e, err)
		}
		return h, p, exitOK
	}
	convert := func(p *airlock.Plugin, label string) bool {
		type conversion struct {
			AmountCents int64   `json:"amount_cents"`
			Rate        float64 `json:"rate"`
			Source      string  `json:"source"`
		}
		c, err := airlock.CallJSON[conversion](ctx, p, "convert", map[string]any{"amount_cents": 10000, "from": "USD", "to": "EUR"})
		if err != nil {
			fmt.Fprintf(e.stderr, "convert: %v\n", err)
			return false
		}
		fmt.Fprintf(out, "   %-22s 100.00 USD = %d.%02d EUR at %.2f (rate from %s)\n", label, c.AmountCents/100, c.AmountCents%100, c.Rate, c.Source)
		return true
	}
	h, p, code := load()
	if code != exitOK {
		return code
	}
	defer h.Close(ctx)
	if !convert(p, "first call:") {
		return exitCall
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "   capability\tdecision\thost calls\twhy")
	for _, c := range p.Status().Capabilities {
		why := strings.Join(c.Reasons, "; ")
		if why == "" {
			why = "as requested"
		}
		fmt.Fprintf(w, "   %s\t%s\t%d\t%s\n", c.Name, c.Decision, c.Calls, firstLine(why))
	}
	_ = w.Flush()
	if !convert(p, "second call:") {
		return exitCall
	}
	_, err = p.Call(ctx, "offline", nil)
	var ce *airlock.CallError
	if errors.As(err, &ce) {
		fmt.Fprintf(out, "   rates.offline (reads a local file) → %s\n", ce.Code)
	}
	h.Close(ctx)
	h2, p2, code := load()
	if code != exitOK {
		return code
	}
	defer h2.Close(ctx)
	if !convert(p2, "after a host restart:") {
		return exitCall
	}
	records, _, err := airlock.ReadAudit(filepath.Join(state, airlock.AuditFileName), airlock.AuditFilter{Plugin: "rates", Denied: true})
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitFailed
	}
	fmt.Fprintln(out, "   audit log, denials only (airlock audit -plugin rates -denied):")
	for _, r := range records {
		what := r.Capability
		if r.Function != "" {
			what = r.Function
		}
		fmt.Fprintf(out, "     %s %-8s %-15s %s\n", r.Time.Format("15:04:05.000"), r.Decision, what, firstLine(r.Reason))
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
	case rustName:
		type top struct {
			Total int `json:"total"`
			Top   []struct {
				Word  string `json:"word"`
				Count int    `json:"count"`
			} `json:"top"`
		}
		r, err := airlock.CallJSON[top](ctx, p, "top", map[string]any{"text": "to be or not to be, that is the question", "n": 2})
		if err == nil && (r.Total != 10 || len(r.Top) != 2 || r.Top[0].Count != 2) {
			err = fmt.Errorf("wordfreq counted %+v", r)
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
