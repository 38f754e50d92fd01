package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/airlockhq/airlock/internal/sandbox/launcher"
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

// systemTree is the part of the plugin's root that depends only on the
// host's layout: the system library directories (bound, or a symlink where
// the host has one, as /lib is on merged-/usr systems) and the loader's
// cache, with their Landlock rules. It is found with the machine (about 20
// stat and readlink calls), not on every Prepare: a directory created or
// removed since then is at worst missing from the plugin's root, or an
// optional bind the launcher skips.
type systemTree struct {
	mounts   []launcher.MountOp
	landlock []launcher.LandlockRule
}

func detectSystemTree() systemTree {
	var t systemTree
	for _, p := range systemPaths {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(p); err == nil {
				t.mounts = append(t.mounts, launcher.MountOp{Kind: "symlink", Source: target, Target: p})
			}
		case fi.IsDir():
			t.mounts = append(t.mounts, launcher.MountOp{Kind: "bind", Source: p, Target: p, ReadOnly: true})
		}
	}
	t.mounts = append(t.mounts,
		launcher.MountOp{Kind: "bind", Source: "/etc/ld.so.cache", Target: "/etc/ld.so.cache", ReadOnly: true, File: true, Optional: true})
	for _, p := range append(slices.Clone(systemPaths), "/etc/ld.so.cache") {
		if _, err := os.Stat(p); err == nil {
			t.landlock = append(t.landlock, launcher.LandlockRule{Path: p, Access: "rx"})
		}
	}
	return t
}

// buildMounts is the plan for the plugin's root: a small read-only tmpfs
// holding the system library directories, the plugin folder and grants,
// a private /tmp of disk bytes, a minimal /dev and a fresh /proc.
//
// A fresh /proc needs a pid namespace of the plugin's own (the kernel only
// mounts proc for the pid namespace's owner); without one, the host's
// /proc is bound read-only instead, which shows what a plugin without a
// pid namespace can see anyway.
func buildMounts(sys systemTree, grants []grant, disk int64, ownPidNS bool) []launcher.MountOp {
	ops := slices.Clone(sys.mounts)
	ops = append(ops,
		launcher.MountOp{Kind: "tmpfs", Target: "/tmp", Data: fmt.Sprintf("size=%d,nr_inodes=%d,mode=1777", disk, max(disk/4096, 1024))},
		launcher.MountOp{Kind: "tmpfs", Target: "/dev", Data: "size=64k,nr_inodes=64,mode=0755"},
		launcher.MountOp{Kind: "symlink", Source: "/proc/self/fd", Target: "/dev/fd"},
		launcher.MountOp{Kind: "symlink", Source: "/proc/self/fd/0", Target: "/dev/stdin"},
		launcher.MountOp{Kind: "symlink", Source: "/proc/self/fd/1", Target: "/dev/stdout"},
		launcher.MountOp{Kind: "symlink", Source: "/proc/self/fd/2", Target: "/dev/stderr"},
	)
	if ownPidNS {
		ops = append(ops, launcher.MountOp{Kind: "proc", Target: "/proc"})
	} else {
		ops = append(ops, launcher.MountOp{Kind: "bind", Source: "/proc", Target: "/proc", ReadOnly: true, Recursive: true})
	}
	for _, d := range devices {
		ops = append(ops, launcher.MountOp{Kind: "bind", Source: d, Target: d, File: true, Device: true, Optional: true})
	}
	for _, g := range grants {
		fi, err := os.Stat(g.Source)
		ops = append(ops, launcher.MountOp{Kind: "bind", Source: g.Source, Target: g.Target, ReadOnly: !g.Write,
			File: err == nil && !fi.IsDir(), Strict: true})
	}
	// Parents before children; symlinks last, so that no setup step ever
	// walks through one (an absolute link would lead out to the host).
	slices.SortStableFunc(ops, func(a, b launcher.MountOp) int {
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
func buildLandlock(sys systemTree, grants []grant) []launcher.LandlockRule {
	rules := slices.Clone(sys.landlock)
	for _, d := range devices {
		rules = append(rules, launcher.LandlockRule{Path: d, Access: "dev"})
	}
	rules = append(rules,
		launcher.LandlockRule{Path: "/proc", Access: "ro"},
		launcher.LandlockRule{Path: "/tmp", Access: "rw", Private: true},
	)
	for i, g := range grants {
		access := "ro"
		switch {
		case g.Write:
			access = "rw"
		case i == 0:
			access = "rx" // the plugin folder: its program must be executable
		}
		rules = append(rules, launcher.LandlockRule{Path: g.Target, Access: access})
	}
	return rules
}
