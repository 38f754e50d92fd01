// Command airlock-bench runs Airlock's performance benchmark: every system of
// the catalogue (floors, go-plugin, Airlock) in one interleaved run. It prints
// a Markdown report and writes the raw results as JSON.
//
//	airlock-bench                     full run (make bench), ~3 minutes
//	airlock-bench -mode quick         one-minute smoke (make bench-quick)
//	airlock-bench -systems floor,go-plugin-grpc
//
// It must run from the bench module's directory (or be given -dir), because
// it builds the plugin programs under plugins/ with the go command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/airlockhq/airlock/bench"
	"github.com/airlockhq/airlock/bench/measure"
	"github.com/airlockhq/airlock/bench/report"
	"github.com/airlockhq/airlock/bench/system"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "airlock-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	mode := flag.String("mode", "full", "how much to measure: full, quick or smoke")
	systems := flag.String("systems", "", "comma-separated systems to run (default: all); floor and floor-mux are needed for ratios")
	dir := flag.String("dir", ".", "the bench module's directory")
	jsonOut := flag.String("json", "results/latest.json", "where to write the raw results (empty: nowhere)")
	mdOut := flag.String("md", "results/latest.md", "where to write the Markdown report, also printed on stdout (empty: stdout only)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: airlock-bench takes only flags (see -h)", flag.Arg(0))
	}

	var cfg measure.Config
	switch *mode {
	case "full":
		cfg = measure.Full()
	case "quick":
		cfg = measure.Quick()
	case "smoke":
		cfg = measure.Smoke()
	default:
		return fmt.Errorf("unknown -mode %q: use full, quick or smoke", *mode)
	}
	specs, err := system.Select(bench.Catalogue(), *systems)
	if err != nil {
		return err
	}

	binDir, err := os.MkdirTemp("", "airlock-bench-")
	if err != nil {
		return fmt.Errorf("make a directory for plugin binaries: %w", err)
	}
	defer os.RemoveAll(binDir)
	env, err := system.NewEnv(*dir, binDir)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	res, err := measure.Run(ctx, cfg, env, specs, log)
	if err != nil {
		return err
	}

	if err := report.WriteMarkdown(os.Stdout, res); err != nil {
		return fmt.Errorf("print report: %w", err)
	}
	return errors.Join(
		writeFile(*mdOut, func(f *os.File) error { return report.WriteMarkdown(f, res) }),
		writeFile(*jsonOut, func(f *os.File) error { return report.WriteJSON(f, res) }),
	)
}

// writeFile writes path through write, creating its directory; an empty path
// writes nothing.
func writeFile(path string, write func(*os.File) error) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
