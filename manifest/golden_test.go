package manifest

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/manifests/bad/*.golden from the current output")

const manifests = "../testdata/manifests"

// TestParse_OK parses and validates every manifest under ok/.
func TestParse_OK(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(manifests, "ok", "*.toml"))
	if len(files) == 0 {
		t.Fatal("no manifests in testdata/manifests/ok")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("Validate:\n%v", err)
			}
			if err := m.Defaults().Validate(); err != nil {
				t.Fatalf("Defaults().Validate:\n%v", err)
			}
		})
	}
}

// TestParse_Bad decodes and validates every manifest under bad/ the way Load
// does (without a folder) and compares the error text with NAME.golden.
// Run with -update to rewrite the goldens, then review the diff.
func TestParse_Bad(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(manifests, "bad", "*.toml"))
	if len(files) == 0 {
		t.Fatal("no manifests in testdata/manifests/bad")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = load(data, FileName, "")
			var merr *Error
			if !errors.As(err, &merr) {
				t.Fatalf("want *Error, got %v", err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestParse_Bad -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error text differs from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}
