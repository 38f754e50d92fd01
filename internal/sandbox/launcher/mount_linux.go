package launcher

import (
	"errors"
	"strconv"
	"syscall"
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
				syscall.Close(fd)
			}
		}
	}()
	for i, op := range ops {
		if op.Kind != "bind" {
			continue
		}
		how := openHow{flags: oPath | syscall.O_CLOEXEC}
		if op.Strict {
			how.resolve = resolveNoSymlinks | resolveNoMagiclinks
		}
		fd, err := openat2(op.Source, &how)
		if err == syscall.ENOSYS && !op.Strict {
			fd, err = syscall.Open(op.Source, oPath|syscall.O_CLOEXEC, 0)
		}
		if err != nil {
			if op.Optional && err == syscall.ENOENT {
				continue
			}
			if err == syscall.ELOOP {
				return &sourceError{wrap("open "+op.Source+": a symlink appeared in the granted path since the host resolved it", err)}
			}
			return &sourceError{wrap("open "+op.Source, err)}
		}
		src[i] = fd
	}
	mark("mount sources opened")

	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return wrap("make mounts private", err)
	}
	if err := syscall.Mount("tmpfs", MountStage, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=1m,nr_inodes=4096,mode=0755"); err != nil {
		return wrap("mount the new root on "+MountStage, err)
	}
	mark("stage mounted")
	pivoted := false
	defer func() {
		if !pivoted {
			// Leave the host tree as it was for the degraded launch.
			_ = syscall.Unmount(MountStage, syscall.MNT_DETACH)
		}
	}()
	for i, op := range ops {
		target := MountStage + op.Target
		var err error
		switch op.Kind {
		case "tmpfs":
			if err = mkdirAll(target, 0o755); err == nil {
				err = syscall.Mount("tmpfs", target, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, op.Data)
			}
		case "proc":
			if err = mkdirAll(target, 0o555); err == nil {
				flags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC)
				// subset=pid hides everything but the process directories.
				if err = syscall.Mount("proc", target, "proc", flags, "subset=pid"); err == syscall.EINVAL {
					err = syscall.Mount("proc", target, "proc", flags, "")
				}
			}
		case "symlink":
			if err = mkdirAll(dirname(target), 0o755); err == nil {
				err = syscall.Symlink(op.Source, target)
			}
		case "bind":
			if src[i] < 0 {
				continue // optional and missing
			}
			err = bindMount(src[i], target, op)
		default:
			err = errors.New("unknown mount kind " + strconv.Quote(op.Kind))
		}
		if err != nil {
			return wrap(op.Kind+" "+op.Target, err)
		}
	}

	mark("tree built")
	// pivot_root(".", ".") stacks the old root on the new one; detaching it
	// leaves only the new tree.
	if err := syscall.Chdir(MountStage); err != nil {
		return wrap("enter the new root", err)
	}
	if err := syscall.PivotRoot(".", "."); err != nil {
		_ = syscall.Chdir("/")
		return wrap("pivot_root", err)
	}
	pivoted = true
	if err := syscall.Unmount(".", syscall.MNT_DETACH); err != nil {
		return wrap("detach the host's root", err)
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	mark("pivoted")
	if err := syscall.Mount("", "/", "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV, ""); err != nil {
		return wrap("make the new root read-only", err)
	}
	return nil
}

func bindMount(fd int, target string, op MountOp) error {
	if op.File {
		if err := mkdirAll(dirname(target), 0o755); err != nil {
			return err
		}
		f, err := syscall.Open(target, syscall.O_CREAT|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		syscall.Close(f)
	} else if err := mkdirAll(target, 0o755); err != nil {
		return err
	}
	bind := uintptr(syscall.MS_BIND)
	if op.Recursive {
		bind |= syscall.MS_REC
	}
	if err := syscall.Mount("/proc/self/fd/"+strconv.Itoa(fd), target, "", bind, ""); err != nil {
		return err
	}
	// A remount must keep the flags the source mount has locked (a user
	// namespace may not clear them), so start from what statfs reports.
	var st syscall.Statfs_t
	if err := syscall.Statfs(target, &st); err != nil {
		return err
	}
	keep := uintptr(st.Flags) & (syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC |
		syscall.MS_NOATIME | syscall.MS_NODIRATIME | syscall.MS_RELATIME)
	want := uintptr(syscall.MS_NOSUID)
	if !op.Device {
		want |= syscall.MS_NODEV
	}
	if op.ReadOnly {
		want |= syscall.MS_RDONLY
	}
	if keep&want == want {
		return nil // the source mount has these flags already
	}
	if err := syscall.Mount("", target, "", keep|want|syscall.MS_BIND|syscall.MS_REMOUNT, ""); err != nil {
		return wrap("remount read-only/nosuid", err)
	}
	return nil
}
