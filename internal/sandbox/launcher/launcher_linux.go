package launcher

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// init turns this process into the sandbox launcher when the host started
// it as one (argv[0] is Arg0). It never returns then: the launcher
// either execs the plugin or exits.
//
// # Why init?
//
// Code that must run between fork and exec can only be had in Go by
// re-executing the binary. An init function means an embedder's binary,
// which imports the airlock package and therefore this one, needs no extra
// line in main, and test binaries work the same. The cost: the init
// functions of packages initialised before this one (its few dependencies,
// and packages ready earlier whose import path sorts first) also run in the
// launcher. They run as the plugin's unprivileged uid, in the new
// namespaces, before any plugin code, so they can harm nothing; but an init
// with side effects (opening a log file, dialing a server) would repeat at
// every plugin start.
func init() {
	if len(os.Args) != 2 || os.Args[0] != Arg0 {
		return
	}
	t0 := Monotonic()
	// Everything below runs on the main thread: the credentials, bounding
	// set, Landlock domain and seccomp filter set here are per thread, and
	// it is this thread that calls execve. Init functions run on the
	// startup thread, locked to it (runtime.LockOSThread's documentation),
	// and this one never returns; locking again would only start the
	// runtime's template thread, one more thread for execve to kill.
	fd, err := strconv.Atoi(os.Args[1])
	if err != nil || fd < 3 {
		fmt.Fprintf(os.Stderr, "airlock sandbox launcher: bad sync descriptor %q\n", os.Args[1])
		os.Exit(127)
	}
	os.Exit(launch(fd, t0))
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
// on the host. The host sends the spec at once and places this process in
// its v1 cgroups meanwhile (a v1 migration waits for an RCU grace period,
// milliseconds on a busy machine); step 10 waits for its go-ahead. Then:
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
//     must not allocate.
func launch(sync int, t0 int64) int {
	l := &launcher{sync: sync, stamps: make([]Stamp, 1, 24)}
	l.stamps[0] = Stamp{"launcher init", t0}
	unix.CloseOnExec(sync)
	if err := l.readSpec(); err != nil {
		fmt.Fprintf(os.Stderr, "airlock sandbox launcher: %v\n", err)
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
	path, err := unix.BytePtrFromString(l.spec.Path)
	if err != nil {
		return l.fail("", fmt.Errorf("plugin path: %w", err))
	}
	argv, err := syscall.SlicePtrFromStrings(l.spec.Argv)
	if err != nil {
		return l.fail("", fmt.Errorf("plugin argv: %w", err))
	}
	envp, err := syscall.SlicePtrFromStrings(l.spec.Env)
	if err != nil {
		return l.fail("", fmt.Errorf("plugin environment: %w", err))
	}

	// 1.
	if l.spec.Hostname != "" {
		_ = unix.Sethostname([]byte(l.spec.Hostname))
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
	if err := unix.Chdir(l.spec.Dir); err != nil {
		return l.fail("", fmt.Errorf("enter the plugin folder %s: %w", l.spec.Dir, err))
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
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			if code, stop := l.missing(NoNewPrivs, os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", err)); stop {
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
	if err := unix.CloseRange(uint(l.spec.KeepFDs), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		if err := cloexecFrom(l.spec.KeepFDs); err != nil {
			return l.fail("", fmt.Errorf("close inherited descriptors: %w", err))
		}
	}
	// 9.
	if l.spec.Seccomp != nil {
		if err := installSeccomp(l.spec.Seccomp); err != nil {
			if code, stop := l.missing(Seccomp, err); stop {
				return code
			}
		} else {
			l.applied(Seccomp, fmt.Sprintf("%d instructions", len(l.spec.Seccomp)/8))
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
	_, _, e := unix.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])))
	return l.fail("", fmt.Errorf("execve %s: %w", l.spec.Path, e))
}

// mark stamps the end of a step.
func (l *launcher) mark(stage string) {
	l.stamps = append(l.stamps, Stamp{stage, Monotonic()})
}

// Monotonic reads CLOCK_MONOTONIC, which host and launcher share.
func Monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
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
		return fmt.Errorf("read spec length: %w", err)
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 || n > MaxMessage {
		return fmt.Errorf("spec of %d bytes (limit %d)", n, MaxMessage)
	}
	body := make([]byte, n)
	if err := readFull(l.sync, body); err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if err := l.spec.Decode(body); err != nil {
		return err
	}
	if l.spec.Mode != ModeRun && l.spec.Mode != ModeProbe {
		return fmt.Errorf("spec has unknown mode %d", l.spec.Mode)
	}
	if len(l.spec.Argv) == 0 || l.spec.Path == "" {
		return errors.New("spec has no program to run")
	}
	return nil
}

func (l *launcher) send(r *Report) error {
	body := r.Encode()
	msg := make([]byte, 4+len(body))
	binary.LittleEndian.PutUint32(msg, uint32(len(body)))
	copy(msg[4:], body)
	for len(msg) > 0 {
		n, err := unix.Write(l.sync, msg)
		if errors.Is(err, unix.EINTR) {
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
		n, err := unix.Read(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b = b[n:]
	}
	return nil
}

// applyRlimits sets each limit, soft and hard, with raw syscalls.
func (l *launcher) applyRlimits() error {
	for _, r := range l.spec.Rlimits {
		lim := unix.Rlimit{Cur: r.Value, Max: r.Value}
		_, _, e := unix.RawSyscall6(unix.SYS_PRLIMIT64, 0, uintptr(r.Resource), uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
		if e != 0 {
			return fmt.Errorf("set %s to %d: %w", r.Name, r.Value, e)
		}
	}
	return nil
}

// dropToUID switches the calling thread to uid/gid with no supplementary
// groups; the kernel clears its capabilities on the way out of root.
func dropToUID(uid, gid int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("clear supplementary groups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("set gid %d: %w", gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("set uid %d: %w", uid, e)
	}
	return nil
}

// dropCapabilities empties the calling thread's bounding, ambient,
// inheritable, permitted and effective sets, so nothing the plugin execs
// can regain a capability.
func dropCapabilities() error {
	for c := 0; c <= 63; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if errors.Is(err, unix.EINVAL) {
				break // past the kernel's last capability
			}
			if errors.Is(err, unix.EPERM) {
				// No CAP_SETPCAP: the set can only be what we already lack.
				break
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	// uid 0 inside the user namespace must not mean capabilities at exec:
	// the bounding set is empty already; SECBIT_NOROOT says so outright,
	// locked. Without CAP_SETPCAP (no user namespace, not root) this fails
	// and there is nothing to guard.
	const secbitNoroot, secbitNorootLocked = 1 << 0, 1 << 1
	const secbitNoSetuidFixup, secbitNoSetuidFixupLocked = 1 << 2, 1 << 3
	_ = unix.Prctl(unix.PR_SET_SECUREBITS, secbitNoroot|secbitNorootLocked|secbitNoSetuidFixup|secbitNoSetuidFixupLocked, 0, 0, 0)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("clear capabilities: %w", e)
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
		return fmt.Errorf("install seccomp filter: %d bytes is not 1 to 4096 instructions", len(filter))
	}
	prog := unix.SockFprog{
		Len:    uint16(len(filter) / 8),
		Filter: (*unix.SockFilter)(unsafe.Pointer(&filter[0])),
	}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return os.NewSyscallError("seccomp", e)
	}
	return nil
}

// cloexecFrom marks descriptors from fd up close-on-exec one by one, for
// kernels without close_range (before 5.11).
func cloexecFrom(from int) error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= from {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
