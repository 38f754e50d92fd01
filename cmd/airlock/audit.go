package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/airlockhq/airlock"
)

func runAudit(ctx context.Context, e *env, args []string) int {
	fset := flag.NewFlagSet("audit", flag.ContinueOnError)
	plugin := fset.String("plugin", "", "only this plugin's records")
	denied := fset.Bool("denied", false, "only denials and refused host calls")
	asJSON := fset.Bool("json", false, "print the records as JSON lines")
	file := fset.String("file", "", "read this audit file instead of STATE/"+airlock.AuditFileName)
	hostFlags(fset, e)
	fset.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: airlock audit [-plugin P] [-denied] [-json] [-state DIR | -file FILE]\n\nPrints the audit log: every capability decision and every refused host call.")
		fset.PrintDefaults()
	}
	if _, ok := parse(fset, e, args, 0, 0); !ok {
		return exitUsage
	}
	path := *file
	if path == "" {
		if e.stateDir == "" {
			fmt.Fprintln(e.stderr, "airlock audit: no state directory; pass -state DIR or -file FILE")
			return exitUsage
		}
		path = filepath.Join(e.stateDir, airlock.AuditFileName)
	}
	records, skipped, err := airlock.ReadAudit(path, airlock.AuditFilter{Plugin: *plugin, Denied: *denied})
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(e.stderr, "airlock audit: %s does not exist yet: no plugin with capabilities has run with this state directory\n", path)
		return exitFailed
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "airlock audit: %v\n", err)
		return exitFailed
	}
	enc := json.NewEncoder(e.stdout)
	for _, r := range records {
		if *asJSON {
			_ = enc.Encode(r)
			continue
		}
		what := r.Capability
		if r.Function != "" {
			what = r.Function
		}
		code := ""
		if r.Code != "" {
			code = " " + r.Code
		}
		fmt.Fprintf(e.stdout, "%s  %-10s %-9s%s  %s", r.Time.Local().Format("2006-01-02 15:04:05.000"), r.Plugin, r.Decision, code, what)
		if r.Reason != "" {
			// Decision reasons name their capability already.
			fmt.Fprintf(e.stdout, ": %s", firstLine(strings.TrimPrefix(strings.TrimSpace(r.Reason), r.Capability+": ")))
		}
		if r.TokenID != "" {
			fmt.Fprintf(e.stdout, " (token %s)", r.TokenID[:min(8, len(r.TokenID))])
		}
		fmt.Fprintln(e.stdout)
	}
	if skipped > 0 {
		fmt.Fprintf(e.stderr, "airlock audit: skipped %d line(s) that are not whole records (a write cut by a crash)\n", skipped)
	}
	return exitOK
}
