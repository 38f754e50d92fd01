package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const loadManifest = `name = "hello"
version = "0.1.0"

[entry]
program = "bin/hello"
sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

[functions.greet]
`

// pluginDir writes airlock.toml (text) into a new folder and returns it.
func pluginDir(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeProgram(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
}

func TestLoad_SetsAbsoluteDir(t *testing.T) {
	dir := pluginDir(t, loadManifest)
	writeProgram(t, filepath.Join(dir, "bin", "hello"), 0o755)
	t.Chdir(dir)

	m, err := Load(".")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(dir)
	got, _ := filepath.EvalSymlinks(m.Dir)
	if !filepath.IsAbs(m.Dir) || got != want {
		t.Errorf("Dir = %q, want the absolute path of %q", m.Dir, dir)
	}
	if names := m.FunctionNames(); len(names) != 1 || names[0] != "greet" {
		t.Errorf("FunctionNames() = %v", names)
	}
}

func TestLoad_MissingManifest(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want an fs.ErrNotExist error, got %v", err)
	}
	if !strings.Contains(err.Error(), FileName) {
		t.Errorf("error %q does not name %s", err, FileName)
	}
}

func TestLoad_EntryProgram(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "elsewhere")
	writeProgram(t, outside, 0o755)

	tests := []struct {
		name    string
		extra   string                         // appended to the manifest
		setup   func(t *testing.T, dir string) // makes bin/hello, or not
		wantErr string                         // substring; "" for success
		linkDir bool                           // load the folder through a symbolic link to it
	}{
		{
			name:  "executable file",
			setup: func(t *testing.T, dir string) { writeProgram(t, filepath.Join(dir, "bin/hello"), 0o755) },
		},
		{
			name: "symlink inside the folder",
			setup: func(t *testing.T, dir string) {
				writeProgram(t, filepath.Join(dir, "real/hello"), 0o755)
				os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
				if err := os.Symlink("../real/hello", filepath.Join(dir, "bin/hello")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:    "missing",
			setup:   func(t *testing.T, dir string) {},
			wantErr: "entry.program: %DIR%/bin/hello does not exist (fix: correct the path, or build the program)",
		},
		{
			name:    "missing, with a build command",
			extra:   "\n[build]\ncommand = [\"make\"]\n",
			setup:   func(t *testing.T, dir string) {},
			wantErr: "does not exist (fix: run `airlock build %DIR%`, or correct the path)",
		},
		{
			name:    "not executable",
			setup:   func(t *testing.T, dir string) { writeProgram(t, filepath.Join(dir, "bin/hello"), 0o644) },
			wantErr: "airlock.toml:5:1: entry.program: %DIR%/bin/hello is not executable (fix: chmod +x %DIR%/bin/hello)",
		},
		{
			name:    "a directory",
			setup:   func(t *testing.T, dir string) { os.MkdirAll(filepath.Join(dir, "bin/hello"), 0o755) },
			wantErr: "bin/hello is not a regular file",
		},
		{
			name: "symlink out of the folder",
			setup: func(t *testing.T, dir string) {
				os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
				if err := os.Symlink(outside, filepath.Join(dir, "bin/hello")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "outside the plugin folder",
		},
		{
			name: "a linked folder out of the folder",
			setup: func(t *testing.T, dir string) {
				elsewhere := t.TempDir()
				writeProgram(t, filepath.Join(elsewhere, "hello"), 0o755)
				if err := os.Symlink(elsewhere, filepath.Join(dir, "bin")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "outside the plugin folder",
		},
		{
			name: "a linked plugin folder",
			setup: func(t *testing.T, dir string) {
				writeProgram(t, filepath.Join(dir, "bin/hello"), 0o755)
			},
			linkDir: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := pluginDir(t, loadManifest+tt.extra)
			tt.setup(t, dir)
			if tt.linkDir {
				link := filepath.Join(t.TempDir(), "linked")
				if err := os.Symlink(dir, link); err != nil {
					t.Fatal(err)
				}
				dir = link
			}
			_, err := Load(dir)
			checkErr(t, err, strings.ReplaceAll(tt.wantErr, "%DIR%", dir))
			var merr *Error
			if err != nil && (!errors.As(err, &merr) || merr.File != filepath.Join(dir, FileName)) {
				t.Errorf("want *Error naming %s, got %#v", filepath.Join(dir, FileName), err)
			}
		})
	}
}

func TestLoad_RefusesOddFiles(t *testing.T) {
	t.Run("too large", func(t *testing.T) {
		dir := pluginDir(t, loadManifest+"# "+strings.Repeat("x", maxManifestSize)+"\n")
		_, err := Load(dir)
		checkErr(t, err, "airlock.toml: larger than 1MiB (fix: a manifest is a short hand-written file")
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, FileName), 0o755)
		_, err := Load(dir)
		checkErr(t, err, "not a regular file")
	})
}
