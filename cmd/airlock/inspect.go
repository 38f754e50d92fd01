package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func runInspect(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	logs := verbosity(fs, e)
	hostFlags(fs, e)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: airlock inspect [-json] [-v] [-policy FILE] [-state DIR] DIR\n\nStarts the plugin, prints the negotiated protocol, its exports and limits, and stops it.")
		fs.PrintDefaults()
	}
	pos, ok := parse(fs, e, args, 1, 1)
	if !ok {
		return exitUsage
	}
	logs()
	h, p, code := loadOne(ctx, e, pos[0])
	if code != exitOK {
		return code
	}
	defer h.Close(ctx)
	st, m := p.Status(), p.Manifest()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"status": st, "manifest": m})
		return exitOK
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "plugin\t%s %s\n", st.Name, st.Version)
	fmt.Fprintf(w, "state\t%s (pid %d, instance %s)\n", st.State, st.PID, st.Instance)
	fmt.Fprintf(w, "protocol\tv%d, %s\n", st.Protocol, st.SDK)
	fmt.Fprintf(w, "tier\t%s\n", m.Tier)
	fmt.Fprintln(w, "\nfunction\ttimeout\tidempotent\tmax input\tmax output\trate")
	for _, name := range m.FunctionNames() {
		f := m.Functions[name]
		rate := "unlimited"
		if !f.Rate.IsZero() {
			rate = f.Rate.String()
		}
		fmt.Fprintf(w, "%s\t%v\t%v\t%v\t%v\t%s\n", name, time.Duration(f.Timeout), f.Idempotent, f.MaxInput, f.MaxOutput, rate)
	}
	for _, x := range st.Exports {
		if !slices.Contains(m.FunctionNames(), x) {
			fmt.Fprintf(w, "%s\t(exported but not in the manifest: not callable)\n", x)
		}
	}
	l := m.Limits
	fmt.Fprintln(w, "\nlimit\tvalue")
	fmt.Fprintf(w, "max_concurrency\t%d\n", l.MaxConcurrency)
	fmt.Fprintf(w, "startup / negotiate / shutdown\t%v / %v / %v\n", l.StartupTimeout, l.NegotiateTimeout, l.ShutdownTimeout)
	fmt.Fprintf(w, "heartbeat interval / timeout\t%v / %v\n", l.HeartbeatInterval, l.HeartbeatTimeout)
	fmt.Fprintf(w, "cancel_grace\t%v\n", l.CancelGrace)
	fmt.Fprintf(w, "log budget\t%v, burst %d\n", l.LogRate, l.LogBurst)
	fmt.Fprintf(w, "memory / cpu / tasks / open files / disk\t%v / %g cores / %d / %d / %v\n", l.Memory, l.CPU, l.Tasks, l.OpenFiles, l.Disk)
	fmt.Fprintf(w, "restart\t%s, up to %d, backoff %v..%v\n", m.Restart.Policy, m.Restart.MaxRestarts, m.Restart.BackoffInitial, m.Restart.BackoffMax)
	fmt.Fprintln(w, "\nprotection\tapplied\twhy not")
	for _, pr := range st.Protections {
		applied, why := "yes", "-"
		if !pr.Applied {
			applied, why = "NO", pr.Reason
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", pr.Name, applied, why)
	}
	fmt.Fprintln(w, "\ncapability\tdecision\treasons")
	for _, c := range st.Capabilities {
		reasons := strings.Join(c.Reasons, "; ")
		if reasons == "" {
			reasons = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Name, c.Decision, reasons)
	}
	_ = w.Flush()
	return exitOK
}
