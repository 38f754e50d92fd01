package launcher

import (
	"errors"
	"slices"
	"strconv"
	"syscall"
	"unsafe"
)

// init turns this process into the sandbox launcher when the host started
// it as one: EnvVar names the sync socket's descriptor, and argv is
// [Arg0, descriptor]. It never returns then: the launcher either execs the
// plugin or exits.
//
// # Why init?
//
// Code that must run between fork and exec can only be had in Go by
// re-executing the binary. An init function means an embedder's binary,
// which imports the airlock package and therefore this one, needs no extra
// line in main, and test binaries work the same. The cost: the init
// functions of packages initialised before this one (its few dependencies,
// and packages ready earlier whose import path sorts first; see doc.go)
// also run in the launcher. They run as the plugin's unprivileged uid, in the new
// namespaces, before any plugin code, so they can harm nothing; but an init
// with side effects (opening a log file, dialing a server) would repeat at
// every plugin start.
func init() {
	// The environment first: package syscall has it before any init runs,
	// and this package does not import os (os.Args is set by os's init,
	// which may run after this one). Only then the argv check.
	v, ok := syscall.Getenv(EnvVar)
	if !ok {
		return
	}
	t0 := Monotonic()
	// Everything below runs on the main thread: the credentials, bounding
	// set, Landlock domain and seccomp filter set here are per thread, and
	// it is this thread that calls execve. Init functions run on the
	// startup thread, locked to it (runtime.LockOSThread's documentation),
	// and this one never returns; locking again would only start the
	// runtime's template thread, one more thread for execve to kill.
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 || !argvIs(Arg0, v) {
		return // not started by a host: the variable was inherited from elsewhere
	}
	syscall.Exit(launch(fd, t0))
}

// argvIs reports whether this process's argv is exactly args.
func argvIs(args ...string) bool {
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	var want []byte
	for _, a := range args {
		want = append(append(want, a...), 0)
	}
	buf := make([]byte, len(want)+1)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || m == 0 {
			break
		}
		n += m
	}
	return string(buf[:n]) == string(want)
}

// say writes a line to stderr.
func say(msg string) {
	_, _ = syscall.Write(2, []byte("airlock sandbox launcher: "+msg+"\n"))
}

// launcher is the child side of one launch.
type launcher struct {
	sync    int
	stamps  []Stamp
	spec    Spec
	report  Report
	require map[string]bool
}

// launch applies the sandbox and execs the plugin. It returns an exit code
// only when that failed.
//
// # Order of operations
//
// The namespaces exist before any of this runs: the host asked for them at
// clone time (Cloneflags) and wrote the uid/gid maps, and the Go child code
// switched to uid 0 of the new user namespace, which is the plugin's own uid
// on the host. The host sends the spec at once and, while this process's
// Go runtime starts and the steps below run, checks the namespaces, makes
// the v1 cgroups and moves this process into them (a v1 migration waits for
// an RCU grace period); step 10 waits for its go-ahead. Every step is
// stamped (mark) for the report's timeline. Then:
//
//  1. hostname (UTS namespace), cheap and harmless first.
//  2. The mount tree and pivot_root. Needs CAP_SYS_ADMIN in the user
//     namespace and an unfiltered mount(2); bind sources are opened before
//     anything is covered, and the fresh /proc is mounted while the host's
//     /proc still shows (the kernel refuses a new proc otherwise).
//  3. chdir to the plugin folder, inside the new root.
//  4. Without a user namespace but as root: drop to the plugin's uid now
//     (mounts needed root, the rest does not).
//  5. no_new_privs: needed by Landlock and seccomp without privilege, and
//     stops any later exec gaining privileges.
//  6. Landlock, on paths of the new tree (opened after the pivot).
//  7. Drop every capability: bounding set, ambient, effective, permitted.
//     Landlock and the mounts were the last steps that needed any.
//  8. Mark every descriptor above the plugin's close-on-exec.
//  9. seccomp, last of the filters because it forbids mount, landlock
//     setup, capset and the rest that came before; execve stays allowed.
//  10. Stop if a required protection of the launcher's own (mounts,
//     no_new_privs, Landlock, seccomp, rlimits) is not in place: the host
//     does not wait for the report before it releases the launcher. Report
//     what was applied (built and sent before the rlimits, while
//     allocating is still safe), and wait for the host's go-ahead: its
//     namespace checks passed and the cgroups are in place. The host sends
//     it as soon as that is so, usually before the report is written.
//  11. rlimits, then a raw execve with argv and envp built in step 0: the
//     Go runtime allocates in syscall.Exec, and a process near its limits
//     must not allocate. With Spec.ExecFD the exec is execveat on the
//     descriptor of the file the host verified, not a second lookup of
//     its path.
func launch(sync int, t0 int64) int {
	l := &launcher{sync: sync, stamps: make([]Stamp, 1, 24)}
	l.stamps[0] = Stamp{"launcher init", t0}
	syscall.CloseOnExec(sync)
	if err := l.readSpec(); err != nil {
		say(err.Error())
		return 127
	}
	l.mark("spec read")
	l.require = map[string]bool{}
	for _, r := range l.spec.Require {
		l.require[r] = true
	}
	l.report.Missing = map[string]string{}
	l.report.Detail = map[string]string{}

	// 0. Everything execve needs, while allocation is free.
	path, err := syscall.BytePtrFromString(l.spec.Path)
	if err != nil {
		return l.fail("", wrap("plugin path", err))
	}
	argv, err := syscall.SlicePtrFromStrings(l.spec.Argv)
	if err != nil {
		return l.fail("", wrap("plugin argv", err))
	}
	envp, err := syscall.SlicePtrFromStrings(l.spec.Env)
	if err != nil {
		return l.fail("", wrap("plugin environment", err))
	}
	empty, _ := syscall.BytePtrFromString("") // execveat's path with AT_EMPTY_PATH

	// 1.
	if l.spec.Hostname != "" {
		_ = syscall.Sethostname([]byte(l.spec.Hostname))
	}
	// 2.
	private := false
	if l.spec.Mounts != nil {
		if err := applyMounts(l.spec.Mounts, l.mark); err != nil {
			var se *sourceError
			if errors.As(err, &se) {
				return l.fail("", err)
			}
			if code, stop := l.missing(MountNS, err); stop {
				return code
			}
		} else {
			private = true
			l.applied(MountNS, "")
		}
	}
	// 3.
	if err := syscall.Chdir(l.spec.Dir); err != nil {
		return l.fail("", wrap("enter the plugin folder "+l.spec.Dir, err))
	}
	// 4.
	if l.spec.DropUID != 0 {
		if err := dropToUID(l.spec.DropUID, l.spec.DropGID); err != nil {
			return l.fail("", err)
		}
	}
	l.mark("mounts")
	// 5.
	if l.spec.NoNewPrivs {
		if err := prctl(prSetNoNewPrivs, 1); err != nil {
			if code, stop := l.missing(NoNewPrivs, wrap("prctl(PR_SET_NO_NEW_PRIVS)", err)); stop {
				return code
			}
		} else {
			l.applied(NoNewPrivs, "")
		}
	}
	// 6.
	if l.spec.Landlock != nil {
		if detail, err := applyLandlock(l.spec.Landlock, private); err != nil {
			if code, stop := l.missing(Landlock, err); stop {
				return code
			}
		} else {
			l.applied(Landlock, detail)
		}
	}
	l.mark("landlock")
	// 7.
	if err := dropCapabilities(); err != nil {
		return l.fail("", err)
	}
	l.mark("capabilities")
	// 8.
	if _, _, e := syscall.RawSyscall(sysCloseRange, uintptr(l.spec.KeepFDs), ^uintptr(0), closeRangeCloexec); e != 0 {
		if err := cloexecFrom(l.spec.KeepFDs); err != nil {
			return l.fail("", wrap("close inherited descriptors", err))
		}
	}
	// 9.
	if l.spec.Seccomp != nil {
		if err := installSeccomp(l.spec.Seccomp); err != nil {
			if code, stop := l.missing(Seccomp, err); stop {
				return code
			}
		} else {
			l.applied(Seccomp, itoa(len(l.spec.Seccomp)/8)+" instructions")
		}
	}
	l.mark("seccomp")
	if l.spec.Rlimits != nil {
		l.applied(Rlimits, "") // retracted below if one fails; the host hears of it
	}
	// The host releases the launcher without waiting for this report, so
	// the launcher is the one that stops a launch missing a required
	// protection of its own, whatever the reason (one the host did not
	// even ask for included).
	for _, name := range []string{MountNS, NoNewPrivs, Landlock, Seccomp, Rlimits} {
		if l.require[name] && !slices.Contains(l.report.Applied, name) {
			why := l.report.Missing[name]
			if why == "" {
				why = "the host did not ask for it"
			}
			return l.fail(name, errors.New(why))
		}
	}
	// 10.
	if l.spec.Mode == ModeProbe {
		if err := l.applyRlimits(); err != nil {
			l.report.Applied = slices.DeleteFunc(l.report.Applied, func(s string) bool { return s == Rlimits })
			l.report.Missing[Rlimits] = err.Error()
		}
		if err := l.send(&l.report); err != nil {
			return 127
		}
		return 0
	}
	l.mark("report")
	l.report.Stamps = l.stamps
	if err := l.send(&l.report); err != nil {
		return 127
	}
	// The host places this process in its v1 cgroups while the steps above
	// run; its go byte says that is done. Nothing of the plugin's runs
	// before it.
	var goByte [1]byte
	if err := readFull(l.sync, goByte[:]); err != nil || goByte[0] != GoAhead {
		return 127 // the host gave up on this launch (or died)
	}
	// 11.
	if err := l.applyRlimits(); err != nil {
		return l.fail(Rlimits, err)
	}
	if nr := sysExecveat; l.spec.ExecFD > 0 && nr > 0 {
		// The very file the host verified, whatever Path names now.
		_, _, e := syscall.RawSyscall6(uintptr(nr), uintptr(l.spec.ExecFD), uintptr(unsafe.Pointer(empty)),
			uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])), atEmptyPath, 0)
		return l.fail("", wrap("execveat the verified program "+l.spec.Path, e))
	}
	_, _, e := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(path)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])))
	return l.fail("", wrap("execve "+l.spec.Path, e))
}

// atEmptyPath is AT_EMPTY_PATH: execveat runs the descriptor's file itself.
const atEmptyPath = 0x1000

// mark stamps the end of a step.
func (l *launcher) mark(stage string) {
	l.stamps = append(l.stamps, Stamp{stage, Monotonic()})
}

// Monotonic reads CLOCK_MONOTONIC, which host and launcher share.
func Monotonic() int64 {
	var ts syscall.Timespec
	_, _, _ = syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// applied records a protection the launcher put in place.
func (l *launcher) applied(name, detail string) {
	l.report.Applied = append(l.report.Applied, name)
	if detail != "" {
		l.report.Detail[name] = detail
	}
}

// missing records a protection that failed. If it was required, the launch
// stops: stop is true and code is the exit code.
func (l *launcher) missing(name string, err error) (code int, stop bool) {
	if l.require[name] {
		return l.fail(name, err), true
	}
	l.report.Missing[name] = err.Error()
	return 0, false
}

// fail reports err to the host and returns the exit code for it.
func (l *launcher) fail(protection string, err error) int {
	_ = l.send(&Report{Error: err.Error(), Protection: protection})
	return 127
}

func (l *launcher) readSpec() error {
	var hdr [4]byte
	if err := readFull(l.sync, hdr[:]); err != nil {
		return wrap("read spec length", err)
	}
	n := frameLen(hdr)
	if n == 0 || n > MaxMessage {
		return errors.New("spec of " + itoa(int(n)) + " bytes (limit " + itoa(MaxMessage) + ")")
	}
	body := make([]byte, n)
	if err := readFull(l.sync, body); err != nil {
		return wrap("read spec", err)
	}
	if err := l.spec.Decode(body); err != nil {
		return err
	}
	if l.spec.Mode != ModeRun && l.spec.Mode != ModeProbe {
		return errors.New("spec has unknown mode " + itoa(int(l.spec.Mode)))
	}
	if len(l.spec.Argv) == 0 || l.spec.Path == "" {
		return errors.New("spec has no program to run")
	}
	return nil
}

func (l *launcher) send(r *Report) error {
	msg := Frame(r.Encode())
	for len(msg) > 0 {
		n, err := syscall.Write(l.sync, msg)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		msg = msg[n:]
	}
	return nil
}

func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Read(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return errUnexpectedEOF
		}
		b = b[n:]
	}
	return nil
}

// applyRlimits sets each limit, soft and hard, with raw syscalls.
func (l *launcher) applyRlimits() error {
	for _, r := range l.spec.Rlimits {
		lim := syscall.Rlimit{Cur: r.Value, Max: r.Value}
		_, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, 0, uintptr(r.Resource), uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
		if e != 0 {
			return wrap("set "+r.Name+" to "+strconv.FormatUint(r.Value, 10), e)
		}
	}
	return nil
}

// dropToUID switches the calling thread to uid/gid with no supplementary
// groups; the kernel clears its capabilities on the way out of root.
func dropToUID(uid, gid int) error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return wrap("clear supplementary groups", e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return wrap("set gid "+itoa(gid), e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return wrap("set uid "+itoa(uid), e)
	}
	return nil
}

// dropCapabilities empties the calling thread's bounding, ambient,
// inheritable, permitted and effective sets, so nothing the plugin execs
// can regain a capability.
func dropCapabilities() error {
	for c := 0; c <= 63; c++ {
		if err := prctl(prCapbsetDrop, uintptr(c)); err != nil {
			if err == syscall.EINVAL {
				break // past the kernel's last capability
			}
			if err == syscall.EPERM {
				// No CAP_SETPCAP: the set can only be what we already lack.
				break
			}
			return wrap("drop capability "+itoa(c)+" from the bounding set", err)
		}
	}
	_ = prctl(prCapAmbient, prCapAmbientClearAll)
	// uid 0 inside the user namespace must not mean capabilities at exec:
	// the bounding set is empty already; SECBIT_NOROOT says so outright,
	// locked. Without CAP_SETPCAP (no user namespace, not root) this fails
	// and there is nothing to guard.
	const secbitNoroot, secbitNorootLocked = 1 << 0, 1 << 1
	const secbitNoSetuidFixup, secbitNoSetuidFixupLocked = 1 << 2, 1 << 3
	_ = prctl(prSetSecurebits, secbitNoroot|secbitNorootLocked|secbitNoSetuidFixup|secbitNoSetuidFixupLocked)
	hdr := capHeader{version: linuxCapabilityVersion3}
	var data [2]capData
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return wrap("clear capabilities", e)
	}
	return nil
}

// installSeccomp loads a filter on the calling thread: filter is the
// kernel's struct sock_filter array (8 bytes an instruction, native byte
// order), as seccomp.Encode lays it out, which the kernel copies as it is.
// no_new_privs must be set. Threads created later, and the program the
// thread execs, inherit the filter.
func installSeccomp(filter []byte) error {
	if len(filter) == 0 || len(filter)%8 != 0 || len(filter)/8 > 4096 {
		return errors.New("install seccomp filter: " + itoa(len(filter)) + " bytes is not 1 to 4096 instructions")
	}
	if sysSeccomp < 0 {
		return errors.New("install seccomp filter: not supported on this architecture")
	}
	prog := syscall.SockFprog{
		Len:    uint16(len(filter) / 8),
		Filter: (*syscall.SockFilter)(unsafe.Pointer(&filter[0])),
	}
	nr := sysSeccomp
	_, _, e := syscall.RawSyscall(uintptr(nr), seccompSetModeFilter, 0, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return wrap("seccomp", e)
	}
	return nil
}

// cloexecFrom marks descriptors from fd up close-on-exec one by one, for
// kernels without close_range (before 5.11).
func cloexecFrom(from int) error {
	dir, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return wrap("open /proc/self/fd", err)
	}
	defer syscall.Close(dir)
	buf := make([]byte, 4096)
	for {
		n, err := syscall.ReadDirent(dir, buf)
		if err != nil {
			return wrap("read /proc/self/fd", err)
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(*(*uint16)(unsafe.Pointer(&b[16]))) // native order; records are 8-aligned
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			if fd, err := strconv.Atoi(string(name)); err == nil && fd >= from && fd != dir {
				syscall.CloseOnExec(fd)
			}
			b = b[reclen:]
		}
	}
}
