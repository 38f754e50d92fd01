package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/manifest"
	"github.com/airlockhq/airlock/policy"
)

// Exit statuses. They are part of the CLI's interface (see README).
const (
	exitOK       = 0 // success
	exitFailed   = 1 // the command ran and the answer is "no" (e.g. an unexpected error)
	exitUsage    = 2 // bad flags or arguments
	exitManifest = 3 // the manifest is invalid
	exitStart    = 4 // the plugin could not be built or started
	exitCall     = 5 // the call returned an error
)

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, env *env, args []string) int
}

var commands = []command{
	{"new", "[-lang go|rust] NAME", "create a plugin folder that builds and answers calls, with a test", runNew},
	{"validate", "DIR", "check a plugin's airlock.toml and entry program", runValidate},
	{"build", "DIR", "run the manifest's build command and record the entry's sha256", runBuild},
	{"inspect", "DIR", "start a plugin, print what it negotiated, exports and limits, stop it", runInspect},
	{"call", "DIR FUNCTION [INPUT|-]", "start a plugin, call FUNCTION, print the output, stop it", runCall},
	{"audit", "[-plugin P] [-denied]", "print the audit log: capability decisions and refused host calls", runAudit},
	{"doctor", "", "say which sandbox protections work on this machine, and why others do not", runDoctor},
	{"demo", "", "build and load the example plugins, call them concurrently, kill one mid-call", runDemo},
}

// env is what a command may use: streams, a logger and the host settings
// from -policy and -state.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	logger         *slog.Logger
	policyFile     string
	stateDir       string
}

// hostFlags adds -policy and -state to fs.
func hostFlags(fs *flag.FlagSet, e *env) {
	fs.StringVar(&e.policyFile, "policy", "", "the operator's policy file (TOML, docs/policy.md); without one every capability but log is denied")
	fs.StringVar(&e.stateDir, "state", defaultStateDir(), "the state directory: kv data and the audit log")
}

// defaultStateDir is $XDG_STATE_HOME/airlock, or ~/.local/state/airlock.
func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "airlock")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "airlock")
	}
	return ""
}

// hostConfig builds the host configuration from the flags.
func (e *env) hostConfig() (airlock.HostConfig, error) {
	cfg := airlock.NewHostConfig().WithLogger(e.logger).WithStateDir(e.stateDir)
	if e.policyFile != "" {
		p, err := policy.Load(e.policyFile)
		if err != nil {
			return cfg, err
		}
		cfg = cfg.WithPolicy(p)
	}
	return cfg, nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintf(stdout, "airlock %s\n", airlock.Version)
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(stderr, "airlock: unknown command %q; run `airlock help` for the list\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "airlock %s: run untrusted plugins safely\n\nUsage:\n", airlock.Version)
	for _, c := range commands {
		fmt.Fprintf(w, "  airlock %-8s %-26s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nRun `airlock COMMAND -h` for a command's flags. Exit status: 0 ok, 1 failed, 2 usage, 3 invalid manifest, 4 plugin did not build or start, 5 call failed.\n")
}

// parse parses flags that may appear before, between or after positional
// arguments, and checks the number of positional arguments.
func parse(fs *flag.FlagSet, e *env, args []string, minArgs, maxArgs int) ([]string, bool) {
	fs.SetOutput(e.stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		fmt.Fprintf(e.stderr, "airlock %s: expected %s\n", fs.Name(), argText(minArgs, maxArgs))
		fs.Usage()
		return nil, false
	}
	return pos, true
}

func argText(lo, hi int) string {
	if lo == hi {
		return fmt.Sprintf("%d argument(s)", lo)
	}
	return fmt.Sprintf("%d to %d arguments", lo, hi)
}

// verbosity adds -v to fs and returns a function that builds the logger.
func verbosity(fs *flag.FlagSet, e *env) func() {
	v := fs.Bool("v", false, "log at info level (plugin output and lifecycle) instead of warnings only")
	return func() {
		level := slog.LevelWarn
		if *v {
			level = slog.LevelInfo
		}
		e.logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	}
}

// loadOne starts the plugin in dir in a fresh host.
func loadOne(ctx context.Context, e *env, dir string) (*airlock.Host, *airlock.Plugin, int) {
	cfg, err := e.hostConfig()
	if err != nil {
		fmt.Fprintf(e.stderr, "airlock: %v\n", err)
		return nil, nil, exitUsage
	}
	h, err := airlock.NewHostWithConfig(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "airlock: %v\n", err)
		return nil, nil, exitFailed
	}
	p, err := h.Load(ctx, dir)
	if err != nil {
		_ = h.Close(ctx)
		return nil, nil, reportLoad(e, err)
	}
	return h, p, exitOK
}

func reportLoad(e *env, err error) int {
	var le *airlock.LoadError
	var me *manifest.Error
	switch {
	case errors.As(err, &me):
		fmt.Fprintf(e.stderr, "%v\n", me)
		return exitManifest
	case errors.As(err, &le) && le.Stage == "manifest":
		fmt.Fprintf(e.stderr, "%v\n", err)
		return exitManifest
	case errors.As(err, &le):
		fmt.Fprintf(e.stderr, "%v\n", err)
		if errors.Is(err, airlock.ErrDigestMismatch) {
			fmt.Fprintf(e.stderr, "hint: run `airlock build %s` after rebuilding the plugin\n", le.Dir)
		}
		return exitStart
	default:
		fmt.Fprintf(e.stderr, "%v\n", err)
		return exitFailed
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
