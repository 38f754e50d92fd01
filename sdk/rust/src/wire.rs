//! The codec of protocol v1: frame headers, message bodies, kinds and error
//! codes, exactly as `docs/protocol.md` specifies them.
//!
//! The serving loop uses this module; it is public so that tests, tools and
//! Rust hosts can speak the protocol with the same code. It does no I/O.
//!
//! ```text
//! offset  size  field
//! 0       4     length   bytes that follow this field: 12 + body length
//! 4       1     kind
//! 5       1     flags    0 in v1; receivers ignore bits they do not know
//! 6       2     reserved 0 when sent; ignored when received
//! 8       8     id       the call this frame concerns; 0 for connection-level frames
//! 16      ...   body     layout depends on kind
//! ```
//!
//! # Decoding
//!
//! [`decode`] tells "need more bytes" ([`Status::Incomplete`], not an error)
//! from "invalid" ([`DecodeError`]). It checks the length prefix against the
//! caller's maximum before looking at the body and borrows the body from the
//! input, so it never allocates; [`Frame::message`] allocates only the list
//! of a WELCOME's function names, a LOG's attributes or a GRANT's tokens,
//! after checking that
//! the body can hold the count it announces. Bytes after the last known field
//! of a body are ignored, and so are frames of unknown kinds
//! ([`Message::Unknown`]): that is how later versions extend the protocol.
//!
//! Strings are UTF-8 on the wire. A decoder here replaces invalid sequences
//! with U+FFFD instead of refusing the frame, because a peer that cuts a long
//! message at 65 535 bytes may split a character.
//!
//! # Encoding
//!
//! [`Message::encode`] appends a whole frame to a `Vec<u8>`. For payloads that
//! should not be copied, [`result_prefix`], [`call_prefix`] and
//! [`hostcall_prefix`] write everything up to the payload bytes, so a sender
//! writes the prefix and then the payload straight from its own buffer.
//! Strings longer than [`MAX_STR`] bytes are cut at a character boundary.

use std::borrow::Cow;
use std::fmt;

/// Size of a frame header.
pub const HEADER_SIZE: usize = 16;
/// The host's default maximum frame size: a 4 MiB payload plus room for the
/// call's own fields.
pub const DEFAULT_MAX_FRAME: usize = (4 << 20) + (4 << 10);
/// The smallest maximum frame size a peer may state in HELLO or WELCOME.
pub const MIN_MAX_FRAME: usize = 64 << 10;
/// The largest maximum frame size a peer may state in HELLO or WELCOME.
pub const MAX_MAX_FRAME: usize = 64 << 20;
/// The largest frame either side accepts before negotiation ends.
pub const HANDSHAKE_MAX_FRAME: usize = 64 << 10;
/// The four bytes that open HELLO and WELCOME bodies.
pub const MAGIC: [u8; 4] = *b"AIRL";
/// The longest string a `str` field holds.
pub const MAX_STR: usize = u16::MAX as usize;
/// The lowest protocol version this crate speaks.
pub const MIN_VERSION: u16 = 1;
/// The highest protocol version this crate speaks.
pub const MAX_VERSION: u16 = 1;

/// What a frame carries (`docs/protocol.md`, section 4).
///
/// Values without a constant are reserved: `0x0E`–`0x3F` for later core
/// kinds, `0x40`–`0x7F` for extensions, `0x80`–`0xFF` never used.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Kind(pub u8);

const KIND_NAMES: [&str; 14] = [
    "", "hello", "welcome", "call", "result", "error", "cancel", "ping", "pong", "log", "shutdown",
    "goodbye", "hostcall", "grant",
];

impl Kind {
    /// host → plugin, id 0: opens negotiation.
    pub const HELLO: Kind = Kind(0x01);
    /// plugin → host, id 0: chosen version and exports.
    pub const WELCOME: Kind = Kind(0x02);
    /// host → plugin: invoke an exported function.
    pub const CALL: Kind = Kind(0x03);
    /// either way: successful reply to CALL or HOSTCALL.
    pub const RESULT: Kind = Kind(0x04);
    /// either way: failed reply, or id 0 for a fatal connection error.
    pub const ERROR: Kind = Kind(0x05);
    /// either way: the caller no longer wants the call.
    pub const CANCEL: Kind = Kind(0x06);
    /// either way: liveness probe.
    pub const PING: Kind = Kind(0x07);
    /// either way: answer to PING with the same id.
    pub const PONG: Kind = Kind(0x08);
    /// plugin → host: one structured log record.
    pub const LOG: Kind = Kind(0x09);
    /// host → plugin, id 0: drain and exit.
    pub const SHUTDOWN: Kind = Kind(0x0A);
    /// plugin → host, id 0: drained, about to exit.
    pub const GOODBYE: Kind = Kind(0x0B);
    /// plugin → host: invoke a host capability.
    pub const HOSTCALL: Kind = Kind(0x0C);
    /// host → plugin, id 0: the capability tokens, at activation and
    /// whenever the host re-mints them; each replaces all earlier ones.
    pub const GRANT: Kind = Kind(0x0D);

    /// The kind's lowercase name as in `docs/protocol.md`, or `None` for a
    /// kind version 1 does not define.
    pub fn name(self) -> Option<&'static str> {
        match KIND_NAMES.get(usize::from(self.0)) {
            Some(n) if !n.is_empty() => Some(n),
            _ => None,
        }
    }

    /// Whether version 1 defines this kind.
    pub fn is_known(self) -> bool {
        self.name().is_some()
    }

    /// The kind called `name` (as returned by [`Kind::name`]).
    pub fn from_name(name: &str) -> Option<Kind> {
        let i = KIND_NAMES
            .iter()
            .position(|n| !n.is_empty() && *n == name)?;
        u8::try_from(i).ok().map(Kind)
    }
}

impl fmt::Display for Kind {
    /// The name, or `kind(0xNN)` for an unknown kind.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "kind(0x{:02x})", self.0),
        }
    }
}

/// An error code carried by an ERROR frame (`docs/protocol.md`, section 7).
///
/// The set is closed per version; a receiver treats a code it does not know
/// as [`Code::INTERNAL`] ([`Code::normalize`]) and keeps the message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Code(pub u16);

const CODE_NAMES: [&str; 16] = [
    "",
    "unknown_function",
    "bad_input",
    "deadline_exceeded",
    "cancelled",
    "panic",
    "overloaded",
    "internal",
    "unavailable",
    "too_large",
    "version_mismatch",
    "protocol",
    "permission_denied",
    "rate_limited",
    "budget_exceeded",
    "invalid_token",
];

impl Code {
    /// No such function; the message lists the exports.
    pub const UNKNOWN_FUNCTION: Code = Code(1);
    /// The payload was rejected.
    pub const BAD_INPUT: Code = Code(2);
    /// The call's deadline passed.
    pub const DEADLINE_EXCEEDED: Code = Code(3);
    /// The call was cancelled.
    pub const CANCELLED: Code = Code(4);
    /// The handler panicked; the plugin keeps serving.
    pub const PANIC: Code = Code(5);
    /// Too many calls in flight.
    pub const OVERLOADED: Code = Code(6);
    /// Any other failure, and every unknown code.
    pub const INTERNAL: Code = Code(7);
    /// The receiver is draining or shutting down.
    pub const UNAVAILABLE: Code = Code(8);
    /// A payload or frame exceeds its limit.
    pub const TOO_LARGE: Code = Code(9);
    /// Negotiation found no common version (id 0).
    pub const VERSION_MISMATCH: Code = Code(10);
    /// The peer broke the protocol (id 0).
    pub const PROTOCOL: Code = Code(11);
    /// A host call was not granted.
    pub const PERMISSION_DENIED: Code = Code(12);
    /// A rate limit was hit.
    pub const RATE_LIMITED: Code = Code(13);
    /// A byte or call budget was spent.
    pub const BUDGET_EXCEEDED: Code = Code(14);
    /// A capability token failed verification.
    pub const INVALID_TOKEN: Code = Code(15);

    /// The code's snake_case name, or `None` for a code version 1 does not
    /// define.
    pub fn name(self) -> Option<&'static str> {
        match CODE_NAMES.get(usize::from(self.0)) {
            Some(n) if !n.is_empty() => Some(n),
            _ => None,
        }
    }

    /// The code to act on: itself when known, [`Code::INTERNAL`] otherwise.
    pub fn normalize(self) -> Code {
        if self.name().is_some() {
            self
        } else {
            Code::INTERNAL
        }
    }
}

impl fmt::Display for Code {
    /// The name, or `code(N)` for an unknown code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "code({})", self.0),
        }
    }
}

/// The result of a decode that may need more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<T> {
    /// The input held a whole item.
    Complete(T),
    /// The input holds the start of an item but not all of it: read more and
    /// try again. This is not an error.
    Incomplete,
}

/// Why bytes are not a valid frame. Every variant but [`DecodeError::TooLarge`]
/// means the frame is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix announces a frame larger than the receiver accepts.
    /// Detected from the header alone, before any body byte is read.
    TooLarge {
        /// The frame's kind byte.
        kind: Kind,
        /// The whole frame's announced size, header included.
        size: u64,
        /// The receiver's maximum.
        max: usize,
    },
    /// The length prefix is smaller than the 12 header bytes it must cover.
    LengthTooSmall {
        /// The length prefix.
        length: u32,
    },
    /// A field runs past the end of the body.
    Truncated {
        /// The frame's kind.
        kind: Kind,
        /// The field, named as in `docs/protocol.md`.
        field: &'static str,
        /// Bytes the field needs.
        need: u64,
        /// Bytes left in the body.
        left: usize,
    },
    /// A HELLO or WELCOME body does not open with the magic `AIRL`.
    BadMagic {
        /// The frame's kind.
        kind: Kind,
        /// The four bytes found instead.
        found: [u8; 4],
    },
}

impl DecodeError {
    /// Whether the frame was refused for its size rather than its layout.
    pub fn is_too_large(&self) -> bool {
        matches!(self, DecodeError::TooLarge { .. })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { kind, size, max } => write!(
                f,
                "frame too large ({kind} frame): length prefix announces {size} bytes, limit is {max}"
            ),
            DecodeError::LengthTooSmall { length } => write!(
                f,
                "malformed frame: length prefix {length} is shorter than the 12-byte header remainder"
            ),
            DecodeError::Truncated {
                kind,
                field,
                need,
                left,
            } => write!(
                f,
                "malformed frame ({kind} frame): body ends inside field \"{field}\" (needs {need} bytes, {left} left)"
            ),
            DecodeError::BadMagic { kind, found } => write!(
                f,
                "malformed frame ({kind} frame): magic is {:?}, want \"AIRL\": the peer is not speaking the Airlock protocol",
                String::from_utf8_lossy(found)
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the frame carries.
    pub kind: Kind,
    /// Flag bits; 0 in version 1, unknown bits are ignored.
    pub flags: u8,
    /// The call the frame concerns, or 0.
    pub id: u64,
    /// Body bytes that follow the header.
    pub body_len: usize,
}

impl Header {
    /// Decodes the first [`HEADER_SIZE`] bytes of `buf`. `max_frame` is the
    /// largest whole frame accepted; the length prefix is checked against it
    /// before anything else, so a caller may allocate `body_len` bytes safely.
    pub fn parse(buf: &[u8], max_frame: usize) -> Result<Status<Header>, DecodeError> {
        let Some(h) = buf.get(..HEADER_SIZE) else {
            return Ok(Status::Incomplete);
        };
        let length = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let kind = Kind(h[4]);
        if (length as usize) < HEADER_SIZE - 4 {
            return Err(DecodeError::LengthTooSmall { length });
        }
        let size = u64::from(length) + 4;
        if size > max_frame as u64 {
            return Err(DecodeError::TooLarge {
                kind,
                size,
                max: max_frame,
            });
        }
        Ok(Status::Complete(Header {
            kind,
            flags: h[5],
            id: u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]),
            body_len: length as usize - (HEADER_SIZE - 4),
        }))
    }

    /// The 16 bytes of a header for a frame of `kind` and `id` with a body of
    /// `body_len` bytes (flags and reserved zero).
    ///
    /// # Panics
    ///
    /// If the frame would not fit a `u32` length prefix; no valid frame comes
    /// close (the largest allowed is 64 MiB).
    pub fn encode(kind: Kind, id: u64, body_len: usize) -> [u8; HEADER_SIZE] {
        let length =
            u32::try_from(body_len + HEADER_SIZE - 4).expect("frame body fits a u32 length");
        let mut h = [0u8; HEADER_SIZE];
        h[0..4].copy_from_slice(&length.to_le_bytes());
        h[4] = kind.0;
        h[8..16].copy_from_slice(&id.to_le_bytes());
        h
    }

    /// The size of the whole frame the header describes.
    pub fn frame_len(&self) -> usize {
        HEADER_SIZE + self.body_len
    }
}

/// A frame whose body has not been interpreted yet. The body borrows the
/// decoder's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the frame carries.
    pub kind: Kind,
    /// Flag bits (ignored in version 1).
    pub flags: u8,
    /// The call the frame concerns, or 0.
    pub id: u64,
    /// The body bytes.
    pub body: &'a [u8],
}

/// Decodes one frame from the start of `buf`, accepting frames up to
/// `max_frame` bytes. On success it returns the frame and the number of bytes
/// it used; when `buf` holds only part of a frame, [`Status::Incomplete`].
pub fn decode(buf: &[u8], max_frame: usize) -> Result<Status<(Frame<'_>, usize)>, DecodeError> {
    let h = match Header::parse(buf, max_frame)? {
        Status::Complete(h) => h,
        Status::Incomplete => return Ok(Status::Incomplete),
    };
    let Some(body) = buf.get(HEADER_SIZE..h.frame_len()) else {
        return Ok(Status::Incomplete);
    };
    Ok(Status::Complete((
        Frame {
            kind: h.kind,
            flags: h.flags,
            id: h.id,
            body,
        },
        h.frame_len(),
    )))
}

impl<'a> Frame<'a> {
    /// Interprets the body according to the frame's kind. A frame of a kind
    /// version 1 does not define gives [`Message::Unknown`]; bytes after the
    /// last known field are ignored.
    pub fn message(&self) -> Result<Message<'a>, DecodeError> {
        let mut d = Body {
            kind: self.kind,
            b: self.body,
        };
        Ok(match self.kind {
            Kind::HELLO => {
                d.magic()?;
                Message::Hello(Hello {
                    min_version: d.u16("min_version")?,
                    max_version: d.u16("max_version")?,
                    max_frame: d.u32("max_frame")?,
                    host: d.str("host")?,
                    plugin: d.str("plugin")?,
                    instance: d.str("instance")?,
                })
            }
            Kind::WELCOME => {
                d.magic()?;
                let version = d.u16("version")?;
                let min_version = d.u16("min_version")?;
                let max_version = d.u16("max_version")?;
                let max_frame = d.u32("max_frame")?;
                let sdk = d.str("sdk")?;
                let n = d.count("function_count", 2)?;
                let mut functions = Vec::with_capacity(n);
                for _ in 0..n {
                    functions.push(d.str("function")?);
                }
                Message::Welcome(Welcome {
                    version,
                    min_version,
                    max_version,
                    max_frame,
                    sdk,
                    functions,
                })
            }
            Kind::CALL => Message::Call(Call {
                timeout_ns: d.u64("timeout_ns")?,
                function: d.str("function")?,
                payload: d.bytes("payload")?,
            }),
            Kind::RESULT => Message::Result {
                payload: d.bytes("payload")?,
            },
            Kind::ERROR => Message::Error(Failure {
                code: Code(d.u16("code")?),
                message: d.str("message")?,
            }),
            Kind::CANCEL => Message::Cancel,
            Kind::PING => Message::Ping,
            Kind::PONG => Message::Pong,
            Kind::LOG => {
                let level = d.u32("level")? as i32;
                let message = d.str("message")?;
                let n = d.count("attr_count", 4)?;
                let mut attrs = Vec::with_capacity(n);
                for _ in 0..n {
                    attrs.push((d.str("attr_key")?, d.str("attr_value")?));
                }
                Message::Log(Log {
                    level,
                    message,
                    attrs,
                })
            }
            Kind::SHUTDOWN => Message::Shutdown {
                grace_ns: d.u64("grace_ns")?,
            },
            Kind::GOODBYE => Message::Goodbye,
            Kind::HOSTCALL => Message::HostCall(HostCall {
                timeout_ns: d.u64("timeout_ns")?,
                function: d.str("function")?,
                token: d.bytes("token")?,
                payload: d.bytes("payload")?,
            }),
            Kind::GRANT => {
                // A token takes at least its two length prefixes.
                let n = d.count("token_count", 2 + 4)?;
                let mut tokens = Vec::with_capacity(n);
                for _ in 0..n {
                    tokens.push(Token {
                        capability: d.str("capability")?,
                        token: d.bytes("token")?,
                    });
                }
                Message::Grant(Grant { tokens })
            }
            kind => Message::Unknown {
                kind,
                body: self.body,
            },
        })
    }
}

/// HELLO: the host opens negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello<'a> {
    /// Lowest version the host speaks.
    pub min_version: u16,
    /// Highest version the host speaks.
    pub max_version: u16,
    /// Largest frame the host accepts.
    pub max_frame: u32,
    /// The host's name and version, e.g. `airlock/0.1.0`.
    pub host: Cow<'a, str>,
    /// The plugin's manifest name.
    pub plugin: Cow<'a, str>,
    /// Identifies this run of the plugin.
    pub instance: Cow<'a, str>,
}

/// WELCOME: the plugin's answer to HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome<'a> {
    /// The chosen version: the highest both sides speak.
    pub version: u16,
    /// Lowest version the plugin speaks.
    pub min_version: u16,
    /// Highest version the plugin speaks.
    pub max_version: u16,
    /// Largest frame the plugin accepts.
    pub max_frame: u32,
    /// The plugin SDK's name and version, e.g. `airlock-rust/0.1.0`.
    pub sdk: Cow<'a, str>,
    /// The exported function names (at most 65 535 are sent).
    pub functions: Vec<Cow<'a, str>>,
}

/// CALL: the host invokes an exported function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<'a> {
    /// Time granted to the call in nanoseconds, from when it was sent; 0
    /// means no deadline.
    pub timeout_ns: u64,
    /// The function to run.
    pub function: Cow<'a, str>,
    /// The input.
    pub payload: &'a [u8],
}

/// HOSTCALL: the plugin invokes a host capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCall<'a> {
    /// Time granted in nanoseconds; 0 means no deadline.
    pub timeout_ns: u64,
    /// The capability operation, e.g. `kv.get`.
    pub function: Cow<'a, str>,
    /// The capability token the host handed out, passed back unchanged.
    pub token: &'a [u8],
    /// The input.
    pub payload: &'a [u8],
}

/// GRANT: the host hands the plugin its capability tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant<'a> {
    /// One token per capability the operator granted (at most 65 535 are
    /// sent); possibly none.
    pub tokens: Vec<Token<'a>>,
}

/// One capability token in a GRANT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    /// The capability, e.g. `kv` or `fs.read`.
    pub capability: Cow<'a, str>,
    /// Opaque bytes the plugin passes back unchanged in HOSTCALL.
    pub token: &'a [u8],
}

/// The body of an ERROR frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure<'a> {
    /// The code as sent; see [`Code::normalize`].
    pub code: Code,
    /// Human-readable text.
    pub message: Cow<'a, str>,
}

/// LOG: one structured log record from the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log<'a> {
    /// `log/slog` numbering: debug −4, info 0, warn 4, error 8.
    pub level: i32,
    /// The record's message.
    pub message: Cow<'a, str>,
    /// Attributes as (key, value) text (at most 65 535 are sent).
    pub attrs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// A frame body interpreted by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// HELLO (0x01).
    Hello(Hello<'a>),
    /// WELCOME (0x02).
    Welcome(Welcome<'a>),
    /// CALL (0x03).
    Call(Call<'a>),
    /// RESULT (0x04).
    Result {
        /// The output.
        payload: &'a [u8],
    },
    /// ERROR (0x05).
    Error(Failure<'a>),
    /// CANCEL (0x06).
    Cancel,
    /// PING (0x07).
    Ping,
    /// PONG (0x08).
    Pong,
    /// LOG (0x09).
    Log(Log<'a>),
    /// SHUTDOWN (0x0A).
    Shutdown {
        /// How long in-flight calls may take to finish, in nanoseconds.
        grace_ns: u64,
    },
    /// GOODBYE (0x0B).
    Goodbye,
    /// HOSTCALL (0x0C).
    HostCall(HostCall<'a>),
    /// GRANT (0x0D).
    Grant(Grant<'a>),
    /// A kind version 1 does not define; receivers ignore it.
    Unknown {
        /// The kind byte.
        kind: Kind,
        /// The raw body.
        body: &'a [u8],
    },
}

impl Message<'_> {
    /// The frame kind that carries this message.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::HELLO,
            Message::Welcome(_) => Kind::WELCOME,
            Message::Call(_) => Kind::CALL,
            Message::Result { .. } => Kind::RESULT,
            Message::Error(_) => Kind::ERROR,
            Message::Cancel => Kind::CANCEL,
            Message::Ping => Kind::PING,
            Message::Pong => Kind::PONG,
            Message::Log(_) => Kind::LOG,
            Message::Shutdown { .. } => Kind::SHUTDOWN,
            Message::Goodbye => Kind::GOODBYE,
            Message::HostCall(_) => Kind::HOSTCALL,
            Message::Grant(_) => Kind::GRANT,
            Message::Unknown { kind, .. } => *kind,
        }
    }

    /// Appends the whole frame, header and body, with the given id.
    pub fn encode(&self, id: u64, dst: &mut Vec<u8>) {
        let start = dst.len();
        dst.extend_from_slice(&[0; HEADER_SIZE]);
        match self {
            Message::Hello(m) => {
                dst.extend_from_slice(&MAGIC);
                put_u16(dst, m.min_version);
                put_u16(dst, m.max_version);
                put_u32(dst, m.max_frame);
                put_str(dst, &m.host);
                put_str(dst, &m.plugin);
                put_str(dst, &m.instance);
            }
            Message::Welcome(m) => {
                dst.extend_from_slice(&MAGIC);
                put_u16(dst, m.version);
                put_u16(dst, m.min_version);
                put_u16(dst, m.max_version);
                put_u32(dst, m.max_frame);
                put_str(dst, &m.sdk);
                let fns = &m.functions[..m.functions.len().min(usize::from(u16::MAX))];
                put_u16(dst, fns.len() as u16);
                for f in fns {
                    put_str(dst, f);
                }
            }
            Message::Call(m) => {
                put_u64(dst, m.timeout_ns);
                put_str(dst, &m.function);
                put_bytes(dst, m.payload);
            }
            Message::Result { payload } => put_bytes(dst, payload),
            Message::Error(m) => {
                put_u16(dst, m.code.0);
                put_str(dst, &m.message);
            }
            Message::Cancel | Message::Ping | Message::Pong | Message::Goodbye => {}
            Message::Log(m) => {
                put_u32(dst, m.level as u32);
                put_str(dst, &m.message);
                let attrs = &m.attrs[..m.attrs.len().min(usize::from(u16::MAX))];
                put_u16(dst, attrs.len() as u16);
                for (k, v) in attrs {
                    put_str(dst, k);
                    put_str(dst, v);
                }
            }
            Message::Shutdown { grace_ns } => put_u64(dst, *grace_ns),
            Message::HostCall(m) => {
                put_u64(dst, m.timeout_ns);
                put_str(dst, &m.function);
                put_bytes(dst, m.token);
                put_bytes(dst, m.payload);
            }
            Message::Grant(m) => {
                let tokens = &m.tokens[..m.tokens.len().min(usize::from(u16::MAX))];
                put_u16(dst, tokens.len() as u16);
                for t in tokens {
                    put_str(dst, &t.capability);
                    put_bytes(dst, t.token);
                }
            }
            Message::Unknown { body, .. } => dst.extend_from_slice(body),
        }
        let body_len = dst.len() - start - HEADER_SIZE;
        dst[start..start + HEADER_SIZE].copy_from_slice(&Header::encode(self.kind(), id, body_len));
    }
}

/// A RESULT frame up to, not including, its payload bytes: write these 20
/// bytes, then the payload.
pub fn result_prefix(id: u64, payload_len: usize) -> [u8; HEADER_SIZE + 4] {
    let mut p = [0u8; HEADER_SIZE + 4];
    p[..HEADER_SIZE].copy_from_slice(&Header::encode(Kind::RESULT, id, 4 + payload_len));
    p[HEADER_SIZE..].copy_from_slice(&len_u32(payload_len).to_le_bytes());
    p
}

/// Appends a CALL frame up to, not including, its payload bytes.
pub fn call_prefix(
    dst: &mut Vec<u8>,
    id: u64,
    timeout_ns: u64,
    function: &str,
    payload_len: usize,
) {
    let function = cut(function);
    let body_len = 8 + 2 + function.len() + 4 + payload_len;
    dst.extend_from_slice(&Header::encode(Kind::CALL, id, body_len));
    put_u64(dst, timeout_ns);
    put_str(dst, function);
    put_u32(dst, len_u32(payload_len));
}

/// Appends a HOSTCALL frame up to, not including, its payload bytes.
pub fn hostcall_prefix(
    dst: &mut Vec<u8>,
    id: u64,
    timeout_ns: u64,
    function: &str,
    token: &[u8],
    payload_len: usize,
) {
    let function = cut(function);
    let body_len = 8 + 2 + function.len() + 4 + token.len() + 4 + payload_len;
    dst.extend_from_slice(&Header::encode(Kind::HOSTCALL, id, body_len));
    put_u64(dst, timeout_ns);
    put_str(dst, function);
    put_bytes(dst, token);
    put_u32(dst, len_u32(payload_len));
}

/// The highest version in both inclusive ranges, or `None`. A range with
/// `min > max` or containing the never-used version 0 matches nothing.
pub fn negotiate(host: (u16, u16), plugin: (u16, u16)) -> Option<u16> {
    let valid = |(lo, hi): (u16, u16)| lo >= 1 && lo <= hi;
    if !valid(host) || !valid(plugin) {
        return None;
    }
    let v = host.1.min(plugin.1);
    (v >= host.0 && v >= plugin.0).then_some(v)
}

/// Formats an inclusive version range as `docs/protocol.md` does: `v1` or
/// `v2–v3`.
pub fn version_range(min: u16, max: u16) -> String {
    if min == max {
        format!("v{min}")
    } else {
        format!("v{min}\u{2013}v{max}")
    }
}

// --- primitives -------------------------------------------------------------

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).expect("payload length fits a u32")
}

/// `s` cut to at most [`MAX_STR`] bytes at a character boundary.
pub(crate) fn cut(s: &str) -> &str {
    cut_to(s, MAX_STR)
}

/// `s` cut to at most `max` bytes (and [`MAX_STR`]) at a character boundary.
pub(crate) fn cut_to(s: &str, max: usize) -> &str {
    let max = max.min(MAX_STR);
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn put_u16(dst: &mut Vec<u8>, v: u16) {
    dst.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(dst: &mut Vec<u8>, v: u32) {
    dst.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(dst: &mut Vec<u8>, v: u64) {
    dst.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_str(dst: &mut Vec<u8>, s: &str) {
    let s = cut(s);
    put_u16(dst, s.len() as u16);
    dst.extend_from_slice(s.as_bytes());
}

fn put_bytes(dst: &mut Vec<u8>, b: &[u8]) {
    put_u32(dst, len_u32(b.len()));
    dst.extend_from_slice(b);
}

/// Reads fields from a body, front to back.
struct Body<'a> {
    kind: Kind,
    b: &'a [u8],
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(DecodeError::Truncated {
                kind: self.kind,
                field,
                need: n as u64,
                left: self.b.len(),
            });
        }
        let (v, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(v)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn str(&mut self, field: &'static str) -> Result<Cow<'a, str>, DecodeError> {
        let n = self.u16(field)?;
        self.take(usize::from(n), field)
            .map(String::from_utf8_lossy)
    }

    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(field)?;
        if u64::from(n) > self.b.len() as u64 {
            return Err(DecodeError::Truncated {
                kind: self.kind,
                field,
                need: u64::from(n),
                left: self.b.len(),
            });
        }
        self.take(n as usize, field)
    }

    /// Reads a u16 count of items that take at least `min_item` bytes each,
    /// and refuses a count the rest of the body cannot hold, so a hostile
    /// count never sizes an allocation.
    fn count(&mut self, field: &'static str, min_item: usize) -> Result<usize, DecodeError> {
        let n = usize::from(self.u16(field)?);
        if n * min_item > self.b.len() {
            return Err(DecodeError::Truncated {
                kind: self.kind,
                field,
                need: (n * min_item) as u64,
                left: self.b.len(),
            });
        }
        Ok(n)
    }

    fn magic(&mut self) -> Result<(), DecodeError> {
        let m = self.array::<4>("magic")?;
        if m != MAGIC {
            return Err(DecodeError::BadMagic {
                kind: self.kind,
                found: m,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_codes_have_their_documented_names() {
        assert_eq!(Kind::HOSTCALL.to_string(), "hostcall");
        assert_eq!(Kind(0x40).to_string(), "kind(0x40)");
        assert_eq!(Kind::from_name("shutdown"), Some(Kind::SHUTDOWN));
        assert_eq!(Kind::from_name(""), None);
        assert_eq!(Code::INVALID_TOKEN.to_string(), "invalid_token");
        assert_eq!(Code(999).to_string(), "code(999)");
        assert_eq!(Code(999).normalize(), Code::INTERNAL);
        assert_eq!(Code(0).normalize(), Code::INTERNAL);
    }

    #[test]
    fn negotiate_picks_the_highest_common_version() {
        let cases = [
            ((1, 1), (1, 1), Some(1)),
            ((1, 3), (2, 5), Some(3)),
            ((2, 3), (1, 1), None),
            ((1, 1), (2, 3), None),
            ((0, 0), (1, 1), None),
            ((3, 1), (1, 3), None),
        ];
        for (host, plugin, want) in cases {
            assert_eq!(
                negotiate(host, plugin),
                want,
                "host {host:?} plugin {plugin:?}"
            );
        }
        assert_eq!(version_range(2, 3), "v2\u{2013}v3");
        assert_eq!(version_range(1, 1), "v1");
    }

    #[test]
    fn long_strings_are_cut_at_a_character_boundary() {
        let s = "é".repeat(MAX_STR); // two bytes each
        let mut dst = Vec::new();
        put_str(&mut dst, &s);
        let n = usize::from(u16::from_le_bytes([dst[0], dst[1]]));
        assert_eq!(n, MAX_STR - 1);
        assert!(std::str::from_utf8(&dst[2..]).is_ok());
    }

    #[test]
    fn prefixes_match_whole_frames() {
        let payload = b"payload bytes";
        let mut whole = Vec::new();
        Message::Result { payload }.encode(7, &mut whole);
        let mut split = result_prefix(7, payload.len()).to_vec();
        split.extend_from_slice(payload);
        assert_eq!(whole, split);

        let call = Call {
            timeout_ns: 5,
            function: "f".into(),
            payload,
        };
        let mut whole = Vec::new();
        Message::Call(call).encode(9, &mut whole);
        let mut split = Vec::new();
        call_prefix(&mut split, 9, 5, "f", payload.len());
        split.extend_from_slice(payload);
        assert_eq!(whole, split);

        let hc = HostCall {
            timeout_ns: 1,
            function: "kv.get".into(),
            token: b"tok",
            payload,
        };
        let mut whole = Vec::new();
        Message::HostCall(hc).encode(3, &mut whole);
        let mut split = Vec::new();
        hostcall_prefix(&mut split, 3, 1, "kv.get", b"tok", payload.len());
        split.extend_from_slice(payload);
        assert_eq!(whole, split);
    }

    #[test]
    fn trailing_body_bytes_are_ignored() {
        let mut f = Vec::new();
        Message::Shutdown { grace_ns: 9 }.encode(0, &mut f);
        f.extend_from_slice(b"future");
        let len = (f.len() - 4) as u32;
        f[..4].copy_from_slice(&len.to_le_bytes());
        let Status::Complete((frame, n)) = decode(&f, DEFAULT_MAX_FRAME).unwrap() else {
            panic!("incomplete")
        };
        assert_eq!(n, f.len());
        assert_eq!(frame.message().unwrap(), Message::Shutdown { grace_ns: 9 });
    }

    #[test]
    fn a_grant_count_the_body_cannot_hold_is_refused_before_allocating() {
        // 65 535 tokens announced in a 2-byte body.
        let mut f = Header::encode(Kind::GRANT, 0, 2).to_vec();
        f.extend_from_slice(&u16::MAX.to_le_bytes());
        let Status::Complete((frame, _)) = decode(&f, DEFAULT_MAX_FRAME).unwrap() else {
            panic!("incomplete")
        };
        match frame.message() {
            Err(DecodeError::Truncated { field, need, .. }) => {
                assert_eq!((field, need), ("token_count", 65_535 * 6));
            }
            other => panic!("{other:?}"),
        }
        // A token cut short names its field.
        let mut f = Header::encode(Kind::GRANT, 0, 11).to_vec();
        f.extend_from_slice(&[1, 0, 2, 0, b'k', b'v', 5, 0, 0, 0, b'x']);
        let Status::Complete((frame, _)) = decode(&f, DEFAULT_MAX_FRAME).unwrap() else {
            panic!("incomplete")
        };
        assert!(
            matches!(
                frame.message(),
                Err(DecodeError::Truncated { field: "token", .. })
            ),
            "{:?}",
            frame.message()
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let body = [3u8, 0, b'a', 0xff, b'b', 0, 0, 0, 0];
        let mut f = Header::encode(Kind::CALL, 1, 8 + body.len()).to_vec();
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&body);
        let Status::Complete((frame, _)) = decode(&f, DEFAULT_MAX_FRAME).unwrap() else {
            panic!("incomplete")
        };
        match frame.message().unwrap() {
            Message::Call(c) => assert_eq!(c.function, "a\u{fffd}b"),
            m => panic!("{m:?}"),
        }
    }
}
