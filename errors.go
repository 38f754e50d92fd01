package airlock

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/airlockhq/airlock/internal/proc"
	"github.com/airlockhq/airlock/internal/rpc"
	"github.com/airlockhq/airlock/internal/sandbox"
	"github.com/airlockhq/airlock/internal/supervisor"
	"github.com/airlockhq/airlock/internal/wire"
)

// Code classifies why a call failed. Codes 1–15 travel on the wire (see
// docs/protocol.md); codes from 100 are decided by the host.
type Code uint16

// The codes. Their numbers never change.
const (
	CodeUnknownFunction  = Code(wire.CodeUnknownFunction)
	CodeBadInput         = Code(wire.CodeBadInput)
	CodeDeadlineExceeded = Code(wire.CodeDeadlineExceeded)
	CodeCancelled        = Code(wire.CodeCancelled)
	CodePanic            = Code(wire.CodePanic)
	CodeOverloaded       = Code(wire.CodeOverloaded)
	CodeInternal         = Code(wire.CodeInternal)
	CodeUnavailable      = Code(wire.CodeUnavailable)
	CodeTooLarge         = Code(wire.CodeTooLarge)
	CodeVersionMismatch  = Code(wire.CodeVersionMismatch)
	CodeProtocol         = Code(wire.CodeProtocol)
	CodePermissionDenied = Code(wire.CodePermissionDenied)
	CodeRateLimited      = Code(wire.CodeRateLimited)
	CodeBudgetExceeded   = Code(wire.CodeBudgetExceeded)
	CodeInvalidToken     = Code(wire.CodeInvalidToken)

	CodeExited        Code = 100 // the plugin process ended while the call was in flight
	CodeClosed        Code = 101 // the plugin is closing or closed
	CodeBadOutput     Code = 102 // the output could not be decoded (CallJSON)
	CodeLimitExceeded Code = 103 // a limit of the plugin's envelope (memory, seccomp, cpu_time, disk) ended it mid-call
)

func (c Code) String() string {
	switch c {
	case CodeExited:
		return "exited"
	case CodeClosed:
		return "closed"
	case CodeBadOutput:
		return "bad_output"
	case CodeLimitExceeded:
		return "limit_exceeded"
	}
	return wire.Code(c).String()
}

// Sentinels, one per code: errors.Is(err, airlock.ErrPanic) is true for a
// *CallError with CodePanic. Deadline and cancellation match
// context.DeadlineExceeded and context.Canceled instead.
var (
	ErrUnknownFunction  = errors.New("unknown function")
	ErrBadInput         = errors.New("bad input")
	ErrPanic            = errors.New("plugin handler panicked")
	ErrOverloaded       = errors.New("plugin overloaded")
	ErrInternal         = errors.New("plugin internal error")
	ErrUnavailable      = errors.New("plugin unavailable")
	ErrTooLarge         = errors.New("payload too large")
	ErrVersionMismatch  = errors.New("no common protocol version")
	ErrProtocol         = errors.New("protocol violation")
	ErrPermissionDenied = errors.New("permission denied")
	ErrRateLimited      = errors.New("rate limited")
	ErrBudgetExceeded   = errors.New("budget exceeded")
	ErrInvalidToken     = errors.New("invalid capability token")
	ErrExited           = errors.New("plugin process exited")
	ErrClosed           = errors.New("plugin closed")
	ErrBadOutput        = errors.New("bad plugin output")
	ErrLimitExceeded    = errors.New("plugin hit a limit of its envelope")

	// ErrDigestMismatch is matched by a Load error when the entry program's
	// sha256 is not the manifest's.
	ErrDigestMismatch = errors.New("entry program digest mismatch")

	// ErrProtectionUnavailable is matched by a Load error when a protection
	// the manifest or the host requires is not available on this machine.
	ErrProtectionUnavailable = errors.New("required sandbox protection unavailable")
)

var codeErrors = map[Code]error{
	CodeUnknownFunction:  ErrUnknownFunction,
	CodeBadInput:         ErrBadInput,
	CodePanic:            ErrPanic,
	CodeOverloaded:       ErrOverloaded,
	CodeInternal:         ErrInternal,
	CodeUnavailable:      ErrUnavailable,
	CodeTooLarge:         ErrTooLarge,
	CodeVersionMismatch:  ErrVersionMismatch,
	CodeProtocol:         ErrProtocol,
	CodePermissionDenied: ErrPermissionDenied,
	CodeRateLimited:      ErrRateLimited,
	CodeBudgetExceeded:   ErrBudgetExceeded,
	CodeInvalidToken:     ErrInvalidToken,
	CodeExited:           ErrExited,
	CodeClosed:           ErrClosed,
	CodeBadOutput:        ErrBadOutput,
	CodeLimitExceeded:    ErrLimitExceeded,
	CodeDeadlineExceeded: context.DeadlineExceeded,
	CodeCancelled:        context.Canceled,
}

// CallError is the error of every failed Plugin.Call.
//
//	var ce *airlock.CallError
//	if errors.As(err, &ce) && ce.Code == airlock.CodePanic { … }
//	errors.Is(err, airlock.ErrPanic)        // the same test
//	errors.Is(err, context.DeadlineExceeded) // the call ran out of time
//	var ee *airlock.ExitError                // the process died mid-call
//	errors.As(err, &ee)
type CallError struct {
	Plugin   string
	Function string
	Code     Code
	Message  string // what went wrong, from the plugin or the host
	Err      error  // the underlying error, e.g. *ExitError, if any
}

func (e *CallError) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("airlock: %s.%s: %s: %s", e.Plugin, e.Function, e.Code, msg)
}

// Is matches the sentinel of e.Code.
func (e *CallError) Is(target error) bool {
	return codeErrors[e.Code] == target
}

// Unwrap returns the underlying error.
func (e *CallError) Unwrap() error { return e.Err }

// ExitError describes how a plugin process ended. It is wrapped by the
// CallError of every call that was in flight, and matches ErrExited.
type ExitError struct {
	Plugin   string
	Instance string
	PID      int
	ExitCode int    // -1 when a signal ended it
	Signal   string // e.g. "SIGKILL", or ""
	Reason   string // why the host killed it, if it did (watchdog, protocol violation, …)
	Limit    string // the envelope limit that ended it ("memory", "seccomp", "cpu_time", "disk"), if one did
	Stderr   []string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin %s (pid %d) ", e.Plugin, e.PID)
	if e.Signal != "" {
		fmt.Fprintf(&b, "was killed by %s", e.Signal)
	} else {
		fmt.Fprintf(&b, "exited with status %d", e.ExitCode)
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

func exitError(plugin, instance string, pe *proc.ExitError) *ExitError {
	e := &ExitError{Plugin: plugin, Instance: instance, PID: pe.Pid, ExitCode: pe.Code, Reason: pe.Reason, Limit: pe.Limit, Stderr: pe.Stderr}
	if pe.Signal != 0 {
		e.Signal = proc.SignalName(pe.Signal)
	}
	return e
}

// callError turns what the supervisor returned into the public *CallError.
func callError(plugin, function string, err error) error {
	ce := &CallError{Plugin: plugin, Function: function, Err: err}
	var (
		re  *rpc.Error
		ex  *supervisor.ExitedError
		ns  *supervisor.NotServingError
		cle *rpc.ClosedError
	)
	switch {
	case errors.As(err, &re):
		ce.Code, ce.Message, ce.Err = Code(re.Code), re.Message, nil
	case errors.As(err, &ex):
		ce.Code, ce.Err = CodeExited, exitError(ex.Plugin, ex.Instance, ex.Exit)
		if ex.Exit.Limit != "" {
			ce.Code = CodeLimitExceeded
		}
	case errors.As(err, &ns):
		ce.Code, ce.Message = CodeUnavailable, ns.Error()
		if ns.State == supervisor.StateDraining || ns.State == supervisor.StateStopped {
			ce.Code = CodeClosed
		}
	case errors.Is(err, context.DeadlineExceeded):
		ce.Code, ce.Message = CodeDeadlineExceeded, "the caller's deadline passed before the plugin answered"
	case errors.Is(err, context.Canceled):
		ce.Code, ce.Message = CodeCancelled, "the caller cancelled the call"
	case errors.As(err, &cle):
		ce.Code = CodeUnavailable
	default:
		ce.Code = CodeInternal
	}
	return ce
}

// LoadError says why Host.Load could not start a plugin and at which
// lifecycle stage. It matches ErrDigestMismatch, ErrVersionMismatch and
// ErrProtocol where they apply.
type LoadError struct {
	Dir   string
	Stage string // "manifest", "init", "negotiate", "activate"
	Err   error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("airlock: load %s: %s: %v", e.Dir, e.Stage, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Is matches the sentinels that classify start failures.
func (e *LoadError) Is(target error) bool {
	var (
		de *supervisor.DigestError
		ve *wire.VersionError
		re *rpc.Error
		pe *rpc.ProtocolError
	)
	switch target {
	case ErrDigestMismatch:
		return errors.As(e.Err, &de)
	case ErrVersionMismatch:
		return errors.As(e.Err, &ve) || (errors.As(e.Err, &re) && re.Code == wire.CodeVersionMismatch)
	case ErrProtocol:
		return errors.As(e.Err, &pe)
	case ErrProtectionUnavailable:
		return errors.Is(e.Err, sandbox.ErrUnavailable)
	}
	return false
}
