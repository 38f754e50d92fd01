//! The golden frames of testdata/wire, shared with the Go codec: every `.bin`
//! must decode to exactly the fields its `.json` describes, and encoding those
//! fields must give the `.bin` byte for byte. Every `invalid/` byte string
//! must be refused with the class its `.json` names.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use airlock_plugin::wire::{
    self, Call, Code, Failure, Frame, Grant, Header, Hello, HostCall, Kind, Log, Message, Status,
    Token, Welcome,
};
use serde_json::{json, Value};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wire")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no golden descriptions in {}", dir.display());
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd-length hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("hex {s:?}: {e}")))
        .collect()
}

/// The fields of a decoded message, in the shape of a description's fields.
fn fields_of(m: &Message<'_>) -> Value {
    match m {
        Message::Hello(h) => json!({
            "min_version": h.min_version, "max_version": h.max_version, "max_frame": h.max_frame,
            "host": h.host, "plugin": h.plugin, "instance": h.instance,
        }),
        Message::Welcome(w) => json!({
            "version": w.version, "min_version": w.min_version, "max_version": w.max_version,
            "max_frame": w.max_frame, "sdk": w.sdk, "functions": w.functions,
        }),
        Message::Call(c) => json!({
            "timeout_ns": c.timeout_ns, "function": c.function, "payload": hex(c.payload),
        }),
        Message::HostCall(c) => json!({
            "timeout_ns": c.timeout_ns, "function": c.function, "token": hex(c.token),
            "payload": hex(c.payload),
        }),
        Message::Result { payload } => json!({ "payload": hex(payload) }),
        Message::Error(f) => json!({ "code": f.code.0, "message": f.message }),
        Message::Log(l) => json!({
            "level": l.level, "message": l.message,
            "attrs": l.attrs.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        }),
        Message::Grant(g) => json!({
            "tokens": g.tokens.iter().map(|t| json!([t.capability, hex(t.token)])).collect::<Vec<_>>(),
        }),
        Message::Shutdown { grace_ns } => json!({ "grace_ns": grace_ns }),
        Message::Cancel | Message::Ping | Message::Pong | Message::Goodbye => json!({}),
        Message::Unknown { body, .. } => json!({ "body": hex(body) }),
        other => panic!("message {other:?} has no golden shape"),
    }
}

/// Reads typed fields from a description and fails on missing, mistyped or
/// unused ones.
struct Fields<'a> {
    name: &'a str,
    m: &'a serde_json::Map<String, Value>,
    used: BTreeSet<&'a str>,
}

impl<'a> Fields<'a> {
    fn get(&mut self, k: &'a str) -> &'a Value {
        self.used.insert(k);
        self.m
            .get(k)
            .unwrap_or_else(|| panic!("{}: description lacks field {k:?}", self.name))
    }
    fn u64(&mut self, k: &'a str) -> u64 {
        let name = self.name;
        self.get(k)
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {k} is not a u64"))
    }
    fn u16(&mut self, k: &'a str) -> u16 {
        u16::try_from(self.u64(k)).unwrap()
    }
    fn u32(&mut self, k: &'a str) -> u32 {
        u32::try_from(self.u64(k)).unwrap()
    }
    fn i32(&mut self, k: &'a str) -> i32 {
        let name = self.name;
        i32::try_from(
            self.get(k)
                .as_i64()
                .unwrap_or_else(|| panic!("{name}: {k} is not an i64")),
        )
        .unwrap()
    }
    fn str(&mut self, k: &'a str) -> &'a str {
        let name = self.name;
        self.get(k)
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {k} is not a string"))
    }
    fn list(&mut self, k: &'a str) -> &'a Vec<Value> {
        let name = self.name;
        self.get(k)
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {k} is not a list"))
    }
    fn done(&self) {
        let extra: Vec<&String> = self
            .m
            .keys()
            .filter(|k| !self.used.contains(k.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "{}: fields the encoder did not use: {extra:?}",
            self.name
        );
    }
}

/// Encodes a description's kind, id and fields with the crate's encoders.
fn encode_description(name: &str, g: &Value) -> Vec<u8> {
    let kind = g["kind"].as_str().unwrap();
    let id = g["id"].as_u64().unwrap();
    let empty = serde_json::Map::new();
    let mut f = Fields {
        name,
        m: g["fields"].as_object().unwrap_or(&empty),
        used: BTreeSet::new(),
    };
    // Byte fields are decoded first so the message can borrow them.
    let bytes: BTreeMap<&str, Vec<u8>> = ["payload", "token", "body"]
        .into_iter()
        .filter_map(|k| f.m.get(k).map(|v| (k, unhex(v.as_str().unwrap()))))
        .collect();
    let b = |k: &'static str, f: &mut Fields| -> Vec<u8> {
        f.used.insert(k);
        bytes
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: description lacks field {k:?}"))
    };
    let (payload, token, body, tokens);
    let msg = match kind {
        "hello" => Message::Hello(Hello {
            min_version: f.u16("min_version"),
            max_version: f.u16("max_version"),
            max_frame: f.u32("max_frame"),
            host: f.str("host").into(),
            plugin: f.str("plugin").into(),
            instance: f.str("instance").into(),
        }),
        "welcome" => Message::Welcome(Welcome {
            version: f.u16("version"),
            min_version: f.u16("min_version"),
            max_version: f.u16("max_version"),
            max_frame: f.u32("max_frame"),
            sdk: f.str("sdk").into(),
            functions: f
                .list("functions")
                .iter()
                .map(|v| v.as_str().unwrap().into())
                .collect(),
        }),
        "call" => {
            payload = b("payload", &mut f);
            Message::Call(Call {
                timeout_ns: f.u64("timeout_ns"),
                function: f.str("function").into(),
                payload: &payload,
            })
        }
        "hostcall" => {
            payload = b("payload", &mut f);
            token = b("token", &mut f);
            Message::HostCall(HostCall {
                timeout_ns: f.u64("timeout_ns"),
                function: f.str("function").into(),
                token: &token,
                payload: &payload,
            })
        }
        "result" => {
            payload = b("payload", &mut f);
            Message::Result { payload: &payload }
        }
        "error" => Message::Error(Failure {
            code: Code(f.u16("code")),
            message: f.str("message").into(),
        }),
        "log" => Message::Log(Log {
            level: f.i32("level"),
            message: f.str("message").into(),
            attrs: f
                .list("attrs")
                .iter()
                .map(|kv| {
                    let kv = kv.as_array().unwrap();
                    (
                        kv[0].as_str().unwrap().into(),
                        kv[1].as_str().unwrap().into(),
                    )
                })
                .collect(),
        }),
        "grant" => {
            tokens = f
                .list("tokens")
                .iter()
                .map(|ct| {
                    let ct = ct.as_array().unwrap();
                    (ct[0].as_str().unwrap(), unhex(ct[1].as_str().unwrap()))
                })
                .collect::<Vec<_>>();
            Message::Grant(Grant {
                tokens: tokens
                    .iter()
                    .map(|(c, t)| Token {
                        capability: (*c).into(),
                        token: t,
                    })
                    .collect(),
            })
        }
        "shutdown" => Message::Shutdown {
            grace_ns: f.u64("grace_ns"),
        },
        "cancel" => Message::Cancel,
        "ping" => Message::Ping,
        "pong" => Message::Pong,
        "goodbye" => Message::Goodbye,
        other => {
            let hexkind = other
                .strip_prefix("kind(0x")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| {
                    panic!("{name}: kind {other:?} is neither known nor kind(0xNN)")
                });
            body = b("body", &mut f);
            Message::Unknown {
                kind: Kind(u8::from_str_radix(hexkind, 16).unwrap()),
                body: &body,
            }
        }
    };
    f.done();
    let mut out = Vec::new();
    msg.encode(id, &mut out);
    if let Some(tr) = g.get("trailing").and_then(Value::as_str) {
        // Trailing bytes extend the body: patch the length prefix.
        out.extend_from_slice(&unhex(tr));
        let h = Header::encode(Kind(out[4]), id, out.len() - wire::HEADER_SIZE);
        out[..4].copy_from_slice(&h[..4]);
    }
    out
}

#[test]
fn golden_frames_decode_to_their_description_and_encode_back() {
    let mut kinds = HashSet::new();
    let files = json_files(&golden_dir());
    for path in &files {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let g: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
        let bin = fs::read(path.with_extension("bin")).unwrap();

        let Status::Complete((frame, n)) = wire::decode(&bin, wire::DEFAULT_MAX_FRAME)
            .unwrap_or_else(|e| panic!("{name}: decode: {e}"))
        else {
            panic!("{name}: decode says incomplete")
        };
        assert_eq!(
            n,
            bin.len(),
            "{name}: decode used {n} of {} bytes",
            bin.len()
        );
        assert_eq!(
            frame.kind.to_string(),
            g["kind"].as_str().unwrap(),
            "{name}: kind"
        );
        assert_eq!(frame.id, g["id"].as_u64().unwrap(), "{name}: id");
        let msg = frame
            .message()
            .unwrap_or_else(|e| panic!("{name}: decode body: {e}"));
        assert_eq!(msg.kind(), frame.kind, "{name}: message kind");
        let want = g.get("fields").cloned().unwrap_or_else(|| json!({}));
        assert_eq!(fields_of(&msg), want, "{name}: decoded fields");
        kinds.insert(frame.kind);

        let encoded = encode_description(name, &g);
        assert_eq!(
            hex(&encoded),
            hex(&bin),
            "{name}: encoding the description does not give the .bin"
        );
    }
    for k in 0..=255u8 {
        let kind = Kind(k);
        assert!(
            !kind.is_known() || kinds.contains(&kind),
            "no golden frame of kind {kind}"
        );
    }
}

#[test]
fn invalid_frames_are_refused_with_their_class() {
    for path in json_files(&golden_dir().join("invalid")) {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let g: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let bin = fs::read(path.with_extension("bin")).unwrap();
        assert_eq!(
            hex(&bin),
            g["hex"].as_str().unwrap(),
            "{name}: .bin differs from hex"
        );
        let max = usize::try_from(g["max_frame"].as_u64().unwrap()).unwrap();
        let got = match wire::decode(&bin, max) {
            Ok(Status::Incomplete) => "incomplete".to_owned(),
            Ok(Status::Complete((frame, _))) => match Frame::message(&frame) {
                Ok(m) => format!("valid {m:?}"),
                Err(e) if e.is_too_large() => "too_large".into(),
                Err(_) => "malformed".into(),
            },
            Err(e) if e.is_too_large() => "too_large".into(),
            Err(_) => "malformed".into(),
        };
        assert_eq!(
            got,
            g["expect"].as_str().unwrap(),
            "{name}: {}",
            g["description"]
        );
    }
}
