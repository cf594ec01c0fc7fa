//! Percent-decoding and -encoding of paths and query strings.

use std::fmt;

/// `s` with its `%XX` escapes decoded (a path segment: `+` stays `+`);
/// invalid escapes are kept, invalid UTF-8 becomes U+FFFD.
pub fn decode(s: &str) -> String {
    percore_httpkit::percent_decode(s, false)
}

/// A query value decoded: as [`decode`], and `+` is a space.
pub fn decode_query(s: &str) -> String {
    percore_httpkit::percent_decode(s, true)
}

/// `s` percent-encoded for one path segment or query value: every byte but
/// ASCII letters, digits and `-._~()!*,:@` becomes `%XX` (so `/`, `?`, `#`,
/// `&`, spaces and quotes are encoded). The result needs no HTML escaping.
/// Use it in `format!`: `format!("/page/{}", url::encode(title))`.
pub fn encode(s: &str) -> Encoded<'_> {
    Encoded(s)
}

/// What [`encode`] returns: `s`, encoded as it is written out.
#[derive(Debug, Clone, Copy)]
pub struct Encoded<'a>(&'a str);

impl fmt::Display for Encoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0.as_bytes() {
            if b.is_ascii_alphanumeric() || b"-._~()!*,:@".contains(&b) {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_through_decoding() {
        for s in [
            "Rust (programming language)",
            "AC/DC",
            "a&b=c?d#e",
            "Москва",
            "100% \"x\" <y>'",
        ] {
            let encoded = encode(s).to_string();
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"/?#&=\"'<> ".contains(&b)),
                "{encoded}"
            );
            assert_eq!(decode(&encoded), s);
        }
        assert_eq!(encode("Python (x)").to_string(), "Python%20(x)");
        assert_eq!(decode_query("a+b%2Bc"), "a b+c");
        assert_eq!(decode("a+b"), "a+b");
    }
}
