package wire

import "fmt"

// Code is the closed set of error codes an ERROR frame carries. A receiver
// that meets a code it does not know treats it as CodeInternal and keeps the
// message, so later versions can add codes without breaking older peers.
type Code uint16

// Error codes of protocol version 1. Their numbers never change.
const (
	CodeUnknownFunction  Code = 1  // no such exported function (or host capability)
	CodeBadInput         Code = 2  // the payload was rejected by the handler or decoder
	CodeDeadlineExceeded Code = 3  // the call's timeout passed
	CodeCancelled        Code = 4  // the caller cancelled the call
	CodePanic            Code = 5  // the handler panicked; the plugin keeps serving
	CodeOverloaded       Code = 6  // too many calls in flight; try later
	CodeInternal         Code = 7  // any other failure inside the handler
	CodeUnavailable      Code = 8  // the peer is draining or shutting down
	CodeTooLarge         Code = 9  // a payload or frame exceeds its limit
	CodeVersionMismatch  Code = 10 // negotiation found no common version (id 0)
	CodeProtocol         Code = 11 // the peer broke the protocol (id 0, fatal)
	CodePermissionDenied Code = 12 // a host call was not granted
	CodeRateLimited      Code = 13 // a rate limit was hit
	CodeBudgetExceeded   Code = 14 // a byte or call budget was spent
	CodeInvalidToken     Code = 15 // a capability token failed verification
)

var codeNames = [...]string{
	CodeUnknownFunction:  "unknown_function",
	CodeBadInput:         "bad_input",
	CodeDeadlineExceeded: "deadline_exceeded",
	CodeCancelled:        "cancelled",
	CodePanic:            "panic",
	CodeOverloaded:       "overloaded",
	CodeInternal:         "internal",
	CodeUnavailable:      "unavailable",
	CodeTooLarge:         "too_large",
	CodeVersionMismatch:  "version_mismatch",
	CodeProtocol:         "protocol",
	CodePermissionDenied: "permission_denied",
	CodeRateLimited:      "rate_limited",
	CodeBudgetExceeded:   "budget_exceeded",
	CodeInvalidToken:     "invalid_token",
}

// Known reports whether c is a code of protocol version 1.
func (c Code) Known() bool { return int(c) < len(codeNames) && codeNames[c] != "" }

// String returns the code's snake_case name as written in docs/protocol.md.
func (c Code) String() string {
	if c.Known() {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// CodeByName returns the code called name.
func CodeByName(name string) (Code, bool) {
	for c, n := range codeNames {
		if n != "" && n == name {
			return Code(c), true
		}
	}
	return 0, false
}

// Normalize maps codes this version does not know to CodeInternal, as the
// forward-compatibility rule requires.
func (c Code) Normalize() Code {
	if c.Known() {
		return c
	}
	return CodeInternal
}
