//! The two bits of Go's standard library whose exact output the Go plugin's
//! callers can see: `strconv.Atoi` (how inputs are read as numbers) and
//! `%q` on bytes (how `fail` quotes its input).

use std::fmt::Write as _;
use std::num::IntErrorKind;

/// `strconv.Atoi` with its error ignored, as the Go plugin uses it: 0 for
/// text that is not a decimal integer, the nearest int64 for one out of
/// range.
pub fn atoi(input: &[u8]) -> i64 {
    let Ok(text) = std::str::from_utf8(input) else {
        return 0;
    };
    match text.parse::<i64>() {
        Ok(n) => n,
        Err(e) => match e.kind() {
            IntErrorKind::PosOverflow => i64::MAX,
            IntErrorKind::NegOverflow => i64::MIN,
            _ => 0,
        },
    }
}

/// Go's `%q` of a byte slice (`strconv.Quote`): a double-quoted string with
/// Go escapes. Invalid UTF-8 bytes become `\xNN`; `\a \b \f \n \r \t \v`,
/// `\"` and `\\` are escaped by name; other control and unprintable
/// characters become `\xNN`, `\uNNNN` or `\UNNNNNNNN`. Exact for ASCII and
/// invalid bytes; for other characters "printable" follows Rust's Unicode
/// tables, which can differ from Go's `unicode.IsPrint` in rare cases
/// (combining marks, for one).
pub fn quote(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len() + 2);
    out.push('"');
    let mut rest = input;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                let (ok, _) = rest.split_at(e.valid_up_to());
                let ok = std::str::from_utf8(ok).unwrap_or_default();
                (ok, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        valid.chars().for_each(|c| push_escaped(&mut out, c));
        let (_, tail) = rest.split_at(valid.len());
        // Go escapes each byte of an invalid sequence on its own.
        for b in &tail[..bad] {
            let _ = write!(out, "\\x{b:02x}");
        }
        rest = &tail[bad..];
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' | '\\' => {
            out.push('\\');
            out.push(c);
        }
        '\u{07}' => out.push_str("\\a"),
        '\u{08}' => out.push_str("\\b"),
        '\u{0c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{0b}' => out.push_str("\\v"),
        ' '..='~' => out.push(c),
        _ if c < ' ' || c == '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        _ if printable(c) => out.push(c),
        _ if u32::from(c) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
        _ => {
            let _ = write!(out, "\\U{:08x}", u32::from(c));
        }
    }
}

/// Whether Rust's debug escaping leaves `c` as it is.
fn printable(c: char) -> bool {
    let mut e = c.escape_debug();
    e.next() == Some(c) && e.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_reads_like_go() {
        let cases: [(&[u8], i64); 9] = [
            (b"250", 250),
            (b"-3", -3),
            (b"+7", 7),
            (b"", 0),
            (b" 5", 0),
            (b"5ms", 0),
            (b"99999999999999999999", i64::MAX),
            (b"-99999999999999999999", i64::MIN),
            (b"\xff", 0),
        ];
        for (input, want) in cases {
            assert_eq!(atoi(input), want, "{input:?}");
        }
    }

    #[test]
    fn quote_matches_gos_percent_q() {
        // Each want is what Go's fmt.Sprintf("%q", []byte(input)) prints.
        let cases: [(&[u8], &str); 9] = [
            (b"x", r#""x""#),
            (b"", r#""""#),
            (b"say \"hi\"\\", r#""say \"hi\"\\""#),
            (b"a\nb\tc\x07\x00\x1b\x7f", r#""a\nb\tc\a\x00\x1b\x7f""#),
            ("héllo 語".as_bytes(), "\"héllo 語\""),
            (b"\xff\xfe ok", r#""\xff\xfe ok""#),
            ("\u{200b}\u{feff}".as_bytes(), r#""\u200b\ufeff""#),
            ("\u{e0001}".as_bytes(), r#""\U000e0001""#),
            ("\u{a0}".as_bytes(), r#""\u00a0""#),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }
}
