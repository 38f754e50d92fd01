package proc

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// ExitError describes how a plugin process ended. It matches ErrExited.
type ExitError struct {
	Pid    int
	Code   int            // exit status, or -1 when a signal ended it
	Signal syscall.Signal // the signal that ended it, or 0
	Reason string         // why the host killed it, if it did
	Limit  string         // the envelope limit that ended it ("memory", "seccomp", …), if one did
	Stderr []string       // its last stderr lines, sanitized
}

func newExitError(pid int, st *os.ProcessState, waitErr error, reason string, tail []string) *ExitError {
	e := &ExitError{Pid: pid, Code: -1, Reason: reason, Stderr: tail}
	if st == nil {
		if e.Reason == "" && waitErr != nil {
			e.Reason = waitErr.Error()
		}
		return e
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal()
	} else {
		e.Code = st.ExitCode()
	}
	return e
}

func (e *ExitError) Error() string {
	var b strings.Builder
	switch {
	case e.Signal != 0:
		fmt.Fprintf(&b, "plugin process %d killed by signal %s", e.Pid, SignalName(e.Signal))
	case e.Code >= 0:
		fmt.Fprintf(&b, "plugin process %d exited with status %d", e.Pid, e.Code)
	default:
		fmt.Fprintf(&b, "plugin process %d ended", e.Pid)
	}
	if e.Limit != "" {
		fmt.Fprintf(&b, " at its %s limit", e.Limit)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if len(e.Stderr) > 0 {
		fmt.Fprintf(&b, "; last stderr: %s", strings.Join(e.Stderr, " | "))
	}
	return b.String()
}

// Is matches ErrExited.
func (e *ExitError) Is(target error) bool { return target == ErrExited }

// Clean reports whether the process exited with status 0 and the host did
// not kill it.
func (e *ExitError) Clean() bool { return e.Code == 0 && e.Signal == 0 && e.Reason == "" }

// SignalName returns a signal's conventional name ("SIGKILL").
func SignalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM", syscall.SIGSEGV: "SIGSEGV",
		syscall.SIGABRT: "SIGABRT", syscall.SIGSYS: "SIGSYS", syscall.SIGXCPU: "SIGXCPU",
		syscall.SIGXFSZ: "SIGXFSZ", syscall.SIGBUS: "SIGBUS", syscall.SIGINT: "SIGINT",
		syscall.SIGPIPE: "SIGPIPE", syscall.SIGQUIT: "SIGQUIT", syscall.SIGILL: "SIGILL",
		syscall.SIGFPE: "SIGFPE", syscall.SIGHUP: "SIGHUP",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("%d (%v)", int(s), s)
}
