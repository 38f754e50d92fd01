//! Runs a real plugin process against a minimal host (tests/common/host.rs)
//! over a real socketpair on descriptor 3.
//!
//! The plugin is this test binary itself: `child_plugin` below serves the
//! probe plugin when AIRLOCK_TEST_CHILD is set (the helper-process pattern),
//! so the tests need no other build step.

mod common;

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use airlock_plugin::wire::{self, Code, Header, Kind, Message};
use airlock_plugin::{Error, Level, Plugin};
use common::host::{self, Session};

const NO_DEADLINE: Duration = Duration::ZERO;
const LONG: Duration = Duration::from_secs(60);

/// Handlers that let tests observe what reaches them.
fn probe() -> Plugin {
    static MET: AtomicUsize = AtomicUsize::new(0);
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    Plugin::new("probe", "0.0.0")
        .handle("echo", |_ctx, input| Ok(input.to_vec()))
        .handle("deadline", |ctx, _input| {
            Ok(match ctx.remaining() {
                None => b"none".to_vec(),
                Some(d) => d.as_millis().to_string().into_bytes(),
            })
        })
        .handle("until_deadline", |ctx, _input| loop {
            ctx.check()?;
            thread::sleep(Duration::from_millis(1));
        })
        .handle("until_cancelled", |ctx, _input| {
            let start = Instant::now();
            while !ctx.is_cancelled() {
                if start.elapsed() > host::PATIENCE {
                    return Err(Error::Internal("never cancelled".into()));
                }
                thread::sleep(Duration::from_millis(1));
            }
            ctx.log(
                Level::INFO,
                "handler saw the cancel",
                &[("call", &ctx.call_id())],
            );
            Err(Error::Cancelled("handler saw the cancel".into()))
        })
        .handle("meet", |ctx, input| {
            // Succeeds once `input` handlers are inside at the same time.
            let want: usize = std::str::from_utf8(input).unwrap().parse().unwrap();
            MET.fetch_add(1, Ordering::SeqCst);
            let start = Instant::now();
            while MET.load(Ordering::SeqCst) < want {
                ctx.check()?;
                if start.elapsed() > host::PATIENCE {
                    return Err(Error::Internal("the others never came".into()));
                }
                thread::sleep(Duration::from_millis(1));
            }
            Ok(b"met".to_vec())
        })
        .handle("peak", |_ctx, _input| {
            // Reports the most handlers this process ever ran at once.
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            PEAK.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(5));
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            Ok(PEAK.load(Ordering::SeqCst).to_string().into_bytes())
        })
        .handle("sleep_ms", |_ctx, input| {
            let ms: u64 = std::str::from_utf8(input).unwrap().parse().unwrap();
            thread::sleep(Duration::from_millis(ms));
            Ok(b"slept".to_vec())
        })
        .handle("panic", |_ctx, _input| panic!("probe panic"))
        .handle("hostcall", |ctx, input| {
            // Input: the function, a space, the payload.
            let at = input.iter().position(|&b| b == b' ').unwrap_or(input.len());
            let function = std::str::from_utf8(&input[..at]).unwrap();
            ctx.host_call(function, input.get(at + 1..).unwrap_or_default())
        })
        .handle("log", |ctx, input| {
            ctx.log(Level::WARN, "slow input", &[("bytes", &input.len())]);
            ctx.logger().log(Level::DEBUG, "outside any call", &[]);
            Ok(Vec::new())
        })
        .handle("big", |_ctx, input| {
            let n: usize = std::str::from_utf8(input).unwrap().parse().unwrap();
            Ok(vec![b'x'; n])
        })
        .handle("sleep_ctx", |ctx, input| {
            let ms: u64 = std::str::from_utf8(input).unwrap().parse().unwrap();
            ctx.sleep(Duration::from_millis(ms))?;
            Ok(b"slept".to_vec())
        })
        .handle("typed", typed_host_calls)
}

/// Makes the typed host call its input names and answers with the result's
/// Debug text; a failed host call fails the call with the host's code.
#[cfg(feature = "json")]
fn typed_host_calls(
    ctx: &airlock_plugin::Context,
    input: &[u8],
) -> airlock_plugin::Result<Vec<u8>> {
    let input = std::str::from_utf8(input).unwrap();
    let (op, arg) = input.split_once(' ').unwrap_or((input, ""));
    let out = match op {
        "kv.get" => format!("{:?}", ctx.kv().get(arg)?),
        "kv.put" => {
            let (k, v) = arg.split_once('=').unwrap();
            format!("{:?}", ctx.kv().put(k, v.as_bytes())?)
        }
        "kv.delete" => format!("{:?}", ctx.kv().delete(arg)?),
        "kv.list" => format!("{:?}", ctx.kv().list(arg, "", 10)?),
        "http.get" => format!("{:?}", ctx.http().get(arg)?),
        "fs.read.file" => format!("{:?}", ctx.fs().read_file(arg)?),
        "clock.now" => {
            let t = ctx.clock().now()?;
            format!("{:?}", t.duration_since(std::time::UNIX_EPOCH).unwrap())
        }
        "random.bytes" => format!("{:?}", ctx.random().bytes(arg.parse().unwrap())?),
        "config.get" => format!("{:?}", ctx.config().get(arg)?),
        other => panic!("no typed call {other}"),
    };
    Ok(out.into_bytes())
}

#[cfg(not(feature = "json"))]
fn typed_host_calls(
    _ctx: &airlock_plugin::Context,
    _input: &[u8],
) -> airlock_plugin::Result<Vec<u8>> {
    Err(Error::Internal(
        "typed host calls need the json feature".into(),
    ))
}

/// Not a test: the plugin process the other tests start.
#[test]
fn child_plugin() {
    if std::env::var_os("AIRLOCK_TEST_CHILD").is_none() {
        return;
    }
    let plugin = match std::env::var("AIRLOCK_TEST_CHILD").as_deref() {
        Ok("2") => probe().max_concurrency(2),
        _ => probe(),
    };
    let code = plugin.serve();
    #[allow(clippy::incompatible_msrv)] // tests build with the current toolchain
    let status = if code == ExitCode::SUCCESS {
        0
    } else if code == ExitCode::from(2) {
        2
    } else {
        1
    };
    std::process::exit(status);
}

fn child_command() -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_plugin",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env("AIRLOCK_TEST_CHILD", "1")
    .env("RUST_BACKTRACE", "0")
    .stdout(std::process::Stdio::null()); // the test harness's chatter; stdout carries no protocol
    cmd
}

fn spawn() -> host::Plugin {
    host::Plugin::spawn(child_command())
}

/// A probe plugin that runs at most two handlers at once.
fn spawn_narrow() -> host::Plugin {
    let mut cmd = child_command();
    cmd.env("AIRLOCK_TEST_CHILD", "2");
    host::Plugin::spawn(cmd)
}

fn start() -> Session {
    spawn().negotiate()
}

fn text(r: Result<Vec<u8>, host::CallError>) -> Result<String, host::CallError> {
    r.map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn welcome_names_the_version_the_sdk_and_the_exports() {
    let mut p = spawn();
    p.hello(1, 1, wire::DEFAULT_MAX_FRAME as u32);
    let f = p.recv().expect("WELCOME");
    assert_eq!((f.kind, f.id), (Kind::WELCOME, 0));
    let Message::Welcome(w) = f.message() else {
        panic!("{f:?}")
    };
    assert_eq!((w.version, w.min_version, w.max_version), (1, 1, 1));
    assert_eq!(w.max_frame as usize, wire::DEFAULT_MAX_FRAME);
    assert!(w.sdk.starts_with("airlock-rust/"), "{}", w.sdk);
    assert_eq!(
        w.functions,
        [
            "echo",
            "deadline",
            "until_deadline",
            "until_cancelled",
            "meet",
            "peak",
            "sleep_ms",
            "panic",
            "hostcall",
            "log",
            "big",
            "sleep_ctx",
            "typed"
        ]
    );
}

#[test]
fn version_mismatch_names_both_ranges_and_exits_nonzero() {
    let cases = [
        // The host's range lies above the plugin's.
        (
            2,
            3,
            "no common protocol version: host speaks v2\u{2013}v3, plugin speaks v1",
        ),
        // The plugin's range lies above the host's.
        (
            0,
            0,
            "no common protocol version: host speaks v0, plugin speaks v1",
        ),
    ];
    for (min, max, want) in cases {
        let mut p = spawn();
        p.hello(min, max, wire::DEFAULT_MAX_FRAME as u32);
        let f = p.recv().expect("ERROR");
        assert_eq!((f.kind, f.id), (Kind::ERROR, 0), "{f:?}");
        let Message::Error(e) = f.message() else {
            panic!("{f:?}")
        };
        assert_eq!(e.code, Code::VERSION_MISMATCH);
        assert!(
            e.message.starts_with(want),
            "{:?} does not start with {want:?}",
            e.message
        );
        assert!(p.recv().is_none(), "the plugin closes the connection");
        let st = p.wait();
        assert!(!st.success(), "exit status {st}");
    }
}

#[test]
fn many_concurrent_calls_all_get_their_own_answer() {
    let s = start();
    thread::scope(|scope| {
        for t in 0..16 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..63 {
                    let payload = format!("thread {t} call {i} {}", "x".repeat(i * 17));
                    let got = s.call("echo", LONG, payload.as_bytes()).unwrap();
                    assert_eq!(got, payload.as_bytes());
                }
            });
        }
    });
}

#[test]
fn handlers_run_at_the_same_time() {
    let s = start();
    let calls: Vec<_> = (0..4).map(|_| s.start_call("meet", LONG, b"4")).collect();
    for (_, rx) in calls {
        assert_eq!(text(s.finish(&rx)).unwrap(), "met");
    }
}

#[test]
fn max_concurrency_bounds_the_handlers_running_at_once() {
    let s = spawn_narrow().negotiate();
    // Two handlers can run together...
    let pair: Vec<_> = (0..2).map(|_| s.start_call("meet", LONG, b"2")).collect();
    for (_, rx) in &pair {
        assert_eq!(text(s.finish(rx)).unwrap(), "met");
    }
    // ...and never more: the rest wait in the queue and still get answered.
    let calls: Vec<_> = (0..12).map(|_| s.start_call("peak", LONG, b"")).collect();
    for (_, rx) in &calls {
        let peak: usize = text(s.finish(rx)).unwrap().parse().unwrap();
        assert!(peak <= 2, "{peak} handlers ran at once");
    }
}

#[test]
fn ping_is_answered_while_every_worker_is_busy() {
    let s = start();
    let busy: Vec<_> = (0..Plugin::DEFAULT_MAX_CONCURRENCY + 2)
        .map(|_| s.start_call("until_cancelled", NO_DEADLINE, b""))
        .collect();
    s.send(&Message::Ping, 99);
    let f = s.next_non_log().expect("PONG");
    assert_eq!((f.kind, f.id), (Kind::PONG, 99));
    for (id, _) in &busy {
        s.cancel(*id);
    }
    for (_, rx) in &busy {
        assert_eq!(s.finish(rx).unwrap_err().0, Code::CANCELLED);
    }
}

#[test]
fn the_calls_timeout_reaches_the_handler() {
    let s = start();
    assert_eq!(text(s.call("deadline", NO_DEADLINE, b"")).unwrap(), "none");
    let ms: u128 = text(s.call("deadline", LONG, b""))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ms > 0 && ms <= LONG.as_millis(),
        "remaining {ms} ms of {LONG:?}"
    );
    let err = s
        .call("until_deadline", Duration::from_millis(50), b"")
        .unwrap_err();
    assert_eq!(err.0, Code::DEADLINE_EXCEEDED, "{err:?}");
}

#[test]
fn cancel_reaches_the_handler() {
    let s = start();
    let (id, rx) = s.start_call("until_cancelled", NO_DEADLINE, b"");
    // The log proves the handler is running before the cancel is sent.
    s.call("log", LONG, b"sync").unwrap();
    s.cancel(id);
    let err = s.finish(&rx).unwrap_err();
    assert_eq!(err.0, Code::CANCELLED, "{err:?}");
    let saw = loop {
        let f = s.next_other().expect("LOG");
        if let Message::Log(l) = f.message() {
            if l.message == "handler saw the cancel" {
                break f.id;
            }
        }
    };
    assert_eq!(saw, id, "the record is attributed to the cancelled call");
    // Cancelling a call that is over, or never was, is not an error.
    s.cancel(id);
    s.cancel(12345);
    assert_eq!(s.call("echo", LONG, b"still here").unwrap(), b"still here");
}

#[test]
fn a_panic_fails_only_its_call() {
    let s = start();
    let (code, msg) = s.call("panic", LONG, b"").unwrap_err();
    assert_eq!(code, Code::PANIC);
    assert!(msg.contains("probe panic"), "{msg}");
    assert_eq!(s.call("echo", LONG, b"next").unwrap(), b"next");
}

#[test]
fn unknown_functions_are_answered_with_the_exports() {
    let s = start();
    let (code, msg) = s.call("ecoh", LONG, b"").unwrap_err();
    assert_eq!(code, Code::UNKNOWN_FUNCTION);
    assert!(
        msg.starts_with("unknown function \"ecoh\"; exports: echo, deadline,"),
        "{msg}"
    );
}

#[test]
fn logs_carry_the_call_id_or_zero() {
    let s = start();
    let (id, rx) = s.start_call("log", LONG, b"12345");
    s.finish(&rx).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let f = s.next_other().expect("LOG");
        let Message::Log(l) = f.message() else {
            panic!("{f:?}")
        };
        seen.push((f.id, l.level, l.message.into_owned(), l.attrs.len()));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            (0, -4, "outside any call".to_owned(), 0),
            (id, 4, "slow input".to_owned(), 1)
        ]
    );
}

#[test]
fn large_payloads_travel_both_ways() {
    let s = start();
    let payload: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    assert_eq!(s.call("echo", LONG, &payload).unwrap(), payload);
}

#[test]
fn results_larger_than_the_hosts_frames_are_too_large() {
    let s = spawn().negotiate_with(wire::MIN_MAX_FRAME as u32);
    let (code, msg) = s.call("big", LONG, b"100000").unwrap_err();
    assert_eq!(code, Code::TOO_LARGE, "{msg}");
    assert_eq!(s.call("big", LONG, b"1000").unwrap().len(), 1000);
}

/// Reads the next HOSTCALL the plugin sends.
fn next_hostcall(s: &Session) -> (u64, String, Vec<u8>, Vec<u8>, u64) {
    let f = s.next_non_log().expect("HOSTCALL");
    let Message::HostCall(hc) = f.message() else {
        panic!("{f:?}")
    };
    (
        f.id,
        hc.function.into_owned(),
        hc.token.to_vec(),
        hc.payload.to_vec(),
        hc.timeout_ns,
    )
}

#[test]
fn host_calls_reach_the_host_and_return_its_answer() {
    let s = start();
    s.grant(&[("kv", b"tok")]);
    // The host answers with a result.
    let (_, rx) = s.start_call("hostcall", LONG, b"kv.get key");
    let (id, function, token, payload, timeout_ns) = next_hostcall(&s);
    assert_eq!(
        (function.as_str(), &token[..], &payload[..]),
        ("kv.get", &b"tok"[..], &b"key"[..])
    );
    assert!(
        timeout_ns > 0 && timeout_ns <= LONG.as_nanos() as u64,
        "{timeout_ns}"
    );
    s.send(&Message::Result { payload: b"value" }, id);
    assert_eq!(s.finish(&rx).unwrap(), b"value");

    // The host refuses: the handler gets the host's code and passes it on.
    let (_, rx) = s.start_call("hostcall", NO_DEADLINE, b"kv.get key");
    let (id, _, _, _, timeout_ns) = next_hostcall(&s);
    assert_eq!(
        timeout_ns, 0,
        "a call without deadline gives its host calls none"
    );
    s.send(
        &Message::Error(wire::Failure {
            code: Code::RATE_LIMITED,
            message: "kv: 10/s".into(),
        }),
        id,
    );
    assert_eq!(
        s.finish(&rx).unwrap_err(),
        (Code::RATE_LIMITED, "kv: 10/s".to_owned())
    );
}

#[test]
fn host_calls_present_the_token_of_the_longest_granted_prefix() {
    let s = start();
    s.grant(&[
        ("kv", b"t-kv"),
        ("fs", b"t-fs"),
        ("fs.read", b"t-fs.read"),
        ("acme.search", b"t-acme"),
    ]);
    let cases: [(&str, &[u8]); 8] = [
        ("kv.get", b"t-kv"),
        ("kv", b"t-kv"),
        ("fs.read.file", b"t-fs.read"),
        ("fs.read", b"t-fs.read"),
        ("fs.write.file", b"t-fs"),
        ("acme.search.query", b"t-acme"),
        // Not a dotted prefix, or not granted: an empty token.
        ("kvx.get", b""),
        ("clock.now", b""),
    ];
    for (function, want) in cases {
        let (_, rx) = s.start_call("hostcall", LONG, function.as_bytes());
        let (id, got_function, token, _, _) = next_hostcall(&s);
        assert_eq!(got_function, function);
        assert_eq!(
            String::from_utf8_lossy(&token),
            String::from_utf8_lossy(want),
            "{function}"
        );
        s.send(&Message::Result { payload: b"" }, id);
        s.finish(&rx).unwrap();
    }
}

#[test]
fn each_grant_replaces_every_token() {
    let s = start();
    let token_of = |function: &str| {
        let (_, rx) = s.start_call("hostcall", LONG, function.as_bytes());
        let (id, _, token, _, _) = next_hostcall(&s);
        s.send(&Message::Result { payload: b"" }, id);
        s.finish(&rx).unwrap();
        token
    };
    assert_eq!(token_of("kv.get"), b"", "before any GRANT");
    s.grant(&[("kv", b"old"), ("clock", b"c1")]);
    assert_eq!(token_of("kv.get"), b"old");
    s.grant(&[("clock", b"c2")]); // key rotation, and kv no longer granted
    assert_eq!(token_of("kv.get"), b"");
    assert_eq!(token_of("clock.now"), b"c2");
    s.grant(&[]);
    assert_eq!(token_of("clock.now"), b"");
}

#[test]
fn an_unanswered_host_call_is_cancelled_at_the_deadline() {
    let s = start();
    let (_, rx) = s.start_call("hostcall", Duration::from_millis(100), b"kv.get key");
    let hostcall = s.next_non_log().expect("HOSTCALL");
    assert_eq!(hostcall.kind, Kind::HOSTCALL);
    let cancel = s.next_non_log().expect("CANCEL");
    assert_eq!((cancel.kind, cancel.id), (Kind::CANCEL, hostcall.id));
    assert_eq!(s.finish(&rx).unwrap_err().0, Code::DEADLINE_EXCEEDED);
    // A late answer matches nothing and is ignored.
    s.send(&Message::Result { payload: b"late" }, hostcall.id);
    assert_eq!(s.call("echo", LONG, b"ok").unwrap(), b"ok");
}

#[test]
fn cancelling_a_call_cancels_its_host_call() {
    let s = start();
    let (id, rx) = s.start_call("hostcall", NO_DEADLINE, b"kv.get key");
    let hostcall = s.next_non_log().expect("HOSTCALL");
    s.cancel(id);
    let cancel = s.next_non_log().expect("CANCEL");
    assert_eq!((cancel.kind, cancel.id), (Kind::CANCEL, hostcall.id));
    assert_eq!(s.finish(&rx).unwrap_err().0, Code::CANCELLED);
}

#[test]
fn context_sleep_ends_early_on_cancel_and_deadline() {
    let s = start();
    // Without cancel or deadline it sleeps its time.
    assert_eq!(s.call("sleep_ctx", LONG, b"1").unwrap(), b"slept");
    // A cancel wakes it (an hour, so a missed wake-up fails the test).
    let (id, rx) = s.start_call("sleep_ctx", NO_DEADLINE, b"3600000");
    s.call("log", LONG, b"sync").unwrap();
    s.cancel(id);
    assert_eq!(s.finish(&rx).unwrap_err().0, Code::CANCELLED);
    // The deadline ends it.
    let err = s
        .call("sleep_ctx", Duration::from_millis(50), b"3600000")
        .unwrap_err();
    assert_eq!(err.0, Code::DEADLINE_EXCEEDED, "{err:?}");
}

/// The typed calls of the `json` feature: each sends the documented JSON
/// with the granted token and decodes the documented result.
#[cfg(feature = "json")]
#[test]
fn typed_host_calls_speak_the_documented_json() {
    let s = start();
    s.grant(&[
        ("kv", b"K"),
        ("http", b"H"),
        ("fs.read", b"F"),
        ("clock", b"C"),
        ("random", b"R"),
        ("config", b"G"),
    ]);
    // (input, function, token, payload sent, host's result, handler output)
    let cases: [(&str, &str, &str, &str, &str, &str); 10] = [
        (
            "kv.get k",
            "kv.get",
            "K",
            r#"{"key":"k"}"#,
            r#"{"found":true,"value":"aGk="}"#,
            "Some([104, 105])",
        ),
        (
            "kv.get k",
            "kv.get",
            "K",
            r#"{"key":"k"}"#,
            r#"{"found":false,"value":null}"#,
            "None",
        ),
        (
            "kv.put k=hi",
            "kv.put",
            "K",
            r#"{"key":"k","value":"aGk="}"#,
            r#"{"used":3,"quota":100}"#,
            "()",
        ),
        (
            "kv.delete k",
            "kv.delete",
            "K",
            r#"{"key":"k"}"#,
            r#"{"deleted":true}"#,
            "true",
        ),
        (
            "kv.list u/",
            "kv.list",
            "K",
            r#"{"after":"","limit":10,"prefix":"u/"}"#,
            r#"{"keys":["u/1"],"more":true}"#,
            r#"KeyPage { keys: ["u/1"], more: true }"#,
        ),
        (
            "http.get https://a.example/",
            "http.fetch",
            "H",
            r#"{"method":"GET","url":"https://a.example/"}"#,
            r#"{"status":200,"headers":{"A":["1","2"]},"body":"b2s=","url":"https://a.example/x"}"#,
            r#"HttpResponse { status: 200, headers: {"A": ["1", "2"]}, body: [111, 107], url: "https://a.example/x" }"#,
        ),
        (
            "fs.read.file data/a",
            "fs.read.file",
            "F",
            r#"{"path":"data/a"}"#,
            r#"{"data":"AAE="}"#,
            "[0, 1]",
        ),
        (
            "clock.now",
            "clock.now",
            "C",
            "{}",
            r#"{"unix_nano":1500000000,"rfc3339":"x"}"#,
            "1.5s",
        ),
        (
            "random.bytes 2",
            "random.bytes",
            "R",
            r#"{"n":2}"#,
            r#"{"bytes":"//8="}"#,
            "[255, 255]",
        ),
        (
            "config.get units",
            "config.get",
            "G",
            r#"{"key":"units"}"#,
            r#"{"value":"metric"}"#,
            r#""metric""#,
        ),
    ];
    for (input, function, token, payload, result, want) in cases {
        let (_, rx) = s.start_call("typed", LONG, input.as_bytes());
        let (id, got_function, got_token, got_payload, _) = next_hostcall(&s);
        assert_eq!(
            (got_function.as_str(), &got_token[..]),
            (function, token.as_bytes()),
            "{input}"
        );
        // Compare as JSON values: key order is not part of the contract.
        let got: serde_json::Value = serde_json::from_slice(&got_payload).unwrap();
        let sent: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(got, sent, "{input}: payload");
        s.send(
            &Message::Result {
                payload: result.as_bytes(),
            },
            id,
        );
        assert_eq!(text(s.finish(&rx)).unwrap(), want, "{input}");
    }

    // The host's error codes come back as the typed errors: the handler's
    // `?` passes each on with its code.
    for code in [
        Code::PERMISSION_DENIED,
        Code::BUDGET_EXCEEDED,
        Code::INVALID_TOKEN,
    ] {
        let (_, rx) = s.start_call("typed", LONG, b"kv.put k=v");
        let (id, ..) = next_hostcall(&s);
        s.send(
            &Message::Error(wire::Failure {
                code,
                message: "no".into(),
            }),
            id,
        );
        assert_eq!(s.finish(&rx).unwrap_err(), (code, "no".to_owned()));
    }

    // A result of the wrong shape is an internal error naming the field.
    let (_, rx) = s.start_call("typed", LONG, b"kv.get k");
    let (id, ..) = next_hostcall(&s);
    s.send(
        &Message::Result {
            payload: br#"{"found":true,"value":"not base64!"}"#,
        },
        id,
    );
    let (code, msg) = s.finish(&rx).unwrap_err();
    assert_eq!(code, Code::INTERNAL);
    assert!(msg.contains("kv.get") && msg.contains("\"value\""), "{msg}");
}

#[test]
fn shutdown_drains_in_flight_calls_then_says_goodbye() {
    let mut s = start();
    let (_, slow) = s.start_call("sleep_ms", LONG, b"200");
    s.shutdown(LONG);
    let (_, late) = s.start_call("echo", LONG, b"too late");
    assert_eq!(s.finish(&late).unwrap_err().0, Code::UNAVAILABLE);
    assert_eq!(text(s.finish(&slow)).unwrap(), "slept");
    let f = s.next_non_log().expect("GOODBYE");
    assert_eq!((f.kind, f.id), (Kind::GOODBYE, 0));
    assert!(s.next_non_log().is_none(), "nothing after GOODBYE");
    let st = s.wait();
    assert!(st.success(), "exit status {st}");
}

#[test]
fn shutdown_leaves_what_outlives_the_grace_period_unanswered() {
    let mut s = start();
    let (_, stuck) = s.start_call("until_cancelled", NO_DEADLINE, b"");
    s.call("log", LONG, b"sync").unwrap(); // the handler is running
    s.shutdown(Duration::ZERO);
    // GOODBYE, then exit 0; the call gets no reply (its handler is
    // cancelled, and the host fails the call when the plugin exits).
    let f = s.next_non_log().expect("GOODBYE");
    assert_eq!((f.kind, f.id), (Kind::GOODBYE, 0));
    let st = s.wait();
    assert!(st.success(), "exit status {st}");
    while s.next_other().is_some() {}
    match stuck.recv_timeout(host::PATIENCE) {
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
        other => panic!("the call was answered after the grace period: {other:?}"),
    }
}

#[test]
fn the_plugin_exits_when_the_host_goes_away() {
    let mut s = start();
    let _busy = s.start_call("until_cancelled", NO_DEADLINE, b"");
    s.close();
    let st = s.wait();
    assert!(st.success(), "exit status {st}");
}

#[test]
fn the_plugin_exits_when_the_host_goes_away_before_hello() {
    let mut p = spawn();
    p.conn.shutdown(std::net::Shutdown::Both).unwrap();
    let st = p.wait();
    assert!(st.success(), "exit status {st}");
}

#[test]
fn unknown_kinds_are_ignored_before_and_after_negotiation() {
    let mut p = spawn();
    p.send(
        &Message::Unknown {
            kind: Kind(0x40),
            body: b"ext",
        },
        0,
    );
    let s = {
        p.hello(1, 1, wire::DEFAULT_MAX_FRAME as u32);
        let f = p.recv().expect("WELCOME");
        assert_eq!(f.kind, Kind::WELCOME);
        p
    };
    s.send(
        &Message::Unknown {
            kind: Kind(0x41),
            body: b"ext",
        },
        5,
    );
    s.send(&Message::Pong, 6); // a PONG the plugin never asked for
    let mut f = Vec::new();
    wire::call_prefix(&mut f, 1, 0, "echo", 2);
    f.extend_from_slice(b"ok");
    s.send_raw(&f);
    let mut p = s;
    let r = p.recv().expect("RESULT");
    assert_eq!((r.kind, r.id), (Kind::RESULT, 1));
}

#[test]
fn protocol_errors_end_the_session_with_an_error_frame() {
    // Each case: bytes the host sends after negotiation, and a phrase the
    // plugin's ERROR must contain.
    let oversized = Header::encode(Kind::CALL, 1, 8 << 20).to_vec();
    let mut id0 = Vec::new();
    wire::call_prefix(&mut id0, 0, 0, "echo", 0);
    let welcome = {
        let mut f = Vec::new();
        Message::Welcome(wire::Welcome {
            version: 1,
            min_version: 1,
            max_version: 1,
            max_frame: 65536,
            sdk: "x".into(),
            functions: vec![],
        })
        .encode(0, &mut f);
        f
    };
    let mut short_call = Header::encode(Kind::CALL, 3, 3).to_vec();
    short_call.extend_from_slice(&[0, 0, 0]);
    // Two tokens announced, none there.
    let mut short_grant = Header::encode(Kind::GRANT, 0, 2).to_vec();
    short_grant.extend_from_slice(&[2, 0]);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("oversized", oversized, "too large"),
        ("call id 0", id0, "id 0"),
        ("welcome from the host", welcome, "welcome"),
        ("truncated field", short_call, "timeout_ns"),
        ("malformed grant", short_grant, "grant frame"),
    ];
    for (name, bytes, want) in cases {
        let mut s = start();
        s.send_raw(&bytes);
        let f = s
            .next_non_log()
            .unwrap_or_else(|| panic!("{name}: no ERROR"));
        let Message::Error(e) = f.message() else {
            panic!("{name}: {f:?}")
        };
        assert_eq!((f.id, e.code), (0, Code::PROTOCOL), "{name}");
        assert!(
            e.message.contains(want),
            "{name}: {:?} lacks {want:?}",
            e.message
        );
        let st = s.wait();
        assert_eq!(st.code(), Some(1), "{name}: exit status {st}");
    }
}

#[test]
fn a_reused_call_id_is_a_protocol_error() {
    let mut s = start();
    let (id, _rx) = s.start_call("until_cancelled", NO_DEADLINE, b"");
    let mut f = Vec::new();
    wire::call_prefix(&mut f, id, 0, "echo", 0);
    s.send_raw(&f);
    let e = s.next_non_log().expect("ERROR");
    let Message::Error(err) = e.message() else {
        panic!("{e:?}")
    };
    assert_eq!(err.code, Code::PROTOCOL);
    assert!(err.message.contains("already in flight"), "{}", err.message);
    assert_eq!(s.wait().code(), Some(1));
}

#[test]
fn something_other_than_hello_first_is_a_protocol_error() {
    let mut p = spawn();
    p.send(&Message::Ping, 1);
    let f = p.recv().expect("ERROR");
    let Message::Error(e) = f.message() else {
        panic!("{f:?}")
    };
    assert_eq!((f.id, e.code), (0, Code::PROTOCOL));
    assert!(e.message.contains("expected HELLO"), "{}", e.message);
    assert_eq!(p.wait().code(), Some(1));
}

#[test]
fn run_by_hand_it_explains_itself_and_exits_2() {
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    let cases = [
        (None, None, "AIRLOCK_PROTOCOL is not set"),
        // Descriptor 3 is closed (or, if this test runner leaked one, not ours).
        (Some("1"), None, "descriptor 3 is not"),
        (Some("1"), Some(&file), "descriptor 3 is not a Unix socket"),
    ];
    for (env, fd3, want) in cases {
        let mut cmd = child_command();
        cmd.env_remove("AIRLOCK_PROTOCOL");
        if let Some(v) = env {
            cmd.env("AIRLOCK_PROTOCOL", v);
        }
        if let Some(f) = fd3 {
            host::pass_as_fd3(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(f));
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("probe 0.0.0 is an Airlock plugin"),
            "{stderr}"
        );
        assert!(stderr.contains("echo, deadline"), "{stderr}");
        assert!(stderr.contains(want), "{stderr} lacks {want:?}");
    }
}

/// Voluntary context switches of each thread of `pid`, by thread id.
#[cfg(target_os = "linux")]
fn switches_by_thread(pid: u32) -> std::collections::HashMap<String, u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let n = status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            (t.file_name().to_string_lossy().into_owned(), n)
        })
        .collect()
}

/// One call at a time, the thread that reads a call runs it and reads the
/// next: no other thread is woken per call (each wake is a context switch
/// on a call's path). Counted, not timed: the second busiest thread blocks
/// far less than once per call.
#[cfg(target_os = "linux")]
#[test]
fn sequential_calls_wake_no_second_thread() {
    let s = start();
    for _ in 0..100 {
        s.call("echo", LONG, b"warm up").unwrap(); // the pool and the watcher
    }
    let pid = s.child.id();
    let before = switches_by_thread(pid);
    const N: u64 = 2000;
    for _ in 0..N {
        s.call("echo", LONG, b"0123456789abcdef").unwrap();
    }
    let after = switches_by_thread(pid);
    let mut grew: Vec<u64> = after
        .iter()
        .map(|(t, n)| n - before.get(t).copied().unwrap_or(0))
        .collect();
    grew.sort_unstable_by(|a, b| b.cmp(a));
    assert!(
        grew[0] >= N,
        "the reading thread blocked {} times in {N} calls",
        grew[0]
    );
    assert!(
        grew.get(1).copied().unwrap_or(0) < N / 4,
        "a second thread blocked {} times in {N} calls: threads wake per call ({grew:?})",
        grew[1]
    );
}

/// Write system calls the process has made so far (/proc/<pid>/io).
fn write_syscalls(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn a_burst_of_calls_is_answered_in_one_write() {
    let s = start();
    for _ in 0..10 {
        s.call("echo", LONG, b"warm up").unwrap(); // the pool and the watcher
    }
    let Some(before) = write_syscalls(s.child.id()) else {
        eprintln!("skipped: /proc/<pid>/io is not readable on this machine");
        return;
    };
    const N: usize = 16;
    let payloads: Vec<String> = (0..N).map(|i| format!("call {i}")).collect();
    let calls: Vec<(&str, &[u8])> = payloads.iter().map(|p| ("echo", p.as_bytes())).collect();
    for (rx, want) in s.start_burst(&calls).iter().zip(&payloads) {
        assert_eq!(s.finish(rx).unwrap(), want.as_bytes());
    }
    let writes = write_syscalls(s.child.id()).unwrap() - before;
    // The first 15 calls each found the next one buffered: one write for
    // their replies, one for the last call's.
    assert!(
        writes <= 3,
        "{N} calls in one burst took {writes} writes; want their replies batched"
    );
}

#[test]
fn a_large_reply_in_a_burst_goes_out_between_the_small_ones() {
    let s = start();
    // The middle call's reply is too large to hold back: it is written at
    // once, after the reply held before it, and the last one follows.
    let size = (4 << 20).to_string();
    let rxs = s.start_burst(&[("echo", b"one"), ("big", size.as_bytes()), ("echo", b"two")]);
    assert_eq!(s.finish(&rxs[0]).unwrap(), b"one");
    assert_eq!(s.finish(&rxs[1]).unwrap(), vec![b'x'; 4 << 20]);
    assert_eq!(s.finish(&rxs[2]).unwrap(), b"two");
}

#[test]
fn a_burst_that_ends_in_a_frame_other_than_a_call_is_answered() {
    let s = start();
    // The call finds the cancel (for no call) whole behind it, runs as a
    // batch and holds its reply back; nothing arrives after the cancel.
    let cancel = Header::encode(Kind::CANCEL, 9_999, 0);
    let rxs = s.start_burst_then(&[("echo", b"one")], &cancel);
    assert_eq!(s.finish(&rxs[0]).unwrap(), b"one");
}

#[test]
fn a_blocking_handler_in_a_burst_does_not_hold_up_the_rest() {
    let s = start();
    let rxs = s.start_burst(&[
        ("sleep_ms", b"3000"),
        ("echo", b"one"),
        ("echo", b"two"),
        ("echo", b"three"),
    ]);
    for (rx, want) in rxs[1..].iter().zip([&b"one"[..], b"two", b"three"]) {
        assert_eq!(s.finish(rx).unwrap(), want);
    }
    // The watchdog took the reader role from the sleeping call: the calls
    // behind it were answered while it still slept.
    assert!(
        rxs[0].try_recv().is_err(),
        "the sleeping call was answered before the calls behind it"
    );
    assert_eq!(s.finish(&rxs[0]).unwrap(), b"slept");
}

#[test]
fn a_handler_in_a_burst_may_call_the_host() {
    let s = start();
    let rxs = s.start_burst(&[
        ("hostcall", b"kv.get key"),
        ("echo", b"one"),
        ("echo", b"two"),
    ]);
    let (id, function, _token, payload, _timeout) = next_hostcall(&s);
    assert_eq!(
        (function.as_str(), payload.as_slice()),
        ("kv.get", &b"key"[..])
    );
    s.send(&Message::Result { payload: b"value" }, id);
    assert_eq!(s.finish(&rxs[0]).unwrap(), b"value");
    assert_eq!(s.finish(&rxs[1]).unwrap(), b"one");
    assert_eq!(s.finish(&rxs[2]).unwrap(), b"two");
}
