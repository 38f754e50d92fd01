package sandbox

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/airlockhq/airlock/internal/sandbox/launcher"
)

// Protection names, as used in a manifest's sandbox.require, in `airlock
// doctor` and in a plugin's status.
const (
	UserNS       = "userns"            // own user namespace; plugin mapped to an unprivileged host uid
	PidNS        = "pidns"             // own pid namespace; the plugin is its init and sees only its own tree
	NetNS        = "netns"             // own, empty network namespace (loopback down)
	MountNS      = launcher.MountNS    // own mount tree: minimal root, plugin folder read-only, private /tmp, fresh /proc
	IPCNS        = "ipcns"             // own System V IPC and POSIX message queues
	UTSNS        = "utsns"             // own hostname
	Landlock     = launcher.Landlock   // Landlock rules for the same paths, TCP ports and IPC scopes
	Seccomp      = launcher.Seccomp    // seccomp-bpf syscall allowlist
	NoNewPrivs   = launcher.NoNewPrivs // exec can never gain privileges (setuid bits, file capabilities)
	Rlimits      = launcher.Rlimits    // RLIMIT_NOFILE, FSIZE, CORE=0, CPU (and NPROC with an own uid)
	CgroupMemory = "cgroup_memory"     // memory cgroup limit
	CgroupPids   = "cgroup_pids"       // task (process + thread) limit
	CgroupCPU    = "cgroup_cpu"        // CFS quota
	CgroupKill   = "cgroup_kill"       // the whole tree can be killed at once (cgroup.kill or a freezer)
)

// Protections returns every protection name, in the order reports list them.
func Protections() []string {
	return []string{UserNS, PidNS, NetNS, MountNS, IPCNS, UTSNS, Landlock, Seccomp, NoNewPrivs, Rlimits,
		CgroupMemory, CgroupPids, CgroupCPU, CgroupKill}
}

func knownProtection(name string) bool { return slices.Contains(Protections(), name) }

// ErrUnavailable is matched by every *UnavailableError.
var ErrUnavailable = errors.New("sandbox protection unavailable")

// ErrUnknownProtection is returned when Spec.Require names no protection.
var ErrUnknownProtection = errors.New("unknown sandbox protection")

// ErrInvalidSpec is matched by errors about a malformed Spec.
var ErrInvalidSpec = errors.New("invalid sandbox spec")

// UnavailableError says which required protection could not be applied
// and why. It matches ErrUnavailable.
type UnavailableError struct {
	Protection string
	Reason     string
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("required sandbox protection %s is unavailable: %s", e.Protection, e.Reason)
}

// Is matches ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Mechanism is one protection as this machine offers it.
type Mechanism struct {
	Name      string `json:"name"`
	Available bool   `json:"available"`
	// Reason says why it is unavailable, and what would fix it.
	Reason string `json:"reason,omitempty"`
	// Detail says how it is provided ("ABI 7", "v1 memory controller").
	Detail string `json:"detail,omitempty"`
}

// Report is what a machine offers, one Mechanism per protection name.
type Report struct {
	Mechanisms []Mechanism `json:"mechanisms"`
}

// Get returns the named mechanism; an unknown name is unavailable.
func (r Report) Get(name string) Mechanism {
	for _, m := range r.Mechanisms {
		if m.Name == name {
			return m
		}
	}
	return Mechanism{Name: name, Reason: "unknown protection"}
}

// Available lists the available protections.
func (r Report) Available() []string {
	var out []string
	for _, m := range r.Mechanisms {
		if m.Available {
			out = append(out, m.Name)
		}
	}
	return out
}

// String renders the report as one line per mechanism, for `airlock doctor`.
func (r Report) String() string {
	var b strings.Builder
	for _, m := range r.Mechanisms {
		state := "ok  "
		if !m.Available {
			state = "MISSING"
		}
		fmt.Fprintf(&b, "%-14s %s", m.Name, state)
		if m.Detail != "" {
			fmt.Fprintf(&b, " (%s)", m.Detail)
		}
		if m.Reason != "" {
			fmt.Fprintf(&b, ": %s", m.Reason)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// checkRequire returns an error for the first required protection that is
// unknown or unavailable in r.
func checkRequire(require []string, r Report) error {
	for _, name := range require {
		if !knownProtection(name) {
			return fmt.Errorf("%w %q in sandbox.require (known: %s)", ErrUnknownProtection, name,
				strings.Join(Protections(), ", "))
		}
		if m := r.Get(name); !m.Available {
			return &UnavailableError{Protection: name, Reason: m.Reason}
		}
	}
	return nil
}
