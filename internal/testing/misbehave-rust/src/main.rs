//! misbehave: a plugin that misbehaves on request, for the host's tests.
//!
//! The Rust twin of `internal/testing/misbehave` (Go): the same start-up
//! modes and the same functions, with the same names and the same
//! observable behaviour, so that one table of host tests can run against a
//! plugin in either language. Where the two differ, the README says how.
//!
//! Modes (`-mode=M`): serve (default), exit-during-handshake, garbage,
//! no-welcome, wrong-version, missing-export.
#![deny(unsafe_code)]

mod gofmt;
mod sys;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use airlock_plugin::token::Envelope;
use airlock_plugin::wire::{self, Header, Kind, Message, Status};
use airlock_plugin::{Caveat, Context, Error, Level, Plugin, Result};
use serde_json::value::RawValue;

const HOUR: Duration = Duration::from_secs(3600);

fn main() -> ExitCode {
    let mode = match parse_mode(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(code) => return code,
    };
    // Keep a second descriptor of the host socket so functions can write
    // raw bytes behind the SDK's back.
    let raw = match sys::dup_fd(3) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            eprintln!("dup fd 3: {e}");
            return ExitCode::from(1);
        }
    };
    match mode.as_str() {
        "serve" => {}
        "exit-during-handshake" => {
            eprintln!("giving up during the handshake on purpose");
            return ExitCode::from(7);
        }
        "garbage" => {
            let _ = (&*raw).write(b"HTTP/1.1 200 OK\r\n\r\nthis is not a frame");
            thread::sleep(HOUR);
        }
        "no-welcome" => thread::sleep(HOUR),
        "wrong-version" => {
            read_frame(&raw);
            let mut w = Vec::new();
            Message::Welcome(wire::Welcome {
                version: 9,
                min_version: 9,
                max_version: 9,
                max_frame: wire::DEFAULT_MAX_FRAME as u32,
                sdk: "misbehave".into(),
                functions: vec!["echo".into()],
            })
            .encode(0, &mut w);
            let _ = (&*raw).write(&w);
            thread::sleep(HOUR);
        }
        "missing-export" => {
            return Plugin::new("misbehave", "1.0.0")
                .handle("echo", echo)
                .serve()
        }
        other => {
            eprintln!("unknown -mode {other}");
            return ExitCode::from(2);
        }
    }
    plugin(raw).serve()
}

fn plugin(raw: Arc<File>) -> Plugin {
    let garbage_fd = raw.clone();
    let oversized_fd = raw.clone();
    let forge_fd = raw;
    Plugin::new("misbehave", "1.0.0")
        // The Go SDK runs every call at once; the host tests allow 64.
        .max_concurrency(64)
        .handle("echo", echo)
        .handle("sleep", sleep)
        .handle("deadline", deadline)
        // hang never returns and ignores cancellation.
        .handle("hang", |_ctx, _in| loop {
            thread::park();
        })
        .handle("panic", |_ctx, _in| panic!("boom on purpose"))
        .handle("fail", |_ctx, input| {
            Err(Error::BadInput(format!("refusing {}", gofmt::quote(input))))
        })
        .handle("crash", |_ctx, _in| {
            eprintln!("crashing mid-call on purpose");
            std::process::exit(3)
        })
        // wedge stops the whole process: no handler runs, no ping is
        // answered.
        .handle("wedge", |_ctx, _in| {
            let _ = sys::stop_self();
            Ok(Vec::new())
        })
        .handle("garbage", move |_ctx, _in| {
            // A length prefix of 2 is shorter than any header: invalid.
            let _ = (&*garbage_fd).write(b"\x02\x00\x00\x00garbage garbage garbage");
            thread::sleep(HOUR);
            Ok(Vec::new())
        })
        .handle("oversized", move |_ctx, _in| {
            let _ = (&*oversized_fd).write(&Header::encode(Kind::RESULT, 1, 1 << 30));
            thread::sleep(HOUR);
            Ok(Vec::new())
        })
        .handle("flood", flood)
        .handle("log", |ctx, input| {
            let text = String::from_utf8_lossy(input);
            ctx.log(
                Level::WARN,
                "plugin says",
                &[("text", &text), ("req.size", &input.len())],
            );
            Ok(Vec::new())
        })
        .handle("hostcall", hostcall)
        // forge sends a host call with a made-up token behind the SDK's
        // back.
        .handle("forge", move |_ctx, input| {
            let mut token = b"ALCT\x01".to_vec();
            token.extend_from_slice(input);
            let mut frame = Vec::new();
            Message::HostCall(wire::HostCall {
                timeout_ns: 0,
                function: "clock.now".into(),
                token: &token,
                payload: b"{}",
            })
            .encode(1 << 62, &mut frame);
            (&*forge_fd).write_all(&frame).map_err(Error::Io)?;
            Ok(Vec::new())
        })
}

fn echo(_ctx: &Context, input: &[u8]) -> Result<Vec<u8>> {
    Ok(input.to_vec())
}

/// sleep waits the number of milliseconds in its input, or until its call
/// ends, and says which happened.
fn sleep(ctx: &Context, input: &[u8]) -> Result<Vec<u8>> {
    // time.Duration(ms) * time.Millisecond, overflow and all: a negative
    // product means no wait.
    let ns = gofmt::atoi(input).wrapping_mul(1_000_000);
    let wait = Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    match ctx.sleep(wait) {
        Ok(()) => Ok(b"slept".to_vec()),
        Err(e) => {
            // What Go's ctx.Err() says, so the host sees the same record
            // and the same error from either plugin.
            let (err, e) = match e {
                Error::DeadlineExceeded(_) => (
                    "context deadline exceeded",
                    Error::DeadlineExceeded("context deadline exceeded".into()),
                ),
                _ => (
                    "context canceled",
                    Error::Cancelled("context canceled".into()),
                ),
            };
            ctx.log(Level::INFO, "handler saw its context end", &[("err", &err)]);
            Err(e)
        }
    }
}

/// deadline reports the time left on the call: `{"has_deadline":bool,
/// "left_ms":int}`. Without a deadline `left_ms` is what Go computes from
/// the zero time: the most negative duration, in milliseconds.
fn deadline(ctx: &Context, _input: &[u8]) -> Result<Vec<u8>> {
    let left_ms = match ctx.deadline() {
        None => i64::MIN / 1_000_000,
        Some(d) => {
            let now = Instant::now();
            let ms = |x: Duration| i64::try_from(x.as_millis()).unwrap_or(i64::MAX);
            if d >= now {
                ms(d - now)
            } else {
                -ms(now - d)
            }
        }
    };
    let has = ctx.deadline().is_some();
    Ok(format!(r#"{{"has_deadline":{has},"left_ms":{left_ms}}}"#).into_bytes())
}

/// flood writes N lines to stdout and to stderr and N log records.
fn flood(ctx: &Context, input: &[u8]) -> Result<Vec<u8>> {
    let n = gofmt::atoi(input);
    let line = "x".repeat(100);
    for i in 0..n.max(0) {
        // Line by line, unbuffered, as Go's fmt.Fprintf to os.Stdout.
        let _ = writeln!(std::io::stdout(), "{i} {line}");
        let _ = writeln!(std::io::stderr(), "{i} {line}");
        ctx.log(Level::INFO, "log flood", &[("i", &i)]);
    }
    Ok(b"flooded".to_vec())
}

/// hostcall makes the host call `{"function": F, "payload": P}` and answers
/// with its result, or `{"code": C, "error": E}` with its error code and
/// message. With `"caveat": {...}` (the token format's caveat fields) it
/// first narrows the token of the function's capability by it.
fn hostcall(ctx: &Context, input: &[u8]) -> Result<Vec<u8>> {
    let req: HashMap<String, &RawValue> =
        serde_json::from_slice(input).map_err(|e| Error::BadInput(e.to_string()))?;
    let function: String = match req.get("function") {
        Some(v) => serde_json::from_str(v.get()).map_err(|e| Error::BadInput(e.to_string()))?,
        None => String::new(),
    };
    if let Some(c) = req.get("caveat").filter(|c| c.get() != "null") {
        let caveat = caveat_from_json(c.get())?;
        ctx.attenuate(capability_of(&function), &caveat)?;
    }
    let payload = req.get("payload").map_or(&b""[..], |p| p.get().as_bytes());
    match ctx.host_call(&function, payload) {
        Ok(out) => Ok(out),
        Err(e) => {
            let answer =
                serde_json::json!({ "code": e.code().to_string(), "error": e.to_string() });
            serde_json::to_vec(&answer).map_err(|e| Error::Internal(e.to_string()))
        }
    }
}

/// The capability a host function belongs to: all but its last dotted part.
fn capability_of(function: &str) -> &str {
    match function.rfind('.') {
        Some(i) if i > 0 => &function[..i],
        _ => function,
    }
}

/// Reads a caveat written as the token carries it (the Go plugin decodes
/// the same object into `plugin.Caveat`).
fn caveat_from_json(text: &str) -> Result<Caveat> {
    let bad = |e: String| Error::BadInput(format!("caveat: {e}"));
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let obj = v.as_object().ok_or_else(|| bad("not an object".into()))?;
    let list = |name: &str| -> Result<Vec<String>> {
        match obj.get(name) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| bad(format!("{name}: {e}"))),
        }
    };
    let int = |v: Option<&serde_json::Value>, name: &str| -> Result<i64> {
        v.map_or(Ok(0), |v| {
            v.as_i64()
                .ok_or_else(|| bad(format!("{name} is not an integer")))
        })
    };
    for k in obj.keys() {
        const KNOWN: [&str; 12] = [
            "ops",
            "hosts",
            "methods",
            "no_private",
            "max_response",
            "timeout_ms",
            "paths",
            "max_file",
            "keys",
            "scope",
            "env",
            "exp",
        ];
        if !KNOWN.contains(&k.as_str()) {
            return Err(bad(format!("unknown field {k:?}")));
        }
    }
    let envelope = match obj.get("env") {
        None => None,
        Some(e) => Some(Envelope {
            rate: e.get("rate").and_then(|r| r.as_f64()).unwrap_or(0.0),
            burst: int(e.get("burst"), "env.burst")?,
            budget: int(e.get("budget"), "env.budget")?,
        }),
    };
    Ok(Caveat {
        ops: list("ops")?,
        hosts: list("hosts")?,
        methods: list("methods")?,
        no_private: obj
            .get("no_private")
            .and_then(|b| b.as_bool())
            .unwrap_or(false),
        max_response: int(obj.get("max_response"), "max_response")?,
        timeout_ms: int(obj.get("timeout_ms"), "timeout_ms")?,
        paths: list("paths")?,
        max_file: int(obj.get("max_file"), "max_file")?,
        keys: list("keys")?,
        scope: list("scope")?,
        envelope,
        expiry_unix_ms: int(obj.get("exp"), "exp")?,
    })
}

/// Reads and discards one frame from `f`.
fn read_frame(mut f: &File) {
    let mut h = [0u8; wire::HEADER_SIZE];
    if f.read_exact(&mut h).is_err() {
        return;
    }
    let Ok(Status::Complete(h)) = Header::parse(&h, wire::HANDSHAKE_MAX_FRAME) else {
        return;
    };
    let _ = std::io::copy(&mut f.take(h.body_len as u64), &mut std::io::sink());
}

/// The -mode flag, parsed as Go's flag package does: `-mode=M`,
/// `--mode=M`, `-mode M` or `--mode M`; parsing stops at the first argument
/// that is not a flag, or after `--`.
fn parse_mode(mut args: impl Iterator<Item = String>) -> std::result::Result<String, ExitCode> {
    const USAGE: &str =
        "Usage of misbehave:\n  -mode string\n    \tstart-up behaviour (default \"serve\")";
    let mut mode = "serve".to_owned();
    while let Some(arg) = args.next() {
        if arg == "--" || !arg.starts_with('-') || arg == "-" {
            break;
        }
        let name = arg.trim_start_matches('-');
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (name, None),
        };
        match name {
            "mode" => match value.or_else(|| args.next()) {
                Some(v) => mode = v,
                None => {
                    eprintln!("flag needs an argument: -mode\n{USAGE}");
                    return Err(ExitCode::from(2));
                }
            },
            "h" | "help" => {
                eprintln!("{USAGE}");
                return Err(ExitCode::SUCCESS);
            }
            _ => {
                eprintln!("flag provided but not defined: -{name}\n{USAGE}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(args: &[&str]) -> std::result::Result<String, ExitCode> {
        parse_mode(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn the_mode_flag_parses_like_gos_flag_package() {
        assert_eq!(mode(&[]).unwrap(), "serve");
        assert_eq!(mode(&["-mode=garbage"]).unwrap(), "garbage");
        assert_eq!(mode(&["--mode=garbage"]).unwrap(), "garbage");
        assert_eq!(mode(&["-mode", "no-welcome"]).unwrap(), "no-welcome");
        assert_eq!(mode(&["x", "-mode=garbage"]).unwrap(), "serve");
        assert_eq!(mode(&["-bogus"]).unwrap_err(), ExitCode::from(2));
        assert_eq!(mode(&["-mode"]).unwrap_err(), ExitCode::from(2));
    }
}
