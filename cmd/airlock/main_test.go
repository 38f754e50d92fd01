package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/testing/fixture"
)

func TestMain(m *testing.M) { fixture.Main(m) }

// cli runs the CLI in-process and returns its exit status and output.
func cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

const echoManifest = `
name = "echo"
version = "1.0.0"
[entry]
program = "plugin"
sha256 = "$SHA256"
[functions.echo]
`

func echoDir(t *testing.T) string {
	return fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/examples/echo"), echoManifest)
}

func TestRun_Usage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Usage:"},
		{[]string{"help"}, exitOK, "airlock call"},
		{[]string{"version"}, exitOK, "airlock 0."},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"call", "onlyone"}, exitUsage, "expected 2 to 3 arguments"},
		{[]string{"validate", "-nosuchflag", "x"}, exitUsage, "flag provided but not defined"},
	}
	for _, tc := range tests {
		code, out, errOut := cli(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("airlock %v = %d, %q %q; want %d mentioning %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := echoDir(t)
	if code, out, errOut := cli(t, "", "validate", dir); code != exitOK || !strings.Contains(out, "ok: echo 1.0.0") {
		t.Fatalf("validate good = %d %q %q", code, out, errOut)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "airlock.toml"), []byte("name = \"Bad Name\"\nversion = \"1\"\ncolour = \"red\"\n"), 0o644)
	code, _, errOut := cli(t, "", "validate", bad)
	if code != exitManifest || !strings.Contains(errOut, "airlock.toml:3:1: colour") || !strings.Contains(errOut, "airlock.toml:1:1: name") {
		t.Fatalf("validate bad = %d %q; want every problem with its line", code, errOut)
	}
}

func TestBuild(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	// A sandboxed plugin runs as an unprivileged uid that must reach its folder.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	manifest := fmt.Sprintf(`name = "echo"
version = "1.0.0"
[entry]
program = "bin/echo"
sha256 = "%s"
[build]
command = ["go", "-C", %q, "build", "-o", %q, "./examples/echo"]
[functions.echo]
`, strings.Repeat("0", 64), root, filepath.Join(dir, "bin", "echo"))
	os.WriteFile(filepath.Join(dir, "airlock.toml"), []byte(manifest), 0o644)
	code, out, errOut := cli(t, "", "build", dir)
	if code != exitOK || !strings.Contains(out, "built echo 1.0.0: bin/echo sha256 ") {
		t.Fatalf("build = %d %q %q", code, out, errOut)
	}
	sum, _ := fixture.Digest(filepath.Join(dir, "bin", "echo"))
	if b, _ := os.ReadFile(filepath.Join(dir, "airlock.toml")); !strings.Contains(string(b), sum) {
		t.Fatalf("the manifest does not record the new digest %s:\n%s", sum, b)
	}
	// The recorded digest lets the plugin start.
	if code, out, errOut := cli(t, "", "call", dir, "echo", "built"); code != exitOK || out != "built\n" {
		t.Fatalf("call after build = %d %q %q", code, out, errOut)
	}
	// A failing build command exits 4 and says what to do.
	os.WriteFile(filepath.Join(dir, "airlock.toml"), []byte(strings.Replace(manifest, "./examples/echo", "./no/such/package", 1)), 0o644)
	if code, _, errOut := cli(t, "", "build", dir); code != exitStart || !strings.Contains(errOut, "fix the build") {
		t.Fatalf("failing build = %d %q", code, errOut)
	}
}

func TestCall(t *testing.T) {
	dir := echoDir(t)
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		out   string
		err   string
	}{
		{"argument", "", []string{"call", dir, "echo", "hello"}, exitOK, "hello\n", ""},
		{"stdin", "from stdin", []string{"call", dir, "echo", "-"}, exitOK, "from stdin\n", ""},
		{"flag after args", "", []string{"call", dir, "echo", "x", "-timeout", "5s"}, exitOK, "x\n", ""},
		{"unknown function", "", []string{"call", dir, "nope"}, exitCall, "", "code:    unknown_function (1)"},
		{"not a plugin folder", "", []string{"call", t.TempDir(), "echo"}, exitManifest, "", "airlock.toml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.stdin, tc.args...)
			if code != tc.code || out != tc.out || !strings.Contains(errOut, tc.err) {
				t.Fatalf("= %d %q %q; want %d %q mentioning %q", code, out, errOut, tc.code, tc.out, tc.err)
			}
		})
	}
}

func TestCall_DigestMismatch(t *testing.T) {
	dir := echoDir(t)
	m, _ := os.ReadFile(filepath.Join(dir, "airlock.toml"))
	sum, _ := fixture.Digest(filepath.Join(dir, "plugin"))
	os.WriteFile(filepath.Join(dir, "airlock.toml"), bytes.Replace(m, []byte(sum), []byte(strings.Repeat("1", 64)), 1), 0o644)
	code, _, errOut := cli(t, "", "call", dir, "echo", "x")
	if code != exitStart || !strings.Contains(errOut, "hint: run `airlock build") || !strings.Contains(errOut, sum) {
		t.Fatalf("= %d %q", code, errOut)
	}
}

func TestInspect(t *testing.T) {
	dir := echoDir(t)
	code, out, errOut := cli(t, "", "inspect", dir)
	for _, want := range []string{"plugin", "echo 1.0.0", "protocol", "v1, airlock-go/", "echo", "30s", "max_concurrency"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Fatalf("inspect = %d %q %q; missing %q", code, out, errOut, want)
		}
	}
	code, out, _ = cli(t, "", "inspect", "-json", dir)
	if code != exitOK || !strings.Contains(out, `"Protocol": 1`) {
		t.Fatalf("inspect -json = %d %q", code, out)
	}
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo builds and runs every example plugin")
	}
	code, out, errOut := cli(t, "", "demo", "-examples", "../../examples", "-callers", "8", "-calls", "30")
	for _, want := range []string{"every call accounted for: 240 sent = 240 ok + 0 failed", "killed markdown", "markdown restarted: state operate, 1 restart(s)",
		"unknown_function", "deadline_exceeded", "after a host restart:  100.00 USD = 92.00 EUR at 0.92 (rate from cache)",
		"rates.offline (reads a local file) → permission_denied", "refused  fs.read.file"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Fatalf("demo = %d, missing %q\n%s\n%s", code, want, out, errOut)
		}
	}
}

func TestAudit(t *testing.T) {
	dir := fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/examples/echo"), echoManifest+"[capabilities.kv]\nquota = \"1MiB\"\n")
	state := t.TempDir()
	pol := filepath.Join(t.TempDir(), "policy.toml")
	os.WriteFile(pol, []byte("[plugins.echo.capabilities.kv]\ndeny = \"echo needs no storage\"\n"), 0o644)
	if code, out, errOut := cli(t, "", "inspect", "-policy", pol, "-state", state, dir); code != exitOK || !strings.Contains(out, "kv          denied    kv: denied by policy") {
		t.Fatalf("inspect with a policy = %d %q %q", code, out, errOut)
	}
	code, out, errOut := cli(t, "", "audit", "-state", state, "-denied", "-plugin", "echo")
	if code != exitOK || !strings.Contains(out, "echo       denied     kv: denied by policy for plugin \"echo\": echo needs no storage") {
		t.Fatalf("audit = %d %q %q", code, out, errOut)
	}
	if code, out, _ := cli(t, "", "audit", "-state", state, "-plugin", "nobody"); code != exitOK || out != "" {
		t.Fatalf("audit for another plugin = %d %q", code, out)
	}
	if code, _, errOut := cli(t, "", "audit", "-state", t.TempDir()); code != exitFailed || !strings.Contains(errOut, "does not exist yet") {
		t.Fatalf("audit of an empty state dir = %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, "", "call", "-policy", "/no/such/policy.toml", dir, "echo"); code != exitUsage || !strings.Contains(errOut, "policy") {
		t.Fatalf("call with a missing policy file = %d %q", code, errOut)
	}
}

func TestNew(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root, _ := filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
	tests := []struct {
		lang, tool string
		test       []string
	}{
		{"go", "go", []string{"go", "test", "./..."}},
		{"rust", "cargo", []string{"cargo", "test", "--quiet"}},
	}
	for _, tc := range tests {
		t.Run(tc.lang, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skipf("%s is not installed: the %s scaffold cannot be built here", tc.tool, tc.lang)
			}
			if tc.lang == "rust" && testing.Short() {
				t.Skip("building a Rust scaffold takes seconds")
			}
			parent := t.TempDir()
			os.Chmod(filepath.Dir(parent), 0o755)
			os.Chmod(parent, 0o755)
			dir := filepath.Join(parent, "hello")
			code, out, errOut := cli(t, "", "new", "-lang", tc.lang, "-dir", dir, "-sdk", root, "hello")
			if code != exitOK || !strings.Contains(out, "built hello 0.1.0") {
				t.Fatalf("new = %d %q %q", code, out, errOut)
			}
			// It answers at once...
			if code, out, errOut := cli(t, "", "call", dir, "greet", "Ada"); code != exitOK || out != "Hello, Ada!\n" {
				t.Fatalf("call greet = %d %q %q", code, out, errOut)
			}
			if code, out, _ := cli(t, "", "call", dir, "add", `{"a":2,"b":40}`); code != exitOK || out != "{\"sum\":42}\n" {
				t.Fatalf("call add = %d %q", code, out)
			}
			// ...and its own test passes.
			cmd := exec.Command(tc.test[0], tc.test[1:]...)
			cmd.Dir = dir
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v in the scaffold: %v\n%s", tc.test, err, b)
			}
		})
	}
}

func TestNew_BadArguments(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"new", "Bad_Name"}, "not a valid plugin name"},
		{[]string{"new", "-lang", "cobol", "x"}, "choose go or rust"},
		{[]string{"new", "-dir", t.TempDir(), "x"}, "already exists"},
		{[]string{"new", "-sdk", t.TempDir(), "-dir", filepath.Join(t.TempDir(), "x"), "x"}, "is not a checkout of the Airlock repository"},
	}
	for _, tc := range tests {
		if code, _, errOut := cli(t, "", tc.args...); code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("airlock %v = %d %q; want usage error mentioning %q", tc.args, code, errOut, tc.want)
		}
	}
}
