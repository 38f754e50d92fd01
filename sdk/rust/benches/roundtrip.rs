//! Round trip of one call through the SDK, beside the floor: a raw echo over
//! the same socketpair with the same framing and no SDK. Both children are
//! this binary, started again with AIRLOCK_BENCH_CHILD set.
//!
//!     cargo bench --bench roundtrip
//!
//! Prints ns per call for sequential calls (one in flight) at several payload
//! sizes and the SDK/floor ratio, then the context switches and CPU time
//! each child spends per call, counted from /proc/<pid>/task/*: counts,
//! unlike timings, that a noisy shared machine does not blur. Set AIRLOCK_BENCH_OTHER to the path of
//! another plugin program exporting `echo` (a Go plugin, say) to measure it
//! in the same run and print the SDK/other ratio.

#[path = "../tests/common/host.rs"]
#[allow(clippy::all)]
mod host;

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use airlock_plugin::wire::{self, Header, Message, Status};
use airlock_plugin::Plugin;

fn main() -> ExitCode {
    match std::env::var("AIRLOCK_BENCH_CHILD").as_deref() {
        Ok("sdk") => Plugin::new("bench", "0")
            .handle("echo", |_ctx, input| Ok(input.to_vec()))
            .serve(),
        Ok("raw") => raw_echo(),
        _ => {
            // `cargo bench` passes --bench; `cargo test --all-targets` does
            // not, and gets a quick smoke run instead of the measurement.
            if std::env::args().any(|a| a == "--bench") {
                run(&SIZES);
            } else {
                run(&[(16, 200)]);
            }
            ExitCode::SUCCESS
        }
    }
}

/// The floor: read each CALL on descriptor 3 and answer RESULT with its
/// payload, prefix then payload as the SDK writes them, with no threads, no
/// queue and no bookkeeping.
#[allow(unsafe_code)]
fn raw_echo() -> ExitCode {
    // SAFETY: the bench parent passes the socket as descriptor 3 to this
    // child; nothing else in this process opens or owns it.
    let conn = unsafe { UnixStream::from_raw_fd(3) };
    let mut r = BufReader::with_capacity(64 << 10, conn.try_clone().unwrap());
    let mut w = &conn;
    let mut body = Vec::new();
    loop {
        let mut h = [0u8; wire::HEADER_SIZE];
        if r.read_exact(&mut h).is_err() {
            return ExitCode::SUCCESS;
        }
        let Ok(Status::Complete(h)) = Header::parse(&h, wire::MAX_MAX_FRAME) else {
            return ExitCode::FAILURE;
        };
        body.resize(h.body_len, 0);
        r.read_exact(&mut body).unwrap();
        let f = wire::Frame {
            kind: h.kind,
            flags: 0,
            id: h.id,
            body: &body,
        };
        let Ok(Message::Call(c)) = f.message() else {
            continue;
        };
        let prefix = wire::result_prefix(h.id, c.payload.len());
        let bufs = [
            std::io::IoSlice::new(&prefix),
            std::io::IoSlice::new(c.payload),
        ];
        let n = w.write_vectored(&bufs).unwrap();
        if n < prefix.len() + c.payload.len() {
            let all = [&prefix[..], c.payload].concat();
            w.write_all(&all[n..]).unwrap();
        }
    }
}

fn child(kind: &str) -> host::Plugin {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("AIRLOCK_BENCH_CHILD", kind);
    host::Plugin::spawn(cmd)
}

/// Makes `n` sequential calls and returns the mean time per call.
fn measure(p: &mut host::Plugin, payload: &[u8], n: usize) -> Duration {
    let mut frame = Vec::new();
    let mut w = BufWriter::new(p.conn.try_clone().unwrap());
    let mut run = |count: usize, p: &mut host::Plugin| {
        for id in 1..=count as u64 {
            frame.clear();
            wire::call_prefix(&mut frame, id, 0, "echo", payload.len());
            w.write_all(&frame).unwrap();
            w.write_all(payload).unwrap();
            w.flush().unwrap();
            let reply = p.recv().expect("reply");
            assert_eq!((reply.kind, reply.id), (wire::Kind::RESULT, id));
            assert_eq!(reply.body.len(), 4 + payload.len());
        }
    };
    run(n / 10 + 1, p); // warm up: worker threads, buffers
    let start = Instant::now();
    run(n, p);
    start.elapsed() / n as u32
}

/// What every thread of `pid` has done so far: voluntary and involuntary
/// context switches (from `status`) and CPU time in ns (from `schedstat`).
/// Threads that exited are not counted; the SDK's do not exit.
fn thread_counts(pid: u32) -> (u64, u64, u64) {
    let mut total = (0, 0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return total; // not Linux: no counts
    };
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            let count = |prefix: &str| -> u64 {
                line.strip_prefix(prefix)
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            total.0 += count("voluntary_ctxt_switches:");
            total.1 += count("nonvoluntary_ctxt_switches:");
        }
        let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total.2 += sched
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// Per call over `n` sequential 16-byte calls, after a warm-up: the
/// child's voluntary and involuntary context switches and its CPU time in
/// microseconds.
fn counts_per_call(p: &mut host::Plugin, n: usize) -> (f64, f64, f64) {
    let payload = [0x5a; 16];
    measure(p, &payload, n / 10); // warm up: every thread the SDK starts
    let before = thread_counts(p.child.id());
    measure(p, &payload, n);
    let after = thread_counts(p.child.id());
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n as f64;
    (
        per(after.0, before.0),
        per(after.1, before.1),
        per(after.2, before.2) / 1000.0,
    )
}

fn negotiated(mut p: host::Plugin) -> host::Plugin {
    p.hello(1, 1, wire::DEFAULT_MAX_FRAME as u32);
    assert_eq!(p.recv().expect("WELCOME").kind, wire::Kind::WELCOME);
    p
}

/// Payload sizes and how many calls to time for each.
const SIZES: [(usize, usize); 4] = [
    (16, 20_000),
    (4 << 10, 20_000),
    (256 << 10, 2_000),
    (4 << 20, 100),
];

fn run(sizes: &[(usize, usize)]) {
    let mut sdk = negotiated(child("sdk"));
    let mut raw = child("raw");
    let mut other = std::env::var_os("AIRLOCK_BENCH_OTHER")
        .map(|path| negotiated(host::Plugin::spawn(Command::new(path))));

    println!(
        "{:>10} {:>10} {:>10} {:>7} {:>10} {:>7}",
        "payload", "sdk ns/op", "raw ns/op", "sdk/raw", "other", "sdk/oth"
    );
    for &(size, n) in sizes {
        let payload = vec![0xa5u8; size];
        // Alternate to share any drift in machine load between them.
        let (mut s, mut r, mut o) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for _ in 0..3 {
            s += measure(&mut sdk, &payload, n);
            r += measure(&mut raw, &payload, n);
            if let Some(p) = other.as_mut() {
                o += measure(p, &payload, n);
            }
        }
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        print!(
            "{:>10} {:>10} {:>10} {:>7.2}",
            size,
            (s / 3).as_nanos(),
            (r / 3).as_nanos(),
            ratio(s, r)
        );
        if other.is_some() {
            print!(" {:>10} {:>7.2}", (o / 3).as_nanos(), ratio(s, o));
        }
        println!();
    }
    let n = sizes[0].1;
    println!("\nper call, 16-byte echo, {n} sequential calls (counted in /proc/<child>/task/*)");
    println!(
        "{:>10} {:>10} {:>10} {:>8}",
        "", "voluntary", "involunt.", "cpu µs"
    );
    for (name, p) in [
        ("sdk", Some(&mut sdk)),
        ("raw", Some(&mut raw)),
        ("other", other.as_mut()),
    ] {
        if let Some(p) = p {
            let (v, i, cpu) = counts_per_call(p, n);
            println!("{name:>10} {v:>10.3} {i:>10.3} {cpu:>8.1}");
        }
    }
    for p in [Some(&mut sdk), Some(&mut raw), other.as_mut()]
        .into_iter()
        .flatten()
    {
        p.conn.shutdown(std::net::Shutdown::Both).unwrap();
        host::wait_child(&mut p.child);
    }
}
