//! The crate's error type: one variant per wire error code, plus `Io`.

use std::fmt;

use crate::wire::Code;

/// What went wrong in a handler, a host call or the connection.
///
/// Each variant but [`Error::Io`] is one error code of protocol v1
/// (`docs/protocol.md`, section 7) and carries the human-readable message that
/// travels with it. A handler returns these to fail a call with that code; a
/// host call returns them when the host answers with an ERROR frame.
///
/// ```
/// use airlock_plugin::Error;
///
/// let err = Error::BadInput("line 3: expected a number".into());
/// assert_eq!(err.code().name(), Some("bad_input"));
/// assert_eq!(err.to_string(), "bad_input: line 3: expected a number");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No such function (code 1). The SDK's own message lists the exports.
    UnknownFunction(String),
    /// The input was rejected: it did not decode or failed validation (code 2).
    BadInput(String),
    /// The call's deadline passed (code 3).
    DeadlineExceeded(String),
    /// The call was cancelled (code 4).
    Cancelled(String),
    /// A handler panicked (code 5); the plugin keeps serving.
    Panic(String),
    /// Too many calls in flight (code 6).
    Overloaded(String),
    /// Any other failure (code 7); also every code this version does not know.
    Internal(String),
    /// The receiver is draining or shutting down (code 8).
    Unavailable(String),
    /// A payload or frame exceeds its limit (code 9).
    TooLarge(String),
    /// Negotiation found no common protocol version (code 10).
    VersionMismatch(String),
    /// The peer broke the protocol (code 11).
    Protocol(String),
    /// A host call was not granted (code 12).
    PermissionDenied(String),
    /// A rate limit was hit (code 13).
    RateLimited(String),
    /// A byte or call budget was spent (code 14).
    BudgetExceeded(String),
    /// A capability token failed verification (code 15).
    InvalidToken(String),
    /// Reading or writing the connection to the host failed. Sent to the host
    /// as `internal` when a handler returns it.
    Io(std::io::Error),
}

impl Error {
    /// Builds the error for a wire code and message. A code this version does
    /// not know becomes [`Error::Internal`] and keeps the message, as the
    /// protocol's forward-compatibility rule requires.
    pub fn from_code(code: Code, message: impl Into<String>) -> Error {
        let m = message.into();
        match code {
            Code::UNKNOWN_FUNCTION => Error::UnknownFunction(m),
            Code::BAD_INPUT => Error::BadInput(m),
            Code::DEADLINE_EXCEEDED => Error::DeadlineExceeded(m),
            Code::CANCELLED => Error::Cancelled(m),
            Code::PANIC => Error::Panic(m),
            Code::OVERLOADED => Error::Overloaded(m),
            Code::UNAVAILABLE => Error::Unavailable(m),
            Code::TOO_LARGE => Error::TooLarge(m),
            Code::VERSION_MISMATCH => Error::VersionMismatch(m),
            Code::PROTOCOL => Error::Protocol(m),
            Code::PERMISSION_DENIED => Error::PermissionDenied(m),
            Code::RATE_LIMITED => Error::RateLimited(m),
            Code::BUDGET_EXCEEDED => Error::BudgetExceeded(m),
            Code::INVALID_TOKEN => Error::InvalidToken(m),
            _ => Error::Internal(m),
        }
    }

    /// The wire code this error travels as. [`Error::Io`] travels as
    /// `internal`.
    pub fn code(&self) -> Code {
        match self {
            Error::UnknownFunction(_) => Code::UNKNOWN_FUNCTION,
            Error::BadInput(_) => Code::BAD_INPUT,
            Error::DeadlineExceeded(_) => Code::DEADLINE_EXCEEDED,
            Error::Cancelled(_) => Code::CANCELLED,
            Error::Panic(_) => Code::PANIC,
            Error::Overloaded(_) => Code::OVERLOADED,
            Error::Internal(_) | Error::Io(_) => Code::INTERNAL,
            Error::Unavailable(_) => Code::UNAVAILABLE,
            Error::TooLarge(_) => Code::TOO_LARGE,
            Error::VersionMismatch(_) => Code::VERSION_MISMATCH,
            Error::Protocol(_) => Code::PROTOCOL,
            Error::PermissionDenied(_) => Code::PERMISSION_DENIED,
            Error::RateLimited(_) => Code::RATE_LIMITED,
            Error::BudgetExceeded(_) => Code::BUDGET_EXCEEDED,
            Error::InvalidToken(_) => Code::INVALID_TOKEN,
        }
    }

    /// The message without the code name: what the ERROR frame carries.
    pub fn message(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Error::UnknownFunction(m)
            | Error::BadInput(m)
            | Error::DeadlineExceeded(m)
            | Error::Cancelled(m)
            | Error::Panic(m)
            | Error::Overloaded(m)
            | Error::Internal(m)
            | Error::Unavailable(m)
            | Error::TooLarge(m)
            | Error::VersionMismatch(m)
            | Error::Protocol(m)
            | Error::PermissionDenied(m)
            | Error::RateLimited(m)
            | Error::BudgetExceeded(m)
            | Error::InvalidToken(m) => std::borrow::Cow::Borrowed(m),
            Error::Io(e) => std::borrow::Cow::Owned(format!("connection to the host: {e}")),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "connection to the host: {e}"),
            other if other.message().is_empty() => write!(f, "{}", other.code()),
            other => write!(f, "{}: {}", other.code(), other.message()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_from_code() {
        for n in 1..=15u16 {
            let e = Error::from_code(Code(n), "m");
            assert_eq!(e.code(), Code(n), "code {n}");
            assert_eq!(e.message(), "m");
        }
    }

    #[test]
    fn unknown_codes_become_internal_and_keep_the_message() {
        for n in [0u16, 16, 999, u16::MAX] {
            let e = Error::from_code(Code(n), "from the future");
            assert!(
                matches!(&e, Error::Internal(m) if m == "from the future"),
                "{e:?}"
            );
        }
    }

    #[test]
    fn display_names_the_code() {
        let e = Error::DeadlineExceeded("after 2s".into());
        assert_eq!(e.to_string(), "deadline_exceeded: after 2s");
        assert_eq!(Error::Cancelled(String::new()).to_string(), "cancelled");
        let io = Error::from(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"));
        assert_eq!(io.code(), Code::INTERNAL);
        assert!(std::error::Error::source(&io).is_some());
    }
}
