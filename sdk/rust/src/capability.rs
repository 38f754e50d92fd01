//! Typed calls to the host's built-in capabilities (feature `json`).
//!
//! Each capability is reached from the handler's context:
//! [`Context::kv`], [`Context::http`], [`Context::fs`], [`Context::clock`],
//! [`Context::random`] and [`Context::config`]. A call works only if the
//! plugin's manifest requests the capability and the operator's policy
//! grants it; otherwise it fails with [`Error::PermissionDenied`]. Every
//! call is bounded by the handler's deadline and ends when the call is
//! cancelled, as [`Context::host_call`] is, which they are built on.
//!
//! Payloads and results are the JSON of `docs/capabilities.md` ("Built-in
//! functions"), byte fields in base64. A result that does not have that
//! shape fails the call with [`Error::Internal`] naming the function and the
//! field.
//!
//! ```no_run
//! use airlock_plugin::{Context, Result};
//!
//! fn visits(ctx: &Context, _input: &[u8]) -> Result<Vec<u8>> {
//!     let n = match ctx.kv().get("visits")? {
//!         Some(v) => String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0),
//!         None => 0,
//!     } + 1;
//!     ctx.kv().put("visits", n.to_string().as_bytes())?;
//!     Ok(n.to_string().into_bytes())
//! }
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::{Context, Error, Result};

impl Context {
    /// The key-value store private to the plugin, kept across restarts
    /// (capability `kv`).
    pub fn kv(&self) -> Kv<'_> {
        Kv { ctx: self }
    }

    /// HTTP requests made by the host to the hosts the operator allowed
    /// (capability `http`).
    pub fn http(&self) -> Http<'_> {
        Http { ctx: self }
    }

    /// Files beneath the directories the operator granted (capabilities
    /// `fs.read` and `fs.write`).
    pub fn fs(&self) -> Fs<'_> {
        Fs { ctx: self }
    }

    /// The host's clock (capability `clock`).
    pub fn clock(&self) -> Clock<'_> {
        Clock { ctx: self }
    }

    /// Cryptographically random bytes from the host (capability `random`).
    pub fn random(&self) -> Random<'_> {
        Random { ctx: self }
    }

    /// Settings the operator provides (capability `config`).
    pub fn config(&self) -> Config<'_> {
        Config { ctx: self }
    }
}

/// The `kv` capability; see [`Context::kv`].
#[derive(Clone, Copy)]
pub struct Kv<'a> {
    ctx: &'a Context,
}

/// One page of keys from [`Kv::list`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPage {
    /// The keys, in order.
    pub keys: Vec<String>,
    /// Whether more keys follow: list again with `after` set to the last key.
    pub more: bool,
}

impl Kv<'_> {
    /// The value stored under `key`, or `None` when there is none.
    ///
    /// # Errors
    ///
    /// As [`Context::host_call`].
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let r = Reply::call(self.ctx, "kv.get", &json!({ "key": key }))?;
        if !r.bool("found")? {
            return Ok(None);
        }
        r.bytes("value").map(Some)
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    ///
    /// `BudgetExceeded` when the plugin's quota would be exceeded; otherwise
    /// as [`Context::host_call`].
    pub fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        let payload = json!({ "key": key, "value": base64_encode(value) });
        Reply::call(self.ctx, "kv.put", &payload).map(drop)
    }

    /// Removes `key`; returns whether it existed.
    ///
    /// # Errors
    ///
    /// As [`Context::host_call`].
    pub fn delete(&self, key: &str) -> Result<bool> {
        Reply::call(self.ctx, "kv.delete", &json!({ "key": key }))?.bool("deleted")
    }

    /// Up to `limit` keys that start with `prefix` and sort after `after`
    /// (empty for the first page).
    ///
    /// # Errors
    ///
    /// As [`Context::host_call`].
    pub fn list(&self, prefix: &str, after: &str, limit: usize) -> Result<KeyPage> {
        let payload = json!({ "prefix": prefix, "after": after, "limit": limit });
        let r = Reply::call(self.ctx, "kv.list", &payload)?;
        Ok(KeyPage {
            keys: r.strings("keys")?,
            more: r.bool("more")?,
        })
    }
}

/// The `http` capability; see [`Context::http`].
#[derive(Clone, Copy)]
pub struct Http<'a> {
    ctx: &'a Context,
}

/// An HTTP request the host makes for the plugin.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    /// `GET`, `POST`, …; the operator's grant says which are allowed.
    pub method: String,
    /// An `http` or `https` URL on a host the operator allowed.
    pub url: String,
    /// Request headers, each with its values.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The request body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A GET request for `url`.
    pub fn get(url: impl Into<String>) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            ..HttpRequest::default()
        }
    }
}

/// The host's answer to an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Response headers, each with its values.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The response body.
    pub body: Vec<u8>,
    /// The URL that answered, after redirects.
    pub url: String,
}

impl Http<'_> {
    /// Asks the host to make `req`. The host allows only the hosts and
    /// methods the operator granted, refuses private addresses unless
    /// granted, and caps the response's size and time.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` for a host, method or address the grant does not
    /// allow, `TooLarge` for a response over the limit; otherwise as
    /// [`Context::host_call`]. An HTTP error status is not an error: it is
    /// in [`HttpResponse::status`].
    pub fn fetch(&self, req: &HttpRequest) -> Result<HttpResponse> {
        let mut payload = Map::new();
        payload.insert("method".into(), json!(req.method));
        payload.insert("url".into(), json!(req.url));
        if !req.headers.is_empty() {
            payload.insert("headers".into(), json!(req.headers));
        }
        if !req.body.is_empty() {
            payload.insert("body".into(), json!(base64_encode(&req.body)));
        }
        let r = Reply::call(self.ctx, "http.fetch", &Value::Object(payload))?;
        let status = r.u64("status")?;
        Ok(HttpResponse {
            status: u16::try_from(status).map_err(|_| r.bad("status", "is not a u16"))?,
            headers: r.headers("headers")?,
            body: r.bytes("body")?,
            url: r.string("url")?,
        })
    }

    /// Fetches `url` with GET.
    ///
    /// # Errors
    ///
    /// As [`Http::fetch`].
    pub fn get(&self, url: &str) -> Result<HttpResponse> {
        self.fetch(&HttpRequest::get(url))
    }
}

/// The `fs.read` and `fs.write` capabilities; see [`Context::fs`].
#[derive(Clone, Copy)]
pub struct Fs<'a> {
    ctx: &'a Context,
}

impl Fs<'_> {
    /// Reads a file beneath a granted path, e.g. `data/rates.json`.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` outside the granted paths (`..`, symlinks leading
    /// out), `TooLarge` over the grant's file size; otherwise as
    /// [`Context::host_call`].
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        Reply::call(self.ctx, "fs.read.file", &json!({ "path": path }))?.bytes("data")
    }

    /// Writes `data` to a file beneath a granted path, replacing its
    /// contents, or appending to them when `append` is true.
    ///
    /// # Errors
    ///
    /// As [`Fs::read_file`].
    pub fn write_file(&self, path: &str, data: &[u8], append: bool) -> Result<()> {
        let payload = json!({ "path": path, "data": base64_encode(data), "append": append });
        Reply::call(self.ctx, "fs.write.file", &payload).map(drop)
    }
}

/// The `clock` capability; see [`Context::clock`].
#[derive(Clone, Copy)]
pub struct Clock<'a> {
    ctx: &'a Context,
}

impl Clock<'_> {
    /// The host's wall-clock time.
    ///
    /// # Errors
    ///
    /// As [`Context::host_call`].
    pub fn now(&self) -> Result<SystemTime> {
        let r = Reply::call(self.ctx, "clock.now", &json!({}))?;
        let ns = r.i64("unix_nano")?;
        let t = if ns >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_nanos(ns.unsigned_abs()))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_nanos(ns.unsigned_abs()))
        };
        t.ok_or_else(|| r.bad("unix_nano", "is outside this system's time range"))
    }
}

/// The `random` capability; see [`Context::random`].
#[derive(Clone, Copy)]
pub struct Random<'a> {
    ctx: &'a Context,
}

impl Random<'_> {
    /// `n` random bytes from the host's cryptographic generator (`n` ≤
    /// 65 536).
    ///
    /// # Errors
    ///
    /// `TooLarge` for `n` over 65 536; otherwise as [`Context::host_call`].
    pub fn bytes(&self, n: usize) -> Result<Vec<u8>> {
        Reply::call(self.ctx, "random.bytes", &json!({ "n": n }))?.bytes("bytes")
    }
}

/// The `config` capability; see [`Context::config`].
#[derive(Clone, Copy)]
pub struct Config<'a> {
    ctx: &'a Context,
}

impl Config<'_> {
    /// The operator's value for `key`.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` for a key the operator did not grant; otherwise as
    /// [`Context::host_call`].
    pub fn get(&self, key: &str) -> Result<String> {
        Reply::call(self.ctx, "config.get", &json!({ "key": key }))?.string("value")
    }
}

/// A host call's JSON result, read field by field. A missing or null field
/// reads as its zero value, as in the Go SDK; a field of the wrong type is
/// an error.
struct Reply {
    function: &'static str,
    fields: Map<String, Value>,
}

impl Reply {
    fn call(ctx: &Context, function: &'static str, payload: &Value) -> Result<Reply> {
        let body = serde_json::to_vec(payload)
            .map_err(|e| Error::Internal(format!("{function}: encode the payload as JSON: {e}")))?;
        let out = ctx.host_call(function, &body)?;
        match serde_json::from_slice(&out) {
            Ok(Value::Object(fields)) => Ok(Reply { function, fields }),
            Ok(_) => Err(Error::Internal(format!(
                "{function}: the host's result is not a JSON object"
            ))),
            Err(e) => Err(Error::Internal(format!(
                "{function}: the host's result is not JSON: {e}"
            ))),
        }
    }

    fn bad(&self, field: &str, why: &str) -> Error {
        Error::Internal(format!(
            "{}: field \"{field}\" of the host's result {why}",
            self.function
        ))
    }

    fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !v.is_null())
    }

    fn bool(&self, name: &str) -> Result<bool> {
        self.field(name).map_or(Ok(false), |v| {
            v.as_bool()
                .ok_or_else(|| self.bad(name, "is not a boolean"))
        })
    }

    fn u64(&self, name: &str) -> Result<u64> {
        self.field(name).map_or(Ok(0), |v| {
            v.as_u64()
                .ok_or_else(|| self.bad(name, "is not an unsigned integer"))
        })
    }

    fn i64(&self, name: &str) -> Result<i64> {
        self.field(name).map_or(Ok(0), |v| {
            v.as_i64()
                .ok_or_else(|| self.bad(name, "is not an integer"))
        })
    }

    fn string(&self, name: &str) -> Result<String> {
        self.field(name).map_or(Ok(String::new()), |v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.bad(name, "is not a string"))
        })
    }

    fn strings(&self, name: &str) -> Result<Vec<String>> {
        let Some(v) = self.field(name) else {
            return Ok(Vec::new());
        };
        string_list(v).ok_or_else(|| self.bad(name, "is not a list of strings"))
    }

    fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        let Some(v) = self.field(name) else {
            return Ok(Vec::new());
        };
        let s = v
            .as_str()
            .ok_or_else(|| self.bad(name, "is not a base64 string"))?;
        base64_decode(s).ok_or_else(|| self.bad(name, "is not valid base64"))
    }

    fn headers(&self, name: &str) -> Result<BTreeMap<String, Vec<String>>> {
        let Some(v) = self.field(name) else {
            return Ok(BTreeMap::new());
        };
        let bad = || self.bad(name, "is not an object of string lists");
        let obj = v.as_object().ok_or_else(bad)?;
        obj.iter()
            .map(|(k, v)| {
                let values = if v.is_null() {
                    Vec::new()
                } else {
                    string_list(v).ok_or_else(bad)?
                };
                Ok((k.clone(), values))
            })
            .collect()
    }
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 section 4), as Go's
/// `encoding/json` writes byte slices.
pub(crate) fn base64_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &x)| n | u32::from(x) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64. Padding may be left out; line breaks are
/// skipped, as Go's decoder does; anything else outside the alphabet, or a
/// length no encoding produces, gives `None`.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits, mut digits) = (0u32, 0u32, 0usize);
    let mut padding = 0usize;
    for &c in s.as_bytes() {
        let v = match c {
            b'\r' | b'\n' => continue,
            b'=' => {
                padding += 1;
                continue;
            }
            _ if padding > 0 => return None, // data after padding
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        digits += 1;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    let tail = digits % 4;
    if tail == 1 || (padding > 0 && (tail + padding) % 4 != 0) || padding > 2 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        let cases: [(&str, &str); 7] = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes(), "{enc}");
        }
        assert_eq!(base64_encode(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn base64_round_trips_every_byte_and_length() {
        let all: Vec<u8> = (0..=255).collect();
        for n in 0..all.len() {
            let enc = base64_encode(&all[..n]);
            assert_eq!(enc.len() % 4, 0);
            assert_eq!(base64_decode(&enc).unwrap(), &all[..n], "length {n}");
            let bare = enc.trim_end_matches('=');
            assert_eq!(base64_decode(bare).unwrap(), &all[..n], "unpadded {n}");
        }
        assert_eq!(base64_decode("Zm9v\r\nYmFy").unwrap(), b"foobar");
    }

    #[test]
    fn invalid_base64_is_refused() {
        for bad in ["Z", "Zm9vY", "Zg===", "Zg=a", "Zm9v!", "Zm 9v", "Zm9v-_"] {
            assert_eq!(base64_decode(bad), None, "{bad:?}");
        }
    }
}
