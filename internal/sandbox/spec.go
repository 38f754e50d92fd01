package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Spec is what one plugin instance gets. Zero resource fields take the
// defaults below (those of the manifest).
type Spec struct {
	Name     string // plugin name: cgroup names, hostname, logs
	Instance string // instance id, unique among the host's instances of Name

	// Dir is the plugin folder (absolute). Inside the sandbox it is visible
	// read-only at the same path, and it is the working directory.
	Dir string
	// Program is the entry program, relative to Dir.
	Program string
	// Exec, when set, is Program opened by the caller, who checked it (the
	// host verifies its sha256). The launcher then executes this very file
	// rather than looking Program up again, so a file put in its place
	// after the check never runs. A script (#!) is run by path: the kernel
	// cannot hand its interpreter a descriptor that is closed at exec.
	Exec *os.File
	// ReadPaths and WritePaths are extra host paths (absolute) visible at the
	// same path inside, read-only or read-write. A write path must be
	// writable by the plugin's host uid (see IDs); the sandbox does not
	// change ownership of host files.
	ReadPaths, WritePaths []string

	Memory    int64         // bytes; default 256 MiB
	CPU       float64       // cores; default 1
	CPUTime   time.Duration // CPU time per process (RLIMIT_CPU, SIGKILL at the limit); default 1h
	Tasks     int           // processes plus threads; default 64
	OpenFiles int           // RLIMIT_NOFILE; default 256
	Disk      int64         // private /tmp size and RLIMIT_FSIZE, in bytes; default 64 MiB

	// Require lists protections that must be applied (names in
	// Protections). Prepare, or Started for what is known only once the
	// launcher runs (or, rarely, once the plugin's cgroups are made), fails
	// with an *UnavailableError naming the first one missing.
	Require []string

	// IDs hands out a distinct host uid (and gid) per plugin instance. Nil
	// means every plugin runs as the overflow user 65534 ("nobody"), which
	// plugins then share. Only a root host can map other uids; an
	// unprivileged host always runs plugins as itself.
	IDs *IDPool
	// Launcher is the program that starts as the sandbox launcher: any
	// binary that imports this package or internal/sandbox/launcher (whose
	// init function does the work). Default "/proc/self/exe", the host's
	// own binary, which needs no extra file; a small static binary that
	// imports only the launcher package starts faster than a large host
	// (see BenchmarkSpawn_SandboxedDedicatedLauncher). It runs with the host's privileges until it
	// has applied the sandbox, so it must be as trusted as the host.
	Launcher string
	// Machine, when set, is the result of DetectMachine, reused instead of
	// checking the kernel again on every Prepare.
	Machine *Machine
	// CgroupParent is the cgroup, relative to each hierarchy's root, under
	// which per-plugin groups are created. Default "airlock".
	CgroupParent string
}

// Defaults of the resource envelope (the manifest's defaults).
const (
	DefaultMemory    = 256 << 20
	DefaultCPU       = 1.0
	DefaultCPUTime   = time.Hour
	DefaultTasks     = 64
	DefaultOpenFiles = 256
	DefaultDisk      = 64 << 20
	// MinTasks is the smallest task limit a Go program starts under: the
	// runtime needs about four threads before main runs.
	MinTasks = 8
)

func (s Spec) withDefaults() Spec {
	if s.Memory == 0 {
		s.Memory = DefaultMemory
	}
	if s.CPU == 0 {
		s.CPU = DefaultCPU
	}
	if s.CPUTime == 0 {
		s.CPUTime = DefaultCPUTime
	}
	if s.Tasks == 0 {
		s.Tasks = DefaultTasks
	}
	if s.OpenFiles == 0 {
		s.OpenFiles = DefaultOpenFiles
	}
	if s.Disk == 0 {
		s.Disk = DefaultDisk
	}
	if s.CgroupParent == "" {
		s.CgroupParent = "airlock"
	}
	return s
}

// validate checks a Spec (with defaults applied) and returns every problem,
// each naming the field and the fix.
func (s Spec) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...))
	}
	if s.Name == "" {
		bad("Name is empty: give the plugin's name")
	}
	if !filepath.IsAbs(s.Dir) {
		bad("Dir %q is not an absolute path: pass the plugin folder's absolute path", s.Dir)
	} else if fi, err := os.Stat(s.Dir); err != nil || !fi.IsDir() {
		bad("Dir %q is not a directory: %v", s.Dir, statErr(err))
	}
	switch {
	case s.Program == "":
		bad("Program is empty: give the entry program's path relative to Dir")
	case filepath.IsAbs(s.Program):
		bad("Program %q is absolute: give it relative to Dir", s.Program)
	case !filepath.IsLocal(s.Program):
		bad("Program %q leaves the plugin folder: give a path inside Dir", s.Program)
	}
	for _, p := range s.ReadPaths {
		checkGrant(bad, "ReadPaths", p)
	}
	for _, p := range s.WritePaths {
		checkGrant(bad, "WritePaths", p)
	}
	if s.Memory < 0 || s.CPU < 0 || s.CPUTime < 0 || s.Tasks < 0 || s.OpenFiles < 0 || s.Disk < 0 {
		bad("a resource limit is negative (Memory %d, CPU %g, CPUTime %s, Tasks %d, OpenFiles %d, Disk %d): use 0 for the default",
			s.Memory, s.CPU, s.CPUTime, s.Tasks, s.OpenFiles, s.Disk)
	}
	if s.Tasks > 0 && s.Tasks < MinTasks {
		bad("Tasks %d is below %d: a Go program cannot start with fewer tasks", s.Tasks, MinTasks)
	}
	if s.OpenFiles > 0 && s.OpenFiles < 8 {
		bad("OpenFiles %d is below 8: the plugin could not even open its own libraries", s.OpenFiles)
	}
	if s.Launcher != "" {
		if err := CheckLauncher(s.Launcher); err != nil {
			bad("Launcher: %v", err)
		}
	}
	if strings.Contains(s.CgroupParent, "..") {
		bad("CgroupParent %q climbs out of the cgroup hierarchy", s.CgroupParent)
	}
	return errors.Join(errs...)
}

func checkGrant(bad func(string, ...any), field, p string) {
	switch {
	case !filepath.IsAbs(p):
		bad("%s entry %q is not an absolute path", field, p)
	case filepath.Clean(p) != p || strings.Contains(p, "/../"):
		bad("%s entry %q is not a clean path: write %q", field, p, filepath.Clean(p))
	case p == "/":
		bad("%s entry %q grants the whole host file system", field, p)
	default:
		if _, err := os.Stat(p); err != nil {
			bad("%s entry %q: %v", field, p, statErr(err))
		}
	}
}

// CheckLauncher reports why path cannot be Spec.Launcher: it must be the
// absolute path of an executable regular file. The host checks it once, when
// it is configured, and Prepare again for each spec.
func CheckLauncher(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%q is not an absolute path", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%q is not an executable file (mode %v)", path, fi.Mode())
	}
	return nil
}

func statErr(err error) error {
	if err == nil {
		return errors.New("not a directory")
	}
	return err
}
