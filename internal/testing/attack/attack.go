// Package attack is the hostile-plugin catalogue: one function per attack a
// contained plugin might try, each reporting what it achieved.
//
// The sandbox tests run these inside a full sandbox through a small victim
// program (internal/testing/victim); the host tests wrap the same functions
// into a protocol-speaking hostile plugin. Keeping the attacks here, not in
// a main package, lets both share them.
//
// # Safe outside a sandbox
//
// Every attack is written so that running it unconfined on a test machine
// does no lasting harm: dangerous syscalls get arguments the kernel rejects
// after its permission checks (a mount onto a path that does not exist, a
// kexec with too many segments), attacks on "the host" aim at a pid the
// test chooses (a stand-in process), and anything a successful attack
// obtains (a ptrace attach, a stolen fd) is released at once. An attack
// that succeeds says so in its Result; the caller decides whether that is
// a failure.
package attack

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
)

// Result is what an attack achieved. A zero Errno with a nonzero Count
// usually means the attack got through.
type Result struct {
	Mode string `json:"mode"`
	// Err and Errno describe the failure that stopped the attack, if any.
	Err   string `json:"err,omitempty"`
	Errno string `json:"errno,omitempty"` // "EPERM", "ENOSYS" …
	// Count is how far the attack got: bytes, forks, descriptors, threads.
	Count int64 `json:"count,omitempty"`
	// PID is a process the attack left behind (setsid-orphan), in the
	// attacker's own pid namespace.
	PID int `json:"pid,omitempty"`
	// Calls maps each syscall try-syscalls made to "OK" or its errno name.
	Calls map[string]string `json:"calls,omitempty"`
	// Threads is the status of every thread (seccomp-status).
	Threads []Thread `json:"threads,omitempty"`
	// FDs lists the open descriptors (fds).
	FDs []int `json:"fds,omitempty"`
	// Detail is free text: what was read, the ids seen, and so on.
	Detail string `json:"detail,omitempty"`
}

// Thread is one thread's security state, from /proc/self/task/<tid>/status.
type Thread struct {
	TID        int    `json:"tid"`
	Seccomp    string `json:"seccomp"`
	NoNewPrivs string `json:"no_new_privs"`
	Uid        string `json:"uid"`
	Gid        string `json:"gid"`
	CapEff     string `json:"cap_eff"`
}

// ErrUnknownMode is returned by Run for a mode not in Modes.
var ErrUnknownMode = errors.New("unknown attack mode")

type attackFunc func(args []string) (Result, error)

// Modes returns the attack names, sorted.
func Modes() []string {
	var names []string
	for n := range table() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Run performs one attack. The error is for bad arguments only; an attack
// that was stopped reports how in Result.
func Run(mode string, args []string) (Result, error) {
	f, ok := table()[mode]
	if !ok {
		return Result{}, fmt.Errorf("%w %q (known: %v)", ErrUnknownMode, mode, Modes())
	}
	res, err := f(args)
	res.Mode = mode
	return res, err
}

// failed records err as the failure that stopped an attack.
func (r *Result) failed(err error) {
	if err == nil {
		return
	}
	r.Err = err.Error()
	r.Errno = errnoName(err)
}

func errnoName(err error) string {
	var e syscall.Errno
	if !errors.As(err, &e) {
		return ""
	}
	if e == 0 {
		return "OK"
	}
	if n := errnoNames[e]; n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}
