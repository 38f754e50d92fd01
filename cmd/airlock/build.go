package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/airlockhq/airlock/manifest"
)

func runBuild(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: airlock build DIR\n\nRuns [build].command in DIR, then writes the entry program's sha256 into DIR/airlock.toml.")
	}
	pos, ok := parse(fs, e, args, 1, 1)
	if !ok {
		return exitUsage
	}
	return build(ctx, e, pos[0])
}

// build runs the manifest's build command and records the digest.
func build(ctx context.Context, e *env, dir string) int {
	path := filepath.Join(dir, manifest.FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(e.stderr, "airlock build: %v (is %s a plugin folder?)\n", err, dir)
		return exitManifest
	}
	m, err := manifest.Parse(data)
	if err != nil {
		var me *manifest.Error
		if errors.As(err, &me) {
			me.File = path
		}
		fmt.Fprintln(e.stderr, err)
		return exitManifest
	}
	if m.Build == nil || len(m.Build.Command) == 0 {
		fmt.Fprintf(e.stderr, "airlock build: %s has no [build] command; add one, e.g. command = [\"go\", \"build\", \"-o\", %q, \".\"]\n", path, m.Entry.Program)
		return exitManifest
	}
	cmd := exec.CommandContext(ctx, m.Build.Command[0], m.Build.Command[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = e.stderr, e.stderr // build chatter is not the command's output
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(e.stderr, "airlock build: %v: %v (fix the build, then run airlock build again)\n", m.Build.Command, err)
		return exitStart
	}
	program := filepath.Join(dir, filepath.FromSlash(m.Entry.Program))
	sum, err := manifest.Digest(program)
	if err != nil {
		fmt.Fprintf(e.stderr, "airlock build: the build ran but %v; make [build].command write entry.program (%s)\n", err, m.Entry.Program)
		return exitStart
	}
	if sum != m.Entry.SHA256 {
		if err := manifest.SetSHA256InFile(path, sum); err != nil {
			fmt.Fprintf(e.stderr, "airlock build: record sha256: %v\n", err)
			return exitFailed
		}
	}
	if _, err := manifest.Load(dir); err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitManifest
	}
	fmt.Fprintf(e.stdout, "built %s %s: %s sha256 %s\n", m.Name, m.Version, m.Entry.Program, sum)
	return exitOK
}
