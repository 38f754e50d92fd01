package policy

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/manifest"
)

var update = flag.Bool("update", false, "rewrite the .golden files in testdata/policies/bad")

func TestLoad_Example(t *testing.T) {
	p, err := Load(filepath.Join("..", "testdata", "policies", "example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	w := p.Plugins["weather"]
	http := w.Capabilities[HTTP]
	if got := strings.Join(http.Hosts, ","); got != "api.weather.example,*.tiles.example" {
		t.Errorf("hosts = %q", got)
	}
	if http.MaxResponse != 2*MiB || time.Duration(http.Timeout) != 5*time.Second || http.Burst != 5 {
		t.Errorf("http limits = %v %v %v", http.MaxResponse, http.Timeout, http.Burst)
	}
	if http.Rate != (manifest.Rate{Count: 20, Per: time.Second}) {
		t.Errorf("rate = %+v", http.Rate)
	}
	if w.Capabilities[KV].Quota != 10*MiB {
		t.Errorf("quota = %d", w.Capabilities[KV].Quota)
	}
	if got := w.Capabilities[FSRead].Roots["data"]; got != "/srv/airlock/weather/data" {
		t.Errorf("fs.read root = %q", got)
	}
	if w.Capabilities[FSWrite].Deny == "" {
		t.Error("fs.write deny lost")
	}
	if w.Config["units"] != "metric" || w.Config["retries"] != "3" || w.Config["debug"] != "false" {
		t.Errorf("config = %v", w.Config)
	}
	if r := p.Plugins[Default].Capabilities[Random]; r.Budget != 64*KiB || r.Rate.Count != 10 {
		t.Errorf("default random = %+v", r)
	}
	if _, ok := p.Plugins[Default].Capabilities[Clock]; !ok {
		t.Error("default clock = {} should allow clock")
	}
}

// TestParse_Bad checks each bad policy's error text against its .golden
// file: the text must name the place (line:column where known), the
// problem and the fix. Run with -update to rewrite the golden files after a
// deliberate change, and read the diff.
func TestParse_Bad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "policies", "bad", "*.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad policies found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(data)
			if err == nil {
				t.Fatal("Parse accepted a bad policy")
			}
			var pe *ParseError
			var ve *ValidationError
			if !errors.As(err, &pe) && !errors.As(err, &ve) {
				t.Fatalf("error %T is neither *ParseError nor *ValidationError: %v", err, err)
			}
			golden := strings.TrimSuffix(f, ".toml") + ".golden"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error text changed\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestParse_Positions(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "policies", "bad", "unknown-key.toml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(data)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("want *ParseError, got %v", err)
	}
	if pe.Line != 3 || pe.Column != 1 {
		t.Errorf("position = %d:%d, want 3:1", pe.Line, pe.Column)
	}
}

func TestLoad_NamesFile(t *testing.T) {
	_, err := Load(filepath.Join("..", "testdata", "policies", "bad", "wrong-type.toml"))
	if err == nil || !strings.Contains(err.Error(), "wrong-type.toml:2:") {
		t.Errorf("error should name file and line: %v", err)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want manifest.Size
		ok   bool
	}{
		{"0", 0, true}, {"512B", 512, true}, {"64KiB", 64 << 10, true}, {"10MiB", 10 << 20, true},
		{"2GiB", 2 << 30, true}, {"1TiB", 1 << 40, true}, {"1024", 1024, true},
		{"", 0, false}, {"MiB", 0, false}, {"10MB", 0, false}, {"-1KiB", 0, false}, {"1.5MiB", 0, false},
		{"+5", 0, false}, {"99999999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want manifest.Rate
		ok   bool
	}{
		{"100/s", manifest.Rate{Count: 100, Per: time.Second}, true},
		{"10/m", manifest.Rate{Count: 10, Per: time.Minute}, true},
		{"0.5/h", manifest.Rate{Count: 0.5, Per: time.Hour}, true},
		{"10", manifest.Rate{}, false}, {"10/d", manifest.Rate{}, false}, {"-1/s", manifest.Rate{}, false},
		{"NaN/s", manifest.Rate{}, false}, {"Inf/s", manifest.Rate{}, false}, {"/s", manifest.Rate{}, false},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "policies", "*.toml"))
	bad, _ := filepath.Glob(filepath.Join("..", "testdata", "policies", "bad", "*.toml"))
	for _, p := range append(files, bad...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		if verr := p.Validate(); verr != nil {
			t.Fatalf("Parse returned a policy that does not validate: %v", verr)
		}
		// Decide must not panic on anything Parse accepts.
		for name := range p.Plugins {
			Decide(p, name, map[string]manifest.CapabilityRequest{HTTP: {Hosts: []string{"a.example"}}, FSRead: {Paths: []string{"data"}}})
		}
	})
}
