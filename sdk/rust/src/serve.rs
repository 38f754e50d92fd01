//! The serving side of a session: negotiation, the thread pool, host calls
//! and the drain on SHUTDOWN.
//!
//! ```text
//!  main thread            pool threads (≤ max_concurrency + 1, started as needed, reused)
//!  negotiate              one holds the reader role and reads frames:
//!  (HELLO → WELCOME)        PING         → PONG at once
//!  start the pool           CANCEL       → flag the call, wake its host calls
//!  wait for an end          RESULT/ERROR → the waiting host call
//!    or SHUTDOWN            GRANT        → replace the capability tokens
//!                           SHUTDOWN     → refuse new calls, wake main
//!  drain: wait until        CALL         → leave the reader role to the watcher and
//!    no call is left or                    run the call here, then read on; without a
//!    the grace is over;                    watcher, hand the role to an idle (or new)
//!    cancel the rest,                      thread first; with every thread busy, queue
//!    GOODBYE, return                       the call instead
//!                           EOF          → end
//!                         one (Linux) is the watcher: it sleeps in epoll until a frame
//!                           arrives while the reader role is left, then takes the role
//!                         the others run calls, then take the reader role when it
//!                           is free, else a queued call, else watch or wait
//! ```
//!
//! # Why does the reader role move?
//!
//! A dedicated reader thread that passes each call to a worker puts a thread
//! wake-up on every call's path; on a small VM that tripled the round trip.
//! So the thread that read a call runs it. Some thread must still read while
//! it does, so that PING, CANCEL and SHUTDOWN are seen while handlers run.
//! Handing the reader role to another thread on every call costs a wake-up
//! and two context switches per call, off the call's path but not free.
//! Instead, the thread leaves the role free and arms a one-shot epoll watch
//! on the socket before it runs the call, and disarms it after: the watcher
//! wakes only when a frame arrives during the call (a second call, a PING, a
//! host call's reply), and then takes the role. One call at a time, the
//! reader runs every call and blocks once per call, as a single-threaded
//! echo does; no other thread wakes (`sequential_calls_wake_no_second_thread`
//! in tests/host.rs counts it). Without epoll (not Linux) the role is handed
//! on eagerly. No thread is started per call.
//!
//! # Batches
//!
//! When calls arrive faster than they are answered (many callers on one
//! plugin), one read brings several. Leaving the role to the watcher for
//! each of them would wake it once per call, and each reply would cost a
//! write. So a call read while the next frame has begun to arrive (some
//! of it is buffered; a 64 KiB call never finds the next one whole) runs on
//! the reading thread as part of a batch, and its small reply is
//! held back until the burst ends: one read and one write for the lot
//! (`a_burst_of_calls_is_answered_in_one_write` counts the writes). While a
//! batch call runs, the reader waits in the shared state marked as the
//! batch's; a watchdog thread takes it from a call that runs longer than
//! `BATCH_PATIENCE` (100 µs; cut after one to two periods) and hands it on,
//! and a handler that calls the host hands it on before waiting, so a
//! handler that blocks never stops the connection from being read.
//!
//! # Writes
//!
//! Every frame goes through one mutex around the socket (and the replies a
//! batch holds back, which any write sends first), so frames never
//! interleave; a payload is written with `writev` straight from the
//! handler's buffer after a 20-byte prefix. A call's thread forgets the
//! call's id and writes the reply under that mutex: the host may reuse an id
//! as soon as it reads the reply, and the drain sends GOODBYE only after
//! every reply.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufReader, IoSlice, Read, Write};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::context::{CallState, Context, Logger};
use crate::plugin::{export_list, invoke, Function, Plugin};
use crate::wire::{self, Code, Failure, Header, Kind, Message, Status, HEADER_SIZE};
use crate::{sys, Error, Result};

/// Read buffer size: a whole 64 KiB handshake frame, or many small frames,
/// per read(2).
const READ_BUFFER: usize = 64 << 10;

/// Calls allowed to wait for a worker before new ones are answered
/// `overloaded`.
const MAX_QUEUED: usize = 4096;

/// Replies up to this size are written after an inline call disarms the
/// poller; larger ones before (see `Session::run`). Far below a Unix
/// socket's send buffer, so such a write does not wait for the host.
const SMALL_REPLY: usize = 64 << 10;

/// How long one call of a batch may run before the watchdog hands the
/// reader role to another thread (it is cut after one to two periods).
const BATCH_PATIENCE: Duration = Duration::from_micros(100);

/// How a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// SHUTDOWN handled and GOODBYE sent.
    Goodbye,
    /// The host closed the connection.
    HostClosed,
    /// The session failed; the text says why.
    Failed(String),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writing half of the connection. One frame at a time.
pub(crate) struct Conn {
    out: Mutex<Out>,
    send_max: usize,
    open: AtomicBool,
}

/// The socket and the replies of a batch held back to be written together
/// (see [`Session::run_batched`]). Every write writes the held replies
/// first, so frames keep the order in which they were made.
pub(crate) struct Out {
    stream: UnixStream,
    held: Vec<u8>,
    held_frames: usize,
}

/// Replies held back in a batch are written once this many frames or bytes
/// wait.
const HOLD_FRAMES: usize = 32;
const HOLD_BYTES: usize = 64 << 10;

impl Conn {
    /// The largest frame the host accepts (the smaller of the two maxima).
    pub(crate) fn send_max(&self) -> usize {
        self.send_max
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Writes one frame: `head`, then `payload`, in one writev when possible.
    pub(crate) fn write(&self, head: &[u8], payload: &[u8]) -> io::Result<()> {
        let mut out = lock(&self.out);
        self.write_locked(&mut out, head, payload)
    }

    fn write_locked(&self, out: &mut Out, head: &[u8], payload: &[u8]) -> io::Result<()> {
        let mut r = self.flush_locked(out);
        if r.is_ok() {
            r = write_parts(&mut &out.stream, head, payload);
        }
        if r.is_err() {
            self.open.store(false, Ordering::Relaxed);
        }
        r
    }

    /// Queues a small frame to be written with the next write or flush; it
    /// writes them all once enough wait.
    fn hold_locked(&self, out: &mut Out, head: &[u8], payload: &[u8]) -> io::Result<()> {
        out.held.extend_from_slice(head);
        out.held.extend_from_slice(payload);
        out.held_frames += 1;
        if out.held_frames < HOLD_FRAMES && out.held.len() < HOLD_BYTES {
            return Ok(());
        }
        self.flush_locked(out)
    }

    /// Writes the frames held back.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let mut out = lock(&self.out);
        self.flush_locked(&mut out)
    }

    fn flush_locked(&self, out: &mut Out) -> io::Result<()> {
        if out.held.is_empty() {
            return Ok(());
        }
        let r = (&out.stream).write_all(&out.held);
        out.held.clear();
        out.held_frames = 0;
        if r.is_err() {
            self.open.store(false, Ordering::Relaxed);
        }
        r
    }
}

/// Writes `head` then `body` without copying either, retrying short writes.
fn write_parts(w: &mut impl Write, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    while !head.is_empty() {
        let n = if body.is_empty() {
            w.write(head)
        } else {
            w.write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
        };
        match n {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if n < head.len() => head = &head[n..],
            Ok(n) => {
                body = &body[n - head.len()..];
                head = &[];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    w.write_all(body)
}

/// A call waiting for a worker.
struct Job {
    call: Arc<CallState>,
    body: Vec<u8>,
    function: usize,
    payload: Range<usize>,
}

/// What a pool thread does next.
enum Role {
    Read(BufReader<UnixStream>),
    Run(Job),
    /// Wait on the poller until the reader role is free to take.
    Watch,
}

/// Why a thread stopped reading.
enum Flow {
    /// It handed the reader role on and runs this call.
    Run(Job),
    /// It left the reader role free for the watcher, which takes it only if
    /// a frame arrives meanwhile, and runs this call.
    Inline(Job),
    /// The reader role was taken from a batch call this thread ran.
    Gone,
    /// The session is over.
    End(End),
}

/// What the pool threads and the main thread share, under one lock.
#[derive(Default)]
struct State {
    /// Calls accepted and not yet answered, queued or running.
    serving: HashMap<u64, Arc<CallState>>,
    jobs: VecDeque<Job>,
    /// The reader role, when no thread holds it: the next thread that looks
    /// for work takes it before any job.
    reader: Option<BufReader<UnixStream>>,
    /// Pool threads waiting for work.
    idle: usize,
    /// Pool threads started.
    threads: usize,
    /// A pool thread is the watcher: it waits on the poller instead of
    /// `work`, to take a free reader role when the socket has a frame.
    watcher: bool,
    /// The poller failed: no thread may become the watcher again.
    no_watcher: bool,
    /// The call whose thread last left the reader role to the watcher.
    left_by: u64,
    /// A batch call runs (this count of batch calls): `reader` is the
    /// batch's, for no other thread to take (see `Session::run_batched`).
    batch: Option<u64>,
    /// SHUTDOWN arrived: the grace period.
    shutdown: Option<Duration>,
    end: Option<End>,
}

/// A host call waiting for its reply.
struct HostSlot {
    owner: u64,
    state: Mutex<HostWait>,
    ready: Condvar,
}

#[derive(Default)]
struct HostWait {
    reply: Option<Result<Vec<u8>>>,
    cancelled: bool,
}

#[derive(Default)]
struct HostCalls {
    pending: HashMap<u64, Arc<HostSlot>>,
    closed: bool,
}

/// One connected session.
pub(crate) struct Session {
    conn: Arc<Conn>,
    functions: Vec<Function>,
    logger: Logger,
    recv_max: usize,
    /// max_concurrency handlers plus the thread that reads.
    max_threads: usize,
    state: Mutex<State>,
    /// Workers wait here for jobs.
    work: Condvar,
    /// The main thread waits here for an end, SHUTDOWN, or the drain.
    changed: Condvar,
    host: Mutex<HostCalls>,
    next_host_id: AtomicU64,
    /// Tells the watcher that a frame arrived while the reader role was
    /// left free; `None` where there is no poller (not Linux, or it could
    /// not be set up), and the reader role is handed on eagerly instead.
    poller: Option<sys::Poller>,
    /// The capability tokens of the last GRANT, by capability name, each
    /// narrowed by the plugin's caveats for it.
    tokens: Mutex<HashMap<String, Arc<[u8]>>>,
    /// The caveats the plugin put on its tokens, by capability name: applied
    /// again to every GRANT. Locked after `tokens`.
    #[cfg(feature = "attenuate")]
    caveats: Mutex<HashMap<String, Vec<crate::token::Caveat>>>,
    /// Batch calls started; the batch watchdog thread, once started; whether
    /// it sleeps until the next batch.
    batch_gen: AtomicU64,
    dog: OnceLock<thread::Thread>,
    dog_idle: AtomicBool,
}

/// Serves `plugin` on `stream` until the session ends.
pub(crate) fn run(plugin: Plugin, stream: UnixStream) -> End {
    let read_half = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => return End::Failed(format!("duplicate the host connection: {e}")),
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER, read_half);
    let send_max = match negotiate(&plugin, &mut reader, &stream) {
        Ok(n) => n,
        Err(end) => return end,
    };
    let poller = sys::Poller::new(reader.get_ref()).ok();
    let conn = Arc::new(Conn {
        out: Mutex::new(Out {
            stream,
            held: Vec::new(),
            held_frames: 0,
        }),
        send_max,
        open: AtomicBool::new(true),
    });
    plugin.logger.connect(conn.clone());
    let session = Arc::new(Session {
        conn,
        functions: plugin.functions,
        logger: plugin.logger,
        recv_max: plugin.max_frame,
        max_threads: plugin.max_concurrency + 1,
        state: Mutex::new(State::default()),
        work: Condvar::new(),
        changed: Condvar::new(),
        host: Mutex::new(HostCalls::default()),
        next_host_id: AtomicU64::new(1),
        poller,
        tokens: Mutex::new(HashMap::new()),
        #[cfg(feature = "attenuate")]
        caveats: Mutex::new(HashMap::new()),
        batch_gen: AtomicU64::new(0),
        dog: OnceLock::new(),
        dog_idle: AtomicBool::new(false),
    });
    {
        let mut st = lock(&session.state);
        st.reader = Some(reader);
        st.threads = 1;
    }
    if let Err(e) = session.spawn_thread() {
        return End::Failed(format!("start the first thread of the pool: {e}"));
    }
    session.supervise()
}

/// Reads HELLO and answers WELCOME. Returns the send limit.
fn negotiate(
    plugin: &Plugin,
    r: &mut BufReader<UnixStream>,
    w: &UnixStream,
) -> std::result::Result<usize, End> {
    let protocol_error = |msg: String| -> End {
        send_fatal(w, Code::PROTOCOL, &msg);
        End::Failed(format!("protocol error: {msg}"))
    };
    let mut body = Vec::new();
    let hello_frame = loop {
        let h =
            read_header(r, wire::HANDSHAKE_MAX_FRAME).map_err(|e| e.into_end(protocol_error))?;
        read_body(r, h, &mut body)?;
        match h.kind {
            Kind::HELLO => break h,
            k if k.is_known() => {
                return Err(protocol_error(format!(
                    "expected HELLO to open the session, got {k}"
                )))
            }
            _ => {} // unknown kinds are ignored, even now
        }
    };
    let frame = wire::Frame {
        kind: hello_frame.kind,
        flags: hello_frame.flags,
        id: hello_frame.id,
        body: &body,
    };
    let hello = match frame.message() {
        Ok(Message::Hello(h)) => h,
        Ok(_) => unreachable!("a HELLO frame decodes to Message::Hello"),
        Err(e) => return Err(protocol_error(e.to_string())),
    };
    let host = (hello.min_version, hello.max_version);
    let ours = (wire::MIN_VERSION, wire::MAX_VERSION);
    let Some(version) = wire::negotiate(host, ours) else {
        let hint = if host.0 == 0 || host.0 > host.1 {
            "the host sent an invalid range"
        } else if ours.0 > host.1 {
            "upgrade the Airlock host, or rebuild the plugin with an airlock-plugin release that still speaks the host's version"
        } else {
            "rebuild the plugin with a newer airlock-plugin crate"
        };
        let msg = format!(
            "no common protocol version: host speaks {}, plugin speaks {} ({hint})",
            wire::version_range(host.0, host.1),
            wire::version_range(ours.0, ours.1),
        );
        send_fatal(w, Code::VERSION_MISMATCH, &msg);
        return Err(End::Failed(msg));
    };
    let host_max = hello.max_frame as usize;
    if !(wire::MIN_MAX_FRAME..=wire::MAX_MAX_FRAME).contains(&host_max) {
        return Err(protocol_error(format!(
            "HELLO states a maximum frame of {host_max} bytes, outside the allowed {}..={}",
            wire::MIN_MAX_FRAME,
            wire::MAX_MAX_FRAME
        )));
    }
    if hello.plugin != plugin.name {
        plugin.logger.log(
            crate::Level::WARN,
            "the host loaded this plugin under another name",
            &[
                ("manifest_name", &hello.plugin),
                ("plugin_name", &plugin.name),
            ],
        );
    }
    let welcome = Message::Welcome(wire::Welcome {
        version,
        min_version: wire::MIN_VERSION,
        max_version: wire::MAX_VERSION,
        max_frame: plugin.max_frame as u32,
        sdk: concat!("airlock-rust/", env!("CARGO_PKG_VERSION")).into(),
        functions: plugin.functions().map(Into::into).collect(),
    });
    let mut out = Vec::new();
    welcome.encode(0, &mut out);
    if out.len() > wire::HANDSHAKE_MAX_FRAME {
        let msg = format!(
            "the WELCOME frame listing {} functions is {} bytes, more than the {} allowed before negotiation ends: export fewer or shorter names",
            plugin.functions.len(),
            out.len(),
            wire::HANDSHAKE_MAX_FRAME
        );
        send_fatal(w, Code::INTERNAL, &msg);
        return Err(End::Failed(msg));
    }
    if let Err(e) = { w }.write_all(&out) {
        return Err(io_end(&e));
    }
    Ok(host_max.min(plugin.max_frame))
}

/// Sends a connection-level ERROR (id 0), best effort: the session is over.
fn send_fatal(mut w: &UnixStream, code: Code, msg: &str) {
    let mut f = Vec::new();
    Message::Error(Failure {
        code,
        message: msg.into(),
    })
    .encode(0, &mut f);
    let _ = w.write_all(&f);
}

fn io_end(e: &io::Error) -> End {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => End::HostClosed,
        _ => End::Failed(format!("connection to the host: {e}")),
    }
}

/// Why reading a header stopped.
enum ReadFail {
    End(End),
    Invalid(String),
}

impl ReadFail {
    fn into_end(self, protocol_error: impl Fn(String) -> End) -> End {
        match self {
            ReadFail::End(e) => e,
            ReadFail::Invalid(m) => protocol_error(m),
        }
    }
}

fn read_header(r: &mut impl Read, max_frame: usize) -> std::result::Result<Header, ReadFail> {
    let mut h = [0u8; HEADER_SIZE];
    let mut got = 0;
    while got < HEADER_SIZE {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Err(ReadFail::End(End::HostClosed)),
            Ok(0) => {
                return Err(ReadFail::End(End::Failed(
                    "the host closed the connection inside a frame header".into(),
                )))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadFail::End(io_end(&e))),
        }
    }
    match Header::parse(&h, max_frame) {
        Ok(Status::Complete(h)) => Ok(h),
        Ok(Status::Incomplete) => unreachable!("a whole header was read"),
        Err(e) => Err(ReadFail::Invalid(e.to_string())),
    }
}

/// Reads the frame's body into `dst`, replacing its contents.
///
/// It reads into the vector's spare capacity (`read_to_end` on a `take`),
/// so a large body is not zero-filled before the socket's bytes overwrite it.
fn read_body(r: &mut impl Read, h: Header, dst: &mut Vec<u8>) -> std::result::Result<(), End> {
    dst.clear();
    dst.reserve_exact(h.body_len);
    let n = r
        .take(h.body_len as u64)
        .read_to_end(dst)
        .map_err(|e| truncated(h.kind, &e))?;
    if n < h.body_len {
        return Err(truncated(h.kind, &io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(())
}

fn skip_body(r: &mut impl Read, h: Header) -> std::result::Result<(), End> {
    let n = io::copy(&mut r.take(h.body_len as u64), &mut io::sink())
        .map_err(|e| truncated(h.kind, &e))?;
    if n < h.body_len as u64 {
        return Err(truncated(h.kind, &io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(())
}

fn truncated(kind: Kind, e: &io::Error) -> End {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        End::Failed(format!(
            "the host closed the connection inside a {kind} frame"
        ))
    } else {
        io_end(e)
    }
}

/// Where `inner` starts within `outer` (inner must be a subslice).
fn offset_in(outer: &[u8], inner: &[u8]) -> Range<usize> {
    let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
    start..start + inner.len()
}

impl Session {
    // --- main thread ------------------------------------------------------

    /// Waits for the session to end, draining on SHUTDOWN.
    fn supervise(&self) -> End {
        let mut st = lock(&self.state);
        let grace = loop {
            if let Some(end) = st.end.take() {
                return end;
            }
            if let Some(grace) = st.shutdown {
                break grace;
            }
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        };
        let deadline = Instant::now().checked_add(grace);
        while !st.serving.is_empty() && st.end.is_none() {
            match deadline {
                None => {
                    st = self
                        .changed
                        .wait(st)
                        .unwrap_or_else(PoisonError::into_inner)
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    st = self
                        .changed
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        if let Some(end) = st.end.take() {
            return end;
        }
        drop(st);

        // Grace is over: cancel what is left, unanswered, then GOODBYE. The
        // calls leave `serving` first, so a handler that returns now sends
        // nothing; the host fails them when the plugin exits, as it does
        // for every call still in flight then (docs/protocol.md, section
        // 10), whichever SDK the plugin uses.
        let mut out = lock(&self.conn.out);
        let left: Vec<Arc<CallState>> = {
            let mut st = lock(&self.state);
            st.jobs.clear();
            st.serving.drain().map(|(_, c)| c).collect()
        };
        for call in &left {
            self.cancel(call);
        }
        match self
            .conn
            .write_locked(&mut out, &Header::encode(Kind::GOODBYE, 0, 0), &[])
        {
            Ok(()) => End::Goodbye,
            Err(e) => io_end(&e),
        }
    }

    /// Records how the session ended (the first end wins) and wakes the main
    /// thread.
    fn end(&self, end: End) {
        let mut st = lock(&self.state);
        if st.end.is_none() {
            st.end = Some(end);
        }
        self.changed.notify_all();
        drop(st);
        if let Some(t) = self.dog.get() {
            t.unpark(); // it exits
        }
    }

    // --- reader thread ----------------------------------------------------

    /// Reads frames while this thread holds the reader role, until a CALL
    /// this thread can run itself after handing the role on, or the end.
    fn read_frames(self: &Arc<Self>, mut reader: BufReader<UnixStream>) -> Flow {
        let mut scratch = Vec::new();
        loop {
            let r = &mut reader;
            let h = match read_header(r, self.recv_max) {
                Ok(h) => h,
                Err(e) => return Flow::End(e.into_end(|m| self.protocol_error(m))),
            };
            let step = match h.kind {
                Kind::CALL => match self.on_call(r, h) {
                    Ok(Some(job)) if self.batchable(&reader) => {
                        match self.run_batched(reader, job) {
                            Some(back) => {
                                reader = back;
                                Ok(())
                            }
                            None => return Flow::Gone,
                        }
                    }
                    Ok(Some(job)) => match self.leave(reader, h.id) {
                        Ok(()) => return Flow::Inline(job),
                        Err(back) => match self.hand_off(back) {
                            Ok(()) => return Flow::Run(job),
                            Err(back) => {
                                reader = back;
                                self.queue_stranded(job);
                                Ok(())
                            }
                        },
                    },
                    Ok(None) => Ok(()),
                    Err(end) => Err(end),
                },
                Kind::CANCEL => skip_body(r, h).map(|()| self.on_cancel(h.id)),
                Kind::PING => skip_body(r, h).and_then(|()| {
                    self.conn
                        .write(&Header::encode(Kind::PONG, h.id, 0), &[])
                        .map_err(|e| io_end(&e))
                }),
                Kind::PONG => skip_body(r, h), // the plugin sends no PING; nothing to match
                Kind::RESULT => self.on_result(r, h),
                Kind::ERROR => read_body(r, h, &mut scratch).and_then(|()| self.on_error(h, &scratch)),
                Kind::SHUTDOWN => read_body(r, h, &mut scratch).and_then(|()| self.on_shutdown(h, &scratch)),
                Kind::GRANT => read_body(r, h, &mut scratch).and_then(|()| self.on_grant(h, &scratch)),
                k if k.is_known() => Err(self.protocol_error(format!(
                    "the host sent a {k} frame, which only a plugin sends or which belongs to negotiation"
                ))),
                _ => skip_body(r, h), // unknown kinds are ignored
            };
            if let Err(end) = step {
                return Flow::End(end);
            }
            // A frame that was not a call (a cancel, a reply to a host call)
            // may have ended a burst: replies a batch held back would
            // otherwise wait for this thread's next read to return, which
            // may be never.
            if h.kind != Kind::CALL && !Self::next_is_whole(&reader, self.recv_max) {
                if let Err(e) = self.conn.flush() {
                    return Flow::End(io_end(&e));
                }
            }
        }
    }

    fn protocol_error(&self, msg: String) -> End {
        let mut f = Vec::new();
        Message::Error(Failure {
            code: Code::PROTOCOL,
            message: msg.as_str().into(),
        })
        .encode(0, &mut f);
        let _ = self.conn.write(&f, &[]);
        End::Failed(format!("protocol error: {msg}"))
    }

    fn reply_error(&self, id: u64, code: Code, msg: &str) -> std::result::Result<(), End> {
        let mut f = Vec::new();
        Message::Error(Failure {
            code,
            message: msg.into(),
        })
        .encode(id, &mut f);
        self.conn.write(&f, &[]).map_err(|e| io_end(&e))
    }

    /// Accepts or answers a CALL. Returns the job when this thread should run
    /// it (another thread is free to take the reader role, or may be
    /// started); otherwise the call is queued for the next free handler.
    fn on_call(&self, r: &mut impl Read, h: Header) -> std::result::Result<Option<Job>, End> {
        if h.id == 0 {
            return Err(self.protocol_error("CALL with id 0: call ids are non-zero".into()));
        }
        let mut body = Vec::new();
        read_body(r, h, &mut body)?;
        let frame = wire::Frame {
            kind: h.kind,
            flags: h.flags,
            id: h.id,
            body: &body,
        };
        let (timeout_ns, function, payload) = {
            let c = match frame.message() {
                Ok(Message::Call(c)) => c,
                Ok(_) => unreachable!("a CALL frame decodes to Message::Call"),
                Err(e) => return Err(self.protocol_error(e.to_string())),
            };
            let Some(function) = self.lookup(&c.function) else {
                let msg = format!(
                    "unknown function {:?}; exports: {}",
                    c.function,
                    export_list(self.functions.iter().map(|f| f.name.as_str()))
                );
                return self
                    .reply_error(h.id, Code::UNKNOWN_FUNCTION, &msg)
                    .map(|()| None);
            };
            (c.timeout_ns, function, offset_in(&body, c.payload))
        };
        let call = Arc::new(CallState::new(h.id, timeout_ns));
        let mut st = lock(&self.state);
        if st.shutdown.is_some() {
            drop(st);
            return self
                .reply_error(
                    h.id,
                    Code::UNAVAILABLE,
                    "the plugin is shutting down and accepts no new calls",
                )
                .map(|()| None);
        }
        if st.jobs.len() >= MAX_QUEUED {
            drop(st);
            let msg = format!("{MAX_QUEUED} calls are already waiting for a free handler");
            return self
                .reply_error(h.id, Code::OVERLOADED, &msg)
                .map(|()| None);
        }
        if st.serving.insert(h.id, call.clone()).is_some() {
            drop(st);
            return Err(self.protocol_error(format!(
                "CALL id {} is already in flight: the host reused an id before its reply",
                h.id
            )));
        }
        let job = Job {
            call,
            body,
            function,
            payload,
        };
        if st.watcher || st.idle > 0 || st.threads < self.max_threads {
            return Ok(Some(job));
        }
        // Every other thread runs a handler: the first to finish takes it.
        st.jobs.push_back(job);
        Ok(None)
    }

    /// Leaves the reader role free for the watcher and arms the poller, so
    /// that the watcher takes the role only if a frame arrives while this
    /// thread runs a call: no other thread wakes on a call's path. Hands the
    /// reader back when there is no watcher.
    fn leave(
        &self,
        reader: BufReader<UnixStream>,
        call: u64,
    ) -> std::result::Result<(), BufReader<UnixStream>> {
        let Some(poller) = &self.poller else {
            return Err(reader);
        };
        // Bytes already buffered are a frame the socket will not announce:
        // wake the watcher for them instead.
        let buffered = !reader.buffer().is_empty();
        let mut st = lock(&self.state);
        if !st.watcher {
            return Err(reader);
        }
        st.reader = Some(reader);
        st.left_by = call;
        drop(st);
        let armed = if buffered {
            poller.wake()
        } else {
            poller.arm()
        };
        if armed.is_ok() {
            return Ok(());
        }
        // The watcher may never hear of the role: take it back, unless a
        // thread took it already.
        match lock(&self.state).reader.take() {
            Some(reader) => Err(reader),
            None => Ok(()),
        }
    }

    /// The watcher: waits until a frame arrives while the reader role is
    /// free, and takes the role. `None` if the poller fails; then no thread
    /// watches again and the reader role is handed on eagerly.
    fn watch(&self) -> Option<BufReader<UnixStream>> {
        let poller = self.poller.as_ref()?;
        loop {
            let ok = poller.wait().is_ok();
            let mut st = lock(&self.state);
            if st.batch.is_none() {
                if let Some(reader) = st.reader.take() {
                    st.watcher = false;
                    return Some(reader);
                }
            }
            if !ok {
                st.watcher = false;
                st.no_watcher = true;
                return None;
            }
            // The thread that left the role took it back first: wait again.
        }
    }

    /// Gives up the reader role to an idle thread, or to a new one. Hands
    /// the reader back when every thread is busy and no more may (or could)
    /// be started.
    fn hand_off(
        self: &Arc<Self>,
        reader: BufReader<UnixStream>,
    ) -> std::result::Result<(), BufReader<UnixStream>> {
        let mut st = lock(&self.state);
        st.reader = Some(reader);
        if st.idle > 0 {
            drop(st);
            self.work.notify_one();
            return Ok(());
        }
        if st.threads >= self.max_threads {
            return Err(st.reader.take().expect("the reader was just put back"));
        }
        st.threads += 1;
        drop(st);
        if self.spawn_thread().is_ok() {
            return Ok(());
        }
        let mut st = lock(&self.state);
        st.threads -= 1;
        match st.reader.take() {
            Some(reader) => Err(reader),
            None => Ok(()), // a thread that finished its handler took it
        }
    }

    /// Queues a call that found no thread to hand the reader to; with no
    /// other thread at all, answers it `overloaded`.
    fn queue_stranded(&self, job: Job) {
        let mut st = lock(&self.state);
        if st.threads > 1 {
            st.jobs.push_back(job);
            return;
        }
        drop(st);
        self.reply(
            &job.call,
            Err(Error::Overloaded(
                "the plugin could not start a thread to run the call".into(),
            )),
            false,
        );
    }

    fn lookup(&self, name: &str) -> Option<usize> {
        self.functions.iter().position(|f| f.name == name)
    }

    fn spawn_thread(self: &Arc<Self>) -> io::Result<()> {
        let s = self.clone();
        thread::Builder::new()
            .name("airlock-pool".into())
            .spawn(move || s.pool_loop())
            .map(drop)
    }

    fn on_cancel(&self, id: u64) {
        let call = lock(&self.state).serving.get(&id).cloned();
        if let Some(call) = call {
            self.cancel(&call);
        }
    }

    /// Marks a call cancelled and wakes its handler's waits and host calls.
    fn cancel(&self, call: &CallState) {
        call.cancel();
        let host = lock(&self.host);
        for slot in host.pending.values().filter(|s| s.owner == call.id) {
            lock(&slot.state).cancelled = true;
            slot.ready.notify_all();
        }
    }

    fn on_result(&self, r: &mut impl Read, h: Header) -> std::result::Result<(), End> {
        // Read the 4-byte length, then the payload into a buffer of its own
        // that goes to the waiting handler without another copy.
        if h.body_len < 4 {
            let _ = skip_body(r, h);
            return Err(self.protocol_error(format!(
                "malformed frame (result frame): body ends inside field \"payload\" (needs 4 bytes, {} left)",
                h.body_len
            )));
        }
        let mut len = [0u8; 4];
        r.read_exact(&mut len).map_err(|e| truncated(h.kind, &e))?;
        let n = u32::from_le_bytes(len) as usize;
        let left = h.body_len - 4;
        if n > left {
            return Err(self.protocol_error(format!(
                "malformed frame (result frame): field \"payload\" announces {n} bytes, body has {left} left"
            )));
        }
        let mut payload = Vec::new();
        read_body(r, Header { body_len: n, ..h }, &mut payload)?;
        skip_body(
            r,
            Header {
                body_len: left - n,
                ..h
            },
        )?;
        self.resolve(h.id, Ok(payload));
        Ok(())
    }

    fn on_error(&self, h: Header, body: &[u8]) -> std::result::Result<(), End> {
        let frame = wire::Frame {
            kind: h.kind,
            flags: h.flags,
            id: h.id,
            body,
        };
        let failure = match frame.message() {
            Ok(Message::Error(f)) => f,
            Ok(_) => unreachable!("an ERROR frame decodes to Message::Error"),
            Err(e) => return Err(self.protocol_error(e.to_string())),
        };
        if h.id == 0 {
            return Err(End::Failed(format!(
                "the host ended the session: {}: {}",
                failure.code, failure.message
            )));
        }
        self.resolve(
            h.id,
            Err(Error::from_code(failure.code, failure.message.into_owned())),
        );
        Ok(())
    }

    fn on_shutdown(&self, h: Header, body: &[u8]) -> std::result::Result<(), End> {
        let frame = wire::Frame {
            kind: h.kind,
            flags: h.flags,
            id: h.id,
            body,
        };
        let grace_ns = match frame.message() {
            Ok(Message::Shutdown { grace_ns }) => grace_ns,
            Ok(_) => unreachable!("a SHUTDOWN frame decodes to Message::Shutdown"),
            Err(e) => return Err(self.protocol_error(e.to_string())),
        };
        let mut st = lock(&self.state);
        if st.shutdown.is_none() {
            st.shutdown = Some(Duration::from_nanos(grace_ns));
            self.changed.notify_all();
        }
        Ok(())
    }

    /// Replaces every token the plugin held with the GRANT's. A malformed
    /// GRANT is a protocol error like any malformed body (section 7): the
    /// plugin cannot tell which capabilities it still holds.
    fn on_grant(&self, h: Header, body: &[u8]) -> std::result::Result<(), End> {
        let frame = wire::Frame {
            kind: h.kind,
            flags: h.flags,
            id: h.id,
            body,
        };
        let grant = match frame.message() {
            Ok(Message::Grant(g)) => g,
            Ok(_) => unreachable!("a GRANT frame decodes to Message::Grant"),
            Err(e) => return Err(self.protocol_error(e.to_string())),
        };
        let mut tokens = lock(&self.tokens);
        *tokens = grant
            .tokens
            .into_iter()
            .map(|t| (t.capability.into_owned(), Arc::from(t.token)))
            .collect();
        #[cfg(feature = "attenuate")]
        for (capability, caveats) in lock(&self.caveats).iter() {
            if let Some(t) = tokens.get_mut(capability) {
                let mut narrowed = t.to_vec();
                for c in caveats {
                    match crate::token::attenuate(&narrowed, c) {
                        Ok(n) => narrowed = n,
                        Err(_) => {
                            // Fail closed: never present more than the
                            // plugin chose to keep (an empty token is none).
                            narrowed.clear();
                            break;
                        }
                    }
                }
                *t = Arc::from(narrowed);
            }
        }
        Ok(())
    }

    /// Narrows the token of `capability` by `caveat`, now and in every
    /// later GRANT (see [`Context::attenuate`](crate::Context::attenuate)).
    #[cfg(feature = "attenuate")]
    pub(crate) fn attenuate(&self, capability: &str, caveat: &crate::token::Caveat) -> Result<()> {
        let mut tokens = lock(&self.tokens);
        let Some(t) = tokens.get_mut(capability).filter(|t| !t.is_empty()) else {
            return Err(Error::Internal(format!(
                "attenuate: the host granted no {capability:?} token"
            )));
        };
        let narrowed =
            crate::token::attenuate(t, caveat).map_err(|e| Error::Internal(e.to_string()))?;
        *t = Arc::from(narrowed);
        lock(&self.caveats)
            .entry(capability.to_owned())
            .or_default()
            .push(caveat.clone());
        Ok(())
    }

    /// The token of the capability `function` belongs to: the longest
    /// granted capability name that is a dotted prefix of it (`kv` for
    /// `kv.get`, `fs.read` for `fs.read.file`).
    fn token_for(&self, function: &str) -> Option<Arc<[u8]>> {
        let tokens = lock(&self.tokens);
        let mut name = function;
        loop {
            if let Some(t) = tokens.get(name) {
                return Some(t.clone());
            }
            name = &name[..name.rfind('.')?];
        }
    }

    /// Hands a host-call reply to the handler waiting for it. A reply that
    /// matches no waiting host call (it raced with a timeout) is dropped.
    fn resolve(&self, id: u64, reply: Result<Vec<u8>>) {
        let slot = lock(&self.host).pending.remove(&id);
        if let Some(slot) = slot {
            lock(&slot.state).reply = Some(reply);
            slot.ready.notify_all();
        }
    }

    /// Fails every waiting host call: the connection is gone.
    fn close_host_calls(&self) {
        let mut host = lock(&self.host);
        host.closed = true;
        for (_, slot) in host.pending.drain() {
            lock(&slot.state).reply = Some(Err(Error::Unavailable(
                "the connection to the host closed".into(),
            )));
            slot.ready.notify_all();
        }
    }

    // --- worker threads ---------------------------------------------------

    /// A pool thread: takes the reader role when it is free, else runs a
    /// queued call, else waits.
    fn pool_loop(self: Arc<Self>) {
        loop {
            let role = {
                let mut st = lock(&self.state);
                loop {
                    if st.batch.is_none() {
                        if let Some(reader) = st.reader.take() {
                            break Role::Read(reader);
                        }
                    }
                    if let Some(job) = st.jobs.pop_front() {
                        break Role::Run(job);
                    }
                    if self.poller.is_some() && !st.watcher && !st.no_watcher {
                        st.watcher = true;
                        break Role::Watch;
                    }
                    st.idle += 1;
                    st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                    st.idle -= 1;
                }
            };
            let reader = match role {
                Role::Read(reader) => reader,
                Role::Run(job) => {
                    self.run(job, false);
                    continue;
                }
                Role::Watch => match self.watch() {
                    Some(reader) => reader,
                    None => continue,
                },
            };
            match self.read_frames(reader) {
                Flow::Run(job) => self.run(job, false),
                Flow::Inline(job) => self.run(job, true),
                Flow::Gone => {}
                Flow::End(end) => {
                    self.close_host_calls();
                    self.end(end);
                    return;
                }
            }
        }
    }

    /// Runs a call and sends its reply. `inline`: this thread left the
    /// reader role to the watcher for the call (see [`Session::leave`]); it
    /// disarms the poller after the reply and, back in `pool_loop`, takes
    /// the role again if no frame came meanwhile. Disarming only after the
    /// reply keeps the reply off the path, and between the two nothing
    /// blocks.
    fn run(self: &Arc<Self>, job: Job, inline: bool) {
        let (call, outcome) = self.invoke(job);
        let small = outcome
            .as_ref()
            .map_or(true, |out| out.len() <= SMALL_REPLY);
        if inline && small {
            // Disarm first: the host's next call may arrive the moment it
            // has the reply, and must find this thread, not wake the
            // watcher. A small reply's write does not wait for the host.
            self.disarm(call.id);
            self.reply(&call, outcome, false);
        } else {
            // A large reply may wait for the host to read; meanwhile the
            // watcher must still see frames that arrive.
            self.reply(&call, outcome, false);
            if inline {
                self.disarm(call.id);
            }
        }
    }

    /// Runs a call's handler (unless the call was cancelled or timed out
    /// while it waited) and returns its outcome.
    fn invoke(self: &Arc<Self>, job: Job) -> (Arc<CallState>, Result<Vec<u8>>) {
        let Job {
            call,
            body,
            function,
            payload,
        } = job;
        let f = &self.functions[function];
        let outcome = if call.is_cancelled() {
            Err(Error::Cancelled(format!(
                "call {} to {:?} was cancelled before it started",
                call.id, f.name
            )))
        } else if call.expired() {
            Err(Error::DeadlineExceeded(format!(
                "call {} to {:?} waited for a free handler past its timeout of {}",
                call.id,
                f.name,
                call.timeout_text()
            )))
        } else {
            let ctx = Context {
                call: call.clone(),
                session: Some(self.clone()),
                logger: self.logger.clone(),
            };
            invoke(f, &ctx, &body[payload]).and_then(|out| {
                if call.is_cancelled() {
                    Err(Error::Cancelled(format!(
                        "call {} to {:?} was cancelled",
                        call.id, f.name
                    )))
                } else if call.expired() {
                    Err(Error::DeadlineExceeded(format!(
                        "{:?} finished after its timeout of {}",
                        f.name,
                        call.timeout_text()
                    )))
                } else {
                    Ok(out)
                }
            })
        };
        (call, outcome)
    }

    // --- batches ----------------------------------------------------------

    /// Whether the next frame has begun to arrive (some of it is in the
    /// reader's buffer), so that a call just read may run as part of a
    /// batch.
    fn batchable(self: &Arc<Self>, reader: &BufReader<UnixStream>) -> bool {
        !reader.buffer().is_empty() && self.watchdog_started()
    }

    /// Whether the reader's buffer holds the whole next frame, so that
    /// reading it cannot wait and replies held back may wait for it.
    fn next_is_whole(reader: &BufReader<UnixStream>, max_frame: usize) -> bool {
        let b = reader.buffer();
        if b.len() < HEADER_SIZE {
            return false;
        }
        match Header::parse(&b[..HEADER_SIZE], max_frame) {
            Ok(Status::Complete(h)) => b.len() >= HEADER_SIZE + h.body_len,
            Ok(Status::Incomplete) => false,
            Err(_) => true, // reading it fails without waiting
        }
    }

    /// Runs `job`, read while the next frame had begun to arrive, on this
    /// thread without handing the reader role on, and holds its reply back
    /// to be written with the replies of the calls after it. Returns the
    /// reader, or `None` when the role was taken from this thread meanwhile.
    ///
    /// Calls that arrive in a burst (many callers on one plugin) would
    /// otherwise wake the watcher once per call to take the role, and cost
    /// a write each. While a batch call runs, the reader waits in the
    /// shared state marked as the batch's: no thread takes it, except the
    /// watchdog when the same call has run for at least `BATCH_PATIENCE`
    /// (a handler that blocks), and a handler that calls the host, before
    /// it waits for the answer (see [`Session::host_call`]).
    fn run_batched(
        self: &Arc<Self>,
        reader: BufReader<UnixStream>,
        job: Job,
    ) -> Option<BufReader<UnixStream>> {
        let gen = self.batch_gen.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut st = lock(&self.state);
            st.reader = Some(reader);
            st.batch = Some(gen);
        }
        self.wake_watchdog();
        let (call, outcome) = self.invoke(job);
        self.reply(&call, outcome, true);
        let reader = {
            let mut st = lock(&self.state);
            if st.batch == Some(gen) {
                st.batch = None;
                st.reader.take()
            } else {
                None
            }
        };
        let more = reader
            .as_ref()
            .is_some_and(|r| Self::next_is_whole(r, self.recv_max));
        if !more {
            // The burst is over, or this thread's part of it.
            if let Err(e) = self.conn.flush() {
                self.end(io_end(&e));
            }
        }
        reader
    }

    /// Takes the reader role from the running batch call, if any, hands it
    /// on and writes the replies held back.
    fn cut_batch(self: &Arc<Self>, only: Option<u64>) {
        let reader = {
            let mut st = lock(&self.state);
            match st.batch {
                Some(gen) if only.map_or(true, |g| g == gen) => {
                    st.batch = None;
                    st.reader.take()
                }
                _ => return,
            }
        };
        if let Some(reader) = reader {
            if let Err(back) = self.hand_off(reader) {
                // Every thread is busy: the first to finish takes it.
                lock(&self.state).reader = Some(back);
            }
        }
        if let Err(e) = self.conn.flush() {
            self.end(io_end(&e));
        }
    }

    /// Starts the watchdog thread on the first batch. False if it cannot be
    /// started: then calls are not batched.
    fn watchdog_started(self: &Arc<Self>) -> bool {
        if self.dog.get().is_some() {
            return true;
        }
        let s = self.clone();
        let started = thread::Builder::new()
            .name("airlock-watchdog".into())
            .spawn(move || s.watchdog());
        match started {
            Ok(h) => {
                let _ = self.dog.set(h.thread().clone());
                true
            }
            Err(_) => false,
        }
    }

    fn wake_watchdog(&self) {
        if self.dog_idle.swap(false, Ordering::SeqCst) {
            if let Some(t) = self.dog.get() {
                t.unpark();
            }
        }
    }

    /// The watchdog: while batch calls run, it looks every
    /// `BATCH_PATIENCE`; a batch call that was running at the previous look
    /// and still is has run at least that long, and the role is taken from
    /// it. With no batch call running it sleeps until the next one starts.
    fn watchdog(self: Arc<Self>) {
        let mut seen = 0;
        loop {
            let running = {
                let st = lock(&self.state);
                if st.end.is_some() {
                    return;
                }
                st.batch
            };
            match running {
                None => {
                    self.dog_idle.store(true, Ordering::SeqCst);
                    // A batch that began before the store did not wake us.
                    let idle = {
                        let st = lock(&self.state);
                        st.batch.is_none() && st.end.is_none()
                    };
                    if idle {
                        thread::park();
                    }
                    self.dog_idle.store(false, Ordering::SeqCst);
                    seen = 0;
                }
                Some(gen) => {
                    if gen == seen {
                        self.cut_batch(Some(gen));
                        seen = 0;
                    } else {
                        seen = gen;
                    }
                    thread::park_timeout(BATCH_PATIENCE);
                }
            }
        }
    }

    /// Disarms the poller after an inline call. If another thread has left
    /// the reader role since (the watcher took it and left it again), the
    /// disarm undid that thread's arm: arm again for it.
    fn disarm(&self, call: u64) {
        let Some(poller) = &self.poller else {
            return;
        };
        let _ = poller.disarm();
        let st = lock(&self.state);
        if st.reader.is_some() && st.batch.is_none() && st.left_by != call {
            drop(st);
            let _ = poller.arm();
        }
    }

    /// Sends the call's one reply, unless the drain already answered it.
    /// `hold`: the call ran in a batch; a small result is held back to be
    /// written with the batch's other replies.
    fn reply(&self, call: &CallState, outcome: Result<Vec<u8>>, hold: bool) {
        let mut out = lock(&self.conn.out);
        {
            let mut st = lock(&self.state);
            if st.serving.remove(&call.id).is_none() {
                return;
            }
            if st.shutdown.is_some() && st.serving.is_empty() {
                self.changed.notify_all();
            }
        }
        let send_max = self.conn.send_max;
        let written = match outcome {
            Ok(res) if HEADER_SIZE + 4 + res.len() <= send_max => {
                let prefix = wire::result_prefix(call.id, res.len());
                if hold && res.len() <= HOLD_BYTES {
                    self.conn.hold_locked(&mut out, &prefix, &res)
                } else {
                    self.conn.write_locked(&mut out, &prefix, &res)
                }
            }
            Ok(res) => self.write_error(
                &mut out,
                call.id,
                &Error::TooLarge(format!(
                    "the result is {} bytes; the host accepts frames of at most {send_max} bytes",
                    res.len()
                )),
            ),
            Err(e) => self.write_error(&mut out, call.id, &e),
        };
        drop(out);
        if let Err(e) = written {
            self.end(io_end(&e));
        }
    }

    fn write_error(&self, out: &mut Out, id: u64, e: &Error) -> io::Result<()> {
        let mut f = Vec::new();
        Message::Error(Failure {
            code: e.code(),
            message: e.message(),
        })
        .encode(id, &mut f);
        self.conn.write_locked(out, &f, &[])
    }

    // --- host calls (from handlers) ---------------------------------------

    /// Makes a host call for `call`, presenting the token of the
    /// capability `function` belongs to, or an empty one when the host
    /// granted none (the host then answers `permission_denied`).
    pub(crate) fn host_call(
        self: &Arc<Self>,
        call: &CallState,
        function: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>> {
        let token = self.token_for(function);
        let token: &[u8] = token.as_deref().unwrap_or_default();
        let size =
            HEADER_SIZE + 8 + 2 + wire::cut(function).len() + 4 + token.len() + 4 + payload.len();
        if size > self.conn.send_max {
            return Err(Error::TooLarge(format!(
                "host call {function:?} is a {size}-byte frame; the host accepts at most {} bytes",
                self.conn.send_max
            )));
        }
        let timeout_ns = match call.deadline {
            None => 0,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::DeadlineExceeded(format!(
                        "no time left for host call {function:?}: the call's timeout of {} passed",
                        call.timeout_text()
                    )));
                }
                u64::try_from(left.as_nanos()).unwrap_or(u64::MAX)
            }
        };
        let id = self.next_host_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(HostSlot {
            owner: call.id,
            state: Mutex::new(HostWait::default()),
            ready: Condvar::new(),
        });
        {
            let mut host = lock(&self.host);
            if host.closed {
                return Err(Error::Unavailable(format!(
                    "host call {function:?}: the connection to the host is closed"
                )));
            }
            host.pending.insert(id, slot.clone());
        }
        // A CANCEL that arrived before the slot was registered set the flag.
        if call.is_cancelled() {
            self.forget_host_call(id);
            return Err(Error::Cancelled(format!(
                "host call {function:?}: the call was cancelled"
            )));
        }
        // A handler of a batch must not hold the reader role while it
        // waits: the host's answer has to be read.
        self.cut_batch(None);
        let mut head = Vec::with_capacity(HEADER_SIZE + 18 + function.len() + token.len());
        wire::hostcall_prefix(&mut head, id, timeout_ns, function, token, payload.len());
        if let Err(e) = self.conn.write(&head, payload) {
            self.forget_host_call(id);
            return Err(Error::Io(e));
        }
        let mut wait = lock(&slot.state);
        let why = loop {
            if let Some(reply) = wait.reply.take() {
                return reply;
            }
            if wait.cancelled {
                break Error::Cancelled(format!(
                    "host call {function:?}: the call was cancelled while waiting for the host"
                ));
            }
            match call.deadline {
                None => {
                    wait = slot
                        .ready
                        .wait(wait)
                        .unwrap_or_else(PoisonError::into_inner)
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break Error::DeadlineExceeded(format!(
                            "host call {function:?}: the host did not answer within the call's timeout of {}",
                            call.timeout_text()
                        ));
                    }
                    wait = slot
                        .ready
                        .wait_timeout(wait, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        };
        drop(wait);
        if self.forget_host_call(id) {
            // Tell the host to stop; its late reply will match nothing.
            let _ = self.conn.write(&Header::encode(Kind::CANCEL, id, 0), &[]);
        } else if let Some(reply) = lock(&slot.state).reply.take() {
            return reply; // the reply won the race with the timeout
        }
        Err(why)
    }

    /// Removes a waiting host call; false when a reply already took it.
    fn forget_host_call(&self, id: u64) -> bool {
        lock(&self.host).pending.remove(&id).is_some()
    }
}
