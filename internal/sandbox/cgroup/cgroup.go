// Package cgroup creates the control groups that hold one plugin's process
// tree: they cap its memory, tasks and CPU, count the limits it hit, and
// kill the whole tree at once.
//
// # Why both versions at once?
//
// Many machines (this project's CI among them) run a hybrid layout: the
// limiting controllers (memory, pids, cpu, freezer) live in cgroup v1
// hierarchies, while the unified v2 hierarchy is mounted with few or no
// controllers. v2 still offers the two things v1 lacks: a child can be born
// straight into a group (clone3 CLONE_INTO_CGROUP, so no task runs outside
// it for a single instruction) and cgroup.kill, which kills every task of
// the group in one write. A Group therefore spans every hierarchy it can
// use: limits wherever the controller lives, birth and kill through v2 when
// it is there, and the v1 freezer when it is not.
package cgroup

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Controllers a Group uses.
const (
	Memory  = "memory"
	Pids    = "pids"
	CPU     = "cpu"
	Freezer = "freezer"
)

// Limits is the envelope written into a new group. Zero means no limit.
type Limits struct {
	Memory int64   // bytes of memory (and memory+swap where the kernel counts it)
	CPU    float64 // cores, as a CFS quota over a 100 ms period
	Tasks  int     // processes plus threads
}

// Stats are the counters a group kept since it was created.
type Stats struct {
	OOMKills     int64 // tasks the kernel's OOM killer killed for the memory limit
	PidsMax      int64 // forks and clones refused at the task limit
	CPUThrottled int64 // CFS periods in which the group ran out of quota
	MemoryPeak   int64 // highest memory use seen, in bytes
}

// ErrNotFound is returned when no cgroup hierarchy is mounted.
var ErrNotFound = errors.New("no cgroup hierarchy is mounted")

// Name builds a group name that tells its owner: plugin and instance (made
// safe for a path), the host's pid, and a token unique within that host.
// Sweep reads the pid back to find groups whose host died.
func Name(plugin, instance string, hostPID int, token string) string {
	return fmt.Sprintf("%s.%s.%d.%s", clean(plugin), clean(instance), hostPID, clean(token))
}

// ownerPID returns the host pid encoded in a name made by Name.
func ownerPID(name string) (int, bool) {
	f := strings.Split(name, ".")
	if len(f) != 4 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[2])
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func clean(s string) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			b[i] = '_'
		}
	}
	if len(b) > 48 {
		b = b[:48]
	}
	return string(b)
}
