package sandbox

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/airlockhq/airlock/internal/sandbox/launcher"

	"github.com/airlockhq/airlock/internal/sandbox/cgroup"
	"github.com/airlockhq/airlock/internal/sandbox/seccomp"
	"golang.org/x/sys/unix"
)

// Events are what the kernel and the sandbox recorded about a plugin's
// envelope since it started, for violation reports.
type Events struct {
	// OOMKills counts kills at the memory limit: by the kernel's OOM
	// killer, or by the sandbox when the memory cgroup reported it out of
	// memory (whichever counted more; the sandbox is often first).
	OOMKills     int64
	PidsMax      int64 // forks and clones refused at the task limit
	CPUThrottled int64 // CFS periods in which the plugin used up its CPU quota
	MemoryPeak   int64 // highest memory use seen, in bytes (0 when unknown)
	// TreeKills counts whole-tree kills the sandbox made on its own: after
	// an OOM kill, and when the plugin's main process exited leaving others.
	TreeKills int64
}

// Sandbox is one contained plugin process. Prepare makes it; the caller
// then starts the command, calls Started, and after Wait, Close. Its
// methods are safe for concurrent use.
type Sandbox struct {
	ctx  context.Context // Prepare's; bounds the launcher handshake in Started
	log  *slog.Logger
	spec Spec
	cmd  *exec.Cmd
	msg  launcher.Spec

	namespaces    map[string]string // protection → /proc/<pid>/ns file, requested at clone time
	machineReport Report            // what the machine offers, for the reasons of what is missing
	uid, gid      int
	ownUID        bool // the uid is this instance's alone (a pool uid)
	releaseID     func()

	sync      *os.File // host end of the sync socket
	childSync *os.File // launcher's end, closed once it started
	cgFD      *os.File // v2 group directory for CLONE_INTO_CGROUP, closed once it started
	group     *cgroup.Group
	sweep     *cgroup.Layout // where Started sweeps dead hosts' groups; nil: no sweep

	mu       sync.Mutex
	pid      int
	pidfd    *os.File // non-blocking pidfd of the plugin's main process
	oom      *os.File // v1 OOM eventfd
	applied  []string
	missing  map[string]string
	detail   map[string]string
	started  bool
	closed   bool
	final    *Events
	watchers sync.WaitGroup

	treeKills atomic.Int64
	ooms      atomic.Int64 // OOM notifications from a v1 memory cgroup

	// stamps time the launch: the host's steps in Prepare and Started, and
	// the launcher's from its report. Written only by Prepare and Started.
	stamps, launcherStamps []launcher.Stamp
}

// Prepare checks spec against this machine, creates the plugin's cgroups,
// and rewrites cmd so that it starts through the sandbox launcher: Path,
// Args and Env become the launcher's, a sync socket is appended to
// ExtraFiles, and SysProcAttr is replaced. The plugin's own argv and
// environment are taken from cmd.Args and cmd.Env (nil Env means an empty
// environment, never the host's). The caller then runs cmd.Start and
// Started.
//
// ctx bounds Prepare and the launcher handshake in Started.
//
// # Errors
//
// A required protection that this machine lacks gives an *UnavailableError
// (errors.Is(err, ErrUnavailable)) naming it and why; a malformed spec
// matches ErrInvalidSpec; an unknown name in Require matches
// ErrUnknownProtection.
func Prepare(ctx context.Context, cmd *exec.Cmd, spec Spec, logger *slog.Logger) (*Sandbox, error) {
	if cmd == nil {
		return nil, fmt.Errorf("%w: nil command", ErrInvalidSpec)
	}
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	var m machine
	if spec.Machine != nil {
		m = spec.Machine.m
	} else {
		m = detectMachine(spec.CgroupParent)
	}
	if err := checkRequire(spec.Require, m.report); err != nil {
		return nil, err
	}
	return prepare(ctx, cmd, spec, logger, launcher.ModeRun, m)
}

func prepare(ctx context.Context, cmd *exec.Cmd, spec Spec, logger *slog.Logger, mode launcher.Mode, m machine) (_ *Sandbox, err error) {
	t0 := launcher.Monotonic()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sandbox{ctx: ctx, log: logger.With("plugin", spec.Name, "instance", spec.Instance), spec: spec, cmd: cmd,
		namespaces: map[string]string{}, missing: map[string]string{}, detail: map[string]string{},
		stamps: make([]launcher.Stamp, 1, 40)}
	s.stamps[0] = launcher.Stamp{Stage: "prepare", At: t0}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	avail := func(name string) bool { return m.report.Get(name).Available }

	// Who the plugin runs as on the host.
	userns := avail(UserNS)
	switch {
	case !m.root:
		s.uid, s.gid = os.Geteuid(), os.Getegid()
	case spec.IDs != nil:
		id, release, err := spec.IDs.acquire()
		if err != nil {
			return nil, err
		}
		s.uid, s.gid, s.ownUID, s.releaseID = id, id, true, release
	default:
		s.uid, s.gid = overflowID, overflowID
	}

	// The plugin's program and the paths it sees.
	program := filepath.Join(spec.Dir, spec.Program)
	var grants []grant
	if mode == launcher.ModeRun {
		if err := checkProgram(spec.Dir, program, s.uid, s.gid); err != nil {
			return nil, err
		}
		dir, err := resolveGrant(spec.Dir, false)
		if err != nil {
			return nil, err
		}
		grants = append(grants, dir)
		for _, p := range spec.ReadPaths {
			g, err := resolveGrant(p, false)
			if err != nil {
				return nil, err
			}
			grants = append(grants, g)
		}
		for _, p := range spec.WritePaths {
			g, err := resolveGrant(p, true)
			if err != nil {
				return nil, err
			}
			grants = append(grants, g)
			if !writableBy(g.Source, s.uid, s.gid) {
				s.log.Warn("sandbox: a write path is not writable by the plugin's uid; writes will fail",
					"path", p, "uid", s.uid, "fix", "chown or chmod it, or give the plugin a fixed uid")
			}
		}
	}

	argv := cmd.Args
	if len(argv) == 0 {
		argv = []string{program}
	}
	env := cmd.Env
	if env == nil {
		env = []string{}
	}
	s.msg = launcher.Spec{Mode: mode, Path: program, Argv: argv, Env: env, Dir: spec.Dir,
		KeepFDs: 3 + len(cmd.ExtraFiles), Require: spec.Require}
	if mode == launcher.ModeProbe {
		s.msg.Path, s.msg.Argv, s.msg.Dir = "/proc/self/exe", []string{"probe"}, "/"
	}

	// Namespaces, requested at clone time.
	var cloneflags uintptr
	for _, ns := range []struct {
		name, file string
		flag       uintptr
	}{
		{UserNS, "user", syscall.CLONE_NEWUSER}, {PidNS, "pid", syscall.CLONE_NEWPID},
		{NetNS, "net", syscall.CLONE_NEWNET}, {MountNS, "mnt", syscall.CLONE_NEWNS},
		{IPCNS, "ipc", syscall.CLONE_NEWIPC}, {UTSNS, "uts", syscall.CLONE_NEWUTS},
	} {
		if avail(ns.name) {
			cloneflags |= ns.flag
			s.namespaces[ns.name] = ns.file
		} else {
			s.missing[ns.name] = m.report.Get(ns.name).Reason
		}
	}
	if cloneflags&syscall.CLONE_NEWUTS != 0 {
		s.msg.Hostname = hostname(spec.Name)
	}
	if cloneflags&syscall.CLONE_NEWNS != 0 {
		s.msg.Mounts = buildMounts(m.sys, grants, spec.Disk, cloneflags&syscall.CLONE_NEWPID != 0)
	}
	if !userns && m.root {
		s.msg.DropUID, s.msg.DropGID = s.uid, s.gid
	}
	if avail(Landlock) {
		s.msg.Landlock = buildLandlock(m.sys, grants)
	} else {
		s.missing[Landlock] = m.report.Get(Landlock).Reason
	}
	s.msg.NoNewPrivs = avail(NoNewPrivs)
	if !s.msg.NoNewPrivs {
		s.missing[NoNewPrivs] = m.report.Get(NoNewPrivs).Reason
	}
	if avail(Seccomp) && s.msg.NoNewPrivs {
		raw, err := pluginFilter()
		if err != nil {
			return nil, err
		}
		s.msg.Seccomp = raw
	} else if !avail(Seccomp) {
		s.missing[Seccomp] = m.report.Get(Seccomp).Reason
	} else {
		s.missing[Seccomp] = "needs no_new_privs, which is unavailable"
	}
	s.msg.Rlimits = []launcher.Rlimit{
		{Resource: unix.RLIMIT_NOFILE, Name: "RLIMIT_NOFILE", Value: uint64(spec.OpenFiles)},
		{Resource: unix.RLIMIT_FSIZE, Name: "RLIMIT_FSIZE", Value: uint64(spec.Disk)},
		{Resource: unix.RLIMIT_CORE, Name: "RLIMIT_CORE", Value: 0},
		{Resource: unix.RLIMIT_CPU, Name: "RLIMIT_CPU", Value: uint64(math.Ceil(spec.CPUTime.Seconds()))},
	}
	// RLIMIT_NPROC counts per uid, per user namespace since Linux 5.14: it
	// bounds this plugin alone only when the uid (or namespace) is its own.
	// It is the task limit's backstop; where pids.max applies it is set
	// looser, so that the cgroup refuses first and records the event.
	if s.ownUID || userns && kernelAtLeast(5, 14) {
		nproc := uint64(spec.Tasks)
		if avail(CgroupPids) {
			nproc = 2*nproc + 16
		}
		s.msg.Rlimits = append(s.msg.Rlimits, launcher.Rlimit{Resource: unix.RLIMIT_NPROC, Name: "RLIMIT_NPROC", Value: nproc})
	}

	s.mark("spec built")
	// The launcher enforces Require for what it applies, but only for what
	// it is asked to apply.
	requested := map[string]bool{MountNS: s.msg.Mounts != nil, Landlock: s.msg.Landlock != nil,
		Seccomp: s.msg.Seccomp != nil, NoNewPrivs: s.msg.NoNewPrivs, Rlimits: s.msg.Rlimits != nil}
	for _, name := range spec.Require {
		if launcherSide(name) && !requested[name] {
			return nil, &UnavailableError{Protection: name,
				Reason: firstNonEmpty(s.missing[name], m.report.Get(name).Reason, "not available")}
		}
	}

	// Control groups: the v2 group now, for the launcher to be born into;
	// the v1 groups in the background while the clone runs (Started waits
	// for them before it places the launcher there).
	s.machineReport = m.report
	if mode == launcher.ModeRun && m.cgErr == nil && (avail(CgroupMemory) || avail(CgroupPids) || avail(CgroupCPU) || avail(CgroupKill)) {
		s.sweep = &m.cg // Started sweeps while it waits for the launcher
		token := make([]byte, 4)
		_, _ = rand.Read(token)
		name := cgroup.Name(spec.Name, spec.Instance, os.Getpid(), hex.EncodeToString(token))
		g, err := cgroup.Begin(m.cg, spec.CgroupParent, name,
			cgroup.Limits{Memory: spec.Memory, CPU: spec.CPU, Tasks: spec.Tasks})
		if err != nil {
			s.missing[CgroupKill] = err.Error()
		} else {
			s.group = g
			if dir := g.V2Dir(); dir != "" {
				f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err == nil {
					s.cgFD = f
				}
			}
		}
	}
	if s.group == nil {
		if err := s.settleCgroups(); err != nil {
			return nil, err
		}
	}

	s.mark("v2 cgroup created")
	// The sync socket. The host's end is non-blocking, so Started can
	// honour ctx; the launcher's end stays blocking.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create sandbox sync socket: %w", os.NewSyscallError("socketpair", err))
	}
	_ = unix.SetNonblock(fds[0], true)
	s.sync = os.NewFile(uintptr(fds[0]), "airlock-sandbox-sync")
	s.childSync = os.NewFile(uintptr(fds[1]), "airlock-sandbox-launcher-sync")

	attr := &syscall.SysProcAttr{
		Setsid:     true,            // no controlling terminal; also its own process group
		Pdeathsig:  syscall.SIGKILL, // with the pid namespace, the tree dies with the host
		Cloneflags: cloneflags,
	}
	if userns {
		// Root inside, the plugin's uid outside: the launcher needs its
		// capabilities inside the namespace for the mounts (a non-root uid
		// would lose them at its own exec), and drops every one of them,
		// bounding set included, before it execs the plugin.
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: s.uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: s.gid, Size: 1}}
		// A root host lets the child clear its supplementary groups (root's
		// group 0 would otherwise follow it); an unprivileged one must deny
		// setgroups to write the gid map at all.
		attr.GidMappingsEnableSetgroups = m.root
		// Switching to the mapped uid is what changes the host-side uid: a
		// new user namespace alone leaves the child at the host's uid 0.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}, NoSetGroups: !m.root}
	}
	if s.cgFD != nil {
		attr.UseCgroupFD = true
		attr.CgroupFD = int(s.cgFD.Fd())
	}
	cmd.Path = "/proc/self/exe"
	if spec.Launcher != "" {
		cmd.Path = spec.Launcher
	}
	syncFD := strconv.Itoa(3 + len(cmd.ExtraFiles))
	cmd.Args = []string{launcher.Arg0, syncFD}
	cmd.Env = []string{launcher.EnvVar + "=" + syncFD}
	cmd.Err = nil
	cmd.ExtraFiles = append(cmd.ExtraFiles, s.childSync)
	if mode == launcher.ModeRun && execByFD(spec.Exec) {
		// Above KeepFDs, like the sync socket: the launcher marks it
		// close-on-exec, and execveat still runs it.
		s.msg.ExecFD = 3 + len(cmd.ExtraFiles)
		cmd.ExtraFiles = append(cmd.ExtraFiles, spec.Exec)
	}
	cmd.SysProcAttr = attr
	if cmd.Dir == "" {
		cmd.Dir = spec.Dir
		if mode == launcher.ModeProbe {
			cmd.Dir = "/"
		}
	}
	s.mark("prepared")
	return s, nil
}

// mark stamps the end of one of the host's steps.
func (s *Sandbox) mark(stage string) {
	s.stamps = append(s.stamps, launcher.Stamp{Stage: stage, At: launcher.Monotonic()})
}

// timeline returns the launch's stamps, host's and launcher's, in order.
func (s *Sandbox) timeline() []launcher.Stamp {
	st := slices.Concat(s.stamps, s.launcherStamps)
	slices.SortStableFunc(st, func(a, b launcher.Stamp) int { return cmp.Compare(a.At, b.At) })
	return st
}

// describeTimeline is the timeline as "step +duration" pairs, for the Debug log.
func describeTimeline(st []launcher.Stamp) string {
	var b strings.Builder
	for i, x := range st {
		if i == 0 {
			continue
		}
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s +%dµs", x.Stage, (x.At-st[i-1].At)/1000)
	}
	return b.String()
}

// launcherSide reports whether the launcher applies (and enforces) the
// protection; the host verifies the others itself.
func launcherSide(name string) bool {
	switch name {
	case MountNS, Landlock, Seccomp, NoNewPrivs, Rlimits:
		return true
	}
	return false
}

// settleCgroups records how each cgroup protection is applied, or why
// not, once the group is made, and fails for a required one that is
// missing. Without a group it settles at once (in Prepare).
func (s *Sandbox) settleCgroups() error {
	var gerr error
	if s.group != nil {
		gerr = s.group.Ready()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if gerr != nil && s.missing[CgroupKill] == "" {
		s.missing[CgroupKill] = gerr.Error()
	}
	made := s.group != nil && gerr == nil
	for _, c := range []struct{ name, ctl string }{
		{CgroupMemory, cgroup.Memory}, {CgroupPids, cgroup.Pids}, {CgroupCPU, cgroup.CPU},
	} {
		if !made {
			if s.missing[c.name] == "" {
				s.missing[c.name] = firstNonEmpty(s.machineReport.Get(c.name).Reason, s.missing[CgroupKill], "no cgroup was created")
			}
			continue
		}
		if ok, via := s.group.Limited(c.ctl); ok {
			s.detail[c.name] = "cgroup " + via
		} else {
			s.missing[c.name] = s.group.Missing()[c.ctl]
		}
	}
	if made && s.group.KillMethod() != "" {
		s.detail[CgroupKill] = s.group.KillMethod()
	} else if s.missing[CgroupKill] == "" {
		s.missing[CgroupKill] = firstNonEmpty(s.machineReport.Get(CgroupKill).Reason, "no cgroup was created")
	}
	for _, name := range s.spec.Require {
		switch name {
		case CgroupMemory, CgroupPids, CgroupCPU, CgroupKill:
			if _, ok := s.detail[name]; !ok {
				return &UnavailableError{Protection: name, Reason: s.missing[name]}
			}
		}
	}
	return nil
}

// pluginFilter is the assembled seccomp filter. It depends on nothing but
// the binary, so it is built once per process.
var pluginFilter = sync.OnceValues(func() ([]byte, error) {
	prog, err := seccomp.Build()
	if err != nil {
		return nil, err
	}
	raw, err := seccomp.Assemble(prog)
	if err != nil {
		return nil, err
	}
	return seccomp.Encode(raw), nil
})

// Started finishes the host's part once cmd.Start returned: it places the
// launcher in its v1 cgroups, checks the namespaces it got, hands it the
// spec and waits until the plugin is exec'd. On error the launcher has
// been killed; the caller still Waits and Closes.
func (s *Sandbox) Started() error {
	if s.cmd.Process == nil {
		return errors.New("sandbox: Started called before the command started")
	}
	s.mark("started")
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("sandbox: Started called twice")
	}
	s.started = true
	s.pid = s.cmd.Process.Pid
	s.mu.Unlock()
	pid := s.pid
	s.childSync.Close()
	if s.cgFD != nil {
		s.cgFD.Close()
	}
	err := s.handshake(pid)
	if err != nil {
		_ = s.Kill()
		return err
	}
	return nil
}

func (s *Sandbox) handshake(pid int) error {
	// Hand over the spec first: the launcher builds the sandbox while the
	// host checks the namespaces and places it in its cgroups.
	stop := context.AfterFunc(s.ctx, func() { _ = s.sync.SetDeadline(time.Now()) })
	defer stop()
	if d, ok := s.ctx.Deadline(); ok {
		_ = s.sync.SetDeadline(d)
	}
	if _, err := s.sync.Write(launcher.Frame(s.msg.Encode())); err != nil {
		return s.launcherGone("send the launch spec", err)
	}
	s.mark("spec sent")

	applied := map[string]bool{}
	// The namespaces: compare the child's with ours.
	for name, file := range s.namespaces {
		if name == MountNS {
			// A new mount namespace alone is a copy of the host's tree; only
			// the launcher can say the private root is in place.
			continue
		}
		theirs, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, file))
		ours, err2 := os.Readlink("/proc/self/ns/" + file)
		switch {
		case err1 != nil || err2 != nil:
			s.setMissing(name, fmt.Sprintf("cannot read the namespace: %v", errors.Join(err1, err2)))
		case theirs == ours:
			s.setMissing(name, "the child shares the host's namespace")
		default:
			applied[name] = true
		}
	}
	s.mark("namespaces checked")
	// The uid the plugin holds on the host side.
	if applied[UserNS] {
		if uid, err := hostUID(pid); err != nil || uid != s.uid {
			delete(applied, UserNS)
			s.setMissing(UserNS, fmt.Sprintf("the launcher runs as host uid %d, not the mapped uid %d (%v)", uid, s.uid, err))
		}
	}
	s.mark("host uid checked")
	if err := s.settleCgroups(); err != nil {
		return err
	}
	s.mark("v1 cgroups ready")
	if s.group != nil {
		if err := s.group.Place(pid, s.cgFD != nil); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		for _, name := range []string{CgroupMemory, CgroupPids, CgroupCPU, CgroupKill} {
			if _, ok := s.detail[name]; ok {
				applied[name] = true
			}
		}
	}
	s.mark("cgroups placed")
	// If the machine runs out of memory, the kernel's OOM killer takes the
	// plugin before the host (children inherit the score).
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte("1000"), 0); err != nil {
		s.log.Warn("sandbox: cannot make the plugin the OOM killer's first choice", "err", err)
	}
	s.mark("oom_score_adj")
	s.startWatchers(pid)
	s.mark("watchers")

	// The host's part is decided: a required protection the host verifies
	// (namespaces, cgroups) that is missing means no exec at all.
	for _, name := range s.spec.Require {
		if !launcherSide(name) && !applied[name] {
			s.mu.Lock()
			why := s.missing[name]
			s.mu.Unlock()
			return &UnavailableError{Protection: name, Reason: firstNonEmpty(why, "not applied")}
		}
	}
	// Release the launcher now rather than after its report: it execs the
	// plugin as soon as it has built the sandbox, and itself refuses to if
	// a protection it applies is required and not in place (its report
	// then carries the error). Waiting for the report first cost a round
	// trip on every spawn.
	if s.msg.Mode == launcher.ModeRun {
		if _, err := s.sync.Write([]byte{launcher.GoAhead}); err != nil {
			// The launcher may have stopped already; its report says why.
			if rep, rerr := s.readReport(); rerr == nil && rep.Error != "" {
				s.launcherStamps = rep.Stamps
				return s.launchError(rep)
			}
			return s.launcherGone("release the launcher", err)
		}
		s.mark("go sent")
	}
	// Nothing is left to do but wait for the launcher: meanwhile, remove
	// what hosts that died left in the cgroup hierarchies.
	if s.sweep != nil {
		if _, err := cgroup.Sweep(s.ctx, *s.sweep, s.spec.CgroupParent); err != nil {
			s.log.Warn("sandbox: could not remove the cgroups of a dead host", "err", err)
		}
		s.mark("swept")
	}

	rep, err := s.readReport()
	if err != nil {
		return s.launcherGone("read the launcher's report", err)
	}
	s.mark("report read")
	s.launcherStamps = rep.Stamps
	if rep.Error != "" {
		return s.launchError(rep)
	}
	for _, name := range rep.Applied {
		applied[name] = true
	}
	for name, why := range rep.Missing {
		s.setMissing(name, why)
	}
	s.mu.Lock()
	s.applied = nil
	for _, name := range Protections() {
		if applied[name] {
			s.applied = append(s.applied, name)
			delete(s.missing, name)
		} else if s.missing[name] == "" {
			s.missing[name] = "not applied"
		}
	}
	for name, d := range rep.Detail {
		s.detail[name] = d
	}
	appliedCopy, missing := slices.Clone(s.applied), copyMap(s.missing)
	s.mu.Unlock()
	// A backstop: the launcher enforces its own part of Require (and
	// Prepare refused what it would not even attempt), so this finds
	// nothing; if it ever did, the caller kills what may have started.
	for _, name := range s.spec.Require {
		if !applied[name] {
			return &UnavailableError{Protection: name, Reason: missing[name]}
		}
	}

	if s.msg.Mode == launcher.ModeRun {
		// EOF means execve worked (the socket is close-on-exec).
		rep2, err := s.readReport()
		switch {
		case errors.Is(err, io.EOF):
		case err != nil:
			return s.launcherGone("wait for the plugin's exec", err)
		case rep2.Error != "":
			return s.launchError(rep2)
		}
		s.mark("exec'd")
	}
	if len(missing) > 0 {
		s.log.Warn("sandbox: started with protections missing", "pid", pid, "uid", s.uid,
			"applied", appliedCopy, "missing", missing)
	} else {
		s.log.Debug("sandbox: started", "pid", pid, "uid", s.uid, "applied", appliedCopy)
	}
	if s.log.Enabled(s.ctx, slog.LevelDebug) {
		s.log.Debug("sandbox: launch timeline", "pid", pid, "steps", describeTimeline(s.timeline()))
	}
	return nil
}

func (s *Sandbox) readReport() (launcher.Report, error) {
	var rep launcher.Report
	var hdr [4]byte
	if _, err := io.ReadFull(s.sync, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return rep, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 || n > launcher.MaxMessage {
		return rep, fmt.Errorf("report of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(s.sync, body); err != nil {
		return rep, err
	}
	if err := rep.Decode(body); err != nil {
		return rep, err
	}
	return rep, nil
}

func (s *Sandbox) launchError(rep launcher.Report) error {
	if rep.Protection != "" && slices.Contains(s.spec.Require, rep.Protection) {
		return &UnavailableError{Protection: rep.Protection, Reason: rep.Error}
	}
	return fmt.Errorf("sandbox launcher: %s", rep.Error)
}

func (s *Sandbox) launcherGone(what string, err error) error {
	if s.ctx.Err() != nil {
		return fmt.Errorf("sandbox: %s: %w", what, s.ctx.Err())
	}
	if s.spec.Launcher != "" {
		return fmt.Errorf("sandbox: %s: the launcher %s died or hung up (is it a build of cmd/airlock-launcher from this version of Airlock?): %w", what, s.spec.Launcher, err)
	}
	return fmt.Errorf("sandbox: %s: the launcher died or hung up: %w", what, err)
}

func (s *Sandbox) setMissing(name, why string) {
	s.mu.Lock()
	s.missing[name] = why
	s.mu.Unlock()
}

// startWatchers watches the plugin's exit and, with a v1 memory limit, its
// OOM events. Either kills the whole tree: an exit so that nothing the
// plugin forked outlives it (nor holds its stdout open), an OOM kill
// because v1 kills one task, not the group.
func (s *Sandbox) startWatchers(pid int) {
	if fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK); err == nil {
		f := os.NewFile(uintptr(fd), "pidfd")
		s.mu.Lock()
		s.pidfd = f
		s.mu.Unlock()
		s.watchers.Add(1)
		go func() {
			defer s.watchers.Done()
			if waitReadable(f) {
				// The main process exited; anything left in its cgroups is
				// an orphan (it may hold the plugin's stdout open).
				if pids, _ := s.groupProcs(); len(pids) > 0 {
					s.treeKills.Add(1)
					s.log.Info("sandbox: plugin exited; killing what it left", "pids", pids)
					_ = s.killGroup()
				}
			}
		}()
	}
	if s.group != nil {
		oom, err := s.group.OOMNotifier()
		if err != nil {
			s.log.Warn("sandbox: cannot watch for OOM kills", "err", err)
		}
		if oom != nil {
			s.mu.Lock()
			s.oom = oom
			s.mu.Unlock()
			s.watchers.Add(1)
			go func() {
				defer s.watchers.Done()
				var b [8]byte
				for {
					if _, err := oom.Read(b[:]); err != nil {
						return
					}
					s.ooms.Add(1)
					s.treeKills.Add(1)
					s.log.Warn("sandbox: plugin hit its memory limit; killing its whole tree", "memory", s.spec.Memory)
					_ = s.killGroup()
				}
			}()
		}
	}
}

// waitReadable blocks until f is readable (true) or closed (false).
func waitReadable(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	first := true
	err = rc.Read(func(uintptr) bool {
		if first {
			first = false
			return false // wait for readiness
		}
		return true
	})
	return err == nil
}

func (s *Sandbox) groupProcs() ([]int, error) {
	if s.group == nil {
		return nil, nil
	}
	return s.group.Procs()
}

func (s *Sandbox) killGroup() error {
	if s.group == nil || s.group.KillMethod() == "" {
		return nil
	}
	return s.group.Kill()
}

// Applied returns the protections in place, in Protections order. It is
// empty until Started succeeded, and never names one that was not applied.
func (s *Sandbox) Applied() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

// Status describes every protection for this plugin: applied or not, why
// not, and how.
func (s *Sandbox) Status() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r Report
	for _, name := range Protections() {
		m := Mechanism{Name: name, Available: slices.Contains(s.applied, name)}
		if !m.Available {
			m.Reason = s.missing[name]
			if m.Reason == "" {
				m.Reason = "not started"
			}
		}
		m.Detail = s.detail[name]
		r.Mechanisms = append(r.Mechanisms, m)
	}
	return r
}

// UID returns the host uid the plugin runs as.
func (s *Sandbox) UID() int { return s.uid }

// Kill kills the plugin's whole process tree: its main process through a
// pidfd (in a pid namespace the kernel then kills every other member), and
// every task in its cgroup (cgroup.kill, or freeze, kill and thaw). It
// never signals a process group. Killing a dead tree is not an error.
func (s *Sandbox) Kill() error {
	var errs []error
	s.mu.Lock()
	pidfd := s.pidfd
	s.mu.Unlock()
	sent := false
	if pidfd != nil {
		if rc, err := pidfd.SyscallConn(); err == nil {
			cerr := rc.Control(func(fd uintptr) {
				err := unix.PidfdSendSignal(int(fd), unix.SIGKILL, nil, 0)
				if err != nil && !errors.Is(err, unix.ESRCH) {
					errs = append(errs, os.NewSyscallError("pidfd_send_signal", err))
				}
			})
			sent = cerr == nil
		}
	}
	if !sent && s.cmd.Process != nil {
		if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, err)
		}
	}
	if err := s.killGroup(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Events returns the envelope events since start. After Close it returns
// the final counts.
func (s *Sandbox) Events() Events {
	s.mu.Lock()
	final := s.final
	s.mu.Unlock()
	if final != nil {
		return *final
	}
	return s.events()
}

func (s *Sandbox) events() Events {
	e := Events{TreeKills: s.treeKills.Load()}
	if s.group != nil {
		st := s.group.Stats()
		e.OOMKills, e.PidsMax, e.CPUThrottled, e.MemoryPeak = st.OOMKills, st.PidsMax, st.CPUThrottled, st.MemoryPeak
	}
	e.OOMKills = max(e.OOMKills, s.ooms.Load())
	return e
}

// closeTimeout bounds how long Close waits for the killed tree to leave
// its cgroups (tasks in uninterruptible sleep can take a while).
const closeTimeout = 5 * time.Second

// Close kills whatever is left of the tree, removes the cgroups and frees
// the uid. Call it after Wait. It is idempotent.
func (s *Sandbox) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.Kill()
	s.mu.Lock()
	for _, f := range []*os.File{s.pidfd, s.oom} {
		if f != nil {
			f.Close()
		}
	}
	s.mu.Unlock()
	s.watchers.Wait()
	ev := s.events()
	s.mu.Lock()
	s.final = &ev
	s.mu.Unlock()
	if s.group != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		if rerr := s.group.Remove(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		cancel()
	}
	s.release()
	return err
}

// release frees what Prepare took.
func (s *Sandbox) release() {
	for _, f := range []*os.File{s.sync, s.childSync, s.cgFD} {
		if f != nil {
			f.Close()
		}
	}
	if s.group != nil && !s.started {
		_ = s.group.Remove(context.Background())
	}
	if s.releaseID != nil {
		s.releaseID()
		s.releaseID = nil
	}
}

// hostUID reads the real uid of pid as the host sees it.
func hostUID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return -1, errors.New("no Uid line")
}

// execByFD reports whether the launcher can run f through its descriptor:
// f is set and is not a script, whose interpreter would be handed a
// /dev/fd path that no longer exists once the descriptor closes at exec.
func execByFD(f *os.File) bool {
	if f == nil {
		return false
	}
	var magic [2]byte
	n, err := f.ReadAt(magic[:], 0)
	return err == nil && n == 2 && magic != [2]byte{'#', '!'}
}

// checkProgram verifies the entry program is a regular file inside dir
// that uid can execute.
func checkProgram(dir, program string, uid, gid int) error {
	real, err := filepath.EvalSymlinks(program)
	if err != nil {
		return fmt.Errorf("%w: entry program: %w", ErrInvalidSpec, err)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("%w: plugin folder: %w", ErrInvalidSpec, err)
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%w: entry program %s resolves to %s, outside the plugin folder", ErrInvalidSpec, program, real)
	}
	// The launcher starts in the plugin folder as the plugin's uid, so the
	// folder and every folder above it must let that uid through.
	for d := realDir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("%w: plugin folder: %w", ErrInvalidSpec, err)
		}
		want := os.FileMode(0o1) // search
		if d == realDir {
			want = 0o5 // read and search
		}
		if !permits(fi, uid, gid, want) {
			return fmt.Errorf("%w: %s (mode %s) does not let the plugin's uid %d reach its folder %s: plugins run as an unprivileged uid; chmod o+%s %s",
				ErrInvalidSpec, d, fi.Mode().Perm(), uid, dir, map[os.FileMode]string{1: "x", 5: "rx"}[want], d)
		}
		if d == "/" {
			break
		}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("%w: entry program: %w", ErrInvalidSpec, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: entry program %s is not a regular file", ErrInvalidSpec, program)
	}
	if !permits(fi, uid, gid, 0o5) {
		return fmt.Errorf("%w: entry program %s (mode %s) is not readable and executable by the plugin's uid %d: chmod o+rx it",
			ErrInvalidSpec, program, fi.Mode(), uid)
	}
	return nil
}

func writableBy(path string, uid, gid int) bool {
	fi, err := os.Stat(path)
	return err == nil && permits(fi, uid, gid, 0o2)
}

// permits reports whether uid/gid get the rwx bits want on fi.
func permits(fi os.FileInfo, uid, gid int, want os.FileMode) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	mode := fi.Mode().Perm()
	switch {
	case !ok:
		return true
	case int(st.Uid) == uid:
		return mode>>6&want == want
	case int(st.Gid) == gid:
		return mode>>3&want == want
	}
	return mode&want == want
}

func hostname(name string) string {
	h := "airlock-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, name)
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
