package launcher

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// sourceError is a bind source the launcher could not open. It aborts the
// launch instead of degrading to "no mount namespace": a plugin must not be
// able to switch its own sandbox off by swapping a granted path for a
// symlink.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// MountStage is where the new root is assembled: a directory every Linux
// system has. The tmpfs hides it only inside the plugin's mount namespace,
// and every bind source is opened before it is covered.
const MountStage = "/tmp"

// applyMounts builds the plugin's root from ops and pivots into it. It runs
// in the launcher, inside the new user and mount namespaces.
func applyMounts(ops []MountOp, mark func(string)) error {
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
	if err := unix.Mount("tmpfs", MountStage, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,nr_inodes=4096,mode=0755"); err != nil {
		return fmt.Errorf("mount the new root on %s: %w", MountStage, err)
	}
	mark("stage mounted")
	pivoted := false
	defer func() {
		if !pivoted {
			// Leave the host tree as it was for the degraded launch.
			_ = unix.Unmount(MountStage, unix.MNT_DETACH)
		}
	}()
	for i, op := range ops {
		target := MountStage + op.Target
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
	if err := unix.Chdir(MountStage); err != nil {
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

func bindMount(fd int, target string, op MountOp) error {
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
