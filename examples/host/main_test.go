package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/testing/fixture"
)

func TestMain(m *testing.M) { fixture.Main(m) }

// pluginDir lays out an example plugin from its real manifest, built fresh.
func pluginDir(t *testing.T, name string) string {
	t.Helper()
	manifest, err := os.ReadFile(filepath.Join("..", name, "airlock.toml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(manifest)
	text = strings.Replace(text, `program = "bin/`+name+`"`, `program = "plugin"`, 1)
	i := strings.Index(text, `sha256 = "`)
	text = text[:i] + `sha256 = "$SHA256"` + text[i+len(`sha256 = "`)+65:]
	return fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/examples/"+name), text)
}

func TestRun(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "doc.md")
	os.WriteFile(doc, []byte("# Guide\n\n## Install\n\ntext\n\n## Use *it*\n"), 0o644)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-markdown", pluginDir(t, "markdown"), "-pricing", pluginDir(t, "pricing"), doc}, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := "Contents of " + doc + ":\n- Guide (#guide)\n  - Install (#install)\n  - Use it (#use-it)\n" +
		"Order total: $259.64\nEmpty order refused: bad_input\nA render with a 1ns deadline: deadline exceeded\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
