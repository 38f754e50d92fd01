//! A minimal Airlock host for tests: starts a plugin program with one end of
//! a socketpair as descriptor 3, negotiates, and makes calls, all with the
//! crate's own `wire` codec. It checks nothing itself; tests assert on what
//! it returns. Shared with examples/wordfreq-rust through `#[path]`.
#![allow(dead_code, unsafe_code)]

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::raw::c_int;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use airlock_plugin::wire::{
    self, Code, Failure, Grant, Header, Hello, Kind, Message, Status, Token,
};

/// How long any single wait in a test may take before the test fails
/// instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One frame as read from the plugin.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: Kind,
    pub id: u64,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn message(&self) -> Message<'_> {
        wire::Frame {
            kind: self.kind,
            flags: 0,
            id: self.id,
            body: &self.body,
        }
        .message()
        .unwrap_or_else(|e| panic!("plugin sent an invalid {} frame: {e}", self.kind))
    }
}

extern "C" {
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
}

/// Arranges for `fd` to be descriptor 3, inherited, in the child.
pub fn pass_as_fd3(cmd: &mut Command, fd: RawFd) {
    const F_SETFD: c_int = 2;
    let hook = move || {
        // Runs in the forked child before exec: only async-signal-safe calls.
        let r = if fd == 3 {
            // SAFETY: F_SETFD with 0 clears close-on-exec on descriptor 3;
            // it touches no memory.
            unsafe { fcntl(3, F_SETFD, 0) }
        } else {
            // SAFETY: dup2 duplicates an open descriptor onto 3 (closing
            // whatever 3 was in this child); the copy is not close-on-exec.
            // It touches no memory.
            unsafe { dup2(fd, 3) }
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook calls only dup2 or fcntl, which are
    // async-signal-safe, and allocates nothing, as pre_exec requires.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// A started plugin before negotiation. Dropping it closes the connection,
/// which makes a well-behaved plugin exit.
pub struct Plugin {
    pub child: Child,
    pub conn: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Plugin {
    /// Starts `cmd` as a host would: descriptor 3 is the plugin's end of a
    /// socketpair and AIRLOCK_PROTOCOL=1 is set.
    pub fn spawn(mut cmd: Command) -> Plugin {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        pass_as_fd3(&mut cmd, theirs.as_raw_fd());
        cmd.env("AIRLOCK_PROTOCOL", "1").stdin(Stdio::null());
        let child = cmd.spawn().expect("start the plugin");
        drop(theirs);
        ours.set_read_timeout(Some(PATIENCE)).unwrap();
        let reader = BufReader::new(ours.try_clone().unwrap());
        Plugin {
            child,
            conn: ours,
            reader,
        }
    }

    pub fn send(&self, msg: &Message<'_>, id: u64) {
        let mut f = Vec::new();
        msg.encode(id, &mut f);
        (&self.conn).write_all(&f).expect("write to the plugin");
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        (&self.conn).write_all(bytes).expect("write to the plugin");
    }

    pub fn hello(&self, min_version: u16, max_version: u16, max_frame: u32) {
        self.send(
            &Message::Hello(Hello {
                min_version,
                max_version,
                max_frame,
                host: "airlock-test/0".into(),
                plugin: "probe".into(),
                instance: "probe-1".into(),
            }),
            0,
        );
    }

    /// The next frame, or None at end of stream.
    pub fn recv(&mut self) -> Option<Frame> {
        read_frame(&mut self.reader)
    }

    /// Negotiates v1 and returns a session that can make calls.
    pub fn negotiate(self) -> Session {
        self.negotiate_with(wire::DEFAULT_MAX_FRAME as u32)
    }

    pub fn negotiate_with(mut self, max_frame: u32) -> Session {
        self.hello(1, 1, max_frame);
        let welcome = self.recv().expect("WELCOME");
        assert_eq!(welcome.kind, Kind::WELCOME, "first frame: {welcome:?}");
        let functions = match welcome.message() {
            Message::Welcome(w) => w.functions.iter().map(|f| f.to_string()).collect(),
            m => panic!("{m:?}"),
        };
        Session::start(self, functions)
    }

    /// Waits for the plugin to exit; kills it and fails after PATIENCE.
    pub fn wait(&mut self) -> ExitStatus {
        wait_child(&mut self.child)
    }
}

pub fn wait_child(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait for the plugin") {
            return st;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the plugin did not exit within {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn read_frame(r: &mut impl Read) -> Option<Frame> {
    let mut h = [0u8; wire::HEADER_SIZE];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return None,
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("read from the plugin: {e}"),
    }
    let Ok(Status::Complete(h)) = Header::parse(&h, wire::MAX_MAX_FRAME) else {
        panic!("plugin sent an invalid header {h:?}")
    };
    let mut body = vec![0; h.body_len];
    r.read_exact(&mut body)
        .expect("read a frame body from the plugin");
    Some(Frame {
        kind: h.kind,
        id: h.id,
        body,
    })
}

/// A negotiated connection. A reader thread routes RESULT and ERROR frames
/// to the call that waits for them; everything else (LOG, PONG, GOODBYE,
/// HOSTCALL, connection-level ERROR) goes to `others`, and end of stream
/// closes it.
pub struct Session {
    pub child: Child,
    pub functions: Vec<String>,
    conn: Arc<Mutex<UnixStream>>,
    pending: Arc<Mutex<HashMap<u64, Sender<Frame>>>>,
    others: Mutex<Receiver<Frame>>,
    next_id: AtomicU64,
}

/// The timeout of calls sent in a burst: a minute.
const LONG_TIMEOUT_NS: u64 = 60_000_000_000;

/// A failed call: the code and message of the plugin's ERROR frame.
pub type CallError = (Code, String);

impl Session {
    fn start(p: Plugin, functions: Vec<String>) -> Session {
        let Plugin {
            child,
            conn,
            mut reader,
        } = p;
        let pending: Arc<Mutex<HashMap<u64, Sender<Frame>>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let routes = pending.clone();
        thread::spawn(move || {
            while let Some(f) = read_frame(&mut reader) {
                let route = match f.kind {
                    Kind::RESULT | Kind::ERROR if f.id != 0 => routes.lock().unwrap().remove(&f.id),
                    _ => None,
                };
                match route {
                    Some(waiter) => {
                        let _ = waiter.send(f);
                    }
                    None => {
                        if tx.send(f).is_err() {
                            break;
                        }
                    }
                }
            }
            routes.lock().unwrap().clear();
        });
        Session {
            child,
            functions,
            conn: Arc::new(Mutex::new(conn)),
            pending,
            others: Mutex::new(rx),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn send(&self, msg: &Message<'_>, id: u64) {
        let mut f = Vec::new();
        msg.encode(id, &mut f);
        self.send_raw(&f);
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        let conn = self.conn.lock().unwrap();
        let _ = (&*conn).write_all(bytes);
    }

    /// Sends a CALL and returns its id and where its reply will arrive.
    pub fn start_call(
        &self,
        function: &str,
        timeout: Duration,
        payload: &[u8],
    ) -> (u64, Receiver<Frame>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let mut f = Vec::new();
        wire::call_prefix(
            &mut f,
            id,
            timeout.as_nanos() as u64,
            function,
            payload.len(),
        );
        f.extend_from_slice(payload);
        self.send_raw(&f);
        (id, rx)
    }

    /// Sends CALLs to `calls` (function, payload) in one write, so that the
    /// plugin finds them all in one read, and returns where each reply will
    /// arrive.
    pub fn start_burst(&self, calls: &[(&str, &[u8])]) -> Vec<Receiver<Frame>> {
        self.start_burst_then(calls, &[])
    }

    /// [`Session::start_burst`] with `then` (raw frames) in the same write,
    /// after the calls.
    pub fn start_burst_then(&self, calls: &[(&str, &[u8])], then: &[u8]) -> Vec<Receiver<Frame>> {
        let mut f = Vec::new();
        let mut out = Vec::new();
        for (function, payload) in calls {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = mpsc::channel();
            self.pending.lock().unwrap().insert(id, tx);
            wire::call_prefix(&mut f, id, LONG_TIMEOUT_NS, function, payload.len());
            f.extend_from_slice(payload);
            out.push(rx);
        }
        f.extend_from_slice(then);
        self.send_raw(&f);
        out
    }

    /// Waits for a call's reply.
    pub fn finish(&self, rx: &Receiver<Frame>) -> Result<Vec<u8>, CallError> {
        let f = rx
            .recv_timeout(PATIENCE)
            .expect("the plugin answered the call before PATIENCE ran out");
        match f.message() {
            Message::Result { payload } => Ok(payload.to_vec()),
            Message::Error(Failure { code, message }) => Err((code, message.into_owned())),
            m => panic!("reply {m:?}"),
        }
    }

    /// Calls `function` and waits for the reply.
    pub fn call(
        &self,
        function: &str,
        timeout: Duration,
        payload: &[u8],
    ) -> Result<Vec<u8>, CallError> {
        let (_, rx) = self.start_call(function, timeout, payload);
        self.finish(&rx)
    }

    /// Sends GRANT with these (capability, token) pairs.
    pub fn grant(&self, tokens: &[(&str, &[u8])]) {
        let tokens = tokens
            .iter()
            .map(|(c, t)| Token {
                capability: (*c).into(),
                token: t,
            })
            .collect();
        self.send(&Message::Grant(Grant { tokens }), 0);
    }

    pub fn cancel(&self, id: u64) {
        self.send_raw(&Header::encode(Kind::CANCEL, id, 0));
    }

    pub fn shutdown(&self, grace: Duration) {
        self.send(
            &Message::Shutdown {
                grace_ns: grace.as_nanos() as u64,
            },
            0,
        );
    }

    /// The next frame that is not a call's reply, or None once the plugin
    /// closed the connection.
    pub fn next_other(&self) -> Option<Frame> {
        match self.others.lock().unwrap().recv_timeout(PATIENCE) {
            Ok(f) => Some(f),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no frame from the plugin within {PATIENCE:?}")
            }
        }
    }

    /// Skips LOG frames and returns the next other frame.
    pub fn next_non_log(&self) -> Option<Frame> {
        loop {
            match self.next_other() {
                Some(f) if f.kind == Kind::LOG => continue,
                other => return other,
            }
        }
    }

    /// Closes the host's end of the connection.
    pub fn close(&self) {
        let _ = self.conn.lock().unwrap().shutdown(std::net::Shutdown::Both);
    }

    pub fn wait(&mut self) -> ExitStatus {
        wait_child(&mut self.child)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
