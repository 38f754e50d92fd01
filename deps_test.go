package airlock_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// goPackage is the part of `go list -json` the checks use.
type goPackage struct {
	ImportPath string
	Name       string
	Doc        string
	Standard   bool
	Imports    []string // direct, non-test
	Deps       []string // transitive, non-test
	GoFiles    []string
}

func listPackages(t *testing.T) map[string]goPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]goPackage{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

const mod = "github.com/airlockhq/airlock"

// isStd reports whether an import path is in the standard library.
func isStd(path string) bool {
	first := strings.SplitN(path, "/", 2)[0]
	return !strings.Contains(first, ".")
}

// TestDependencies enforces the import table in README.md: each rule says
// which packages a package may depend on, transitively for the SDK and the
// protocol (plugin authors must gain no dependency), directly for layering.
func TestDependencies(t *testing.T) {
	pkgs := listPackages(t)
	type rule struct {
		pkg        string // import path prefix
		transitive bool   // check every dependency, not just direct imports
		allow      func(dep string) bool
		why        string
	}
	own := func(prefixes ...string) func(string) bool {
		return func(dep string) bool {
			if isStd(dep) {
				return true
			}
			for _, p := range prefixes {
				if dep == p || strings.HasPrefix(dep, p+"/") {
					return true
				}
			}
			return false
		}
	}
	notInternal := func(dep string) bool { return !strings.HasPrefix(dep, mod+"/internal/") }
	rules := []rule{
		{mod + "/internal/wire", true, own(), "the codec is shared with the SDK: standard library only"},
		{mod + "/internal/rpc", true, own(mod + "/internal/wire"), "rpc is shared with the SDK: standard library and wire only"},
		{mod + "/internal/token", true, own(), "the token format is shared with the SDK: standard library only"},
		{mod + "/internal/sockio", true, own(), "socket I/O is shared with the SDK: standard library only"},
		{mod + "/sdk/go", true, own(mod+"/internal/wire", mod+"/internal/rpc", mod+"/internal/token", mod+"/internal/sockio"), "plugin authors must gain no dependency beyond the standard library"},
		{mod + "/policy", true, own(mod+"/manifest", "github.com/pelletier/go-toml/v2"), "policy is a public leaf: manifest and the TOML parser only"},
		{mod + "/manifest", true, own("github.com/pelletier/go-toml/v2"), "manifest is a public leaf: it imports nothing from Airlock"},
		{mod + "/cmd/airlock", false, notInternal, "the CLI uses only the public API, proving it is enough"},
		{mod + "/cmd/airlock-launcher", true, own(mod + "/internal/sandbox/launcher"), "every package linked into the launcher is initialised at every plugin start"},
		{mod + "/examples", false, notInternal, "examples show what users can write"},
	}
	for _, p := range pkgs {
		if strings.HasPrefix(p.ImportPath, mod+"/internal/") {
			for _, d := range p.Imports {
				if d == mod {
					t.Errorf("%s imports the root package: internal packages sit below the public API", p.ImportPath)
				}
			}
		}
		for _, r := range rules {
			if p.ImportPath != r.pkg && !strings.HasPrefix(p.ImportPath, r.pkg+"/") {
				continue
			}
			if strings.HasPrefix(p.ImportPath, mod+"/internal/testing/") {
				continue
			}
			deps := p.Imports
			if r.transitive {
				deps = p.Deps
			}
			for _, d := range deps {
				if !r.allow(d) {
					t.Errorf("%s depends on %s: %s", p.ImportPath, d, r.why)
				}
			}
		}
	}
	if root, ok := pkgs[mod]; ok {
		for _, d := range root.Imports {
			if d == "testing" || strings.HasPrefix(d, mod+"/cmd/") {
				t.Errorf("the root package imports %s", d)
			}
		}
	}
}

// TestPackageDocs checks every package has exactly one package doc that
// says why it exists.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Doc == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
	out, err := exec.Command("sh", "-c", `grep -l '^// Package \|^// Command ' $(git ls-files '*.go' | grep -v _test.go) | xargs -n1 dirname | sort | uniq -d`).Output()
	if err == nil && len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("packages with more than one package doc comment: %s", out)
	}
}
