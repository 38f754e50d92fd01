//! What a handler sees: its call's deadline and cancellation, logging, and
//! host calls.

use std::fmt::{self, Display, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::serve::{Conn, Session};
use crate::wire::{self, Kind, HEADER_SIZE};
use crate::{Error, Result};

/// The call a handler is serving: its deadline, whether it was cancelled,
/// and the way back to the host for logs and host calls.
///
/// A handler receives `&Context`. It is `Send + Sync`, so a handler may share
/// it with threads it starts for the call (through `std::thread::scope`).
///
/// ```
/// use airlock_plugin::{Context, Error, Level, Result};
///
/// fn sum(ctx: &Context, input: &[u8]) -> Result<Vec<u8>> {
///     let mut total = 0u64;
///     for (i, b) in input.iter().enumerate() {
///         if i % 4096 == 0 {
///             ctx.check()?; // stop early once cancelled or out of time
///         }
///         total += u64::from(*b);
///     }
///     ctx.log(Level::DEBUG, "summed", &[("bytes", &input.len()), ("total", &total)]);
///     Ok(total.to_string().into_bytes())
/// }
/// # let out = airlock_plugin::Plugin::new("p", "0").handle("sum", sum).call("sum", &[1, 2]).unwrap();
/// # assert_eq!(out, b"3");
/// ```
pub struct Context {
    pub(crate) call: Arc<CallState>,
    pub(crate) session: Option<Arc<Session>>,
    pub(crate) logger: Logger,
}

/// Per-call state shared by the handler's Context and the serving loop.
pub(crate) struct CallState {
    pub(crate) id: u64,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    cancelled: AtomicBool,
    /// [`Context::sleep`] waits here; a cancel wakes it. Neither costs
    /// anything (no allocation, no system call) until someone waits.
    wake: Mutex<()>,
    woken: Condvar,
}

impl CallState {
    pub(crate) fn new(id: u64, timeout_ns: u64) -> CallState {
        let timeout = (timeout_ns > 0).then(|| Duration::from_nanos(timeout_ns));
        CallState {
            id,
            timeout,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            cancelled: AtomicBool::new(false),
            wake: Mutex::new(()),
            woken: Condvar::new(),
        }
    }

    /// Marks the call cancelled and wakes a handler in [`Context::sleep`].
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        // Taking the lock orders the store before a sleeper's check: the
        // sleeper either sees the flag or is already waiting to be woken.
        drop(self.wake.lock().unwrap_or_else(PoisonError::into_inner));
        self.woken.notify_all();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(crate) fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    pub(crate) fn timeout_text(&self) -> String {
        match self.timeout {
            Some(t) => format!("{t:?}"),
            None => "none".to_owned(),
        }
    }
}

impl Context {
    /// The call's id, unique among the host's calls in flight.
    pub fn call_id(&self) -> u64 {
        self.call.id
    }

    /// When the call's time runs out, or `None` when the host set no
    /// deadline. The host's timeout counts from when it sent the call; the
    /// plugin measures it from when the call arrived, so this deadline is a
    /// little later than the host's.
    pub fn deadline(&self) -> Option<Instant> {
        self.call.deadline
    }

    /// Time left before the deadline (zero once it has passed), or `None`
    /// when there is no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.call
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the host cancelled the call, or the plugin is shutting down
    /// and the grace period ran out. A handler that sees this should stop:
    /// whatever it returns, the host has stopped waiting.
    pub fn is_cancelled(&self) -> bool {
        self.call.is_cancelled()
    }

    /// `Err(Error::Cancelled)` once the call is cancelled,
    /// `Err(Error::DeadlineExceeded)` once its deadline has passed, `Ok(())`
    /// otherwise. Made for long loops: `ctx.check()?`.
    pub fn check(&self) -> Result<()> {
        if self.call.is_cancelled() {
            return Err(Error::Cancelled("the call was cancelled".into()));
        }
        if self.call.expired() {
            return Err(Error::DeadlineExceeded(format!(
                "the call's timeout of {} passed",
                self.call.timeout_text()
            )));
        }
        Ok(())
    }

    /// Writes a log record attributed to this call. Values are rendered with
    /// `Display`; the host escapes control characters and counts the record
    /// against the plugin's log budget.
    ///
    /// ```
    /// # let plugin = airlock_plugin::Plugin::new("p", "0").handle("f", |ctx, input| {
    /// use airlock_plugin::Level;
    /// ctx.log(Level::WARN, "slow input", &[("bytes", &input.len()), ("kind", &"text")]);
    /// # Ok(Vec::new()) });
    /// # plugin.call("f", b"x").unwrap();
    /// ```
    pub fn log(&self, level: Level, message: &str, attrs: &[(&str, &dyn Display)]) {
        self.logger.write(self.call.id, level, message, attrs);
    }

    /// A logger for records outside this call (id 0), for example from a
    /// thread that outlives it. It is the same as [`crate::Plugin::logger`].
    pub fn logger(&self) -> Logger {
        self.logger.clone()
    }

    /// Waits `duration`, or less: returns early with the error of
    /// [`Context::check`] when the call is cancelled or its deadline passes,
    /// whichever comes first. Use it instead of `std::thread::sleep` in
    /// handlers that wait, so that a cancelled call stops at once.
    ///
    /// ```
    /// # let plugin = airlock_plugin::Plugin::new("p", "0").handle("retry", |ctx, _input| {
    /// use std::time::Duration;
    /// for attempt in 0..3 {
    ///     // ... try something, and on failure back off:
    ///     ctx.sleep(Duration::from_millis(10 << attempt))?;
    /// }
    /// # Ok(Vec::new()) });
    /// # plugin.call("retry", b"").unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// `Cancelled` or `DeadlineExceeded`, as [`Context::check`].
    pub fn sleep(&self, duration: Duration) -> Result<()> {
        let until = Instant::now().checked_add(duration);
        let mut guard = self
            .call
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            self.check()?;
            let now = Instant::now();
            if until.is_some_and(|u| now >= u) {
                return Ok(());
            }
            let end = match (until, self.call.deadline) {
                (Some(u), Some(d)) => Some(u.min(d)),
                (u, d) => u.or(d),
            };
            guard = match end {
                None => self
                    .call
                    .woken
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(end) => {
                    self.call
                        .woken
                        .wait_timeout(guard, end.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// Narrows the plugin's token for `capability` (a granted capability
    /// name, e.g. `kv`): from now on its host calls for that capability
    /// present a token that allows at most what `caveat` allows, and never
    /// more than before. The narrowing is kept when the host hands out
    /// fresh tokens. Use it to give up powers the plugin no longer needs. It
    /// needs no key and cannot widen anything.
    ///
    /// Fails with [`Error::Internal`] when `capability` was not granted or
    /// its token cannot take another caveat (16 at most), and with
    /// [`Error::Unavailable`] under [`Plugin::call`](crate::Plugin::call),
    /// where there is no host.
    #[cfg(feature = "attenuate")]
    pub fn attenuate(&self, capability: &str, caveat: &crate::Caveat) -> Result<()> {
        let Some(session) = &self.session else {
            return Err(Error::Unavailable(format!(
                "attenuate {capability:?}: no host; this handler runs under Plugin::call"
            )));
        };
        session.attenuate(capability, caveat)
    }

    /// Calls a host capability: `function` names the operation, such as
    /// `kv.get`, and `payload` is its input (JSON for the built-in
    /// capabilities, see `docs/capabilities.md`). The SDK presents the token
    /// the host granted for the capability the function belongs to: the
    /// longest granted capability name that is a dotted prefix of
    /// `function` (`kv` for `kv.get`, `fs.read` for `fs.read.file`). Blocks
    /// until the host answers, the call's deadline passes (the host gets the
    /// remaining time as the host call's timeout) or the call is cancelled.
    ///
    /// With the `json` feature, `ctx.kv()`, `ctx.http()` and the others
    /// (module `capability`) make the built-in calls with typed inputs and
    /// outputs.
    ///
    /// # Errors
    ///
    /// What the host answers: `PermissionDenied` when the capability was not
    /// granted (the SDK then presents an empty token), `InvalidToken`,
    /// `RateLimited`, `BudgetExceeded`, `BadInput`, …; `DeadlineExceeded`
    /// or `Cancelled` when the call ran out of time or was cancelled while
    /// waiting (the SDK then sends CANCEL for the host call); `TooLarge` when
    /// the request does not fit the host's maximum frame; and `Unavailable`
    /// when there is no host (under [`crate::Plugin::call`]) or the
    /// connection closed.
    pub fn host_call(&self, function: &str, payload: &[u8]) -> Result<Vec<u8>> {
        let Some(session) = &self.session else {
            return Err(Error::Unavailable(format!(
                "host call \"{function}\": no host; this handler runs under Plugin::call"
            )));
        };
        self.check()?;
        session.host_call(&self.call, function, payload)
    }
}

/// A log level, numbered as Go's `log/slog` numbers them; levels between the
/// named ones are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(i32);

impl Level {
    /// Debug (−4).
    pub const DEBUG: Level = Level(-4);
    /// Info (0).
    pub const INFO: Level = Level(0);
    /// Warn (4).
    pub const WARN: Level = Level(4);
    /// Error (8).
    pub const ERROR: Level = Level(8);

    /// A level by number.
    pub const fn new(level: i32) -> Level {
        Level(level)
    }

    /// The level's number.
    pub const fn as_i32(self) -> i32 {
        self.0
    }
}

impl Display for Level {
    /// `DEBUG`, `INFO`, `WARN`, `ERROR`, or an offset from the nearest named
    /// level below (`INFO+2`), as `log/slog` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, base) = match self.0 {
            i32::MIN..=-1 => ("DEBUG", -4),
            0..=3 => ("INFO", 0),
            4..=7 => ("WARN", 4),
            _ => ("ERROR", 8),
        };
        let off = i64::from(self.0) - base;
        if off == 0 {
            f.write_str(name)
        } else {
            write!(f, "{name}{off:+}")
        }
    }
}

/// Writes log records that belong to no call (LOG frames with id 0).
///
/// Get one from [`crate::Plugin::logger`] before serving, or from
/// [`Context::logger`]. Until the plugin is connected to a host, and after
/// the connection ends (or under [`crate::Plugin::call`]), records go to
/// stderr as text, which the host also captures. Cheap to clone; safe to
/// use from any thread.
#[derive(Clone)]
pub struct Logger {
    sink: Arc<Sink>,
}

struct Sink {
    plugin: String,
    conn: OnceLock<Arc<Conn>>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("plugin", &self.sink.plugin)
            .field("connected", &self.sink.conn.get().is_some())
            .finish()
    }
}

impl Logger {
    pub(crate) fn new(plugin: &str) -> Logger {
        Logger {
            sink: Arc::new(Sink {
                plugin: plugin.to_owned(),
                conn: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn connect(&self, conn: Arc<Conn>) {
        let _ = self.sink.conn.set(conn);
    }

    /// Writes one record. See [`Context::log`].
    pub fn log(&self, level: Level, message: &str, attrs: &[(&str, &dyn Display)]) {
        self.write(0, level, message, attrs);
    }

    fn write(&self, id: u64, level: Level, message: &str, attrs: &[(&str, &dyn Display)]) {
        if let Some(conn) = self.sink.conn.get() {
            if conn.is_open() {
                let frame = encode_log(id, level, message, attrs, conn.send_max());
                if conn.write(&frame, &[]).is_ok() {
                    return;
                }
            }
        }
        let mut line = format!("{}: {level} {message}", self.sink.plugin);
        for (k, v) in attrs {
            let _ = write!(line, " {k}={v}");
        }
        eprintln!("{line}");
    }
}

/// Encodes a LOG frame, rendering values straight into the frame and cutting
/// every string to the protocol's 65 535 bytes. Attributes that would push
/// the frame past `max_frame` are dropped and the record says so.
pub(crate) fn encode_log(
    id: u64,
    level: Level,
    message: &str,
    attrs: &[(&str, &dyn Display)],
    max_frame: usize,
) -> Vec<u8> {
    // Leave room for the marker attribute added when attributes are dropped.
    const MARK: (&str, &str) = ("airlock.dropped_attrs", "true");
    let reserve = 4 + MARK.0.len() + MARK.1.len();
    let mut f = Vec::with_capacity(64 + message.len());
    f.extend_from_slice(&[0; HEADER_SIZE]);
    wire::put_u32(&mut f, level.as_i32() as u32);
    let budget = max_frame.saturating_sub(HEADER_SIZE + 4 + 2 + 2 + reserve);
    wire::put_str(&mut f, wire::cut_to(message, budget));
    let count_at = f.len();
    wire::put_u16(&mut f, 0);
    let mut n: u16 = 0;
    let mut dropped = false;
    let mut value = String::new();
    for (k, v) in attrs.iter().take(usize::from(u16::MAX - 1)) {
        let mark = f.len();
        wire::put_str(&mut f, k);
        value.clear();
        let _ = write!(value, "{v}");
        wire::put_str(&mut f, &value);
        if f.len() + reserve > max_frame {
            f.truncate(mark);
            dropped = true;
            break;
        }
        n += 1;
    }
    if dropped || attrs.len() > usize::from(u16::MAX - 1) {
        wire::put_str(&mut f, MARK.0);
        wire::put_str(&mut f, MARK.1);
        n += 1;
    }
    f[count_at..count_at + 2].copy_from_slice(&n.to_le_bytes());
    let body_len = f.len() - HEADER_SIZE;
    f[..HEADER_SIZE].copy_from_slice(&wire::Header::encode(Kind::LOG, id, body_len));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, Message, Status};

    fn decode_log(f: &[u8]) -> (u64, wire::Log<'_>) {
        let Status::Complete((frame, n)) = decode(f, wire::MAX_MAX_FRAME).unwrap() else {
            panic!("incomplete")
        };
        assert_eq!(n, f.len());
        match frame.message().unwrap() {
            Message::Log(l) => (frame.id, l),
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn log_frames_render_values_with_display() {
        let f = encode_log(
            7,
            Level::WARN,
            "slow input",
            &[("bytes", &1048576)],
            wire::DEFAULT_MAX_FRAME,
        );
        let (id, log) = decode_log(&f);
        assert_eq!(id, 7);
        assert_eq!(log.level, 4);
        assert_eq!(log.message, "slow input");
        assert_eq!(log.attrs, vec![("bytes".into(), "1048576".into())]);
    }

    #[test]
    fn log_frames_never_exceed_the_frame_limit() {
        let big = "x".repeat(70_000);
        let attrs: Vec<(&str, &dyn Display)> =
            (0..20).map(|_| ("k", &big as &dyn Display)).collect();
        let max = wire::MIN_MAX_FRAME;
        let f = encode_log(1, Level::INFO, &big, &attrs, max);
        assert!(f.len() <= max, "{} > {max}", f.len());
        let (_, log) = decode_log(&f);
        assert!(
            log.message.len() > 60_000,
            "message cut too short: {}",
            log.message.len()
        );
        assert_eq!(log.attrs.last().unwrap().0, "airlock.dropped_attrs");
    }

    #[test]
    fn levels_print_like_slog() {
        let cases = [
            (Level::DEBUG, "DEBUG"),
            (Level::INFO, "INFO"),
            (Level::new(2), "INFO+2"),
            (Level::WARN, "WARN"),
            (Level::new(3), "INFO+3"),
            (Level::ERROR, "ERROR"),
            (Level::new(12), "ERROR+4"),
            (Level::new(-8), "DEBUG-4"),
        ];
        for (l, want) in cases {
            assert_eq!(l.to_string(), want);
        }
    }
}
