package cgroup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Layout is where the cgroup hierarchies are mounted.
type Layout struct {
	// V1 maps a v1 controller to the mount point of its hierarchy.
	V1 map[string]string
	// V2 is the unified hierarchy's mount point, or "".
	V2 string
	// V2Controllers are the controllers the unified root offers.
	V2Controllers map[string]bool
}

// Detect reads /proc/self/mountinfo.
func Detect() (Layout, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Layout{}, fmt.Errorf("detect cgroups: %w", err)
	}
	return parseMountinfo(data)
}

func parseMountinfo(data []byte) (Layout, error) {
	l := Layout{V1: map[string]string{}, V2Controllers: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+3 > len(fields) {
			continue
		}
		mountpoint := unescapeOctal(fields[4])
		switch fields[sep+1] {
		case "cgroup2":
			if l.V2 == "" {
				l.V2 = mountpoint
			}
		case "cgroup":
			for _, opt := range strings.Split(fields[sep+3], ",") {
				switch opt {
				case Memory, Pids, CPU, Freezer:
					if _, dup := l.V1[opt]; !dup {
						l.V1[opt] = mountpoint
					}
				}
			}
		}
	}
	if l.V2 != "" {
		if b, err := os.ReadFile(filepath.Join(l.V2, "cgroup.controllers")); err == nil {
			for _, c := range strings.Fields(string(b)) {
				l.V2Controllers[c] = true
			}
		}
	}
	if l.V2 == "" && len(l.V1) == 0 {
		return l, ErrNotFound
	}
	return l, nil
}

// unescapeOctal undoes mountinfo's \040-style escapes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Group is one plugin's control groups across hierarchies. Its methods
// are safe for concurrent use; Remove is idempotent. Every method but
// Name, V2Dir and Remove first makes the v1 groups if Begin left them to
// be made (see Ready).
type Group struct {
	mu   sync.Mutex // guards v1 and v2, which Remove empties
	name string
	v1   map[string]string // controller → group directory (co-mounted controllers share one)
	v2   string            // group directory in the unified hierarchy, or ""
	// via records which version limits each controller ("v1", "v2") or why
	// it does not ("" with a reason in missing).
	via     map[string]string
	missing map[string]string
	kill    string // "cgroup.kill", "v2 freeze", "v1 freezer", or ""
	// bornInV2: the group's process was born in the v2 group (guarded by mu).
	bornInV2 bool

	// The v1 groups are made once, by the first call of Ready (every
	// method calls it); createV1 writes the fields above without the lock.
	once   sync.Once
	layout Layout
	parent string
	lim    Limits
	err    error // no hierarchy accepted the group
}

func newGroup(name string) *Group {
	return &Group{name: name, v1: map[string]string{}, via: map[string]string{}, missing: map[string]string{}}
}

// Create makes the group parent/name in every hierarchy it can use and
// writes lim. A controller it cannot use is recorded (see Missing), not an
// error; Create fails only when it can create no group at all.
func Create(l Layout, parent, name string, lim Limits) (*Group, error) {
	g, err := Begin(l, parent, name, lim)
	if err != nil {
		return nil, err
	}
	if err := g.Ready(); err != nil {
		return nil, err
	}
	return g, nil
}

// Begin is Create in two steps, for a caller with something to do in
// between: it makes the group's v2 directory, so that a child can be born
// into it (V2Dir), and leaves the v1 directories and their limits (a
// memory cgroup's mkdir alone costs ~50 µs) to Ready, which fails where
// Create would have. The sandbox calls Ready while the launcher it just
// started boots, instead of before the clone. (Making them in the
// background during the clone does not help: a CLONE_INTO_CGROUP clone
// waits for the kernel's cgroup mutex, which every cgroup mkdir holds.)
func Begin(l Layout, parent, name string, lim Limits) (*Group, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("create cgroup: invalid group name %q", name)
	}
	parent = strings.Trim(filepath.Clean("/"+parent), "/")
	g := newGroup(name)
	if l.V2 != "" {
		dir := filepath.Join(l.V2, parent, name)
		if err := g.createV2(l, parent, dir, lim); err != nil {
			g.missing["v2"] = err.Error()
		} else {
			g.v2 = dir
		}
	}
	g.layout, g.parent, g.lim = l, parent, lim
	return g, nil
}

// Ready makes the v1 groups, the first time it is called, and reports
// whether the group exists: it fails when no hierarchy accepted it (the
// group then has no directory).
func (g *Group) Ready() error {
	g.once.Do(func() { g.err = g.createV1(g.layout, g.parent, g.lim) })
	return g.err
}

// createV1 makes the v1 groups and settles what the group offers. It runs
// once, inside Ready, before any other method reads the fields.
func (g *Group) createV1(l Layout, parent string, lim Limits) error {
	ok := g.v2 != ""
	// With cgroup.kill the v1 freezer is not needed, and each v1 hierarchy
	// a process joins costs a migration (an RCU grace period).
	hasKill := g.v2 != "" && exists(filepath.Join(g.v2, "cgroup.kill"))
	made := map[string]string{} // mount point → dir
	for _, ctl := range []string{Memory, Pids, CPU, Freezer} {
		mp, found := l.V1[ctl]
		if !found || ctl == Freezer && hasKill {
			continue
		}
		dir, done := made[mp]
		if !done {
			dir = filepath.Join(mp, parent, g.name)
			if err := mkdirGroup(dir); err != nil {
				g.missing[ctl] = fmt.Sprintf("create %s: %v", dir, err)
				continue
			}
			made[mp] = dir
		}
		g.v1[ctl] = dir
		ok = true
		if err := writeV1Limit(dir, ctl, lim); err != nil {
			g.missing[ctl] = err.Error()
			continue
		}
		if ctl != Freezer {
			g.via[ctl] = "v1"
			delete(g.missing, ctl)
		}
	}
	if !ok { // no directory was made, so there is nothing to remove
		return fmt.Errorf("create cgroup %s: no hierarchy accepted it: %s", g.name, g.describeMissing())
	}
	for _, ctl := range []string{Memory, Pids, CPU} {
		if g.via[ctl] == "" && g.missing[ctl] == "" {
			g.missing[ctl] = "no mounted hierarchy offers the " + ctl + " controller"
		}
	}
	switch {
	case hasKill:
		g.kill = "cgroup.kill"
	case g.v1[Freezer] != "":
		g.kill = "v1 freezer"
	case g.v2 != "" && exists(filepath.Join(g.v2, "cgroup.freeze")):
		g.kill = "v2 freeze"
	default:
		g.missing["kill"] = "neither cgroup.kill (Linux 5.14+, cgroup v2) nor a freezer is available"
	}
	return nil
}

func (g *Group) createV2(l Layout, parent, dir string, lim Limits) error {
	want := map[string]bool{}
	if lim.Memory > 0 && l.V2Controllers[Memory] && l.V1[Memory] == "" {
		want[Memory] = true
	}
	if lim.Tasks > 0 && l.V2Controllers[Pids] && l.V1[Pids] == "" {
		want[Pids] = true
	}
	if lim.CPU > 0 && l.V2Controllers[CPU] && l.V1[CPU] == "" {
		want[CPU] = true
	}
	if err := os.MkdirAll(filepath.Join(l.V2, parent), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(l.V2, parent), err)
	}
	// Controllers must be enabled in every ancestor's subtree_control.
	if len(want) > 0 {
		var enable []string
		for c := range want {
			enable = append(enable, "+"+c)
		}
		slices.Sort(enable)
		ancestors := []string{l.V2}
		if parent != "" {
			at := l.V2
			for _, part := range strings.Split(parent, "/") {
				at = filepath.Join(at, part)
				ancestors = append(ancestors, at)
			}
		}
		for _, at := range ancestors {
			if err := writeFile(filepath.Join(at, "cgroup.subtree_control"), strings.Join(enable, " ")); err != nil {
				for c := range want {
					g.missing[c] = fmt.Sprintf("enable %s in %s: %v", c, at, err)
					delete(want, c)
				}
				break
			}
		}
	}
	if err := mkdirGroup(dir); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	set := func(ctl, file, value string) {
		if !want[ctl] {
			return
		}
		if err := writeFile(filepath.Join(dir, file), value); err != nil {
			g.missing[ctl] = err.Error()
			want[ctl] = false
		}
	}
	set(Memory, "memory.max", strconv.FormatInt(lim.Memory, 10))
	if exists(filepath.Join(dir, "memory.swap.max")) {
		set(Memory, "memory.swap.max", "0")
	}
	// One OOM kill takes the whole group, not just the biggest task.
	set(Memory, "memory.oom.group", "1")
	set(Pids, "pids.max", strconv.Itoa(lim.Tasks))
	set(CPU, "cpu.max", fmt.Sprintf("%d %d", cpuQuota(lim.CPU), cpuPeriod))
	for c, ok := range want {
		if ok {
			g.via[c] = "v2"
		}
	}
	return nil
}

const cpuPeriod = 100000 // µs

func cpuQuota(cores float64) int64 {
	q := int64(math.Round(cores * cpuPeriod))
	if q < 1000 {
		q = 1000 // the kernel's minimum quota is 1 ms
	}
	return q
}

func writeV1Limit(dir, ctl string, lim Limits) error {
	switch ctl {
	case Memory:
		if lim.Memory <= 0 {
			return errors.New("no memory limit requested")
		}
		v := strconv.FormatInt(lim.Memory, 10)
		if err := writeFile(filepath.Join(dir, "memory.limit_in_bytes"), v); err != nil {
			return err
		}
		// memsw must be set after the memory limit (it may not be below it),
		// and exists only when swap accounting is on.
		if p := filepath.Join(dir, "memory.memsw.limit_in_bytes"); exists(p) {
			if err := writeFile(p, v); err != nil {
				return err
			}
		}
	case Pids:
		if lim.Tasks <= 0 {
			return errors.New("no task limit requested")
		}
		return writeFile(filepath.Join(dir, "pids.max"), strconv.Itoa(lim.Tasks))
	case CPU:
		if lim.CPU <= 0 {
			return errors.New("no CPU limit requested")
		}
		if err := writeFile(filepath.Join(dir, "cpu.cfs_period_us"), strconv.Itoa(cpuPeriod)); err != nil {
			return err
		}
		return writeFile(filepath.Join(dir, "cpu.cfs_quota_us"), strconv.FormatInt(cpuQuota(lim.CPU), 10))
	}
	return nil
}

// Limited reports whether the controller (Memory, Pids, CPU) limits the
// group, and through which version.
func (g *Group) Limited(ctl string) (bool, string) {
	_ = g.Ready()
	v := g.via[ctl]
	return v != "", v
}

// KillMethod is how Kill reaches every task ("cgroup.kill", "v1 freezer",
// "v2 freeze"), or "" when it cannot.
func (g *Group) KillMethod() string {
	_ = g.Ready()
	return g.kill
}

// Missing returns why a controller or feature is not in use, by name
// (Memory, Pids, CPU, "kill", "v2").
func (g *Group) Missing() map[string]string {
	_ = g.Ready()
	m := make(map[string]string, len(g.missing))
	for k, v := range g.missing {
		m[k] = v
	}
	return m
}

func (g *Group) describeMissing() string {
	var parts []string
	for k, v := range g.missing {
		parts = append(parts, k+": "+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// V2Dir returns the group's directory in the unified hierarchy, or "". A
// child is born there with SysProcAttr.UseCgroupFD.
func (g *Group) V2Dir() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.v2
}

// Dirs returns every directory of the group.
func (g *Group) Dirs() []string {
	_ = g.Ready()
	return g.dirs()
}

// dirs is Dirs without waiting for the group to be made.
func (g *Group) dirs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var dirs []string
	if g.v2 != "" {
		dirs = append(dirs, g.v2)
	}
	for _, d := range g.v1 {
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	return dirs
}

// Place moves pid (all its threads) into the group's v1 hierarchies, and
// into the v2 group too unless inV2 says it was born there.
func (g *Group) Place(pid int, inV2 bool) error {
	v2 := g.V2Dir()
	for _, dir := range g.Dirs() {
		if dir == v2 && inV2 {
			continue
		}
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("place process %d: %w", pid, err)
		}
	}
	if inV2 && v2 != "" {
		g.mu.Lock()
		g.bornInV2 = true
		g.mu.Unlock()
	}
	return nil
}

// Procs returns the pids in any of the group's hierarchies. When the
// group's process was born in its v2 group (Place with inV2), every task
// of its tree is there, whatever else it joined, and only that group is
// read.
func (g *Group) Procs() ([]int, error) {
	var pids []int
	var errs []error
	dirs := g.Dirs()
	g.mu.Lock()
	if g.bornInV2 && g.v2 != "" {
		dirs = []string{g.v2}
	}
	g.mu.Unlock()
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return pids, errors.Join(errs...)
}

// Kill sends SIGKILL to every task in the group, including tasks forked
// while it runs: cgroup.kill does that in the kernel; the freezers stop the
// group first so nothing can fork between listing and killing.
func (g *Group) Kill() error {
	_ = g.Ready()
	g.mu.Lock()
	v2, freezer := g.v2, g.v1[Freezer]
	g.mu.Unlock()
	switch {
	case g.kill == "cgroup.kill" && v2 != "":
		err := writeFile(filepath.Join(v2, "cgroup.kill"), "1")
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("kill cgroup %s: %w", g.name, err)
	case g.kill == "v1 freezer" && freezer != "":
		return g.freezeKill(filepath.Join(freezer, "freezer.state"), "FROZEN", "THAWED")
	case g.kill == "v2 freeze" && v2 != "":
		return g.freezeKill(filepath.Join(v2, "cgroup.freeze"), "1", "0")
	}
	// Without a freezer a task may fork between listing and killing; loop
	// until the group is empty or stops shrinking.
	for range 100 {
		pids, err := g.Procs()
		if err != nil || len(pids) == 0 {
			return err
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	return fmt.Errorf("kill cgroup %s: tasks keep appearing and no freezer is available", g.name)
}

func (g *Group) freezeKill(file, freeze, thaw string) error {
	if err := writeFile(file, freeze); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("freeze cgroup %s: %w", g.name, err)
	}
	// v1 reports FREEZING until every task stopped.
	if strings.HasSuffix(file, "freezer.state") {
		for range 1000 {
			b, err := os.ReadFile(file)
			if err != nil || strings.TrimSpace(string(b)) == "FROZEN" {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	pids, err := g.Procs()
	for _, pid := range pids {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	if terr := writeFile(file, thaw); terr != nil && !errors.Is(terr, fs.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("thaw cgroup %s: %w", g.name, terr))
	}
	return err
}

// Stats reads the group's counters. A counter the kernel does not keep
// reads as zero.
func (g *Group) Stats() Stats {
	_ = g.Ready()
	g.mu.Lock()
	defer g.mu.Unlock()
	var s Stats
	switch g.via[Memory] {
	case "v1":
		dir := g.v1[Memory]
		s.OOMKills = readKey(filepath.Join(dir, "memory.oom_control"), "oom_kill")
		s.MemoryPeak = readInt(filepath.Join(dir, "memory.max_usage_in_bytes"))
	case "v2":
		s.OOMKills = readKey(filepath.Join(g.v2, "memory.events"), "oom_kill")
		s.MemoryPeak = readInt(filepath.Join(g.v2, "memory.peak"))
	}
	switch g.via[Pids] {
	case "v1":
		s.PidsMax = readKey(filepath.Join(g.v1[Pids], "pids.events"), "max")
	case "v2":
		s.PidsMax = readKey(filepath.Join(g.v2, "pids.events"), "max")
	}
	switch g.via[CPU] {
	case "v1":
		s.CPUThrottled = readKey(filepath.Join(g.v1[CPU], "cpu.stat"), "nr_throttled")
	case "v2":
		s.CPUThrottled = readKey(filepath.Join(g.v2, "cpu.stat"), "nr_throttled")
	}
	return s
}

// OOMNotifier returns a non-blocking eventfd that becomes readable each
// time the v1 memory controller hits the group's limit, or nil when the
// memory limit is not v1 (v2 groups set memory.oom.group instead, so the
// kernel kills the whole group itself). The caller closes it.
func (g *Group) OOMNotifier() (*os.File, error) {
	_ = g.Ready()
	g.mu.Lock()
	dir := g.v1[Memory]
	g.mu.Unlock()
	if g.via[Memory] != "v1" || dir == "" {
		return nil, nil
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch OOM of %s: %w", g.name, os.NewSyscallError("eventfd", err))
	}
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("watch OOM of %s: %w", g.name, err)
	}
	defer ctl.Close() // the registration holds its own reference
	if err := writeFile(filepath.Join(dir, "cgroup.event_control"), fmt.Sprintf("%d %d", efd, ctl.Fd())); err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("watch OOM of %s: %w", g.name, err)
	}
	return os.NewFile(uintptr(efd), "oom-"+g.name), nil
}

// Remove kills what is left in the group, waits for it to empty, and
// removes its directories. It gives up when ctx ends, leaving the group in
// place and saying so. Removing a removed group does nothing.
func (g *Group) Remove(ctx context.Context) error {
	// v1 groups not made yet never will be: there is nothing of them to remove.
	g.once.Do(func() {})
	if len(g.Dirs()) == 0 {
		return nil
	}
	var last error
	for delay, first := 50*time.Microsecond, true; ; delay, first = min(2*delay, 20*time.Millisecond), false {
		// Usually the tree is gone already: try rmdir first, and only kill
		// (and look) when a group is still busy.
		if !first {
			if pids, _ := g.Procs(); len(pids) > 0 {
				_ = g.Kill()
			}
		}
		last = nil
		for _, dir := range g.Dirs() {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				// The shared parent stays, empty: removing it after the
				// last group and creating it again for the next cost
				// about 0.2 ms per plugin start (a memory cgroup mkdir
				// alone is ~50 µs).
				g.forget(dir)
				continue
			}
			last = &fs.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			pids, _ := g.Procs()
			return fmt.Errorf("remove cgroup %s (tasks left: %v): %w", g.name, pids, errors.Join(last, ctx.Err()))
		case <-time.After(delay):
		}
	}
}

func (g *Group) forget(dir string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.v2 == dir {
		g.v2 = ""
	}
	for c, d := range g.v1 {
		if d == dir {
			delete(g.v1, c)
		}
	}
}

// Sweep removes groups under parent whose owning host process is gone (see
// Name), killing whatever still runs in them, and returns their names. A
// group whose owner pid is alive, or reused by another process, is left
// alone.
func Sweep(ctx context.Context, l Layout, parent string) ([]string, error) {
	parent = strings.Trim(filepath.Clean("/"+parent), "/")
	roots := []string{}
	if l.V2 != "" {
		roots = append(roots, l.V2)
	}
	for _, mp := range l.V1 {
		if !slices.Contains(roots, mp) {
			roots = append(roots, mp)
		}
	}
	stale := map[string]bool{}
	for _, root := range roots {
		entries, err := os.ReadDir(filepath.Join(root, parent))
		if err != nil {
			continue
		}
		for _, e := range entries {
			pid, ok := ownerPID(e.Name())
			if !e.IsDir() || !ok {
				continue
			}
			if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
				stale[e.Name()] = true
			}
		}
	}
	var removed []string
	var errs []error
	for name := range stale {
		g := newGroup(name)
		g.once.Do(func() {}) // made already
		if l.V2 != "" && exists(filepath.Join(l.V2, parent, name)) {
			g.v2 = filepath.Join(l.V2, parent, name)
		}
		for ctl, mp := range l.V1 {
			if d := filepath.Join(mp, parent, name); exists(d) {
				g.v1[ctl] = d
			}
		}
		switch {
		case g.v2 != "" && exists(filepath.Join(g.v2, "cgroup.kill")):
			g.kill = "cgroup.kill"
		case g.v1[Freezer] != "":
			g.kill = "v1 freezer"
		}
		if err := g.Remove(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	slices.Sort(removed)
	return removed, errors.Join(errs...)
}

// mkdirGroup creates dir and its parents. Another host's Remove may take
// the shared parent away between the two steps, so it retries.
func mkdirGroup(dir string) error {
	var err error
	for range 3 {
		if err = os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		if err = os.Mkdir(dir, 0o755); !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// readKey reads "key value" lines and returns value for key.
func readKey(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
