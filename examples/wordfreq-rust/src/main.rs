//! wordfreq: an Airlock plugin that counts words and ranks them by frequency.
//!
//! Functions:
//! - `count`: UTF-8 text in, `{"bytes","chars","words","lines"}` out.
//! - `top`: `{"text": "...", "n": 10, "min_length": 1}` in, the `n` most
//!   frequent words with their counts out.
//! - `tokens`: UTF-8 text in, the folded words in order out (a JSON array).

mod words;

use std::process::ExitCode;

use airlock_plugin::{Context, Error, Level, Plugin, Result};
use serde::{Deserialize, Serialize};

/// The most words `top` returns.
const MAX_TOP: usize = 1000;

fn main() -> ExitCode {
    plugin().serve()
}

fn plugin() -> Plugin {
    Plugin::new("wordfreq", env!("CARGO_PKG_VERSION"))
        .max_concurrency(4) // as limits.max_concurrency in airlock.toml
        .handle("count", count)
        .handle_json("top", top)
        .handle("tokens", tokens)
}

fn utf8(input: &[u8]) -> Result<&str> {
    std::str::from_utf8(input).map_err(|e| {
        Error::BadInput(format!(
            "input is not UTF-8 text: invalid byte at offset {}",
            e.valid_up_to()
        ))
    })
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Internal(format!("encode the output: {e}")))
}

fn count(ctx: &Context, input: &[u8]) -> Result<Vec<u8>> {
    let counts = words::count(utf8(input)?);
    ctx.log(
        Level::DEBUG,
        "counted",
        &[("bytes", &counts.bytes), ("words", &counts.words)],
    );
    json(&counts)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopRequest {
    text: String,
    #[serde(default = "default_n")]
    n: usize,
    /// Ignore words with fewer characters than this.
    #[serde(default = "default_min_length")]
    min_length: usize,
}

fn default_n() -> usize {
    10
}

fn default_min_length() -> usize {
    1
}

#[derive(Debug, Serialize)]
struct TopResponse {
    /// Words counted (of at least min_length characters).
    total: u64,
    /// Different words among them.
    distinct: usize,
    top: Vec<WordCount>,
}

#[derive(Debug, Serialize)]
struct WordCount {
    word: String,
    count: u64,
}

fn top(ctx: &Context, req: TopRequest) -> Result<TopResponse> {
    if req.n == 0 || req.n > MAX_TOP {
        return Err(Error::BadInput(format!(
            "n is {}; ask for 1 to {MAX_TOP} words",
            req.n
        )));
    }
    let (freq, total) = words::frequencies(&req.text, req.min_length, || ctx.check())?;
    let distinct = freq.len();
    let top = words::top(freq, req.n)
        .into_iter()
        .map(|(word, count)| WordCount { word, count })
        .collect();
    Ok(TopResponse {
        total,
        distinct,
        top,
    })
}

fn tokens(ctx: &Context, input: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (i, w) in words::words(utf8(input)?).enumerate() {
        if i % 8192 == 0 {
            ctx.check()?;
        }
        out.push(words::fold(w));
    }
    json(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn call(function: &str, input: &[u8]) -> Result<Value> {
        let out = plugin().call(function, input)?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn count_reports_bytes_chars_words_and_lines() {
        assert_eq!(
            call("count", "Ça va?\nÇa va.\n".as_bytes()).unwrap(),
            json!({"bytes": 16, "chars": 14, "words": 4, "lines": 2})
        );
    }

    #[test]
    fn top_folds_case_and_ranks() {
        let req = json!({"text": "The cat and THE hat. the end", "n": 2});
        assert_eq!(
            call("top", req.to_string().as_bytes()).unwrap(),
            json!({"total": 7, "distinct": 5, "top": [
                {"word": "the", "count": 3}, {"word": "and", "count": 1}
            ]})
        );
    }

    #[test]
    fn top_honours_min_length() {
        let req = json!({"text": "a bb ccc bb a", "min_length": 2});
        let v = call("top", req.to_string().as_bytes()).unwrap();
        assert_eq!(v["total"], 3);
        assert_eq!(v["top"][0], json!({"word": "bb", "count": 2}));
    }

    #[test]
    fn bad_input_names_the_problem() {
        let cases: [(&str, &[u8], &str); 4] = [
            ("count", b"ok \xff", "invalid byte at offset 3"),
            (
                "top",
                b"{\"text\": 1}",
                "decode the input of \"top\" as JSON",
            ),
            ("top", b"{\"text\": \"x\", \"n\": 0}", "n is 0"),
            ("top", b"{\"text\": \"x\", \"limit\": 3}", "unknown field"),
        ];
        for (function, input, want) in cases {
            match plugin().call(function, input) {
                Err(Error::BadInput(m)) => assert!(m.contains(want), "{m} lacks {want:?}"),
                other => panic!("{function} {input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_manifest_declares_every_export() {
        let declared: Vec<&str> = include_str!("../airlock.toml")
            .lines()
            .filter_map(|l| l.strip_prefix("[functions.")?.strip_suffix(']'))
            .collect();
        assert_eq!(declared, plugin().functions().collect::<Vec<_>>());
    }

    #[test]
    fn tokens_are_folded_words_in_order() {
        assert_eq!(
            call("tokens", "Don't STOP me now".as_bytes()).unwrap(),
            json!(["don't", "stop", "me", "now"])
        );
    }
}
