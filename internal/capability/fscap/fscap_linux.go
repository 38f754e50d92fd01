//go:build linux

package fscap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/airlockhq/airlock/internal/capability"
)

var (
	probeOnce   sync.Once
	haveOpenat2 bool
)

// Mode says how paths are resolved on this machine: "openat2" or
// "o_nofollow-walk" (see the package doc).
func Mode() string {
	if openat2Available() {
		return "openat2"
	}
	return "o_nofollow-walk"
}

func openat2Available() bool {
	probeOnce.Do(func() {
		fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
		if err == nil {
			unix.Close(fd)
		}
		haveOpenat2 = !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM)
	})
	return haveOpenat2
}

func (f *FS) Call(ctx context.Context, c *capability.Call) ([]byte, error) {
	var r Request
	if err := capability.DecodeJSON(c.Payload, &r); err != nil {
		return nil, err
	}
	t, err := locate(c, r.Path)
	if err != nil {
		return nil, err
	}
	maxFile := c.Scope.MaxFile
	if maxFile <= 0 {
		maxFile = 1 << 20
	}
	switch c.Function {
	case "fs.read.file":
		data, err := f.readFile(t, maxFile)
		if err != nil {
			return nil, pathError(r.Path, err)
		}
		return json.Marshal(FileResult{Data: data})
	case "fs.read.stat":
		st, err := f.stat(t)
		if err != nil {
			return nil, pathError(r.Path, err)
		}
		return json.Marshal(st)
	case "fs.read.list":
		l, err := f.list(t)
		if err != nil {
			return nil, pathError(r.Path, err)
		}
		return json.Marshal(l)
	case "fs.write.file":
		size, err := f.writeFile(t, r.Data, r.Append, maxFile)
		if err != nil {
			return nil, pathError(r.Path, err)
		}
		return json.Marshal(WriteResult{Size: size})
	case "fs.write.mkdir":
		if err := f.mkdir(t); err != nil {
			return nil, pathError(r.Path, err)
		}
		return []byte("{}"), nil
	case "fs.write.remove":
		if err := f.remove(t); err != nil {
			return nil, pathError(r.Path, err)
		}
		return []byte("{}"), nil
	}
	return nil, fmt.Errorf("%w %q", capability.ErrUnknownFunction, c.Function)
}

// pathError maps errno values to the capability's sentinels.
func pathError(p string, err error) error {
	switch {
	case errors.Is(err, capability.ErrTooLarge), errors.Is(err, capability.ErrBadInput), errors.Is(err, capability.ErrPermissionDenied):
		return err
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%w: path %q leaves its granted directory (through \"..\" or a symlink): %v", capability.ErrPermissionDenied, p, err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %q: %v", capability.ErrNotFound, p, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.EROFS):
		return fmt.Errorf("%w: %q: %v", capability.ErrPermissionDenied, p, err)
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EISDIR), errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.ENAMETOOLONG), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("%w: %q: %v", capability.ErrBadInput, p, err)
	}
	return fmt.Errorf("%q: %w", p, err)
}

// dir opens the directory the target's rest is resolved in: the scope path
// beneath the granted host directory.
func (f *FS) dir(t target) (int, error) {
	root, err := retry(func() (int, error) {
		return unix.Open(t.hostDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, os.NewSyscallError("open granted directory", err)
	}
	if t.base == "" {
		return root, nil
	}
	defer unix.Close(root)
	return f.openBeneath(root, t.base, unix.O_PATH|unix.O_DIRECTORY, 0)
}

// open resolves rel beneath the target's directory and opens it.
func (f *FS) open(t target, rel string, flags int, mode uint32) (int, error) {
	d, err := f.dir(t)
	if err != nil {
		return -1, err
	}
	defer unix.Close(d)
	if rel == "" {
		rel = "."
	}
	return f.openBeneath(d, rel, flags, mode)
}

// openBeneath opens rel (clean, relative) beneath dirfd and nowhere else.
func (f *FS) openBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC
	if !f.noOpenat2 && openat2Available() {
		fd, err := retry(func() (int, error) {
			return unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode),
				Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS})
		})
		if err != nil {
			return -1, os.NewSyscallError("openat2", err)
		}
		return fd, nil
	}
	return walk(dirfd, rel, flags, mode)
}

// walk opens rel one component at a time, never following a symlink.
func walk(dirfd int, rel string, flags int, mode uint32) (int, error) {
	parts := strings.Split(rel, "/")
	cur, err := unix.Dup(dirfd)
	if err != nil {
		return -1, os.NewSyscallError("dup", err)
	}
	for i, part := range parts {
		if part == ".." || part == "" {
			unix.Close(cur)
			return -1, os.NewSyscallError("openat", unix.EXDEV)
		}
		last := i == len(parts)-1
		fl, m := unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(0)
		if last {
			fl, m = flags|unix.O_NOFOLLOW, mode
		}
		next, err := retry(func() (int, error) { return unix.Openat(cur, part, fl, m) })
		if errors.Is(err, unix.ENOTDIR) {
			// O_NOFOLLOW|O_DIRECTORY on a symlink says "not a directory":
			// report it as the link it is.
			var st unix.Stat_t
			if unix.Fstatat(cur, part, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		unix.Close(cur)
		if err != nil {
			return -1, os.NewSyscallError("openat", err)
		}
		cur = next
	}
	if flags&unix.O_PATH != 0 {
		// O_PATH|O_NOFOLLOW opens a symlink itself; refuse it.
		var st unix.Stat_t
		if err := unix.Fstat(cur, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			unix.Close(cur)
			return -1, os.NewSyscallError("openat", unix.ELOOP)
		}
	}
	return cur, nil
}

func retry(fn func() (int, error)) (int, error) {
	for i := 0; ; i++ {
		fd, err := fn()
		if (errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN)) && i < 16 {
			continue
		}
		return fd, err
	}
}

func regular(fd int, p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return st, os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return st, fmt.Errorf("%w: %q is not a regular file", capability.ErrBadInput, p)
	}
	return st, nil
}

func (f *FS) readFile(t target, maxFile int64) ([]byte, error) {
	fd, err := f.open(t, t.rest, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	file := os.NewFile(uintptr(fd), t.rest)
	defer file.Close()
	st, err := regular(fd, t.rest)
	if err != nil {
		return nil, err
	}
	if st.Size > maxFile {
		return nil, fmt.Errorf("%w: file of %d bytes is more than the %d bytes granted", capability.ErrTooLarge, st.Size, maxFile)
	}
	data, err := io.ReadAll(io.LimitReader(file, maxFile+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > maxFile {
		return nil, fmt.Errorf("%w: file grew past the %d bytes granted while being read", capability.ErrTooLarge, maxFile)
	}
	return data, nil
}

func (f *FS) stat(t target) (StatResult, error) {
	fd, err := f.open(t, t.rest, unix.O_PATH, 0)
	if err != nil {
		return StatResult{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return StatResult{}, os.NewSyscallError("fstat", err)
	}
	return StatResult{Size: st.Size, Dir: st.Mode&unix.S_IFMT == unix.S_IFDIR, ModTimeN: st.Mtim.Nano()}, nil
}

func (f *FS) list(t target) (ListResult, error) {
	fd, err := f.open(t, t.rest, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return ListResult{}, err
	}
	dir := os.NewFile(uintptr(fd), t.rest)
	defer dir.Close()
	des, err := dir.ReadDir(MaxEntries + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return ListResult{}, err
	}
	res := ListResult{Entries: []Entry{}}
	if len(des) > MaxEntries {
		des, res.More = des[:MaxEntries], true
	}
	for _, de := range des {
		e := Entry{Name: de.Name(), Dir: de.IsDir()}
		// Stat relative to the open directory, never by path.
		var st unix.Stat_t
		if unix.Fstatat(fd, de.Name(), &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			e.Size = st.Size
		}
		res.Entries = append(res.Entries, e)
	}
	sort.Slice(res.Entries, func(i, j int) bool { return res.Entries[i].Name < res.Entries[j].Name })
	return res, nil
}

func (f *FS) writeFile(t target, data []byte, appendTo bool, maxFile int64) (int64, error) {
	if int64(len(data)) > maxFile {
		return 0, fmt.Errorf("%w: %d bytes is more than the %d bytes granted per file", capability.ErrTooLarge, len(data), maxFile)
	}
	if t.rest == "" {
		return 0, fmt.Errorf("%w: cannot write to a granted directory itself; name a file beneath it", capability.ErrBadInput)
	}
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_NONBLOCK | unix.O_NOCTTY
	if appendTo {
		flags |= unix.O_APPEND
	}
	fd, err := f.open(t, t.rest, flags, 0o644)
	if err != nil {
		return 0, err
	}
	file := os.NewFile(uintptr(fd), t.rest)
	defer file.Close()
	st, err := regular(fd, t.rest)
	if err != nil {
		return 0, err
	}
	if appendTo && st.Size+int64(len(data)) > maxFile {
		return 0, fmt.Errorf("%w: appending %d bytes to %d would pass the %d bytes granted per file", capability.ErrTooLarge, len(data), st.Size, maxFile)
	}
	if !appendTo {
		// Truncate only now that the target is known to be a regular file
		// inside the grant.
		if err := file.Truncate(0); err != nil {
			return 0, err
		}
	}
	if _, err := file.Write(data); err != nil {
		return 0, err
	}
	if err := file.Sync(); err != nil {
		return 0, err
	}
	if appendTo {
		return st.Size + int64(len(data)), nil
	}
	return int64(len(data)), nil
}

// parent opens the directory holding the target's last component.
func (f *FS) parent(t target) (int, string, error) {
	if t.rest == "" {
		return -1, "", fmt.Errorf("%w: the granted directory itself cannot be created or removed", capability.ErrBadInput)
	}
	dir, name := path.Split(t.rest)
	fd, err := f.open(t, strings.TrimSuffix(dir, "/"), unix.O_PATH|unix.O_DIRECTORY, 0)
	return fd, name, err
}

func (f *FS) mkdir(t target) error {
	fd, name, err := f.parent(t)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Mkdirat(fd, name, 0o755); err != nil {
		return os.NewSyscallError("mkdirat", err)
	}
	return nil
}

func (f *FS) remove(t target) error {
	fd, name, err := f.parent(t)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = unix.Unlinkat(fd, name, 0)
	if errors.Is(err, unix.EISDIR) {
		err = unix.Unlinkat(fd, name, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return os.NewSyscallError("unlinkat", err)
	}
	return nil
}
