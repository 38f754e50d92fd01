//! Capability tokens, as far as a plugin handles them: narrowing one it was
//! granted ([`Context::attenuate`](crate::Context::attenuate)).
//!
//! A token is the layout of `docs/capabilities.md`: a header, the host's
//! claims, up to 16 caveats and an HMAC-SHA256 chain in which each caveat's
//! link is keyed by the signature before it. Adding a caveat therefore needs
//! no key, only the token's own signature, and can only narrow what the
//! token allows: the host checks every link and intersects every caveat.
//! The Go implementation (`internal/token`) is the reference; the vectors
//! in `testdata/token/attenuate.json` are checked against both.

use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

const MAGIC: &[u8] = b"ALCT";
const VERSION: u8 = 1;
const HEADER_SIZE: usize = 4 + 1 + 4 + 2;
const SIG_SIZE: usize = 32;
const MAX_CAVEATS: usize = 16;
const MAX_SIZE: usize = 16 << 10;

/// Narrows a capability token. Every field is optional: an empty list or
/// a zero number leaves that part of the token's scope as it was. A list
/// keeps only what both the token and the caveat allow; a number takes the
/// smaller value. See `docs/capabilities.md` for which fields apply to
/// which capability.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Caveat {
    /// Host functions, e.g. `kv.get`.
    pub ops: Vec<String>,
    /// `http`: host names.
    pub hosts: Vec<String>,
    /// `http`: methods.
    pub methods: Vec<String>,
    /// `http`: refuse private and loopback addresses even if the token
    /// allowed them.
    pub no_private: bool,
    /// `http`: the largest response body, in bytes.
    pub max_response: i64,
    /// `http`: the request timeout, in milliseconds.
    pub timeout_ms: i64,
    /// `fs.read`, `fs.write`: paths.
    pub paths: Vec<String>,
    /// `fs.read`, `fs.write`: the largest file, in bytes.
    pub max_file: i64,
    /// `config`: keys.
    pub keys: Vec<String>,
    /// Embedder capabilities: scope names.
    pub scope: Vec<String>,
    /// How often and how much; `None` leaves the token's envelope as it was.
    pub envelope: Option<Envelope>,
    /// An earlier expiry, in Unix milliseconds; 0 keeps the token's.
    pub expiry_unix_ms: i64,
}

/// A caveat's rate and byte limits. Zero fields leave the token's as they were.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Envelope {
    /// Calls per second.
    pub rate: f64,
    /// The token bucket's burst.
    pub burst: i64,
    /// Bytes per minute.
    pub budget: i64,
}

/// Why a token could not be narrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttenuateError(String);

impl fmt::Display for AttenuateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attenuate capability token: {}", self.0)
    }
}

impl std::error::Error for AttenuateError {}

fn fail<T>(msg: impl Into<String>) -> Result<T, AttenuateError> {
    Err(AttenuateError(msg.into()))
}

impl Caveat {
    /// The caveat as the token carries it: a JSON object with the fields
    /// that are set, named as the host reads them.
    pub fn to_json(&self) -> Result<Vec<u8>, AttenuateError> {
        let mut m = Map::new();
        let mut list = |name: &str, v: &[String]| {
            if !v.is_empty() {
                m.insert(name.into(), Value::from(v.to_vec()));
            }
        };
        list("ops", &self.ops);
        list("hosts", &self.hosts);
        list("methods", &self.methods);
        list("paths", &self.paths);
        list("keys", &self.keys);
        list("scope", &self.scope);
        if self.no_private {
            m.insert("no_private".into(), Value::from(true));
        }
        for (name, v) in [
            ("max_response", self.max_response),
            ("timeout_ms", self.timeout_ms),
            ("max_file", self.max_file),
            ("exp", self.expiry_unix_ms),
        ] {
            if v != 0 {
                m.insert(name.into(), Value::from(v));
            }
        }
        if let Some(e) = self.envelope {
            if !e.rate.is_finite() {
                return fail(format!("envelope rate {} is not a finite number", e.rate));
            }
            let mut env = Map::new();
            if e.rate != 0.0 {
                env.insert("rate".into(), Value::from(e.rate));
            }
            if e.burst != 0 {
                env.insert("burst".into(), Value::from(e.burst));
            }
            if e.budget != 0 {
                env.insert("budget".into(), Value::from(e.budget));
            }
            m.insert("env".into(), Value::Object(env));
        }
        serde_json::to_vec(&Value::Object(m)).or_else(|e| fail(format!("encode the caveat: {e}")))
    }
}

/// Returns `token` narrowed by `caveat`. It does not verify `token` (a
/// plugin has no key): a token that is not valid stays not valid.
pub(crate) fn attenuate(token: &[u8], caveat: &Caveat) -> Result<Vec<u8>, AttenuateError> {
    attenuate_json(token, &caveat.to_json()?)
}

/// Appends a caveat, given as the bytes the token will carry, and its link.
fn attenuate_json(token: &[u8], caveat: &[u8]) -> Result<Vec<u8>, AttenuateError> {
    let t = Parsed::new(token)?;
    if t.caveats.len() >= MAX_CAVEATS {
        return fail(format!("a token holds at most {MAX_CAVEATS} caveats"));
    }
    let Ok(len) = u16::try_from(caveat.len()) else {
        return fail(format!(
            "the caveat is {} bytes; at most {}",
            caveat.len(),
            u16::MAX
        ));
    };
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(t.sig).expect("HMAC takes a key of any size");
    mac.update(caveat);
    let sig = mac.finalize().into_bytes();

    let mut out = Vec::with_capacity(token.len() + 2 + caveat.len());
    out.extend_from_slice(t.signed);
    out.push(t.caveats.len() as u8 + 1);
    for c in &t.caveats {
        out.extend_from_slice(&(c.len() as u16).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(caveat);
    out.extend_from_slice(&sig);
    if out.len() > MAX_SIZE {
        return fail(format!(
            "the narrowed token would be {} bytes; at most {MAX_SIZE}",
            out.len()
        ));
    }
    Ok(out)
}

/// A token split into its parts; only the layout is checked.
struct Parsed<'a> {
    signed: &'a [u8], // header and claims
    caveats: Vec<&'a [u8]>,
    sig: &'a [u8],
}

impl<'a> Parsed<'a> {
    fn new(tok: &'a [u8]) -> Result<Parsed<'a>, AttenuateError> {
        if tok.len() > MAX_SIZE {
            return fail(format!(
                "{} bytes is more than the {MAX_SIZE} a token may have",
                tok.len()
            ));
        }
        if tok.len() < HEADER_SIZE + 1 + SIG_SIZE {
            return fail(format!("{} bytes is too short for a token", tok.len()));
        }
        if &tok[..4] != MAGIC {
            return fail(
                "it does not start with \"ALCT\": pass the token the host granted, unchanged",
            );
        }
        if tok[4] != VERSION {
            return fail(format!(
                "token version {} is not supported (this SDK reads version {VERSION})",
                tok[4]
            ));
        }
        let n = usize::from(u16::from_le_bytes([tok[9], tok[10]]));
        let rest = &tok[HEADER_SIZE..];
        if n == 0 || n > rest.len() {
            return fail(format!("claims length {n} runs past the end"));
        }
        let signed = &tok[..HEADER_SIZE + n];
        let mut rest = &rest[n..];
        let Some((&count, after)) = rest.split_first() else {
            return fail("the caveat count is missing");
        };
        rest = after;
        let count = usize::from(count);
        if count > MAX_CAVEATS {
            return fail(format!("{count} caveats is more than {MAX_CAVEATS}"));
        }
        let mut caveats = Vec::with_capacity(count + 1);
        for i in 1..=count {
            if rest.len() < 2 {
                return fail(format!("caveat {i}: its length runs past the end"));
            }
            let m = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            rest = &rest[2..];
            if m == 0 || m > rest.len() {
                return fail(format!("caveat {i}: length {m} runs past the end"));
            }
            caveats.push(&rest[..m]);
            rest = &rest[m..];
        }
        if rest.len() != SIG_SIZE {
            return fail(format!(
                "the signature is {} bytes, want {SIG_SIZE}",
                rest.len()
            ));
        }
        Ok(Parsed {
            signed,
            caveats,
            sig: rest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn vectors() -> Vec<Value> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/token/attenuate.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let v: Value = serde_json::from_str(&text).unwrap();
        let v = v.as_array().unwrap().clone();
        assert!(!v.is_empty(), "no vectors in {path}");
        v
    }

    /// The Go reference's vectors: the same caveat bytes give the same
    /// token, byte for byte.
    #[test]
    fn attenuation_matches_the_go_vectors() {
        for v in vectors() {
            let token = unhex(v["token"].as_str().unwrap());
            let caveat = v["caveat"].as_str().unwrap().as_bytes();
            let want = unhex(v["want"].as_str().unwrap());
            assert_eq!(
                attenuate_json(&token, caveat).unwrap(),
                want,
                "vector {}",
                v["name"]
            );
        }
    }

    /// The vectors' caveats, built as a Rust plugin would, encode to the
    /// same JSON object (field order aside).
    #[test]
    fn caveats_encode_as_the_host_reads_them() {
        let all = Caveat {
            ops: vec!["kv.get".into()],
            hosts: vec!["api.example".into()],
            methods: vec!["GET".into()],
            no_private: true,
            max_response: 4096,
            timeout_ms: 500,
            paths: vec!["/data".into()],
            max_file: 10,
            keys: vec!["k\"1".into(), "ü".into()],
            scope: vec!["books".into()],
            envelope: Some(Envelope {
                rate: 2.5,
                burst: 3,
                budget: 100,
            }),
            expiry_unix_ms: 1_700_000_300_000,
        };
        let only_ops = Caveat {
            ops: vec!["kv.get".into()],
            ..Caveat::default()
        };
        let vs = vectors();
        for (c, v) in [
            (&only_ops, &vs[0]),
            (&all, &vs[1]),
            (&Caveat::default(), &vs[2]),
        ] {
            let got: Value = serde_json::from_slice(&c.to_json().unwrap()).unwrap();
            let want: Value = serde_json::from_str(v["caveat"].as_str().unwrap()).unwrap();
            assert_eq!(got, want, "vector {}", v["name"]);
        }
    }

    #[test]
    fn bad_tokens_and_caveats_are_refused_with_the_reason() {
        let root = unhex(vectors()[0]["token"].as_str().unwrap());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"not a token at all, and long enough to get past the size check".to_vec(),
                "ALCT",
            ),
            (root[..20].to_vec(), "too short"),
            ([&root[..], b"x"].concat(), "signature is 33 bytes"),
            (
                {
                    let mut t = root.clone();
                    t[4] = 9;
                    t
                },
                "version 9",
            ),
        ];
        for (tok, want) in cases {
            let err = attenuate(&tok, &Caveat::default()).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} does not say {want:?}");
        }
        let mut tok = root;
        for _ in 0..MAX_CAVEATS {
            tok = attenuate(&tok, &Caveat::default()).unwrap();
        }
        let err = attenuate(&tok, &Caveat::default()).unwrap_err().to_string();
        assert!(err.contains("at most 16 caveats"), "{err}");
        let nan = Caveat {
            envelope: Some(Envelope {
                rate: f64::NAN,
                ..Envelope::default()
            }),
            ..Caveat::default()
        };
        assert!(nan
            .to_json()
            .unwrap_err()
            .to_string()
            .contains("not a finite number"));
    }
}
