package airlock_test

// The host-level hostile suite: each attack of the catalogue
// (internal/testing/attack), run from inside a real plugin
// (internal/testing/hostile) loaded into a real, sandboxed Host, next to a
// bystander plugin (examples/echo) that is called in a loop throughout.
// Every test asserts, as far as it applies:
//
//	(a) the attack failed the expected way (errno, signal, limit);
//	(b) the host is unharmed (not traced, not stopped, still answering);
//	(c) the bystander answered every call (its latency is logged);
//	(d) calls pending in the attacker got a typed error where it died;
//	(e) the host recorded it (Status, structured log);
//	(f) nothing survived Close: no process of the plugin's host uids, no
//	    cgroup of its instances.
//
// The sandbox package tests the same attacks against the sandbox alone
// (internal/sandbox/hostile_test.go); docs/security.md maps each attack to
// both.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testing/attack"
	"github.com/airlockhq/airlock/internal/testing/fixture"
)

// hostileManifest is the attacker's airlock.toml: small limits, so that
// each is hit within a second or two. Its parameters are the name, the
// entry's args, sandbox.require and sandbox.write_paths.
const hostileManifest = `
name = %q
version = "1.0.0"

[entry]
program = "plugin"
args = [%s]
sha256 = "$SHA256"

[functions.attack]
timeout = "20s"
max_output = "1MiB"
[functions.start]
[functions.hold]
timeout = "60s"
[functions.exit]

[limits]
memory = "64MiB"
tasks = 32
cpu = 1.0
cpu_time = "2s"
open_files = 64
disk = "8MiB"
max_concurrency = 16
startup_timeout = "10s"
heartbeat_interval = "200ms"
heartbeat_timeout = "3s"
cancel_grace = "500ms"
shutdown_timeout = "2s"
log_rate = "50/s"
log_burst = 50

[restart]
policy = "on-failure"
max_restarts = 5
backoff_initial = "10ms"
backoff_max = "50ms"

[sandbox]
require = [%s]
write_paths = [%s]
`

// Limits of hostileManifest the tests check against.
const (
	hostileMemoryMiB = 64
	hostileTasks     = 32
	hostileOpenFiles = 64
	hostileDisk      = 8 << 20
)

// hostileRequest is the input of the hostile plugin's attack and start.
type hostileRequest struct {
	Mode string   `json:"mode"`
	Args []string `json:"args"`
}

// baseNeeds are the protections every hostile test relies on: an own uid
// and pid namespace (so that "the plugin's processes" can be told apart
// from the host's) and a whole-tree kill.
var baseNeeds = []airlock.Protection{"userns", "pidns", "cgroup_kill"}

// doctor runs airlock.Doctor once per test binary.
var doctor = sync.OnceValue(func() []airlock.Mechanism { return airlock.Doctor(context.Background()) })

// needProtections skips t unless the host runs as root (the uid pool and
// cgroups need it) and this machine offers every protection named.
func needProtections(t *testing.T, names ...airlock.Protection) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the hostile suite needs a root host: a uid per plugin and cgroups")
	}
	for _, m := range doctor() {
		if slices.Contains(names, m.Name) && !m.Available {
			t.Skipf("airlock doctor: %s is unavailable on this machine: %s", m.Name, m.Reason)
		}
	}
}

// hostileOpts describes one hostile run.
type hostileOpts struct {
	// needs are the protections the expected outcome relies on, beyond
	// baseNeeds. The attacker's manifest requires them, so it does not run
	// at all without them.
	needs []airlock.Protection
	// startup is an attack the plugin starts at start-up (-attack).
	startup string
	// write are host directories granted to the plugin for writing.
	write []string
	// layout adds files to the attacker's folder before it is loaded.
	layout func(t *testing.T, dir string)
	// noAttacker loads only the bystander.
	noAttacker bool
}

// hostileRun is one attacker and one bystander in one host.
type hostileRun struct {
	t    *testing.T
	name string // the attacker's plugin name
	dir  string // its folder
	h    *airlock.Host
	sink *logSink
	p    *airlock.Plugin // the attacker
	by   *bystander

	closeOnce sync.Once
}

// startHostile loads the bystander, starts calling it, then loads the
// attacker for mode. Everything is closed and checked for survivors when
// the test ends, or earlier by close.
func startHostile(t *testing.T, mode string, o hostileOpts) *hostileRun {
	t.Helper()
	needs := append(slices.Clone(baseNeeds), o.needs...)
	needProtections(t, needs...)
	r := &hostileRun{t: t, name: "hostile-" + mode, sink: &logSink{}}
	cfg := airlock.NewHostConfig().WithLogger(slog.New(r.sink.handler())).WithPaths(nil, o.write)
	h, err := airlock.NewHostWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.h = h
	t.Cleanup(r.close)

	by, err := h.Load(context.Background(), fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/examples/echo"), echoManifest))
	if err != nil {
		t.Fatalf("load the bystander: %v", err)
	}
	assertVisible(t, r.sink, by)
	r.by = startBystander(t, by)
	if o.noAttacker {
		return r
	}

	var args []string
	if o.startup != "" {
		args = append(args, "-attack="+o.startup)
	}
	r.dir = fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/internal/testing/hostile"),
		fmt.Sprintf(hostileManifest, r.name, quoteAll(args), quoteAll(needs), quoteAll(o.write)))
	if o.layout != nil {
		o.layout(t, r.dir)
	}
	p, err := h.Load(context.Background(), r.dir)
	if err != nil {
		t.Fatalf("load the attacker: %v", err)
	}
	r.p = p
	assertVisible(t, r.sink, p)
	return r
}

// assertVisible checks that the survivor checks would see p's running
// instance: its uid runs its pid, and its cgroup has the expected name.
func assertVisible(t *testing.T, sink *logSink, p *airlock.Plugin) {
	t.Helper()
	st := p.Status()
	i := slices.IndexFunc(instancesSeen(sink), func(in instanceSeen) bool { return in.instance == st.Instance })
	if i < 0 {
		t.Fatalf("the host's log does not record the start of %s", st.Instance)
	}
	in := instancesSeen(sink)[i]
	if !slices.Contains(fixture.PIDsOfUID(in.uid), st.PID) {
		t.Fatalf("pid %d of %s does not run as the uid %d the log records", st.PID, in.instance, in.uid)
	}
	prefix := cgroupName(in.plugin, in.instance)
	if len(cgroupsMatching(func(n string) bool { return strings.HasPrefix(n, prefix) })) == 0 {
		t.Fatalf("no cgroup named %s*: the survivor check would miss a leftover", prefix)
	}
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// attack runs mode inside a call to the attacker.
func (r *hostileRun) attack(mode string, args ...string) (attack.Result, error) {
	return airlock.CallJSON[attack.Result](context.Background(), r.p, "attack", hostileRequest{Mode: mode, Args: args})
}

// mustAttack runs mode and fails the test if the call itself failed.
func (r *hostileRun) mustAttack(mode string, args ...string) attack.Result {
	r.t.Helper()
	res, err := r.attack(mode, args...)
	if err != nil {
		r.t.Fatalf("attack %s: the call failed: %v", mode, err)
	}
	r.t.Logf("attack %s: %+v", mode, res)
	return res
}

// start starts mode in the attacker's background, outside any call.
func (r *hostileRun) start(mode string, args ...string) {
	r.t.Helper()
	if _, err := airlock.CallJSON[string](context.Background(), r.p, "start", hostileRequest{Mode: mode, Args: args}); err != nil {
		r.t.Fatalf("start %s: %v", mode, err)
	}
}

// hold starts n calls that stay pending until the attacker dies (or the
// test ends) and waits until they are in flight. Their errors arrive on
// the channel.
func (r *hostileRun) hold(n int) <-chan error {
	r.t.Helper()
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := r.p.Call(context.Background(), "hold", nil)
			errs <- err
		}()
	}
	waitFor(r.t, "the held calls to be in flight", func() bool { return r.p.Status().InFlight >= n })
	return errs
}

// answers checks the attacker serves calls again (after a restart, if the
// attack ended it).
func (r *hostileRun) answers() {
	r.t.Helper()
	if res, err := r.attack("true"); err != nil || res.Mode != "true" {
		r.t.Fatalf("the attacker does not answer after the attack: %+v, %v", res, err)
	}
}

// close stops the bystander (failing the test if any of its calls
// failed), checks the host is unharmed, closes the host and checks that
// nothing of the attacker or the bystander survived.
func (r *hostileRun) close() {
	r.closeOnce.Do(func() {
		t := r.t
		if r.by != nil {
			r.by.stop(t)
		}
		assertHostUnharmed(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r.h.Close(ctx)
		assertNothingSurvived(t, r.sink, bootTime())
	})
}

// bystander calls an echo plugin in a loop and records each call's latency.
// It answers once before the loop starts and once after it stops, so every
// attack happens between two of its calls however short the attack is.
type bystander struct {
	pid  int // its process, which must not change
	stop func(t *testing.T)
}

func startBystander(t *testing.T, p *airlock.Plugin) *bystander {
	t.Helper()
	b := &bystander{pid: p.Status().PID}
	var (
		lat  []time.Duration
		errs []error
	)
	call := func(i int) {
		in := "bystander " + strconv.Itoa(i)
		start := time.Now()
		out, err := p.Call(context.Background(), "echo", []byte(in))
		d := time.Since(start)
		if err == nil && string(out) != in {
			err = fmt.Errorf("echo(%q) = %q", in, out)
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			lat = append(lat, d)
		}
	}
	if call(0); len(errs) > 0 {
		t.Fatalf("the bystander does not answer before the attack: %v", errs[0])
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			call(i)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	b.stop = func(t *testing.T) {
		close(quit)
		<-done
		call(-1)
		slices.Sort(lat)
		pct := func(q float64) time.Duration {
			if len(lat) == 0 {
				return 0
			}
			return lat[min(len(lat)-1, int(q*float64(len(lat))))]
		}
		t.Logf("bystander: %d calls answered, %d failed; latency p50 %v, p99 %v, max %v",
			len(lat), len(errs), pct(0.5), pct(0.99), pct(1))
		for i, err := range errs {
			if i == 5 {
				t.Errorf("… and %d more bystander failures", len(errs)-5)
				break
			}
			t.Errorf("the bystander's call failed during the attack: %v", err)
		}
		if pid := p.Status().PID; pid != b.pid {
			t.Errorf("the bystander was restarted during the attack (pid %d, then %d): %s", b.pid, pid, p.Status().LastExit)
		}
	}
	return b
}

// assertHostUnharmed checks this process (the host) is not traced, not
// stopped, and still answers a load-free question.
func assertHostUnharmed(t *testing.T) {
	t.Helper()
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if v := statusField(string(st), "TracerPid"); v != "0" {
		t.Errorf("the host is traced by pid %s", v)
	}
	if v := statusField(string(st), "State"); strings.Contains(v, "stopped") || strings.Contains(v, "tracing") {
		t.Errorf("the host's state is %q", v)
	}
}

// threadStatuses reads /proc/<pid>/task/*/status as the host sees it, by
// thread id; a thread that ends meanwhile is left out.
func threadStatuses(t *testing.T, pid int) map[string]string {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(tasks))
	for _, task := range tasks {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name())); err == nil {
			out[task.Name()] = string(b)
		}
	}
	return out
}

func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// instanceSeen is one sandboxed process the host started, from its log.
type instanceSeen struct {
	plugin, instance string
	uid              int
}

// instancesSeen lists every sandboxed instance the host's log recorded.
func instancesSeen(sink *logSink) []instanceSeen {
	sink.mu.Lock()
	defer sink.mu.Unlock()
	var out []instanceSeen
	for _, r := range sink.records {
		if !strings.HasPrefix(r.Message, "sandbox: started") {
			continue
		}
		var in instanceSeen
		in.uid = -1
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "plugin":
				in.plugin = a.Value.String()
			case "instance":
				in.instance = a.Value.String()
			case "uid":
				in.uid = int(a.Value.Int64())
			}
			return true
		})
		out = append(out, in)
	}
	return out
}

// cgroupRoots are where Airlock's cgroups live, per hierarchy.
var cgroupRoots = []string{
	"/sys/fs/cgroup/unified/airlock", "/sys/fs/cgroup/airlock",
	"/sys/fs/cgroup/memory/airlock", "/sys/fs/cgroup/pids/airlock", "/sys/fs/cgroup/cpu/airlock",
	"/sys/fs/cgroup/cpu,cpuacct/airlock", "/sys/fs/cgroup/freezer/airlock",
}

// cgroupsMatching returns the Airlock cgroup directories whose name
// satisfies match.
func cgroupsMatching(match func(name string) bool) []string {
	var out []string
	for _, root := range cgroupRoots {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if e.IsDir() && match(e.Name()) {
				out = append(out, filepath.Join(root, e.Name()))
			}
		}
	}
	return out
}

// cgroupName is the start of the cgroup name of one instance (the
// sandbox's cgroup.Name: plugin.instance.hostpid.token, each part cleaned).
func cgroupName(plugin, instance string) string {
	clean := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				b[i] = '_'
			}
		}
		return string(b[:min(len(b), 48)])
	}
	return clean(plugin) + "." + clean(instance) + "." + strconv.Itoa(os.Getpid()) + "."
}

// assertNothingSurvived checks that no process runs as the host uid of any
// instance the host started (counting only processes started before
// closedAt, so a uid handed to another host's plugin since is not
// mistaken for a survivor), and that no cgroup of those instances is left.
func assertNothingSurvived(t *testing.T, sink *logSink, closedAt time.Duration) {
	t.Helper()
	seen := instancesSeen(sink)
	if len(seen) == 0 {
		t.Error("the host's log recorded no sandboxed instance: cannot check for survivors")
	}
	uids := map[int]string{}
	for _, in := range seen {
		if other, ok := uids[in.uid]; ok {
			t.Errorf("instances %s and %s shared host uid %d", other, in.instance, in.uid)
		}
		uids[in.uid] = in.instance
		if in.uid <= 0 || in.uid == os.Geteuid() {
			t.Errorf("instance %s ran as host uid %d: want an unprivileged uid of its own", in.instance, in.uid)
			continue
		}
		prefix := cgroupName(in.plugin, in.instance)
		for _, pid := range fixture.PIDsOfUID(in.uid) {
			if started, ok := processStart(pid); ok && started < closedAt && !inOtherInstance(pid, prefix) {
				t.Errorf("process %d of %s (uid %d) survived Close: %s", pid, in.instance, in.uid, processComm(pid))
			}
		}
		for _, d := range cgroupsMatching(func(n string) bool { return strings.HasPrefix(n, prefix) }) {
			t.Errorf("cgroup %s of %s survived Close", d, in.instance)
		}
	}
}

// inOtherInstance reports whether pid sits in the cgroup of an Airlock
// instance other than the one whose cgroup names start with prefix. Once
// an instance ends, its uid goes back to the machine-wide pool, and another
// host (another test binary of the same "go test ./...") may hand it to a
// plugin of its own: the uid alone cannot tell that plugin from a survivor,
// its cgroup can. A process in no Airlock cgroup counts as ours.
func inOtherInstance(pid int, prefix string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	other := false
	for _, line := range strings.Split(string(b), "\n") {
		_, path, ok := strings.Cut(line, ":/") // "4:memory:/airlock/NAME", "0::/airlock/NAME"
		if i := strings.LastIndex(path, "airlock/"); ok && i >= 0 {
			name, _, _ := strings.Cut(path[i+len("airlock/"):], "/")
			if strings.HasPrefix(name, prefix) {
				return false
			}
			other = true
		}
	}
	return other
}

// processStart returns when pid started, as time since boot.
func processStart(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, false
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64) // starttime, field 22
	if err != nil {
		return 0, false
	}
	return time.Duration(ticks) * (time.Second / 100), true
}

func processComm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// bootTime is the time since boot now.
func bootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 1<<63 - 1
	}
	return time.Duration(ts.Nano())
}

// wantErrno checks an attack that should have been stopped with one of
// errnos got nowhere.
func wantErrno(t *testing.T, res attack.Result, errnos ...string) {
	t.Helper()
	if res.Count != 0 {
		t.Errorf("the attack got through: count %d, %s", res.Count, res.Detail)
	}
	if !slices.Contains(errnos, res.Errno) {
		t.Errorf("the attack failed with %q (%s), want one of %v", res.Errno, res.Err, errnos)
	}
}

// wantLimitKill checks err is the typed error of a call whose plugin a
// limit of its envelope killed.
func wantLimitKill(t *testing.T, err error, limit string) {
	t.Helper()
	var ce *airlock.CallError
	var ee *airlock.ExitError
	if !errors.Is(err, airlock.ErrLimitExceeded) || !errors.As(err, &ce) || ce.Code != airlock.CodeLimitExceeded || !errors.As(err, &ee) {
		t.Fatalf("got %v, want a *CallError with CodeLimitExceeded wrapping an *ExitError", err)
	}
	if ee.Limit != limit || ee.Signal != "SIGKILL" || ee.PID == 0 {
		t.Errorf("exit details %+v, want SIGKILL at the %s limit", ee, limit)
	}
}

// wantExited checks err is the typed error of a call whose plugin died.
func wantExited(t *testing.T, err error) *airlock.ExitError {
	t.Helper()
	var ce *airlock.CallError
	var ee *airlock.ExitError
	if !errors.Is(err, airlock.ErrExited) || !errors.As(err, &ce) || !errors.As(err, &ee) {
		t.Fatalf("got %v, want a *CallError wrapping an *ExitError", err)
	}
	return ee
}

// wantViolation checks Status and the log recorded a limit violation.
func (r *hostileRun) wantViolation(limit string) {
	r.t.Helper()
	// The callers learn of the exit first; the supervisor records it a
	// moment later.
	waitFor(r.t, "the "+limit+" violation in Status", func() bool { return r.p.Status().Violations[limit] >= 1 })
	st := r.p.Status()
	if st.Crashes < 1 {
		r.t.Errorf("Status: Violations %v, Crashes %d; want the crash counted with the %s violation", st.Violations, st.Crashes, limit)
	}
	if !strings.Contains(st.LastExit, limit) {
		r.t.Errorf("Status.LastExit %q does not name the %s limit", st.LastExit, limit)
	}
	waitFor(r.t, "a log record of the "+limit+" violation", func() bool {
		_, ok := r.sink.find("plugin hit a limit of its envelope", "plugin", r.name, "limit", limit)
		return ok
	})
}

// hasOutput reports whether a line of plugin's output containing text
// reached the log.
func (s *logSink) hasOutput(plugin, text string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.records {
		if r.Message != "plugin output" {
			continue
		}
		var ok, found bool
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "plugin":
				ok = ok || a.Value.String() == plugin
			case "line":
				found = strings.Contains(a.Value.String(), text)
			}
			return true
		})
		if ok && found {
			return true
		}
	}
	return false
}

// countExact counts the records whose message is msg.
func (s *logSink) countExact(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.records {
		if r.Message == msg {
			n++
		}
	}
	return n
}

func collectErrs(ch <-chan error, n int) []error {
	out := make([]error, 0, n)
	for range n {
		out = append(out, <-ch)
	}
	return out
}

func memoryNeeds() []airlock.Protection { return []airlock.Protection{"cgroup_memory"} }

func TestHostile_MemoryBalloon(t *testing.T) {
	r := startHostile(t, "memory-balloon", hostileOpts{needs: memoryNeeds()})
	held := r.hold(2)
	_, err := r.attack("memory-balloon", "1024")
	wantLimitKill(t, err, "memory")
	for _, err := range collectErrs(held, 2) {
		wantLimitKill(t, err, "memory")
	}
	r.wantViolation("memory")
	r.answers()
}

func TestHostile_ForkBomb(t *testing.T) {
	r := startHostile(t, "fork-bomb", hostileOpts{needs: []airlock.Protection{"cgroup_pids"}})
	res := r.mustAttack("fork-bomb")
	if res.Errno != "EAGAIN" || res.Count >= hostileTasks {
		t.Errorf("the fork bomb made %d processes and stopped with %q; want EAGAIN under %d tasks", res.Count, res.Errno, hostileTasks)
	}
	if st := r.p.Status(); st.TasksRefused < 1 {
		t.Errorf("Status.TasksRefused = %d, want the refused forks counted", st.TasksRefused)
	}
}

func TestHostile_ThreadBomb(t *testing.T) {
	r := startHostile(t, "thread-bomb", hostileOpts{needs: []airlock.Protection{"cgroup_pids"}})
	held := r.hold(1)
	res, err := r.attack("thread-bomb")
	if err == nil {
		t.Fatalf("the thread bomb started %d threads under a %d-task limit", res.Count, hostileTasks)
	}
	if ee := wantExited(t, err); ee.ExitCode != 2 || ee.Signal != "" {
		t.Errorf("exit status %d, signal %q; want the Go runtime's abort (status 2)", ee.ExitCode, ee.Signal)
	}
	wantExited(t, <-held)
	// The runtime says why first; the host logged it as plugin output.
	waitFor(t, "the runtime's complaint in the host's log", func() bool {
		return r.sink.hasOutput(r.name, "failed to create new OS thread")
	})
	r.answers()
	st := r.p.Status()
	if st.TasksRefused < 1 || st.Crashes < 1 {
		t.Errorf("Status: TasksRefused %d, Crashes %d; want the refused threads and the crash counted", st.TasksRefused, st.Crashes)
	}
	if _, ok := r.sink.find("plugin exited", "plugin", r.name); !ok {
		t.Error("no log record of the crash")
	}
}

func cpuNeeds() []airlock.Protection { return []airlock.Protection{"rlimits", "cgroup_cpu"} }

func TestHostile_CPUSpinInCall(t *testing.T) {
	t.Run("until its cpu_time limit", func(t *testing.T) {
		r := startHostile(t, "cpu-spin-in-call", hostileOpts{needs: cpuNeeds()})
		held := r.hold(1)
		_, err := r.attack("cpu-spin")
		wantLimitKill(t, err, "cpu_time")
		wantLimitKill(t, <-held, "cpu_time")
		r.wantViolation("cpu_time")
		if st := r.p.Status(); st.WatchdogKills != 0 {
			t.Errorf("WatchdogKills = %d: the CPU limit, not the watchdog, should have ended it", st.WatchdogKills)
		}
		r.answers()
	})
	t.Run("past its caller's deadline", func(t *testing.T) {
		// The caller gives up after 600 ms; the spinning handler ignores
		// the cancellation, so the watchdog kills the plugin cancel_grace
		// later, at about 1.2 s of CPU time: before its 2 s limit, but
		// past the 1 s the host once took for a sign of that limit.
		r := startHostile(t, "cpu-spin-past-deadline", hostileOpts{needs: cpuNeeds()})
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer cancel()
		_, err := airlock.CallJSON[attack.Result](ctx, r.p, "attack", hostileRequest{Mode: "cpu-spin"})
		var ce *airlock.CallError
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ce) || ce.Code != airlock.CodeDeadlineExceeded {
			t.Fatalf("got %v, want the caller's deadline", err)
		}
		waitFor(t, "the watchdog to kill the spinner and the plugin to restart", func() bool {
			st := r.p.Status()
			return st.WatchdogKills >= 1 && st.Crashes >= 1 && st.State == airlock.StateOperate
		})
		r.answers()
		st := r.p.Status()
		if st.Violations["cpu_time"] != 0 || !strings.Contains(st.LastExit, "watchdog") || strings.Contains(st.LastExit, "cpu_time") {
			t.Errorf("the watchdog's kill was recorded as Violations %v, LastExit %q; want a watchdog kill, not a cpu_time violation", st.Violations, st.LastExit)
		}
		if _, ok := r.sink.find("plugin hit a limit of its envelope", "plugin", r.name); ok {
			t.Error("the watchdog's kill was logged as a limit violation")
		}
	})
}

func TestHostile_CPUSpinOutsideCall(t *testing.T) {
	r := startHostile(t, "cpu-spin-outside-call", hostileOpts{needs: cpuNeeds()})
	r.start("cpu-spin")
	held := r.hold(1)
	wantLimitKill(t, <-held, "cpu_time")
	r.wantViolation("cpu_time")
	if st := r.p.Status(); st.WatchdogKills != 0 {
		t.Errorf("WatchdogKills = %d: a spinning plugin still answers heartbeats; its CPU limit should have ended it", st.WatchdogKills)
	}
	r.answers()
}

func TestHostile_FDExhaust(t *testing.T) {
	r := startHostile(t, "fd-exhaust", hostileOpts{needs: []airlock.Protection{"rlimits"}})
	res := r.mustAttack("fd-exhaust")
	if res.Errno != "EMFILE" || res.Count > hostileOpenFiles {
		t.Errorf("fd exhaustion opened %d descriptors and stopped with %q; want EMFILE within %d", res.Count, res.Errno, hostileOpenFiles)
	}
	r.answers()
}

func TestHostile_DiskFill(t *testing.T) {
	r := startHostile(t, "disk-fill", hostileOpts{needs: []airlock.Protection{"mountns", "rlimits"}})
	before, _ := filepath.Glob("/tmp/airlock-fill-*")
	res := r.mustAttack("disk-fill", "/tmp", "64")
	if (res.Errno != "ENOSPC" && res.Errno != "EFBIG") || res.Count > hostileDisk {
		t.Errorf("disk fill wrote %d bytes and stopped with %q; want ENOSPC or EFBIG within %d bytes", res.Count, res.Errno, hostileDisk)
	}
	if after, _ := filepath.Glob("/tmp/airlock-fill-*"); len(after) != len(before) {
		t.Errorf("the plugin's files reached the host's /tmp: %v", after)
	}
	r.answers()
}

func TestHostile_NetTCPLoopback(t *testing.T) {
	r := startHostile(t, "net-tcp-loopback", hostileOpts{needs: []airlock.Protection{"netns"}})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	res := r.mustAttack("net-tcp-loopback", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	wantErrno(t, res, "EACCES", "ENETUNREACH")
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("the host's loopback listener accepted a connection from the plugin")
	}
}

func TestHostile_NetTCPExternal(t *testing.T) {
	r := startHostile(t, "net-tcp-external", hostileOpts{needs: []airlock.Protection{"netns"}})
	wantErrno(t, r.mustAttack("net-tcp-external"), "EACCES", "ENETUNREACH")
}

func TestHostile_NetUDP(t *testing.T) {
	r := startHostile(t, "net-udp", hostileOpts{needs: []airlock.Protection{"netns"}})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	res := r.mustAttack("net-udp", strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
	wantErrno(t, res, "ENETUNREACH", "EACCES")
	pc.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := pc.ReadFrom(make([]byte, 64)); err == nil {
		t.Error("the host's UDP socket received a datagram from the plugin")
	}
}

func TestHostile_ReadShadow(t *testing.T) {
	r := startHostile(t, "read-shadow", hostileOpts{needs: []airlock.Protection{"mountns"}})
	wantErrno(t, r.mustAttack("read-shadow"), "ENOENT", "EACCES")
}

func TestHostile_ReadHostEnviron(t *testing.T) {
	r := startHostile(t, "read-host-environ", hostileOpts{needs: []airlock.Protection{"mountns"}})
	wantErrno(t, r.mustAttack("read-host-environ", strconv.Itoa(os.Getpid())), "ENOENT", "EACCES", "ESRCH")
}

// openDir makes a fresh host directory that anyone may write (and reach).
func openDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestHostile_WriteOutside(t *testing.T) {
	r := startHostile(t, "write-outside", hostileOpts{needs: []airlock.Protection{"mountns"}})
	target := filepath.Join(openDir(t), "escape.txt")
	wantErrno(t, r.mustAttack("write-outside", target), "ENOENT", "EACCES", "EROFS")
	if _, err := os.Stat(target); err == nil {
		t.Errorf("the plugin created %s on the host", target)
	}
}

func TestHostile_PathTraversal(t *testing.T) {
	var secret string
	r := startHostile(t, "path-traversal", hostileOpts{
		needs: []airlock.Protection{"mountns"},
		layout: func(t *testing.T, dir string) {
			secret = filepath.Join(filepath.Dir(dir), "secret.txt")
			if err := os.WriteFile(secret, []byte("sibling secret\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	})
	for _, path := range []string{"../secret.txt", "../../" + filepath.Base(filepath.Dir(r.dir)) + "/secret.txt", secret} {
		res, err := r.attack("path-traversal", path)
		if err != nil {
			t.Fatal(err)
		}
		wantErrno(t, res, "ENOENT", "EACCES")
	}
}

func TestHostile_SymlinkEscape(t *testing.T) {
	base := openDir(t)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(base, "secret.txt")
	if err := os.WriteFile(secret, []byte("host secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(base, "work")
	if err := os.Mkdir(work, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	r := startHostile(t, "symlink-escape", hostileOpts{needs: []airlock.Protection{"mountns"}, write: []string{work}})
	wantErrno(t, r.mustAttack("symlink-escape", work, secret), "ENOENT", "EACCES")
	if fi, err := os.Lstat(filepath.Join(work, "airlock-escape-link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the plugin could not even create its symlink in the granted directory (%v): the grant is broken", err)
	}
}

func TestHostile_SetuidExec(t *testing.T) {
	var suid string
	r := startHostile(t, "setuid-exec", hostileOpts{
		needs: []airlock.Protection{"no_new_privs"},
		layout: func(t *testing.T, dir string) {
			suid = filepath.Join(dir, "plugin-suid")
			b, err := os.ReadFile(filepath.Join(dir, "plugin"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(suid, b, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
				t.Fatal(err)
			}
		},
	})
	res := r.mustAttack("setuid-exec", suid)
	if res.Count != 0 || res.Err != "" {
		t.Errorf("exec of a setuid-root program: %+v, want it to run without gaining ids or capabilities", res)
	}
}

func seccompNeeds() []airlock.Protection { return []airlock.Protection{"seccomp", "no_new_privs"} }

func TestHostile_PtraceHost(t *testing.T) {
	r := startHostile(t, "ptrace-host", hostileOpts{needs: seccompNeeds()})
	wantErrno(t, r.mustAttack("ptrace-host", strconv.Itoa(os.Getpid())), "EPERM", "ESRCH")
	wantErrno(t, r.mustAttack("ptrace-host", strconv.Itoa(r.by.pid)), "EPERM", "ESRCH")
	assertHostUnharmed(t)
}

func TestHostile_PidfdGetfdHost(t *testing.T) {
	r := startHostile(t, "pidfd-getfd-host", hostileOpts{needs: seccompNeeds()})
	wantErrno(t, r.mustAttack("pidfd-getfd-host", strconv.Itoa(os.Getpid())), "ESRCH", "EPERM")
	wantErrno(t, r.mustAttack("pidfd-getfd-host", strconv.Itoa(r.by.pid)), "ESRCH", "EPERM")
}

func TestHostile_ProcessVMReadvHost(t *testing.T) {
	r := startHostile(t, "process-vm-readv-host", hostileOpts{needs: seccompNeeds()})
	wantErrno(t, r.mustAttack("process-vm-readv-host", strconv.Itoa(os.Getpid())), "EPERM", "ESRCH")
	wantErrno(t, r.mustAttack("process-vm-readv-host", strconv.Itoa(r.by.pid)), "EPERM", "ESRCH")
}

func TestHostile_KillHost(t *testing.T) {
	r := startHostile(t, "kill-host", hostileOpts{})
	wantErrno(t, r.mustAttack("kill-host", strconv.Itoa(os.Getpid())), "ESRCH", "EPERM")
	wantErrno(t, r.mustAttack("kill-host", strconv.Itoa(r.by.pid)), "ESRCH", "EPERM")
	if err := syscall.Kill(r.by.pid, 0); err != nil {
		t.Errorf("the bystander's process is gone: %v", err)
	}
}

func TestHostile_KillAll(t *testing.T) {
	r := startHostile(t, "kill-all", hostileOpts{})
	standIn := exec.Command("sleep", "3600")
	if err := standIn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		standIn.Process.Kill()
		standIn.Wait()
	}()
	attacker := r.p.Status().PID
	res := r.mustAttack("kill-all")
	if res.Err != "" && res.Errno != "ESRCH" {
		t.Errorf("kill(-1) failed with %s, want success or ESRCH inside its own namespace", res.Err)
	}
	for what, pid := range map[string]int{"the host's other child": standIn.Process.Pid, "the bystander": r.by.pid} {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("kill(-1) in a plugin reached %s (pid %d): %v", what, pid, err)
		}
	}
	if st := r.p.Status(); st.PID != attacker || st.Crashes != 0 {
		t.Errorf("the attacker itself was killed (pid %d, then %d; %s)", attacker, st.PID, st.LastExit)
	}
	r.answers()
}

func TestHostile_SetsidOrphan(t *testing.T) {
	r := startHostile(t, "setsid-orphan", hostileOpts{})
	res := r.mustAttack("setsid-orphan")
	if res.PID == 0 || res.Count != 1 {
		t.Fatalf("the orphan was not made: %+v", res)
	}
	uid := hostUID(t, r.p.Status().PID)
	tree := fixture.PIDsOfUID(uid)
	if len(tree) < 2 {
		t.Fatalf("processes of the plugin's uid %d: %v; want the plugin and its orphan", uid, tree)
	}
	// The plugin's main process exits: what it left must die with it,
	// before any Close.
	_, err := r.p.Call(context.Background(), "exit", []byte("3"))
	if ee := wantExited(t, err); ee.ExitCode != 3 {
		t.Errorf("exit status %d, want 3", ee.ExitCode)
	}
	waitFor(t, "the orphan to die with the plugin", func() bool {
		for _, pid := range tree {
			if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
				return false
			}
		}
		return true
	})
	// The restarted plugin leaves another orphan, for Close to find.
	if res := r.mustAttack("setsid-orphan"); res.PID == 0 {
		t.Fatalf("the second orphan was not made: %+v", res)
	}
}

func isZombie(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return err != nil || strings.HasPrefix(statusField(string(st), "State"), "Z")
}

// hostUID reads pid's real uid from the host's /proc.
func hostUID(t *testing.T, pid int) int {
	t.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(statusField(string(st), "Uid"))
	if len(f) == 0 {
		t.Fatalf("no Uid in /proc/%d/status", pid)
	}
	uid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// hostHelperEnv switches the test binary into TestHelperHostileHost.
const hostHelperEnv = "AIRLOCK_HOSTILE_HOST_DIR"

// TestHelperHostileHost is not a test: run with hostHelperEnv set, it is a
// host program for TestHostile_SurviveHostSIGKILL. It loads the plugin in
// that folder, has it leave an orphan, prints the plugin's pid and waits
// to be killed.
func TestHelperHostileHost(t *testing.T) {
	dir := os.Getenv(hostHelperEnv)
	if dir == "" {
		t.Skip("a helper process for TestHostile_SurviveHostSIGKILL, not a test")
	}
	ctx := context.Background()
	h, err := airlock.NewHostWithConfig(ctx, airlock.NewHostConfig().WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	p, err := h.Load(ctx, dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	res, err := airlock.CallJSON[attack.Result](ctx, p, "attack", hostileRequest{Mode: "setsid-orphan"})
	if err != nil || res.PID == 0 {
		fmt.Println("error: setsid-orphan:", res, err)
		os.Exit(1)
	}
	fmt.Printf("plugin %d\n", p.Status().PID)
	for {
		time.Sleep(time.Hour)
	}
}

func TestHostile_SurviveHostSIGKILL(t *testing.T) {
	// The test's own host holds the bystander, and loads the attacker
	// again after the other host died, which sweeps that host's cgroups.
	r := startHostile(t, "survive-host-sigkill", hostileOpts{noAttacker: true})
	dir := fixture.PluginDir(t, fixture.GoBinary(t, fixture.Module+"/internal/testing/hostile"),
		fmt.Sprintf(hostileManifest, "hostile-survive-host-sigkill", "", quoteAll(baseNeeds), ""))

	host := exec.Command(os.Args[0], "-test.run=^TestHelperHostileHost$", "-test.count=1")
	host.Env = append(os.Environ(), hostHelperEnv+"="+dir)
	host.Stderr = os.Stderr
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			host.Process.Kill()
			host.Wait()
		}
	}()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	var pid int
	select {
	case s := <-line:
		if _, err := fmt.Sscanf(s, "plugin %d", &pid); err != nil {
			t.Fatalf("the host program said %q", s)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the host program did not load its plugin within 60s")
	}
	uid := hostUID(t, pid)
	tree := fixture.PIDsOfUID(uid)
	if len(tree) < 2 {
		t.Fatalf("processes of the plugin's uid %d: %v; want the plugin and its orphan", uid, tree)
	}
	hostCgroup := func(n string) bool { return strings.Contains(n, "."+strconv.Itoa(host.Process.Pid)+".") }
	if cgs := cgroupsMatching(hostCgroup); len(cgs) == 0 {
		t.Fatal("the host program's plugin has no cgroup")
	}

	if err := host.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	host.Wait()
	killed = true
	waitFor(t, "the plugin and its orphan to die with their host", func() bool {
		for _, pid := range tree {
			if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
				return false
			}
		}
		return true
	})
	if left := fixture.PIDsOfUID(uid); len(left) > 0 {
		t.Errorf("processes of the dead host's plugin (uid %d) survived it: %v", uid, left)
	}

	// The next plugin this machine starts sweeps the dead host's cgroups.
	p, err := r.h.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	if cgs := cgroupsMatching(hostCgroup); len(cgs) > 0 {
		t.Errorf("the dead host's cgroups were not swept: %v", cgs)
	}
	r.answers()
}

func TestHostile_DangerousSyscalls(t *testing.T) {
	r := startHostile(t, "dangerous-syscalls", hostileOpts{needs: seccompNeeds()})
	pid := r.p.Status().PID
	res := r.mustAttack("try-syscalls")
	want := map[string]string{
		"clone3": "ENOSYS", "unknown-1023": "ENOSYS",
		"socket-netlink": "EAFNOSUPPORT", "socket-packet": "EAFNOSUPPORT",
	}
	for name := range res.Calls {
		if _, ok := want[name]; !ok {
			want[name] = "EPERM"
		}
	}
	if len(res.Calls) < 20 {
		t.Errorf("only %d syscalls were tried: %v", len(res.Calls), res.Calls)
	}
	for name, errno := range want {
		if got := res.Calls[name]; got != errno {
			t.Errorf("%s returned %s, want %s", name, got, errno)
		}
	}
	// A denied call is an error the plugin can handle, not its death.
	if st := r.p.Status(); st.PID != pid || st.Crashes != 0 || st.Violations["seccomp"] != 0 {
		t.Errorf("the denied calls ended the plugin: pid %d → %d, %s", pid, st.PID, st.LastExit)
	}
	r.answers()
}

// testFlood: a plugin flooding a stream from start-up is loaded, keeps
// answering, has its output dropped over budget (counted), and is killed
// by Close.
func testFlood(t *testing.T, mode string) {
	start := time.Now()
	r := startHostile(t, mode, hostileOpts{startup: mode})
	// 200,000 lines of 100 bytes: 20 MB through the host while the
	// bystander is called.
	waitFor(t, "the flood to be dropped over budget", func() bool { return r.p.Status().LogDropped >= 200_000 })
	waitFor(t, "a record of the dropped output", func() bool {
		_, ok := r.sink.find("plugin output over its log budget was dropped", "plugin", r.name)
		return ok
	})
	r.answers()
	r.by.stop(t) // stop the clock on the bystander before counting
	r.by = nil
	elapsed := time.Since(start)
	kept := r.sink.countExact("plugin output")
	// The budget is 50 lines a second with a burst of 50.
	if limit := 50 + int(50*elapsed.Seconds()) + 10; kept > limit {
		t.Errorf("%d output lines reached the log in %v; the budget allows %d", kept, elapsed, limit)
	}
	st := r.p.Status()
	t.Logf("after %v: LogDropped %d, %d lines kept", elapsed.Round(time.Millisecond), st.LogDropped, kept)
	if st.Crashes != 0 || st.WatchdogKills != 0 {
		t.Errorf("the flooder was killed before Close: %s", st.LastExit)
	}
	r.close()
	if st := r.p.Status(); st.State != airlock.StateStopped {
		t.Errorf("state after Close: %v", st.State)
	}
}

func TestHostile_StdoutFlood(t *testing.T) { testFlood(t, "stdout-flood") }
func TestHostile_StderrFlood(t *testing.T) { testFlood(t, "stderr-flood") }

func TestHostile_DevShmLeftover(t *testing.T) {
	r := startHostile(t, "dev-shm-leftover", hostileOpts{needs: []airlock.Protection{"mountns", "ipcns"}})
	name := fmt.Sprintf("airlock-leftover-%d", time.Now().UnixNano())
	key := 0x42000000 + int(time.Now().UnixNano()&0xffff)
	defer os.Remove("/dev/shm/" + name)
	res := r.mustAttack("dev-shm-leftover", name, strconv.Itoa(key))
	if res.Count != 0 {
		t.Errorf("the plugin wrote %d bytes to a /dev/shm", res.Count)
	}
	r.close()
	if _, err := os.Stat("/dev/shm/" + name); err == nil {
		t.Errorf("/dev/shm/%s outlived the plugin on the host", name)
	}
	shm, _ := os.ReadFile("/proc/sysvipc/shm")
	for _, line := range strings.Split(string(shm), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 && f[0] == strconv.Itoa(key) {
			t.Errorf("the plugin's System V segment (key %d) outlived it: %s", key, line)
		}
	}
}

func TestHostile_SeccompEveryThread(t *testing.T) {
	r := startHostile(t, "seccomp-every-thread", hostileOpts{needs: seccompNeeds()})
	// The inside view, with extra threads started for it.
	res := r.mustAttack("seccomp-status")
	if len(res.Threads) < 4 {
		t.Errorf("the plugin reported %d threads; want the runtime's and its own", len(res.Threads))
	}
	for _, th := range res.Threads {
		if th.Seccomp != "2" || th.NoNewPrivs != "1" || th.CapEff != "0000000000000000" {
			t.Errorf("thread %d (inside view): Seccomp %s, NoNewPrivs %s, CapEff %s", th.TID, th.Seccomp, th.NoNewPrivs, th.CapEff)
		}
	}
	// The host's view of every thread of the running plugin.
	pid := r.p.Status().PID
	uid := hostUID(t, pid)
	if uid == 0 || uid == os.Geteuid() || uid == 65534 {
		t.Errorf("the plugin runs as host uid %d: want an unprivileged uid of its own", uid)
	}
	threads := threadStatuses(t, pid)
	if len(threads) < 2 {
		t.Errorf("the host sees %d threads of the plugin", len(threads))
	}
	for tid, s := range threads {
		if statusField(s, "Seccomp") != "2" || statusField(s, "NoNewPrivs") != "1" || statusField(s, "CapEff") != "0000000000000000" {
			t.Errorf("host view of thread %s: Seccomp %q, NoNewPrivs %q, CapEff %q", tid,
				statusField(s, "Seccomp"), statusField(s, "NoNewPrivs"), statusField(s, "CapEff"))
		}
		for _, u := range strings.Fields(statusField(s, "Uid")) {
			if u != strconv.Itoa(uid) {
				t.Errorf("host view of thread %s: Uid %q, want %d everywhere", tid, statusField(s, "Uid"), uid)
				break
			}
		}
		if g := statusField(s, "Groups"); g != "" {
			t.Errorf("host view of thread %s: supplementary groups %q, want none", tid, g)
		}
	}
	if adj, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid)); err != nil || strings.TrimSpace(string(adj)) != "1000" {
		t.Errorf("oom_score_adj = %q (%v), want 1000", adj, err)
	}
}

// TestHostileSuite_Documented keeps docs/security.md's table and this file
// in step: every host-level hostile test is named there, and every test
// named there exists.
func TestHostileSuite_Documented(t *testing.T) {
	doc, err := os.ReadFile("docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	var tests []byte
	for _, pattern := range []string{"hostile_test.go", "internal/sandbox/*_test.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tests = append(tests, b...)
		}
	}
	self, err := os.ReadFile("hostile_test.go")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`\bTestHostile_[A-Za-z0-9]+`)
	for _, fn := range regexp.MustCompile(`(?m)^func (TestHostile_[A-Za-z0-9]+)\(`).FindAllSubmatch(self, -1) {
		if !strings.Contains(string(doc), "`"+string(fn[1])+"`") {
			t.Errorf("%s is not named in docs/security.md's attack table", fn[1])
		}
	}
	for _, n := range slices.Compact(slices.Sorted(slices.Values(name.FindAllString(string(doc), -1)))) {
		if !strings.Contains(string(tests), "func "+n+"(") {
			t.Errorf("docs/security.md names %s, which does not exist", n)
		}
	}
}
