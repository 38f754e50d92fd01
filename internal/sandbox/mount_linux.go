package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// systemPaths are what a dynamically linked program needs read-only: the
// loader, libc and friends, and the loader's cache.
var systemPaths = []string{"/lib", "/lib64", "/lib32", "/libx32", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32"}

// devices are bound into the private /dev.
var devices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}

// grant is a host path resolved by the host: Target is where the plugin
// sees it (the path as configured), Source its real location now.
type grant struct {
	Target, Source string
	Write          bool
}

// resolveGrant resolves p's symlinks on the host. The launcher later opens
// Source refusing any symlink, so a path that a plugin swapped for a
// symlink between here and there fails instead of leading elsewhere.
func resolveGrant(p string, write bool) (grant, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return grant{}, fmt.Errorf("%w: resolve %s: %w", ErrInvalidSpec, p, err)
	}
	return grant{Target: p, Source: real, Write: write}, nil
}

// buildMounts is the plan for the plugin's root: a small read-only tmpfs
// holding the system library directories, the plugin folder and grants,
// a private /tmp of disk bytes, a minimal /dev and a fresh /proc.
//
// A fresh /proc needs a pid namespace of the plugin's own (the kernel only
// mounts proc for the pid namespace's owner); without one, the host's
// /proc is bound read-only instead, which shows what a plugin without a
// pid namespace can see anyway.
func buildMounts(grants []grant, disk int64, ownPidNS bool) []mountOp {
	var ops []mountOp
	for _, p := range systemPaths {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(p); err == nil {
				ops = append(ops, mountOp{Kind: "symlink", Source: target, Target: p})
			}
		case fi.IsDir():
			ops = append(ops, mountOp{Kind: "bind", Source: p, Target: p, ReadOnly: true})
		}
	}
	ops = append(ops,
		mountOp{Kind: "bind", Source: "/etc/ld.so.cache", Target: "/etc/ld.so.cache", ReadOnly: true, File: true, Optional: true},
		mountOp{Kind: "tmpfs", Target: "/tmp", Data: fmt.Sprintf("size=%d,nr_inodes=%d,mode=1777", disk, max(disk/4096, 1024))},
		mountOp{Kind: "tmpfs", Target: "/dev", Data: "size=64k,nr_inodes=64,mode=0755"},
		mountOp{Kind: "symlink", Source: "/proc/self/fd", Target: "/dev/fd"},
		mountOp{Kind: "symlink", Source: "/proc/self/fd/0", Target: "/dev/stdin"},
		mountOp{Kind: "symlink", Source: "/proc/self/fd/1", Target: "/dev/stdout"},
		mountOp{Kind: "symlink", Source: "/proc/self/fd/2", Target: "/dev/stderr"},
	)
	if ownPidNS {
		ops = append(ops, mountOp{Kind: "proc", Target: "/proc"})
	} else {
		ops = append(ops, mountOp{Kind: "bind", Source: "/proc", Target: "/proc", ReadOnly: true, Recursive: true})
	}
	for _, d := range devices {
		ops = append(ops, mountOp{Kind: "bind", Source: d, Target: d, File: true, Device: true, Optional: true})
	}
	for _, g := range grants {
		fi, err := os.Stat(g.Source)
		ops = append(ops, mountOp{Kind: "bind", Source: g.Source, Target: g.Target, ReadOnly: !g.Write,
			File: err == nil && !fi.IsDir(), Strict: true})
	}
	// Parents before children; symlinks last, so that no setup step ever
	// walks through one (an absolute link would lead out to the host).
	slices.SortStableFunc(ops, func(a, b mountOp) int {
		if (a.Kind == "symlink") != (b.Kind == "symlink") {
			if a.Kind == "symlink" {
				return 1
			}
			return -1
		}
		return strings.Count(a.Target, "/") - strings.Count(b.Target, "/")
	})
	return ops
}

// buildLandlock is the rule set for the same paths.
func buildLandlock(grants []grant) []landlockRule {
	var rules []landlockRule
	for _, p := range append(slices.Clone(systemPaths), "/etc/ld.so.cache") {
		if _, err := os.Stat(p); err == nil {
			rules = append(rules, landlockRule{Path: p, Access: "rx"})
		}
	}
	for _, d := range devices {
		rules = append(rules, landlockRule{Path: d, Access: "dev"})
	}
	rules = append(rules,
		landlockRule{Path: "/proc", Access: "ro"},
		landlockRule{Path: "/tmp", Access: "rw", Private: true},
	)
	for i, g := range grants {
		access := "ro"
		switch {
		case g.Write:
			access = "rw"
		case i == 0:
			access = "rx" // the plugin folder: its program must be executable
		}
		rules = append(rules, landlockRule{Path: g.Target, Access: access})
	}
	return rules
}

// sourceError is a bind source the launcher could not open. It aborts the
// launch instead of degrading to "no mount namespace": a plugin must not be
// able to switch its own sandbox off by swapping a granted path for a
// symlink.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// mountStage is where the new root is assembled: a directory every Linux
// system has. The tmpfs hides it only inside the plugin's mount namespace,
// and every bind source is opened before it is covered.
const mountStage = "/tmp"

// applyMounts builds the plugin's root from ops and pivots into it. It runs
// in the launcher, inside the new user and mount namespaces.
func applyMounts(ops []mountOp, mark func(string)) error {
	// Open every bind source while the host tree is still in view.
	src := make([]int, len(ops))
	for i := range src {
		src[i] = -1
	}
	defer func() {
		for _, fd := range src {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	for i, op := range ops {
		if op.Kind != "bind" {
			continue
		}
		how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC}
		if op.Strict {
			how.Resolve = unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
		}
		fd, err := unix.Openat2(unix.AT_FDCWD, op.Source, &how)
		if errors.Is(err, unix.ENOSYS) && !op.Strict {
			fd, err = unix.Open(op.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		}
		if err != nil {
			if op.Optional && errors.Is(err, unix.ENOENT) {
				continue
			}
			if errors.Is(err, unix.ELOOP) {
				return &sourceError{fmt.Errorf("open %s: a symlink appeared in the granted path since the host resolved it: %w", op.Source, err)}
			}
			return &sourceError{fmt.Errorf("open %s: %w", op.Source, err)}
		}
		src[i] = fd
	}
	mark("mount sources opened")

	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", mountStage, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,nr_inodes=4096,mode=0755"); err != nil {
		return fmt.Errorf("mount the new root on %s: %w", mountStage, err)
	}
	mark("stage mounted")
	pivoted := false
	defer func() {
		if !pivoted {
			// Leave the host tree as it was for the degraded launch.
			_ = unix.Unmount(mountStage, unix.MNT_DETACH)
		}
	}()
	for i, op := range ops {
		target := mountStage + op.Target
		var err error
		switch op.Kind {
		case "tmpfs":
			if err = os.MkdirAll(target, 0o755); err == nil {
				err = unix.Mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, op.Data)
			}
		case "proc":
			if err = os.MkdirAll(target, 0o555); err == nil {
				flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
				// subset=pid hides everything but the process directories.
				if err = unix.Mount("proc", target, "proc", flags, "subset=pid"); errors.Is(err, unix.EINVAL) {
					err = unix.Mount("proc", target, "proc", flags, "")
				}
			}
		case "symlink":
			if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
				err = os.Symlink(op.Source, target)
			}
		case "bind":
			if src[i] < 0 {
				continue // optional and missing
			}
			err = bindMount(src[i], target, op)
		default:
			err = fmt.Errorf("unknown mount kind %q", op.Kind)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", op.Kind, op.Target, err)
		}
	}

	mark("tree built")
	// pivot_root(".", ".") stacks the old root on the new one; detaching it
	// leaves only the new tree.
	if err := unix.Chdir(mountStage); err != nil {
		return fmt.Errorf("enter the new root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		_ = unix.Chdir("/")
		return fmt.Errorf("pivot_root: %w", err)
	}
	pivoted = true
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	mark("pivoted")
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("make the new root read-only: %w", err)
	}
	return nil
}

func bindMount(fd int, target string, op mountOp) error {
	if op.File {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		f, err := unix.Open(target, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		unix.Close(f)
	} else if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	bind := uintptr(unix.MS_BIND)
	if op.Recursive {
		bind |= unix.MS_REC
	}
	if err := unix.Mount("/proc/self/fd/"+strconv.Itoa(fd), target, "", bind, ""); err != nil {
		return err
	}
	// A remount must keep the flags the source mount has locked (a user
	// namespace may not clear them), so start from what statfs reports.
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return err
	}
	keep := uintptr(st.Flags) & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	want := uintptr(unix.MS_NOSUID)
	if !op.Device {
		want |= unix.MS_NODEV
	}
	if op.ReadOnly {
		want |= unix.MS_RDONLY
	}
	if keep&want == want {
		return nil // the source mount has these flags already
	}
	if err := unix.Mount("", target, "", keep|want|unix.MS_BIND|unix.MS_REMOUNT, ""); err != nil {
		return fmt.Errorf("remount read-only/nosuid: %w", err)
	}
	return nil
}
