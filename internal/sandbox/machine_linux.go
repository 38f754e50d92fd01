package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/airlockhq/airlock/internal/sandbox/launcher"

	"github.com/airlockhq/airlock/internal/sandbox/cgroup"
	"github.com/airlockhq/airlock/internal/sandbox/seccomp"
	"golang.org/x/sys/unix"
)

// machine is what the host can tell about this kernel without starting a
// process: a few files in /proc and /sys and a harmless syscall or two.
// Prepare consults it on every call (it costs tens of microseconds); the
// launcher then confirms each protection by applying it, and Probe by a
// trial launch.
type machine struct {
	report Report
	cg     cgroup.Layout
	cgErr  error
	root   bool // euid 0: may map other uids and create namespaces without a user namespace
	sys    systemTree
}

// Machine is what the host can tell about this kernel without starting a
// process: Prepare's quick checks, and where the system library
// directories that every plugin's root holds are. Detect it once with
// DetectMachine and pass it in Spec.Machine to skip them on every start
// (they cost about 0.2 ms); Prepare detects afresh when Spec.Machine is nil.
//
// A stale Machine cannot make Applied claim too much: every protection is
// verified after the clone (the namespaces by the host, the rest by the
// launcher). It can only make a start fail (a namespace the kernel no
// longer allows fails cmd.Start) where fresh checks would have degraded.
type Machine struct{ m machine }

// DetectMachine runs the quick checks for groups under cgroupParent
// (default "airlock").
func DetectMachine(cgroupParent string) *Machine {
	if cgroupParent == "" {
		cgroupParent = "airlock"
	}
	return &Machine{m: detectMachine(cgroupParent)}
}

// Report returns the quick checks' findings. Probe tries each mechanism
// for real and says more.
func (m *Machine) Report() Report {
	return Report{Mechanisms: slices.Clone(m.m.report.Mechanisms)}
}

func detectMachine(cgroupParent string) machine {
	m := machine{root: os.Geteuid() == 0}
	add := func(mech Mechanism) { m.report.Mechanisms = append(m.report.Mechanisms, mech) }

	userns := Mechanism{Name: UserNS}
	userns.Available, userns.Reason = usernsAvailable(m.root)
	add(userns)
	for _, ns := range []struct{ name, file, sysctl string }{
		{PidNS, "pid", "max_pid_namespaces"},
		{NetNS, "net", "max_net_namespaces"},
		{MountNS, "mnt", "max_mnt_namespaces"},
		{IPCNS, "ipc", "max_ipc_namespaces"},
		{UTSNS, "uts", "max_uts_namespaces"},
	} {
		mech := Mechanism{Name: ns.name}
		switch {
		case !exists("/proc/self/ns/" + ns.file):
			mech.Reason = "the kernel has no " + ns.file + " namespaces"
		case readInt("/proc/sys/user/"+ns.sysctl) == 0:
			mech.Reason = "/proc/sys/user/" + ns.sysctl + " is 0: raise it to allow " + ns.file + " namespaces"
		case !userns.Available && !m.root:
			mech.Reason = "needs a user namespace when the host is not root (" + userns.Reason + ")"
		case ns.name == MountNS && !isDir(launcher.MountStage):
			mech.Reason = launcher.MountStage + " does not exist: the launcher assembles the new root on it"
		default:
			mech.Available = true
		}
		add(mech)
	}
	add(landlockAvailable())
	sc := Mechanism{Name: Seccomp}
	sc.Available, sc.Reason = seccomp.Available()
	add(sc)
	nnp := Mechanism{Name: NoNewPrivs}
	if _, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil {
		nnp.Reason = "the kernel has no no_new_privs (Linux 3.5+)"
	} else {
		nnp.Available = true
	}
	add(nnp)
	add(Mechanism{Name: Rlimits, Available: true})

	m.cg, m.cgErr = cgroup.Detect()
	for _, c := range []struct{ name, ctl string }{
		{CgroupMemory, cgroup.Memory}, {CgroupPids, cgroup.Pids}, {CgroupCPU, cgroup.CPU},
	} {
		mech := Mechanism{Name: c.name}
		switch {
		case m.cgErr != nil:
			mech.Reason = m.cgErr.Error()
		case m.cg.V1[c.ctl] != "":
			mech.Available, mech.Detail = writable(m.cg.V1[c.ctl], cgroupParent), "cgroup v1"
		case m.cg.V2Controllers[c.ctl]:
			mech.Available, mech.Detail = writable(m.cg.V2, cgroupParent), "cgroup v2"
		default:
			mech.Reason = "no mounted cgroup hierarchy has the " + c.ctl + " controller"
		}
		if mech.Reason == "" && !mech.Available {
			mech.Reason = "the cgroup hierarchy is not writable by this process: run the host as root or delegate a cgroup to it"
		}
		add(mech)
	}
	kill := Mechanism{Name: CgroupKill}
	switch {
	case m.cgErr != nil:
		kill.Reason = m.cgErr.Error()
	case m.cg.V2 != "" && kernelAtLeast(5, 14) && writable(m.cg.V2, cgroupParent):
		kill.Available, kill.Detail = true, "cgroup.kill"
	case m.cg.V1[cgroup.Freezer] != "" && writable(m.cg.V1[cgroup.Freezer], cgroupParent):
		kill.Available, kill.Detail = true, "v1 freezer"
	default:
		kill.Reason = "neither cgroup.kill (cgroup v2, Linux 5.14+) nor a writable freezer hierarchy"
	}
	add(kill)
	m.sys = detectSystemTree()
	return m
}

func usernsAvailable(root bool) (bool, string) {
	switch {
	case !exists("/proc/self/ns/user"):
		return false, "the kernel has no user namespaces (CONFIG_USER_NS)"
	case readInt("/proc/sys/user/max_user_namespaces") == 0:
		return false, "/proc/sys/user/max_user_namespaces is 0: raise it to allow user namespaces"
	case !root && exists("/proc/sys/kernel/unprivileged_userns_clone") && readInt("/proc/sys/kernel/unprivileged_userns_clone") == 0:
		return false, "unprivileged user namespaces are off: set kernel.unprivileged_userns_clone=1 or run the host as root"
	case !root && readInt("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1:
		return false, "AppArmor restricts unprivileged user namespaces: add a profile for the host or run it as root"
	}
	return true, ""
}

// writable reports whether this process may create groups under parent in
// the hierarchy mounted at mp.
func writable(mp, parent string) bool {
	dir := filepath.Join(mp, parent)
	for {
		if _, err := os.Stat(dir); err == nil {
			return unix.Access(dir, unix.W_OK) == nil
		}
		if dir == mp || dir == "/" {
			return false
		}
		dir = filepath.Dir(dir)
	}
}

func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, _ := strconv.Atoi(parts[0])
	min, _ := strconv.Atoi(strings.TrimLeftFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return maj > major || maj == major && min >= minor
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func readInt(p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}
