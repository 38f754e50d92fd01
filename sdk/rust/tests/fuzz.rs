//! Fuzz-style properties of the decoder, run on every `cargo test` (cargo-fuzz
//! needs nightly). A fixed-seed generator makes failures reproducible; set
//! AIRLOCK_FUZZ_ROUNDS for a longer run.

use std::borrow::Cow;
use std::fs;
use std::path::Path;

use airlock_plugin::wire::{
    self, Call, Code, Failure, Grant, Hello, HostCall, Kind, Log, Message, Status, Token, Welcome,
};

/// xorshift64*: small, deterministic, good enough to shake a decoder.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn text(&mut self, max: usize) -> String {
        const PARTS: [&str; 6] = ["a", "Z", " ", "é", "語", "\u{1f600}"];
        let n = self.below(max + 1);
        (0..n).map(|_| PARTS[self.below(PARTS.len())]).collect()
    }
}

fn rounds() -> usize {
    std::env::var("AIRLOCK_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn golden_frames() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wire");
    let mut v: Vec<Vec<u8>> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| fs::read(p).unwrap())
        .collect();
    v.sort();
    assert!(v.len() >= 12, "golden frames missing in {}", dir.display());
    v
}

/// Decodes `buf` all the way and checks the decoder's own promises.
fn check_decode(buf: &[u8], max_frame: usize) {
    match wire::decode(buf, max_frame) {
        Ok(Status::Complete((frame, n))) => {
            assert!(n <= buf.len(), "used {n} of {} bytes", buf.len());
            assert!(
                n <= max_frame,
                "accepted a {n}-byte frame over the {max_frame} limit"
            );
            assert_eq!(n, wire::HEADER_SIZE + frame.body.len());
            if let Ok(m) = frame.message() {
                assert_eq!(m.kind(), frame.kind);
            }
        }
        Ok(Status::Incomplete) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

#[test]
fn random_bytes_never_panic_the_decoder() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..rounds() {
        let mut buf = rng.bytes(96);
        // Make plausible headers common: a small length prefix and a known kind.
        if buf.len() >= 5 && rng.below(2) == 0 {
            let len = (buf.len() - 4) as u32;
            buf[..4].copy_from_slice(&len.to_le_bytes());
            buf[4] = 1 + rng.below(14) as u8;
        }
        let max = [16, 64, wire::HANDSHAKE_MAX_FRAME][rng.below(3)];
        check_decode(&buf, max);
    }
}

#[test]
fn every_prefix_of_a_frame_is_incomplete_and_mutations_never_panic() {
    let mut rng = Rng(42);
    for frame in golden_frames() {
        for cut in 0..frame.len() {
            assert_eq!(
                wire::decode(&frame[..cut], wire::DEFAULT_MAX_FRAME),
                Ok(Status::Incomplete),
                "prefix of {cut} bytes of {frame:02x?}"
            );
        }
        for _ in 0..rounds() / 20 {
            let mut m = frame.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len());
                m[i] = rng.next() as u8;
            }
            m.truncate(rng.below(m.len() + 1).max(m.len() / 2));
            check_decode(&m, wire::DEFAULT_MAX_FRAME);
        }
    }
}

fn random_message<'a>(rng: &mut Rng, payload: &'a [u8], token: &'a [u8]) -> Message<'a> {
    let s = |rng: &mut Rng| -> Cow<'a, str> { rng.text(12).into() };
    match rng.below(14) {
        0 => Message::Hello(Hello {
            min_version: rng.next() as u16,
            max_version: rng.next() as u16,
            max_frame: rng.next() as u32,
            host: s(rng),
            plugin: s(rng),
            instance: s(rng),
        }),
        1 => Message::Welcome(Welcome {
            version: rng.next() as u16,
            min_version: rng.next() as u16,
            max_version: rng.next() as u16,
            max_frame: rng.next() as u32,
            sdk: s(rng),
            functions: (0..rng.below(5)).map(|_| s(rng)).collect(),
        }),
        2 => Message::Call(Call {
            timeout_ns: rng.next(),
            function: s(rng),
            payload,
        }),
        3 => Message::Result { payload },
        4 => Message::Error(Failure {
            code: Code(rng.next() as u16),
            message: s(rng),
        }),
        5 => Message::Cancel,
        6 => Message::Ping,
        7 => Message::Pong,
        8 => Message::Log(Log {
            level: rng.next() as i32,
            message: s(rng),
            attrs: (0..rng.below(4)).map(|_| (s(rng), s(rng))).collect(),
        }),
        9 => Message::Shutdown {
            grace_ns: rng.next(),
        },
        10 => Message::Goodbye,
        11 => Message::HostCall(HostCall {
            timeout_ns: rng.next(),
            function: s(rng),
            token,
            payload,
        }),
        12 => Message::Grant(Grant {
            tokens: (0..rng.below(4))
                .map(|i| Token {
                    capability: s(rng),
                    token: &token[..token.len().min(i * 3)],
                })
                .collect(),
        }),
        _ => Message::Unknown {
            kind: Kind(0x0e + rng.below(0xff - 0x0e) as u8),
            body: payload,
        },
    }
}

#[test]
fn encoded_messages_decode_to_themselves() {
    let mut rng = Rng(7);
    for _ in 0..rounds() / 4 {
        let payload = rng.bytes(64);
        let token = rng.bytes(8);
        let msg = random_message(&mut rng, &payload, &token);
        let id = rng.next();
        let mut buf = Vec::new();
        msg.encode(id, &mut buf);
        // Bytes of the next frame after this one must not be consumed.
        let next = rng.bytes(20);
        buf.extend_from_slice(&next);
        let Ok(Status::Complete((frame, n))) = wire::decode(&buf, wire::DEFAULT_MAX_FRAME) else {
            panic!("{msg:?} did not decode")
        };
        assert_eq!(n, buf.len() - next.len());
        assert_eq!((frame.kind, frame.id), (msg.kind(), id));
        assert_eq!(frame.message().unwrap(), msg);
    }
}
