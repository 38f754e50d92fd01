package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/airlockhq/airlock"
)

func runDoctor(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: airlock doctor [-json]\n\nTries each protection of the process tier's sandbox on this machine and says which work and why the others do not.\nExit status 0 when all work, 1 when some are missing (plugins still run, without them, unless they require them).")
		fs.PrintDefaults()
	}
	if _, ok := parse(fs, e, args, 0, 0); !ok {
		return exitUsage
	}
	ms := airlock.Doctor(ctx)
	missing := 0
	for _, m := range ms {
		if !m.Available {
			missing++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(ms)
	} else {
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "protection\tstatus\tdetail")
		for _, m := range ms {
			status, detail := "ok", m.Detail
			if !m.Available {
				status, detail = "MISSING", m.Reason
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", m.Name, status, detail)
		}
		_ = w.Flush()
		if missing == 0 {
			fmt.Fprintf(e.stdout, "\nall %d protections work on this machine\n", len(ms))
		} else {
			fmt.Fprintf(e.stdout, "\n%d of %d protections are missing: plugins run without them, and a plugin that requires one (sandbox.require) refuses to start\n", missing, len(ms))
		}
	}
	if missing > 0 {
		return exitFailed
	}
	return exitOK
}
