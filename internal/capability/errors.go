package capability

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlockhq/airlock/internal/wire"
)

// Sentinels. Every error the Broker returns matches exactly one of the code
// sentinels below with errors.Is, and CodeOf maps it to its protocol code.
var (
	// ErrInvalidToken: the token is malformed, forged, tampered with,
	// signed by an unknown key, expired, revoked, or minted for another
	// plugin, instance or capability. Code invalid_token.
	ErrInvalidToken = errors.New("invalid capability token")
	// ErrTokenExpired also matches ErrInvalidToken.
	ErrTokenExpired = errors.New("capability token expired")
	// ErrPermissionDenied: the token is valid but its scope does not cover
	// the call (host, method, path, key, operation). Code permission_denied.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrRateLimited: the capability's call rate is spent. Code rate_limited.
	ErrRateLimited = errors.New("rate limited")
	// ErrBudgetExceeded: the byte budget per minute is spent. Code
	// budget_exceeded.
	ErrBudgetExceeded = errors.New("budget exceeded")
	// ErrQuotaExceeded: kv's stored-bytes quota would be exceeded; also
	// matches ErrBudgetExceeded.
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrBadInput: the payload could not be decoded or is invalid. Code
	// bad_input.
	ErrBadInput = errors.New("bad input")
	// ErrTooLarge: a response, file or request exceeds its cap. Code
	// too_large.
	ErrTooLarge = errors.New("too large")
	// ErrUnknownFunction: no registered capability offers the function.
	// Code unknown_function.
	ErrUnknownFunction = errors.New("unknown host function")
	// ErrNotFound: kv key or file does not exist. Code bad_input.
	ErrNotFound = errors.New("not found")
)

// TokenError says which check a token failed. It matches ErrInvalidToken
// (and ErrTokenExpired for the "expiry" check), or ErrPermissionDenied for
// the "scope" check.
type TokenError struct {
	// Check is one of "format", "key", "signature", "caveat", "expiry",
	// "plugin", "instance", "capability", "revoked", "scope".
	Check string
	Msg   string
	Err   error // the sentinel
}

func (e *TokenError) Error() string { return "capability token: " + e.Check + ": " + e.Msg }

// Unwrap returns the sentinel.
func (e *TokenError) Unwrap() error { return e.Err }

// Is lets an expired token match ErrInvalidToken too.
func (e *TokenError) Is(target error) bool {
	return target == ErrInvalidToken && e.Err == ErrTokenExpired
}

func tokenErr(check string, sentinel error, format string, args ...any) *TokenError {
	return &TokenError{Check: check, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// quotaError lets ErrQuotaExceeded match ErrBudgetExceeded.
type quotaError struct{ msg string }

func (e *quotaError) Error() string { return e.msg }
func (e *quotaError) Is(target error) bool {
	return target == ErrQuotaExceeded || target == ErrBudgetExceeded
}

// QuotaError returns an error for a storage quota that a write would exceed;
// it matches ErrQuotaExceeded and ErrBudgetExceeded.
func QuotaError(format string, args ...any) error {
	return &quotaError{msg: fmt.Sprintf(format, args...)}
}

// Error is what the Broker returns for a host call that failed: the
// protocol code for the ERROR frame, who called what, and the cause.
type Error struct {
	Code     wire.Code
	Plugin   string
	Instance string
	Function string
	Err      error
}

func (e *Error) Error() string {
	return fmt.Sprintf("host call %s by plugin %q: %s: %v", e.Function, e.Plugin, e.Code, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// CodeOf maps an error to the protocol code of the ERROR frame that reports
// it:
//
//	*Error                      its Code
//	ErrUnknownFunction          unknown_function
//	ErrBadInput, ErrNotFound    bad_input
//	ErrPermissionDenied         permission_denied
//	ErrInvalidToken (+expired)  invalid_token
//	ErrRateLimited              rate_limited
//	ErrBudgetExceeded (+quota)  budget_exceeded
//	ErrTooLarge                 too_large
//	context.DeadlineExceeded    deadline_exceeded
//	context.Canceled            cancelled
//	anything else               internal
func CodeOf(err error) wire.Code {
	var e *Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, ErrUnknownFunction):
		return wire.CodeUnknownFunction
	case errors.Is(err, ErrInvalidToken):
		return wire.CodeInvalidToken
	case errors.Is(err, ErrPermissionDenied):
		return wire.CodePermissionDenied
	case errors.Is(err, ErrRateLimited):
		return wire.CodeRateLimited
	case errors.Is(err, ErrBudgetExceeded):
		return wire.CodeBudgetExceeded
	case errors.Is(err, ErrTooLarge):
		return wire.CodeTooLarge
	case errors.Is(err, ErrBadInput), errors.Is(err, ErrNotFound):
		return wire.CodeBadInput
	case errors.Is(err, context.DeadlineExceeded):
		return wire.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return wire.CodeCancelled
	default:
		return wire.CodeInternal
	}
}
