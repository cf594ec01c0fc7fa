//! Pure HTTP helpers for guests, with no dependency on the WIT bindings so
//! that they are unit-tested and fuzzed natively: [`parse_range`] (RFC 9110
//! byte ranges), [`percent_decode`], [`query_param`] and [`json_string`].

#![deny(missing_docs)]

/// The outcome of a `Range` header against a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable Range: send the whole representation with 200. Returned for
    /// a missing header, a malformed one (RFC 9110 §14.2: a server ignores a
    /// Range it cannot parse), a unit other than `bytes`, and for several
    /// ranges (this server answers multi-range requests with the whole body).
    Full,
    /// Send bytes `first..=last` with 206 and `Content-Range: bytes first-last/size`.
    Partial {
        /// First byte, inclusive.
        first: u64,
        /// Last byte, inclusive.
        last: u64,
    },
    /// No range overlaps the representation: 416 with
    /// `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Evaluates a `Range` header value (`None` when absent) for a
/// representation of `size` bytes.
///
/// Accepts `bytes=a-b`, `bytes=a-` and `bytes=-n` (with optional whitespace
/// around the parts). `b` past the end is clamped to the last byte; `a` at or
/// past the end, or `-0`, is unsatisfiable.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(header) = header else {
        return RangeOutcome::Full;
    };
    let header = header.trim();
    let Some((unit, spec)) = header.split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    let spec = spec.trim();
    if spec.is_empty() || spec.contains(',') {
        // Malformed, or a multi-range request: answer with the whole body.
        return RangeOutcome::Full;
    }
    let Some((start, end)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            // Digits only: an overflow means "larger than any size".
            Some(s.parse::<u64>().unwrap_or(u64::MAX))
        }
    };
    match (start.is_empty(), end.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => {
            let Some(n) = number(end) else {
                return RangeOutcome::Full;
            };
            if n == 0 || size == 0 {
                return RangeOutcome::Unsatisfiable;
            }
            RangeOutcome::Partial {
                first: size.saturating_sub(n),
                last: size - 1,
            }
        }
        // bytes=a-: from a to the end.
        (false, true) => {
            let Some(first) = number(start) else {
                return RangeOutcome::Full;
            };
            if first >= size {
                return RangeOutcome::Unsatisfiable;
            }
            RangeOutcome::Partial {
                first,
                last: size - 1,
            }
        }
        // bytes=a-b.
        (false, false) => {
            let (Some(first), Some(last)) = (number(start), number(end)) else {
                return RangeOutcome::Full;
            };
            if last < first {
                return RangeOutcome::Full;
            }
            if first >= size {
                return RangeOutcome::Unsatisfiable;
            }
            RangeOutcome::Partial {
                first,
                last: last.min(size - 1),
            }
        }
        (true, true) => RangeOutcome::Full,
    }
}

/// Decodes `%XX` escapes (and, when `plus_is_space`, `+` as a space, as in
/// query strings). Invalid escapes are kept as they are; the bytes are then
/// read as UTF-8, with U+FFFD for invalid sequences.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                match (
                    bytes.get(i + 1).and_then(|&b| hex(b)),
                    bytes.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The raw (still percent-encoded) value of query parameter `name`; a
/// parameter without `=` has the empty value.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Appends `s` to `out` as a JSON string literal, quotes included.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            // U+2028/U+2029 are valid JSON but break JavaScript string literals.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats seconds since the Unix epoch as an HTTP date (RFC 9110 §5.6.7),
/// e.g. `Thu, 26 Nov 2026 11:25:10 GMT`.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = CivilTime::from_unix(unix_secs);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(unix_secs / 86_400 % 7) as usize],
        t.day,
        MONTHS[(t.month - 1) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// A UTC date and time of day, from seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// The year, e.g. 2026.
    pub year: i64,
    /// The month, 1 to 12.
    pub month: i64,
    /// The day of the month, 1 to 31.
    pub day: i64,
    /// Hours, 0 to 23.
    pub hour: u64,
    /// Minutes, 0 to 59.
    pub minute: u64,
    /// Seconds, 0 to 59.
    pub second: u64,
}

impl CivilTime {
    /// The UTC date and time `unix_secs` seconds after the Unix epoch
    /// (Howard Hinnant's `civil_from_days`).
    pub fn from_unix(unix_secs: u64) -> CivilTime {
        let days = unix_secs / 86_400;
        let secs = unix_secs % 86_400;
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        CivilTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::*;

    #[test]
    fn ranges() {
        let r = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(r("bytes=0-0"), Partial { first: 0, last: 0 });
        assert_eq!(r("bytes=0-99"), Partial { first: 0, last: 99 });
        assert_eq!(
            r("bytes=99-99"),
            Partial {
                first: 99,
                last: 99
            }
        );
        assert_eq!(
            r("bytes=10-1000"),
            Partial {
                first: 10,
                last: 99
            }
        );
        assert_eq!(
            r("bytes=10-"),
            Partial {
                first: 10,
                last: 99
            }
        );
        assert_eq!(
            r("bytes=-1"),
            Partial {
                first: 99,
                last: 99
            }
        );
        assert_eq!(r("bytes=-100"), Partial { first: 0, last: 99 });
        assert_eq!(r("bytes=-5000"), Partial { first: 0, last: 99 });
        assert_eq!(r("Bytes = 1 - 2 "), Partial { first: 1, last: 2 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=100-200"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=99999999999999999999999-"), Unsatisfiable);
        // Malformed: ignored.
        for bad in [
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-1",
            "items=0-1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0-1,3-4",
            "bytes=--1",
        ] {
            assert_eq!(r(bad), Full, "{bad}");
        }
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-1"), 0), Unsatisfiable);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("AT%26T", false), "AT&T");
        assert_eq!(
            percent_decode("%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0", false),
            "Москва"
        );
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
    }

    #[test]
    fn query() {
        assert_eq!(query_param("a=1&b=2", "b"), Some("2"));
        assert_eq!(query_param("a&b=2", "a"), Some(""));
        assert_eq!(query_param("a=1", "c"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_692_310), "Thu, 26 Nov 2026 11:25:10 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn json() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    }
}
