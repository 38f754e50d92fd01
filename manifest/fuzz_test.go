package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// FuzzParse checks that Parse and Validate never panic, that every failure
// is an *Error, and that a manifest that parses and validates survives a
// round trip: marshalled back to TOML (through the text types' MarshalText),
// it parses again to the same values.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(manifests, "*", "*.toml"))
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			var merr *Error
			if !errors.As(err, &merr) || len(merr.Problems) == 0 {
				t.Fatalf("Parse returned %T %v, want *Error with problems", err, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			var merr *Error
			if !errors.As(err, &merr) || len(merr.Problems) == 0 {
				t.Fatalf("Validate returned %T %v, want *Error with problems", err, err)
			}
			return
		}
		first, err := toml.Marshal(m)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		m2, err := Parse(first)
		if err != nil {
			t.Fatalf("re-parse of\n%s\nfailed: %v", first, err)
		}
		second, err := toml.Marshal(m2)
		if err != nil {
			t.Fatalf("marshal again: %v", err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the manifest:\n%s\n---\n%s", first, second)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(manifests, "ok", "full.toml"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
