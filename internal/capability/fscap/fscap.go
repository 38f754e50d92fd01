// Package fscap is the fs.read and fs.write capabilities: file access
// beneath the host directories the operator mapped for the plugin.
//
// A plugin names files by relative paths ("data/2024/01.json"). The first
// part matches a path of its grant ("data"), which the policy maps to a host
// directory ("/srv/weather/data"); the rest is opened beneath that directory
// and never above it.
//
// # How files are opened
//
// On Linux 5.6 and later every open goes through openat2(2) with
// RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, relative to a descriptor of the
// granted directory: the kernel resolves the whole path, symlinks
// included, and refuses any step that would leave the directory ("..",
// absolute symlinks, symlinks pointing out, /proc magic links). Because the
// check and the open are one system call, a symlink swapped in while the
// call runs cannot redirect it. Symlinks that stay inside are followed.
//
// Where openat2 is missing (ENOSYS: older kernels, some seccomp sandboxes)
// the package walks the path one component at a time with
// openat(O_NOFOLLOW), refusing every symlink, inside or not. That is
// stricter and also race-free, at the cost of refusing legitimate
// symlinks; Mode reports which is in use.
//
// Only regular files are read or written (a FIFO or device would block or
// misbehave), opened O_NONBLOCK so that opening one cannot hang, and sizes
// are capped by the grant's max_file.
package fscap

import (
	"fmt"
	"path"
	"strings"

	"github.com/airlockhq/airlock/internal/capability"
)

// MaxEntries is the most entries one list call returns.
const MaxEntries = 1000

// FS is fs.read or fs.write. It is safe for concurrent use.
type FS struct {
	name  string
	write bool
	// noOpenat2 forces the O_NOFOLLOW walk (tests of the fallback).
	noOpenat2 bool
}

// NewRead returns the fs.read capability: fs.read.file, fs.read.stat,
// fs.read.list.
func NewRead() *FS { return &FS{name: "fs.read"} }

// NewWrite returns the fs.write capability: fs.write.file, fs.write.mkdir,
// fs.write.remove.
func NewWrite() *FS { return &FS{name: "fs.write", write: true} }

func (f *FS) Name() string { return f.name }

func (f *FS) Functions() []string {
	if f.write {
		return []string{"fs.write.file", "fs.write.mkdir", "fs.write.remove"}
	}
	return []string{"fs.read.file", "fs.read.stat", "fs.read.list"}
}

// Request is the payload of every fs function.
type Request struct {
	Path   string `json:"path"`
	Data   []byte `json:"data,omitempty"`   // fs.write.file (base64 in JSON)
	Append bool   `json:"append,omitempty"` // fs.write.file: append instead of replace
}

// FileResult is fs.read.file's result.
type FileResult struct {
	Data []byte `json:"data"`
}

// StatResult is fs.read.stat's result.
type StatResult struct {
	Size     int64 `json:"size"`
	Dir      bool  `json:"dir"`
	ModTimeN int64 `json:"mod_time_unix_nano"`
}

// Entry is one directory entry.
type Entry struct {
	Name string `json:"name"`
	Dir  bool   `json:"dir"`
	Size int64  `json:"size"`
}

// ListResult is fs.read.list's result, sorted by name; More says the
// directory had more than MaxEntries entries.
type ListResult struct {
	Entries []Entry `json:"entries"`
	More    bool    `json:"more"`
}

// WriteResult is fs.write.file's result.
type WriteResult struct {
	Size int64 `json:"size"` // the file's size after the write
}

func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: path must not be empty", capability.ErrBadInput)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%w: path must not contain NUL", capability.ErrBadInput)
	case path.IsAbs(p):
		return fmt.Errorf("%w: path %q is absolute; paths are relative to a granted path, e.g. \"data/file.json\"", capability.ErrPermissionDenied, p)
	case path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("%w: path %q must be clean (no \".\", \"..\", doubled or trailing slashes)", capability.ErrPermissionDenied, p)
	}
	return nil
}

// Access decodes the path for the broker's scope check.
func (f *FS) Access(_ string, payload []byte) (capability.Access, error) {
	var r Request
	if err := capability.DecodeJSON(payload, &r); err != nil {
		return capability.Access{}, err
	}
	if r.Path == "" {
		return capability.Access{}, fmt.Errorf("%w: path must not be empty", capability.ErrBadInput)
	}
	return capability.Access{Path: r.Path}, nil
}

// target is where a plugin path lands: a host directory, a path beneath it
// down to the token's scope path, and the rest below that.
type target struct {
	hostDir string // the grant's host directory
	base    string // from hostDir down to the scope path; "" when equal
	rest    string // from the scope path down to the file; "" when equal
}

// locate maps p through the token's scope and the grant's roots. The scope
// path bounds resolution, so an attenuated token cannot follow a symlink
// up into the rest of its grant.
func locate(c *capability.Call, p string) (target, error) {
	if err := checkPath(p); err != nil {
		return target{}, err
	}
	sp := longestUnder(c.Scope.Paths, p)
	if sp == "" {
		return target{}, fmt.Errorf("%w: path %q is not beneath a granted path (%s)", capability.ErrPermissionDenied, p, strings.Join(c.Scope.Paths, ", "))
	}
	g := longestUnder(c.Grant.Paths, sp)
	host, ok := c.Grant.Roots[g]
	if g == "" || !ok {
		return target{}, fmt.Errorf("%w: path %q has no host directory in the grant", capability.ErrPermissionDenied, p)
	}
	return target{hostDir: host, base: strings.TrimPrefix(strings.TrimPrefix(sp, g), "/"), rest: strings.TrimPrefix(strings.TrimPrefix(p, sp), "/")}, nil
}

func longestUnder(roots []string, p string) string {
	best := ""
	for _, r := range roots {
		if (p == r || strings.HasPrefix(p, r+"/")) && len(r) > len(best) {
			best = r
		}
	}
	return best
}

var (
	_ capability.Capability = (*FS)(nil)
	_ capability.Scoper     = (*FS)(nil)
)
