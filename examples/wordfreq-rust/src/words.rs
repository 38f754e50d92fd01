//! Unicode-aware word splitting and counting, with the standard library only.
//!
//! A word is a run of alphanumeric characters (`char::is_alphanumeric`, so
//! letters and digits of every script). An apostrophe (`'` or `’`) between
//! two such characters belongs to the word, so "don't" and "l’été" stay
//! whole; every other character separates words. Words are folded with
//! `str::to_lowercase`, which knows every script's case mapping (including
//! the Greek final sigma) but not full case folding: "Straße" and "STRASSE"
//! stay different words. Scripts written without spaces (Chinese, Japanese)
//! come out as one word per run of characters.

use std::collections::HashMap;

/// Text statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// UTF-8 bytes.
    pub bytes: u64,
    /// Unicode scalar values.
    pub chars: u64,
    /// Words, as this module splits them.
    pub words: u64,
    /// Lines; a last line without a newline counts.
    pub lines: u64,
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// The words of `text` in order, as slices of it (not folded).
pub fn words(text: &str) -> Words<'_> {
    Words { text, pos: 0 }
}

/// Iterator over the words of a text; see [`words`].
pub struct Words<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = &self.text[self.pos..];
        let start = self.pos + rest.find(char::is_alphanumeric)?;
        let mut end = start;
        let mut chars = self.text[start..].char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c.is_alphanumeric() {
                end = start + i + c.len_utf8();
            } else if is_apostrophe(c) && chars.peek().is_some_and(|&(_, n)| n.is_alphanumeric()) {
                continue;
            } else {
                break;
            }
        }
        self.pos = end;
        Some(&self.text[start..end])
    }
}

/// Folds a word for counting.
pub fn fold(word: &str) -> String {
    word.to_lowercase()
}

/// Counts bytes, chars, words and lines.
pub fn count(text: &str) -> Counts {
    let newlines = text.bytes().filter(|&b| b == b'\n').count() as u64;
    Counts {
        bytes: text.len() as u64,
        chars: text.chars().count() as u64,
        words: words(text).count() as u64,
        lines: newlines + u64::from(!text.is_empty() && !text.ends_with('\n')),
    }
}

/// Word frequencies. `check` runs every few thousand words so a caller can
/// stop a long count (it returns an error to stop).
pub fn frequencies<E>(
    text: &str,
    min_len: usize,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<(HashMap<String, u64>, u64), E> {
    let mut freq: HashMap<String, u64> = HashMap::new();
    let mut total = 0u64;
    for (i, w) in words(text).enumerate() {
        if i % 8192 == 0 {
            check()?;
        }
        if w.chars().count() < min_len {
            continue;
        }
        total += 1;
        let w = fold(w);
        match freq.get_mut(&w) {
            Some(n) => *n += 1,
            None => {
                freq.insert(w, 1);
            }
        }
    }
    Ok((freq, total))
}

/// The `n` most frequent words, most frequent first; ties in alphabetical
/// order so the answer is deterministic.
pub fn top(freq: HashMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = freq.into_iter().collect();
    let by_rank = |a: &(String, u64), b: &(String, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if all.len() > n {
        all.select_nth_unstable_by(n, by_rank);
        all.truncate(n);
    }
    all.sort_unstable_by(by_rank);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_anything_but_letters_digits_and_inner_apostrophes() {
        let cases: [(&str, &[&str]); 8] = [
            ("", &[]),
            ("  \n\t ", &[]),
            ("Hello, world!", &["Hello", "world"]),
            (
                "don't 'quote' rock'n'roll",
                &["don't", "quote", "rock'n'roll"],
            ),
            ("l’été d'été", &["l’été", "d'été"]),
            ("well-known 3.14 x2", &["well", "known", "3", "14", "x2"]),
            ("naïve café ΣΊΣΥΦΟΣ", &["naïve", "café", "ΣΊΣΥΦΟΣ"]),
            ("日本語のテキスト", &["日本語のテキスト"]),
        ];
        for (text, want) in cases {
            assert_eq!(words(text).collect::<Vec<_>>(), want, "{text:?}");
        }
    }

    #[test]
    fn folding_is_unicode_lowercase() {
        assert_eq!(fold("ΣΊΣΥΦΟΣ"), "σίσυφος"); // final sigma
        assert_eq!(fold("ÉLAN"), "élan");
        assert_ne!(fold("Straße"), fold("STRASSE")); // no full case folding in std
    }

    #[test]
    fn counts_match_wc() {
        assert_eq!(count(""), Counts::default());
        assert_eq!(
            count("one two\nthree"),
            Counts {
                bytes: 13,
                chars: 13,
                words: 3,
                lines: 2
            }
        );
        assert_eq!(count("é\n").chars, 2);
        assert_eq!(count("é\n").bytes, 3);
        assert_eq!(count("a\n\n").lines, 2);
    }

    #[test]
    fn top_ranks_by_count_then_word() {
        let (freq, total) = frequencies::<()>("b a c b a b D d d d", 1, || Ok(())).unwrap();
        assert_eq!(total, 10);
        assert_eq!(
            top(freq.clone(), 2),
            [("d".to_owned(), 4), ("b".to_owned(), 3)]
        );
        assert_eq!(top(freq, 10).len(), 4);
    }

    #[test]
    fn frequencies_stop_when_the_check_fails() {
        let text = "w ".repeat(20_000);
        let mut calls = 0;
        let r = frequencies(&text, 1, || {
            calls += 1;
            if calls > 1 {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!(r.unwrap_err(), "stop");
    }
}
