package manifest

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// goManifest is a valid manifest built in Go rather than parsed.
func goManifest() *Manifest {
	return &Manifest{
		Name:      "built",
		Version:   "1.0.0",
		Entry:     Entry{Program: "bin/p", SHA256: oldDigest},
		Functions: map[string]Function{"run": {}},
	}
}

func TestValidate_BuiltInGo(t *testing.T) {
	if err := goManifest().Validate(); err != nil {
		t.Fatalf("valid manifest: %v", err)
	}

	m := goManifest()
	m.Functions["run"] = Function{Timeout: Duration(-time.Second), Rate: Rate{Count: -1}, Burst: -2}
	m.Limits.CPU = math.Inf(1)
	m.Restart.BackoffMax = Duration(time.Millisecond)
	m.Capabilities = map[string]CapabilityRequest{"http": {Timeout: Duration(-1), MaxResponse: -1, Paths: []string{"x"}}}
	err := m.Validate()
	var merr *Error
	if !errors.As(err, &merr) {
		t.Fatalf("want *Error, got %v", err)
	}
	want := `airlock.toml: functions.run.timeout: must be greater than 0, got -1s (fix: write a duration such as "5s")
airlock.toml: functions.run.rate: must be a finite rate of 0 or more, got -1/s (fix: write a rate such as "10/s")
airlock.toml: functions.run.burst: must not be negative, got -2 (fix: use 0 or more)
airlock.toml: limits.cpu: +Inf is out of range (fix: use a number of cores greater than 0 and at most 1024, such as 0.5 or 2)
airlock.toml: restart.backoff_max: backoff_initial (100ms) is longer than backoff_max (1ms) (fix: make backoff_initial no longer than backoff_max)
airlock.toml: capabilities.http.paths: the http capability does not take paths (fix: remove it; http takes rate, burst, budget, hosts, methods, max_response, timeout)
airlock.toml: capabilities.http.max_response: must not be negative, got -1 (fix: write a size such as "1MiB")
airlock.toml: capabilities.http.timeout: must not be negative, got -1ns (fix: write a duration such as "10s")`
	if err.Error() != want {
		t.Errorf("got:\n%s\nwant:\n%s", err, want)
	}
	for _, p := range merr.Problems {
		if p.Line != 0 || p.Column != 0 {
			t.Errorf("problem %+v has a position, but the manifest has no file", p)
		}
	}
}

// TestValidate_AfterParse checks that Validate on a parsed manifest gives
// the same positioned problems as Load.
func TestValidate_AfterParse(t *testing.T) {
	m, err := Parse([]byte("name = \"x\"\nversion = \"1.0.0\"\n\n[entry]\nprogram = \"p\"\nsha256 = \"\"\n\n[functions.run]\ntimeout = \"0s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "airlock.toml:6:1: entry.sha256: required (fix: run `airlock build DIR` or `sha256sum p` and set sha256 under [entry])\n" +
		"airlock.toml:9:1: functions.run.timeout: must not be 0 (fix: remove the key to use the default (30s))"
	if err := m.Validate(); err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
	// Defaults fills the zero timeout, but the file still says "0s".
	if err := m.Defaults().Validate(); err == nil || !strings.Contains(err.Error(), "functions.run.timeout: must not be 0") {
		t.Errorf("Defaults().Validate() lost the explicit zero: %v", err)
	}
}

func TestError_Format(t *testing.T) {
	err := &Error{Problems: []Problem{
		{Field: "functions.render.timeout", Line: 12, Column: 3, Message: "too long", Fix: `use "5s"`},
		{Line: 4, Message: "syntax"},
		{Field: "name", Message: "required"},
	}}
	want := "airlock.toml:12:3: functions.render.timeout: too long (fix: use \"5s\")\n" +
		"airlock.toml:4: syntax\n" +
		"airlock.toml: name: required"
	if err.Error() != want {
		t.Errorf("got:\n%s\nwant:\n%s", err, want)
	}
}

func TestParentField(t *testing.T) {
	tests := []struct{ in, want string }{
		{"functions.render.timeout", "functions.render"},
		{`capabilities."fs.read".paths[2]`, `capabilities."fs.read".paths`},
		{`capabilities."fs.read".paths`, `capabilities."fs.read"`},
		{`capabilities."fs.read"`, "capabilities"},
		{`functions."a\"b.c"`, "functions"},
		{"name", ""},
	}
	for _, tt := range tests {
		if got := parentField(tt.in); got != tt.want {
			t.Errorf("parentField(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
