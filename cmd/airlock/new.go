package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
)

// templates holds one scaffold per language; every file is a text/template
// rendered to the same path without ".tmpl" (gitignore.tmpl → .gitignore).
//
//go:embed templates
var templates embed.FS

var pluginName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

func runNew(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("new", flag.ContinueOnError)
	lang := fs.String("lang", "go", "the plugin's language: go or rust")
	into := fs.String("dir", "", "create the plugin folder here (default: ./NAME)")
	sdk := fs.String("sdk", "", "a checkout of the Airlock repository to build against (default: the one the current directory is in)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: airlock new [-lang go|rust] [-dir DIR] [-sdk AIRLOCK_CHECKOUT] NAME\n\nCreates a plugin folder that builds, answers `airlock call` at once, and has a test.")
		fs.PrintDefaults()
	}
	pos, ok := parse(fs, e, args, 1, 1)
	if !ok {
		return exitUsage
	}
	name := pos[0]
	if !pluginName.MatchString(name) {
		fmt.Fprintf(e.stderr, "airlock new: %q is not a valid plugin name: use 1 to 63 lowercase letters, digits and hyphens, starting with a letter\n", name)
		return exitUsage
	}
	if *lang != "go" && *lang != "rust" {
		fmt.Fprintf(e.stderr, "airlock new: -lang %q: choose go or rust\n", *lang)
		return exitUsage
	}
	dir := *into
	if dir == "" {
		dir = name
	}
	if _, err := os.Stat(dir); err == nil {
		fmt.Fprintf(e.stderr, "airlock new: %s already exists; choose another name or -dir\n", dir)
		return exitUsage
	}
	root, err := sdkRoot(*sdk)
	if err != nil {
		fmt.Fprintf(e.stderr, "airlock new: %v\n", err)
		return exitUsage
	}
	data := map[string]string{
		"Name":   name,
		"SHA256": strings.Repeat("0", 64), // airlock build records the real digest
		"SDKDir": root,
		// The Rust SDK is a path dependency until the crate is published.
		"SDKDependency": fmt.Sprintf("{ path = %q }", filepath.Join(root, "sdk", "rust")),
	}
	if err := render(*lang, dir, data); err != nil {
		fmt.Fprintf(e.stderr, "airlock new: %v\n", err)
		os.RemoveAll(dir)
		return exitFailed
	}
	if *lang == "go" {
		// go.sum must exist before the first build.
		cmd := exec.CommandContext(ctx, "go", "mod", "tidy")
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, e.stderr, e.stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(e.stderr, "airlock new: go mod tidy in %s: %v (the folder is left for you to inspect)\n", dir, err)
			return exitStart
		}
	}
	fmt.Fprintf(e.stdout, "created %s (%s plugin %s); building it:\n", dir, *lang, name)
	if code := build(ctx, e, dir); code != exitOK {
		return code
	}
	test := "go test ./..."
	if *lang == "rust" {
		test = "cargo test"
	}
	fmt.Fprintf(e.stdout, "\nnext:\n  airlock call %s greet Ada\n  airlock call %s add '{\"a\": 2, \"b\": 40}'\n  (cd %s && %s)\n", dir, dir, dir, test)
	return exitOK
}

// render writes the lang scaffold into dir.
func render(lang, dir string, data map[string]string) error {
	base := path.Join("templates", lang)
	return fs.WalkDir(templates, base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, base), "/")
		out := filepath.Join(dir, filepath.FromSlash(rel))
		if d.IsDir() {
			// Others must reach the folder: plugins run as an unprivileged uid.
			return os.MkdirAll(out, 0o755)
		}
		out = strings.TrimSuffix(out, ".tmpl")
		if filepath.Base(out) == "gitignore" {
			out = filepath.Join(filepath.Dir(out), ".gitignore")
		}
		src, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		t, err := template.New(rel).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return fmt.Errorf("template %s: %w", rel, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return fmt.Errorf("template %s: %w", rel, err)
		}
		return os.WriteFile(out, b.Bytes(), 0o644)
	})
}

// sdkRoot finds the Airlock checkout to build a new plugin against: the
// given directory, or the one the current directory lies in.
func sdkRoot(given string) (string, error) {
	isRoot := func(d string) bool {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		return err == nil && bytes.HasPrefix(b, []byte("module github.com/airlockhq/airlock\n"))
	}
	if given != "" {
		abs, err := filepath.Abs(given)
		if err != nil {
			return "", err
		}
		if !isRoot(abs) {
			return "", fmt.Errorf("-sdk %s is not a checkout of the Airlock repository (no go.mod for github.com/airlockhq/airlock)", given)
		}
		return abs, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isRoot(d) {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New("the Airlock SDK is not published yet: run airlock new inside a checkout of the Airlock repository, or pass -sdk DIR")
		}
	}
}
