//! Title normalisation the way MediaWiki does it, and the case-insensitive
//! prefix automaton.
//!
//! [`normalize_title`] is a pure function of the string; namespace-aware
//! normalisation (`talk:foo` → `Talk:Foo`) needs the namespace names from
//! the dump and lives in `TitleIndex::lookup_normalized`.

use std::borrow::Cow;

use fst::Automaton;

/// Normalises a title as MediaWiki does for links and URLs: underscores
/// become spaces, runs of spaces collapse to one, leading and trailing
/// spaces go, and the first character is upper-cased (Unicode upper case,
/// e.g. `ß` → `SS`, `ǆ` → `Ǆ`).
///
/// Returns the input unchanged (borrowed) when it is already normal.
///
/// ```
/// use percore_index::normalize_title;
/// assert_eq!(normalize_title("rust_(programming language)"), "Rust (programming language)");
/// assert_eq!(normalize_title("  москва "), "Москва");
/// assert_eq!(normalize_title("Already fine"), "Already fine");
/// ```
pub fn normalize_title(title: &str) -> Cow<'_, str> {
    let first = title.chars().next();
    let needs_work = title.contains('_')
        || title.contains("  ")
        || title.starts_with(' ')
        || title.ends_with(' ')
        || first.is_some_and(|c| !is_upper_first(c));
    if !needs_work {
        return Cow::Borrowed(title);
    }
    let mut out = String::with_capacity(title.len() + 2);
    for word in title.split(['_', ' ']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    Cow::Owned(upper_first(&out).into_owned())
}

/// `s` with its first character upper-cased (MediaWiki's `ucfirst`).
pub(crate) fn upper_first(s: &str) -> Cow<'_, str> {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if !is_upper_first(c) => {
            let mut out: String = c.to_uppercase().collect();
            out.push_str(chars.as_str());
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(s),
    }
}

/// Whether upper-casing `c` leaves it unchanged.
fn is_upper_first(c: char) -> bool {
    let mut up = c.to_uppercase();
    up.next() == Some(c) && up.next().is_none()
}

/// Appends the simple case folding of `c` to `out`: lower case, with the
/// few characters whose lower case is not their folding mapped by hand.
pub(crate) fn fold_char(c: char, out: &mut Vec<char>) {
    match c {
        'ς' => out.push('σ'),
        'ſ' => out.push('s'),
        'ẞ' | 'ß' => out.push('ß'),
        _ => out.extend(c.to_lowercase()),
    }
}

/// Case-folds a whole string into characters.
pub(crate) fn fold_str(s: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        fold_char(c, &mut out);
    }
    out
}

/// An `fst` automaton matching keys that start, ignoring case, with a
/// prefix. It decodes the key's UTF-8 one byte at a time, folds each
/// character and compares it with the folded prefix.
#[derive(Debug, Clone)]
pub(crate) struct CaseInsensitivePrefix {
    /// The prefix, case-folded.
    folded: Vec<char>,
}

impl CaseInsensitivePrefix {
    pub(crate) fn new(prefix: &str) -> Self {
        CaseInsensitivePrefix {
            folded: fold_str(prefix),
        }
    }
}

/// Where the automaton is in a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CiState {
    /// `matched` folded characters of the prefix agree so far; `pending`
    /// holds the bytes of a partly read UTF-8 character.
    Reading {
        matched: usize,
        pending: [u8; 4],
        len: u8,
    },
    /// The whole prefix matched: every continuation matches.
    Done,
    /// The key cannot match.
    Dead,
}

impl Automaton for CaseInsensitivePrefix {
    type State = CiState;

    fn start(&self) -> CiState {
        if self.folded.is_empty() {
            CiState::Done
        } else {
            CiState::Reading {
                matched: 0,
                pending: [0; 4],
                len: 0,
            }
        }
    }

    fn is_match(&self, state: &CiState) -> bool {
        *state == CiState::Done
    }

    fn can_match(&self, state: &CiState) -> bool {
        *state != CiState::Dead
    }

    fn will_always_match(&self, state: &CiState) -> bool {
        *state == CiState::Done
    }

    fn accept(&self, state: &CiState, byte: u8) -> CiState {
        let CiState::Reading {
            matched,
            mut pending,
            len,
        } = *state
        else {
            return *state;
        };
        pending[len as usize] = byte;
        let len = len as usize + 1;
        let need = match pending[0] {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return CiState::Dead,
        };
        if len < need {
            return CiState::Reading {
                matched,
                pending,
                len: len as u8,
            };
        }
        let Some(c) = std::str::from_utf8(&pending[..len])
            .ok()
            .and_then(|s| s.chars().next())
        else {
            return CiState::Dead;
        };
        let mut folded = Vec::with_capacity(2);
        fold_char(c, &mut folded);
        let mut matched = matched;
        for f in folded {
            if matched == self.folded.len() {
                break;
            }
            if self.folded[matched] != f {
                return CiState::Dead;
            }
            matched += 1;
        }
        if matched == self.folded.len() {
            CiState::Done
        } else {
            CiState::Reading {
                matched,
                pending: [0; 4],
                len: 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci_matches(prefix: &str, key: &str) -> bool {
        let a = CaseInsensitivePrefix::new(prefix);
        let mut s = a.start();
        for &b in key.as_bytes() {
            s = a.accept(&s, b);
        }
        a.is_match(&s)
    }

    #[test]
    fn normalizes_like_mediawiki() {
        assert_eq!(normalize_title("foo_bar"), "Foo bar");
        assert_eq!(normalize_title("__foo__bar__"), "Foo bar");
        assert_eq!(normalize_title("ßtraße"), "SStraße");
        assert_eq!(normalize_title("éclair"), "Éclair");
        assert_eq!(normalize_title("日本"), "日本");
        assert_eq!(normalize_title(""), "");
        assert!(matches!(normalize_title("Talk:Foo"), Cow::Borrowed(_)));
    }

    #[test]
    fn case_insensitive_prefix() {
        assert!(ci_matches("rust", "Rust (programming language)"));
        assert!(ci_matches("RUST (P", "Rust (programming language)"));
        assert!(ci_matches("моск", "Москва"));
        assert!(ci_matches("ΟΔΟΣ", "οδος"));
        assert!(ci_matches("οδος", "ΟΔΟΣ"));
        assert!(ci_matches("", "anything"));
        assert!(!ci_matches("rusty", "Rust"));
        assert!(!ci_matches("python", "Rust"));
    }
}
