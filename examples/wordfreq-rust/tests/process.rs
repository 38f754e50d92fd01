//! Runs the built wordfreq binary as a host would: over a socketpair on
//! descriptor 3, with the SDK's test host.

#[path = "../../../sdk/rust/tests/common/host.rs"]
mod host;

use std::process::Command;
use std::time::Duration;

use airlock_plugin::wire::{Code, Kind};

const TIMEOUT: Duration = Duration::from_secs(10);

fn start() -> host::Session {
    host::Plugin::spawn(Command::new(env!("CARGO_BIN_EXE_wordfreq"))).negotiate()
}

#[test]
fn serves_its_functions_then_shuts_down_cleanly() {
    let mut s = start();
    assert_eq!(s.functions, ["count", "top", "tokens"]);

    let counts = s.call("count", TIMEOUT, b"one two\nthree\n").unwrap();
    assert_eq!(
        String::from_utf8(counts).unwrap(),
        r#"{"bytes":14,"chars":14,"words":3,"lines":2}"#
    );

    let req = br#"{"text": "to be or not to be", "n": 2}"#;
    let top = s.call("top", TIMEOUT, req).unwrap();
    assert_eq!(
        String::from_utf8(top).unwrap(),
        r#"{"total":6,"distinct":4,"top":[{"word":"be","count":2},{"word":"to","count":2}]}"#
    );

    let (code, msg) = s.call("count", TIMEOUT, b"\xff").unwrap_err();
    assert_eq!(code, Code::BAD_INPUT, "{msg}");

    s.shutdown(TIMEOUT);
    let goodbye = s.next_non_log().expect("GOODBYE");
    assert_eq!(goodbye.kind, Kind::GOODBYE);
    let status = s.wait();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn run_by_hand_it_says_what_it_is() {
    let out = Command::new(env!("CARGO_BIN_EXE_wordfreq"))
        .env_remove("AIRLOCK_PROTOCOL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("wordfreq 0.1.0 is an Airlock plugin"),
        "{stderr}"
    );
    assert!(stderr.contains("count, top, tokens"), "{stderr}");
}
