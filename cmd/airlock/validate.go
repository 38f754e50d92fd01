package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/airlockhq/airlock/manifest"
)

func runValidate(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: airlock validate DIR\n\nChecks DIR/airlock.toml (every problem at once, with line numbers) and that its entry program exists.")
	}
	pos, ok := parse(fs, e, args, 1, 1)
	if !ok {
		return exitUsage
	}
	m, err := manifest.Load(pos[0])
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitManifest
	}
	fmt.Fprintf(e.stdout, "ok: %s %s (%s tier, %d functions: %v)\n", m.Name, m.Version, m.Defaults().Tier, len(m.Functions), m.FunctionNames())
	return exitOK
}
