package manifest

import (
	"cmp"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Validate checks m and returns every problem as one *Error, or nil. Zero
// fields mean their default (see Defaults). When m came from Parse or Load,
// each problem carries the line and column of its key. When Dir is set,
// Validate also checks that the entry program exists inside it.
func (m *Manifest) Validate() error {
	return errorOf(m.fileName(), m.validate())
}

func (m *Manifest) fileName() string {
	if m.src != nil {
		return m.src.file
	}
	return FileName
}

func (m *Manifest) validate() []Problem {
	c := &checker{m: m, d: m.Defaults()}
	checks := []func(){
		c.name,
		c.version,
		c.tier,
		c.entry,
		c.build,
		c.functions,
		c.limits,
		c.restart,
		c.sandbox,
		c.capabilities,
		c.explicitZeros,
	}
	for _, check := range checks {
		check()
	}
	return c.problems
}

// checker collects problems. Checks read d, the manifest with defaults
// filled in, so each rule sees the value that will be used.
type checker struct {
	m, d     *Manifest
	problems []Problem
}

func (c *checker) add(field, fix, format string, args ...any) {
	p := c.m.src.at(field)
	c.problems = append(c.problems, Problem{
		Field: field, Line: p.line, Column: p.column,
		Message: fmt.Sprintf(format, args...), Fix: fix,
	})
}

var (
	pluginNameRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	functionNameRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)
	capabilityRE   = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)
	semverRE       = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)
	sha256RE       = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Limits on sizes and ranges that no manifest may exceed.
const (
	maxPayload          = 64 << 20 // max_input, max_output
	maxConcurrency      = 4096
	minHeartbeat        = 10 * time.Millisecond
	minMemory           = 16 << 20
	maxCPU              = 1024 // cores
	minTasks            = 8    // a Go program starts several threads before main
	maxTasks            = 1 << 16
	minOpenFiles        = 16
	maxOpenFiles        = 1 << 20 // Linux's default nr_open
	minDisk             = 1 << 20
	minCPUTime          = time.Second // RLIMIT_CPU counts whole seconds
	exampleBuildCommand = `command = ["go", "build", "-o", "bin/plugin", "."]`
)

// Protections returns the names sandbox.require accepts, as `airlock doctor`
// prints them.
func Protections() []string {
	return []string{
		"userns", "pidns", "netns", "mountns", "ipcns", "utsns",
		"landlock", "seccomp", "no_new_privs", "rlimits",
		"cgroup_memory", "cgroup_pids", "cgroup_cpu", "cgroup_kill",
	}
}

// capabilityKeys returns the scope keys a built-in capability takes, beyond
// the common rate, burst and budget, and false for an embedder's capability.
func capabilityKeys(name string) ([]string, bool) {
	switch name {
	case "log", "clock", "random":
		return nil, true
	case "http":
		return []string{"hosts", "methods", "max_response", "timeout"}, true
	case "fs.read", "fs.write":
		return []string{"paths", "max_file"}, true
	case "kv":
		return []string{"quota"}, true
	case "config":
		return []string{"keys"}, true
	}
	return []string{"scope"}, false
}

func httpMethods() []string {
	return []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
}

func (c *checker) name() {
	switch n := c.m.Name; {
	case n == "":
		c.add("name", `add name = "my-plugin" at the top of the file`, "required")
	case !pluginNameRE.MatchString(n):
		c.add("name", "use 1 to 63 lowercase letters, digits and hyphens, starting with a letter", "%q is not a valid plugin name", n)
	}
}

func (c *checker) version() {
	switch v := c.m.Version; {
	case v == "":
		c.add("version", `add version = "0.1.0" at the top of the file`, "required")
	case strings.HasPrefix(v, "v") && semverRE.MatchString(v[1:]):
		c.add("version", fmt.Sprintf("write version = %q", v[1:]), "%q has a leading v", v)
	case !semverRE.MatchString(v):
		c.add("version", `use a semantic version such as "1.2.0" or "1.2.0-beta.1"`, "%q is not a semantic version", v)
	}
}

func (c *checker) tier() {
	switch t := c.d.Tier; t {
	case TierProcess:
	case TierWasm:
		c.add("tier", `use tier = "process"`, "the wasm tier is not available in this version of Airlock")
	default:
		c.add("tier", `use tier = "process"`, "unknown tier %q", t)
	}
}

func (c *checker) entry() {
	e := c.m.Entry
	buildFix := "run `airlock build DIR` or `sha256sum " + cmp.Or(e.Program, "PROGRAM") + "` and set sha256 under [entry]"
	switch {
	case e.Program == "":
		c.add("entry.program", `add program = "bin/plugin" under [entry]`, "required")
	case filepath.IsAbs(e.Program) || strings.HasPrefix(e.Program, "/"):
		c.add("entry.program", `give the path relative to the plugin folder, such as "bin/plugin"`, "%q is absolute", e.Program)
	case slices.Contains(strings.Split(filepath.ToSlash(e.Program), "/"), ".."):
		c.add("entry.program", "keep the program inside the plugin folder", "%q leaves the plugin folder", e.Program)
	case c.m.Dir != "":
		c.program(e.Program)
	}
	for i, a := range e.Args {
		if strings.ContainsRune(a, 0) {
			c.add(elem("entry.args", i), "remove the NUL byte", "argument contains a NUL byte")
		}
	}
	switch h := e.SHA256; {
	case h == "":
		c.add("entry.sha256", buildFix, "required")
	case sha256RE.MatchString(strings.ToLower(h)) && !sha256RE.MatchString(h):
		c.add("entry.sha256", fmt.Sprintf("write sha256 = %q", strings.ToLower(h)), "must be lowercase hex")
	case !sha256RE.MatchString(h):
		c.add("entry.sha256", buildFix, "must be 64 lowercase hex digits, got %d characters", len(h))
	}
}

// program checks that the entry program is an executable file inside Dir.
func (c *checker) program(prog string) {
	const field = "entry.program"
	path := filepath.Join(c.m.Dir, prog)
	fi, err := os.Stat(path)
	switch {
	case err != nil && c.m.Build != nil:
		c.add(field, "run `airlock build "+c.m.Dir+"`, or correct the path", "%s does not exist", path)
		return
	case err != nil:
		c.add(field, "correct the path, or build the program", "%s does not exist", path)
		return
	case !fi.Mode().IsRegular():
		c.add(field, "point program at the executable file", "%s is not a regular file", path)
		return
	case fi.Mode().Perm()&0o111 == 0:
		c.add(field, "chmod +x "+path, "%s is not executable", path)
	}
	if !linkBelow(c.m.Dir, prog) {
		return // prog has no ".." (see entry), so without a link it stays inside
	}
	resolved, err1 := filepath.EvalSymlinks(path)
	root, err2 := filepath.EvalSymlinks(c.m.Dir)
	if err1 == nil && err2 == nil && !strings.HasPrefix(resolved, root+string(filepath.Separator)) {
		c.add(field, "copy the program into the plugin folder instead of linking to it", "%s resolves to %s, outside the plugin folder", path, resolved)
	}
}

// linkBelow reports whether a component of the relative path prog, below
// dir, is a symbolic link (or cannot be checked). Resolving every link of
// both paths, as EvalSymlinks does, costs a system call per component of
// each, which was a fifth of a Load; this needs one per component of prog.
func linkBelow(dir, prog string) bool {
	p := dir
	for _, part := range strings.Split(filepath.ToSlash(prog), "/") {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			return true
		}
	}
	return false
}

func (c *checker) build() {
	b := c.m.Build
	if b == nil {
		return
	}
	if len(b.Command) == 0 {
		c.add("build.command", "write "+exampleBuildCommand, "must not be empty")
	}
	for i, a := range b.Command {
		switch {
		case a == "":
			c.add(elem("build.command", i), "remove the empty argument", "argument is empty")
		case strings.ContainsRune(a, 0):
			c.add(elem("build.command", i), "remove the NUL byte", "argument contains a NUL byte")
		}
	}
}

func (c *checker) functions() {
	if len(c.m.Functions) == 0 {
		c.add("functions", "add a [functions.NAME] table for each function the plugin exports", "at least one function is required")
	}
	for _, name := range c.m.FunctionNames() {
		field := child("functions", name)
		if !functionNameRE.MatchString(name) {
			c.add(field, "use 1 to 64 lowercase letters, digits, '_', '.' and '-', starting with a letter", "%q is not a valid function name", name)
		}
		f := c.d.Functions[name]
		c.positive(child(field, "timeout"), time.Duration(f.Timeout))
		for _, s := range []struct {
			key  string
			size Size
		}{{"max_input", f.MaxInput}, {"max_output", f.MaxOutput}} {
			switch {
			case s.size <= 0:
				c.add(child(field, s.key), "write a size such as \"1MiB\"", "must be greater than 0, got %d", s.size)
			case s.size > maxPayload:
				c.add(child(field, s.key), `use at most "64MiB"; stream larger data through a capability`, "%s is larger than the 64MiB limit", s.size)
			}
		}
		c.rate(child(field, "rate"), f.Rate)
		c.nonNegative(child(field, "burst"), f.Burst)
	}
}

func (c *checker) limits() {
	l := c.d.Limits
	field := func(k string) string { return child("limits", k) }
	if l.MaxConcurrency < 1 || l.MaxConcurrency > maxConcurrency {
		c.add(field("max_concurrency"), "use a value from 1 to 4096", "%d is out of range", l.MaxConcurrency)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"startup_timeout", l.StartupTimeout},
		{"negotiate_timeout", l.NegotiateTimeout},
		{"shutdown_timeout", l.ShutdownTimeout},
		{"heartbeat_timeout", l.HeartbeatTimeout},
		{"cancel_grace", l.CancelGrace},
	} {
		c.positive(field(d.key), time.Duration(d.v))
	}
	if time.Duration(l.HeartbeatInterval) < minHeartbeat {
		c.add(field("heartbeat_interval"), `use at least "10ms"`, "%s is too short", l.HeartbeatInterval)
	} else if l.HeartbeatTimeout > 0 && l.HeartbeatTimeout <= l.HeartbeatInterval {
		f := field("heartbeat_timeout")
		if !c.m.src.present(f) {
			f = field("heartbeat_interval")
		}
		c.add(f, "make heartbeat_timeout a few times heartbeat_interval",
			"heartbeat_timeout (%s) must be longer than heartbeat_interval (%s)", l.HeartbeatTimeout, l.HeartbeatInterval)
	}
	c.rate(field("rate"), l.Rate)
	c.nonNegative(field("burst"), l.Burst)
	c.rate(field("log_rate"), l.LogRate)
	c.nonNegative(field("log_burst"), l.LogBurst)
	if l.Memory < minMemory {
		c.add(field("memory"), `use at least "16MiB"`, "%s is too small for a process", l.Memory)
	}
	if !(l.CPU > 0 && l.CPU <= maxCPU) {
		c.add(field("cpu"), "use a number of cores greater than 0 and at most 1024, such as 0.5 or 2", "%v is out of range", l.CPU)
	}
	if time.Duration(l.CPUTime) < minCPUTime {
		c.add(field("cpu_time"), `use at least "1s" (the kernel counts CPU time in seconds)`, "%s is too short", l.CPUTime)
	}
	if l.Tasks < minTasks || l.Tasks > maxTasks {
		c.add(field("tasks"), "use a value from 8 to 65536; a Go program needs several threads to start", "%d is out of range", l.Tasks)
	}
	if l.OpenFiles < minOpenFiles || l.OpenFiles > maxOpenFiles {
		c.add(field("open_files"), "use a value from 16 to 1048576", "%d is out of range", l.OpenFiles)
	}
	if l.Disk < minDisk {
		c.add(field("disk"), `use at least "1MiB"`, "%s is too small", l.Disk)
	}
}

func (c *checker) restart() {
	r := c.d.Restart
	field := func(k string) string { return child("restart", k) }
	if r.Policy != RestartNever && r.Policy != RestartOnFailure {
		c.add(field("policy"), `use policy = "on-failure" or "never"`, "unknown policy %q", r.Policy)
	}
	c.nonNegative(field("max_restarts"), r.MaxRestarts)
	c.positive(field("backoff_initial"), time.Duration(r.BackoffInitial))
	c.positive(field("backoff_max"), time.Duration(r.BackoffMax))
	c.positive(field("reset_after"), time.Duration(r.ResetAfter))
	if r.BackoffInitial > r.BackoffMax {
		f := field("backoff_initial")
		if !c.m.src.present(f) {
			f = field("backoff_max")
		}
		c.add(f, "make backoff_initial no longer than backoff_max",
			"backoff_initial (%s) is longer than backoff_max (%s)", r.BackoffInitial, r.BackoffMax)
	}
}

func (c *checker) sandbox() {
	s := c.m.Sandbox
	known := Protections()
	for i, name := range s.Require {
		f := elem("sandbox.require", i)
		switch {
		case !slices.Contains(known, name):
			c.add(f, "use one of: "+strings.Join(known, ", "), "unknown protection %q", name)
		case slices.Index(s.Require, name) < i:
			c.add(f, "remove the duplicate", "%q is listed twice", name)
		}
	}
	for _, list := range []struct {
		key   string
		paths []string
	}{{"read_paths", s.ReadPaths}, {"write_paths", s.WritePaths}} {
		for i, p := range list.paths {
			f := elem(child("sandbox", list.key), i)
			switch {
			case !filepath.IsAbs(p):
				c.add(f, "give an absolute host path such as /srv/data", "%q is not absolute", p)
			case filepath.Clean(p) != p:
				c.add(f, fmt.Sprintf("write %q", filepath.Clean(p)), "%q is not a clean path", p)
			}
		}
	}
}

func (c *checker) capabilities() {
	for _, name := range slices.Sorted(maps.Keys(c.m.Capabilities)) {
		field := child("capabilities", name)
		if !capabilityRE.MatchString(name) {
			c.add(field, "use lowercase letters, digits, '_', '.' and '-', starting with a letter", "%q is not a valid capability name", name)
			continue
		}
		r := c.d.Capabilities[name]
		c.capabilityScope(name, field, r)
		c.rate(child(field, "rate"), r.Rate)
		c.nonNegative(child(field, "burst"), r.Burst)
		for _, s := range []struct {
			key  string
			size Size
		}{{"budget", r.Budget}, {"max_response", r.MaxResponse}, {"max_file", r.MaxFile}, {"quota", r.Quota}} {
			if s.size < 0 {
				c.add(child(field, s.key), `write a size such as "1MiB"`, "must not be negative, got %d", s.size)
			}
		}
		if r.Timeout < 0 {
			c.add(child(field, "timeout"), `write a duration such as "10s"`, "must not be negative, got %s", r.Timeout)
		}
		for i, h := range r.Hosts {
			if problem, fix := checkHost(h); problem != "" {
				c.add(elem(child(field, "hosts"), i), fix, "%q %s", h, problem)
			}
		}
		for i, m := range r.Methods {
			f := elem(child(field, "methods"), i)
			switch {
			case slices.Contains(httpMethods(), m):
			case slices.Contains(httpMethods(), strings.ToUpper(m)):
				c.add(f, fmt.Sprintf("write %q", strings.ToUpper(m)), "method %q must be upper-case", m)
			default:
				c.add(f, "use "+strings.Join(httpMethods(), ", "), "unknown HTTP method %q", m)
			}
		}
		for i, p := range r.Paths {
			f := elem(child(field, "paths"), i)
			switch {
			case p == "" || filepath.IsAbs(p):
				c.add(f, `give a path relative to the plugin's data folder, such as "cache"`, "%q is not a relative path", p)
			case slices.Contains(strings.Split(p, "/"), ".."):
				c.add(f, `give a path inside the plugin's data folder, such as "cache"`, "%q leaves the data folder", p)
			case filepath.Clean(p) != p:
				c.add(f, fmt.Sprintf("write %q", filepath.Clean(p)), "%q is not a clean path", p)
			}
		}
		for i, k := range r.Keys {
			if k == "" {
				c.add(elem(child(field, "keys"), i), "remove the empty key", "empty config key")
			}
		}
	}
}

// capabilityScope reports keys that capability name does not take.
func (c *checker) capabilityScope(name, field string, r CapabilityRequest) {
	scope, builtin := capabilityKeys(name)
	allowed := append([]string{"rate", "burst", "budget"}, scope...)
	v := reflect.ValueOf(r)
	for i := range v.NumField() {
		key := tomlKey(v.Type().Field(i))
		f := child(field, key)
		if slices.Contains(allowed, key) || (v.Field(i).IsZero() && !c.m.src.present(f)) {
			continue
		}
		if builtin {
			c.add(f, "remove it; "+name+" takes "+strings.Join(allowed, ", "), "the %s capability does not take %s", name, key)
		} else {
			c.add(f, "remove it, or put it in scope; capabilities that are not built in take rate, burst, budget and scope",
				"%q is not a built-in capability, so it does not take %s", name, key)
		}
	}
}

// checkHost returns what is wrong with an http host pattern and the fix, or
// "" if it is a host name or "*." and a domain.
func checkHost(h string) (problem, fix string) {
	suggest := func() string {
		s := strings.ToLower(h)
		if _, after, ok := strings.Cut(s, "://"); ok {
			s = after
		}
		s, _, _ = strings.Cut(s, "/")
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			s = s[:i]
		}
		if isHostName(strings.TrimPrefix(s, "*.")) {
			return fmt.Sprintf("write %q", s)
		}
		return `write a host name such as "api.example.com" or "*.example.com"`
	}
	switch {
	case strings.Contains(h, "://"):
		return "is a URL, not a host name", suggest()
	case strings.Contains(h, "/"):
		return "has a path; hosts are names only", suggest()
	case strings.Contains(h, ":"):
		return "has a port; hosts are names only", suggest()
	case strings.ToLower(h) != h:
		return "must be lowercase", suggest()
	case strings.Contains(strings.TrimPrefix(h, "*."), "*"):
		return `has a wildcard; only a leading "*." is allowed`, `write "*.example.com"`
	case !isHostName(strings.TrimPrefix(h, "*.")):
		return "is not a host name", suggest()
	}
	return "", ""
}

// isHostName reports whether s is dot-separated labels of lowercase letters,
// digits and inner hyphens.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// explicitZeros reports keys the file sets to zero or "": a zero field means
// "use the default", so writing one is almost always a mistake (a timeout
// of "0s" would silently become 30s).
func (c *checker) explicitZeros() {
	if c.m.src == nil {
		return
	}
	for _, z := range c.m.src.zeros {
		def, ok := lookup(reflect.ValueOf(c.d).Elem(), z.keys)
		msg := "must not be 0"
		if ok && def.Kind() == reflect.String {
			msg = "must not be empty"
		}
		switch {
		case ok && !def.IsZero():
			c.add(z.field, fmt.Sprintf("remove the key to use the default (%s)", formatValue(def)), "%s", msg)
		case ok && def.Type() == reflect.TypeFor[Rate]():
			c.add(z.field, "remove the key for no limit, or give a rate such as \"10/s\"", "%s", msg)
		default:
			c.add(z.field, "remove the key, or give a value greater than 0", "%s", msg)
		}
	}
}

// lookup follows TOML keys from v through structs, maps and pointers.
func lookup(v reflect.Value, keys []string) (reflect.Value, bool) {
	for _, k := range keys {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.Struct:
			i, ok := tomlFields(v.Type())[k]
			if !ok {
				return reflect.Value{}, false
			}
			v = v.Field(i)
		case reflect.Map:
			v = v.MapIndex(reflect.ValueOf(k))
			if !v.IsValid() {
				return reflect.Value{}, false
			}
		default:
			return reflect.Value{}, false
		}
	}
	return v, true
}

func formatValue(v reflect.Value) string {
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	if v.Kind() == reflect.String {
		return fmt.Sprintf("%q", v.String())
	}
	return fmt.Sprint(v.Interface())
}

// positive reports a duration that is not greater than zero.
func (c *checker) positive(field string, d time.Duration) {
	if d <= 0 {
		c.add(field, `write a duration such as "5s"`, "must be greater than 0, got %s", d)
	}
}

func (c *checker) nonNegative(field string, n int) {
	if n < 0 {
		c.add(field, "use 0 or more", "must not be negative, got %d", n)
	}
}

func (c *checker) rate(field string, r Rate) {
	if r.Count < 0 || r.Per < 0 || math.IsNaN(r.Count) || math.IsInf(r.Count, 0) {
		c.add(field, `write a rate such as "10/s"`, "must be a finite rate of 0 or more, got %s", r)
	}
}
