//! Runs the built misbehave binary as a host would, over a socketpair on
//! descriptor 3, with the SDK's test host, and checks each function and
//! mode does what the Go twin does. The Go host's own tests
//! (host_test.go, capability_test.go) are the other half of the check.

#[path = "../../../../sdk/rust/tests/common/host.rs"]
mod host;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use airlock_plugin::wire::{self, Code, Kind, Message};

const LONG: Duration = Duration::from_secs(30);
const NO_DEADLINE: Duration = Duration::ZERO;

/// The exports of the Go plugin, in its order.
const EXPORTS: [&str; 14] = [
    "echo",
    "sleep",
    "deadline",
    "hang",
    "panic",
    "fail",
    "crash",
    "wedge",
    "garbage",
    "oversized",
    "flood",
    "log",
    "hostcall",
    "forge",
];

fn command(mode: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_misbehave"));
    cmd.arg(format!("-mode={mode}"));
    cmd
}

fn start() -> host::Session {
    host::Plugin::spawn(command("serve")).negotiate()
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap()
}

/// The next LOG record: (call id, level, message, attributes).
fn next_log(s: &host::Session) -> (u64, i32, String, Vec<(String, String)>) {
    let f = s.next_other().expect("LOG");
    let Message::Log(l) = f.message() else {
        panic!("{f:?}")
    };
    let attrs = l
        .attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (f.id, l.level, l.message.into_owned(), attrs)
}

fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

#[test]
fn serve_exports_the_go_plugins_functions() {
    let s = start();
    assert_eq!(s.functions, EXPORTS);
    assert_eq!(s.call("echo", LONG, b"hi\x00").unwrap(), b"hi\x00");
}

#[test]
fn failures_carry_the_go_plugins_codes_and_messages() {
    let s = start();
    let (code, msg) = s.call("fail", LONG, b"x\n\"y\xff").unwrap_err();
    assert_eq!(
        (code, msg.as_str()),
        (Code::BAD_INPUT, r#"refusing "x\n\"y\xff""#)
    );
    let (code, msg) = s.call("panic", LONG, b"").unwrap_err();
    assert_eq!(code, Code::PANIC);
    assert!(msg.contains("boom on purpose"), "{msg}");
    assert_eq!(s.call("echo", LONG, b"still here").unwrap(), b"still here");
}

#[test]
fn deadline_reports_the_time_left() {
    let s = start();
    let got: serde_json::Value = serde_json::from_slice(
        &s.call("deadline", Duration::from_millis(1500), b"")
            .unwrap(),
    )
    .unwrap();
    let left = got["left_ms"].as_i64().unwrap();
    assert_eq!(got["has_deadline"], true, "{got}");
    assert!((0..=1500).contains(&left), "{got}");
    // Without one, Go's time.Until(time.Time{}).Milliseconds().
    let got = text(s.call("deadline", NO_DEADLINE, b"").unwrap());
    assert_eq!(got, r#"{"has_deadline":false,"left_ms":-9223372036854}"#);
}

#[test]
fn sleep_says_how_its_call_ended() {
    let s = start();
    assert_eq!(text(s.call("sleep", LONG, b"1").unwrap()), "slept");
    assert_eq!(
        text(s.call("sleep", LONG, b"not a number").unwrap()),
        "slept"
    );

    let (code, msg) = s
        .call("sleep", Duration::from_millis(50), b"3600000")
        .unwrap_err();
    assert_eq!(
        (code, msg.as_str()),
        (Code::DEADLINE_EXCEEDED, "context deadline exceeded")
    );
    let (_, level, message, attrs) = next_log(&s);
    assert_eq!(
        (level, message.as_str(), attrs),
        (
            0,
            "handler saw its context end",
            vec![("err".into(), "context deadline exceeded".into())]
        )
    );

    let (id, rx) = s.start_call("sleep", NO_DEADLINE, b"3600000");
    s.call("echo", LONG, b"sync").unwrap();
    s.cancel(id);
    let (code, msg) = s.finish(&rx).unwrap_err();
    assert_eq!((code, msg.as_str()), (Code::CANCELLED, "context canceled"));
    let (log_id, _, _, attrs) = next_log(&s);
    assert_eq!(log_id, id);
    assert_eq!(attrs, vec![("err".into(), "context canceled".into())]);
}

#[test]
fn log_writes_a_warn_record_with_grouped_attributes() {
    let s = start();
    let (id, rx) = s.start_call("log", LONG, b"hello\x1b[31m");
    assert_eq!(s.finish(&rx).unwrap(), b"");
    let (log_id, level, message, attrs) = next_log(&s);
    assert_eq!((log_id, level, message.as_str()), (id, 4, "plugin says"));
    assert_eq!(
        attrs,
        vec![
            ("text".into(), "hello\x1b[31m".into()),
            ("req.size".into(), "10".into())
        ]
    );
}

#[test]
fn flood_writes_lines_and_records() {
    let mut cmd = command("serve");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut s = host::Plugin::spawn(cmd).negotiate();
    let mut out = s.child.stdout.take().unwrap();
    let mut err = s.child.stderr.take().unwrap();
    assert_eq!(text(s.call("flood", LONG, b"3").unwrap()), "flooded");
    for i in 0..3 {
        let (_, level, message, attrs) = next_log(&s);
        assert_eq!((level, message.as_str()), (0, "log flood"));
        assert_eq!(attrs, vec![("i".into(), i.to_string())]);
    }
    s.close();
    s.wait();
    let (mut o, mut e) = (String::new(), String::new());
    out.read_to_string(&mut o).unwrap();
    err.read_to_string(&mut e).unwrap();
    let x = "x".repeat(100);
    assert_eq!(o, format!("0 {x}\n1 {x}\n2 {x}\n"));
    assert!(e.contains(&format!("0 {x}\n1 {x}\n2 {x}\n")), "{e}");
}

#[test]
fn crash_exits_3_mid_call() {
    let mut cmd = command("serve");
    cmd.stderr(Stdio::piped());
    let mut s = host::Plugin::spawn(cmd).negotiate();
    let mut err = s.child.stderr.take().unwrap();
    let _pending = s.start_call("crash", LONG, b"");
    assert_eq!(s.wait().code(), Some(3));
    let mut e = String::new();
    err.read_to_string(&mut e).unwrap();
    assert!(e.contains("crashing mid-call on purpose"), "{e}");
}

#[test]
fn wedge_stops_the_whole_process() {
    let s = start();
    let pid = s.child.id();
    let (_, rx) = s.start_call("wedge", LONG, b"");
    // The handler stops the process inside the call: it never answers.
    let mut state = proc_state(pid);
    for _ in 0..3000 {
        if state == 'T' {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        state = proc_state(pid);
    }
    assert_eq!(state, 'T', "process state");
    assert!(rx.try_recv().is_err(), "a wedged plugin answered its call");
    // Dropping the session SIGKILLs it.
}

#[test]
fn garbage_and_oversized_break_the_framing() {
    // garbage: a length prefix of 2, shorter than any header.
    let mut p = host::Plugin::spawn(command("serve"));
    p.hello(1, 1, wire::DEFAULT_MAX_FRAME as u32);
    assert_eq!(p.recv().unwrap().kind, Kind::WELCOME);
    let mut f = Vec::new();
    wire::call_prefix(&mut f, 1, 0, "garbage", 0);
    p.send_raw(&f);
    let mut raw = [0u8; 8];
    p.conn.read_exact(&mut raw).unwrap();
    assert_eq!(&raw, b"\x02\x00\x00\x00garb");
    let _ = p.child.kill();
    p.wait();

    // oversized: a RESULT header announcing a 1 GiB body.
    let mut p = host::Plugin::spawn(command("serve"));
    p.hello(1, 1, wire::DEFAULT_MAX_FRAME as u32);
    assert_eq!(p.recv().unwrap().kind, Kind::WELCOME);
    let mut f = Vec::new();
    wire::call_prefix(&mut f, 1, 0, "oversized", 0);
    p.send_raw(&f);
    let mut h = [0u8; wire::HEADER_SIZE];
    p.conn.read_exact(&mut h).unwrap();
    assert_eq!(h, wire::Header::encode(Kind::RESULT, 1, 1 << 30));
    let _ = p.child.kill();
    p.wait();
}

#[test]
fn hostcall_relays_the_hosts_answer_as_json() {
    let s = start();
    s.grant(&[("clock", b"tok-clock")]);
    let (_, rx) = s.start_call(
        "hostcall",
        LONG,
        br#"{"function":"clock.now","payload":{ "b": 1,"a":[2] }}"#,
    );
    let f = s.next_non_log().expect("HOSTCALL");
    let Message::HostCall(hc) = f.message() else {
        panic!("{f:?}")
    };
    assert_eq!(hc.function, "clock.now");
    assert_eq!(hc.token, b"tok-clock");
    // The payload goes out byte for byte, as Go's json.RawMessage keeps it.
    assert_eq!(hc.payload, br#"{ "b": 1,"a":[2] }"#);
    s.send(
        &Message::Result {
            payload: b"{\"unix_nano\":1}",
        },
        f.id,
    );
    assert_eq!(s.finish(&rx).unwrap(), b"{\"unix_nano\":1}");

    // An error comes back as {"code","error"}, and no grant means no token.
    let (_, rx) = s.start_call("hostcall", LONG, br#"{"function":"kv.get"}"#);
    let f = s.next_non_log().expect("HOSTCALL");
    let Message::HostCall(hc) = f.message() else {
        panic!("{f:?}")
    };
    assert_eq!((hc.token, hc.payload), (&b""[..], &b""[..]));
    s.send(
        &Message::Error(wire::Failure {
            code: Code::PERMISSION_DENIED,
            message: "no kv token".into(),
        }),
        f.id,
    );
    assert_eq!(
        text(s.finish(&rx).unwrap()),
        r#"{"code":"permission_denied","error":"permission_denied: no kv token"}"#
    );

    let (code, _) = s.call("hostcall", LONG, b"not json").unwrap_err();
    assert_eq!(code, Code::BAD_INPUT);
}

#[test]
fn forge_sends_a_made_up_token_behind_the_sdks_back() {
    let s = start();
    let (_, rx) = s.start_call("forge", LONG, b"nope");
    let f = s.next_non_log().expect("HOSTCALL");
    assert_eq!(f.id, 1 << 62);
    let Message::HostCall(hc) = f.message() else {
        panic!("{f:?}")
    };
    assert_eq!(
        (hc.function.as_ref(), hc.token, hc.payload),
        ("clock.now", &b"ALCT\x01nope"[..], &b"{}"[..])
    );
    assert_eq!(s.finish(&rx).unwrap(), b"");
    // The SDK ignores the reply to a host call it never made.
    s.send(&Message::Result { payload: b"{}" }, 1 << 62);
    assert_eq!(s.call("echo", LONG, b"ok").unwrap(), b"ok");
}

#[test]
fn start_up_modes() {
    // exit-during-handshake
    let mut cmd = command("exit-during-handshake");
    cmd.stderr(Stdio::piped());
    let mut p = host::Plugin::spawn(cmd);
    assert_eq!(p.wait().code(), Some(7));
    let mut e = String::new();
    p.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut e)
        .unwrap();
    assert_eq!(e, "giving up during the handshake on purpose\n");

    // garbage: HTTP instead of frames, before HELLO.
    let mut p = host::Plugin::spawn(command("garbage"));
    let mut b = [0u8; 17];
    p.conn.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"HTTP/1.1 200 OK\r\n");
    let _ = p.child.kill();
    p.wait();

    // wrong-version: WELCOME with version 9 and range 9..9.
    let mut p = host::Plugin::spawn(command("wrong-version"));
    p.hello(1, 1, wire::DEFAULT_MAX_FRAME as u32);
    let f = p.recv().expect("WELCOME");
    let Message::Welcome(w) = f.message() else {
        panic!("{f:?}")
    };
    assert_eq!(
        (w.version, w.min_version, w.max_version, w.sdk.as_ref()),
        (9, 9, 9, "misbehave")
    );
    assert_eq!(w.functions, ["echo"]);
    let _ = p.child.kill();
    p.wait();

    // missing-export: serves echo only.
    let s = host::Plugin::spawn(command("missing-export")).negotiate();
    assert_eq!(s.functions, ["echo"]);

    // An unknown mode, or flag, exits 2 as Go's does.
    for args in [&["-mode=bogus"][..], &["-bogus"]] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_misbehave"));
        cmd.args(args).stderr(Stdio::piped());
        let mut p = host::Plugin::spawn(cmd);
        assert_eq!(p.wait().code(), Some(2), "{args:?}");
    }
}
