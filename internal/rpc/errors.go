package rpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlockhq/airlock/internal/wire"
)

// Error is a call failure that carries a protocol error code: either the
// peer's ERROR frame (Remote) or a check this side made before sending.
type Error struct {
	Code    wire.Code
	Message string
	Remote  bool
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// Is lets a deadline or cancellation reported by the peer match the
// context errors, so callers can test errors.Is(err, context.DeadlineExceeded).
func (e *Error) Is(target error) bool {
	switch target {
	case context.DeadlineExceeded:
		return e.Code == wire.CodeDeadlineExceeded
	case context.Canceled:
		return e.Code == wire.CodeCancelled
	}
	return false
}

// Errorf returns an *Error with code and a formatted message. Handlers
// return it to choose the code of their ERROR frame.
func Errorf(code wire.Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrClosed is matched by every error that reports the connection is gone.
var ErrClosed = errors.New("connection closed")

// ClosedError reports why the connection closed.
type ClosedError struct {
	Cause error
}

func (e *ClosedError) Error() string {
	if e.Cause == nil {
		return "connection closed"
	}
	return "connection closed: " + e.Cause.Error()
}

func (e *ClosedError) Is(target error) bool { return target == ErrClosed }

func (e *ClosedError) Unwrap() error { return e.Cause }

// ProtocolError reports a peer that broke the protocol; the connection is
// closed when one occurs.
type ProtocolError struct {
	Detail string
	Err    error
}

func (e *ProtocolError) Error() string {
	if e.Err != nil {
		return "protocol violation: " + e.Detail + ": " + e.Err.Error()
	}
	return "protocol violation: " + e.Detail
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// codeOf picks the ERROR code for a handler's error.
func codeOf(err error) (wire.Code, string) {
	var re *Error
	switch {
	case errors.As(err, &re):
		return re.Code.Normalize(), re.Message
	case errors.Is(err, context.DeadlineExceeded):
		return wire.CodeDeadlineExceeded, err.Error()
	case errors.Is(err, context.Canceled):
		return wire.CodeCancelled, err.Error()
	default:
		return wire.CodeInternal, err.Error()
	}
}
