//! W3C trace context (`traceparent`) for each request, and the log lines
//! that carry its trace id.
//!
//! A request's valid `traceparent` is kept as sent; a request without one
//! (or with an invalid one) gets a new one, so the guest always finds the
//! field among its request's headers. While the request's future runs, its
//! trace id is the worker thread's current one ([`InTrace`] sets it at every
//! poll, a thread-local store, no allocation), and [`TraceIdFormat`] adds
//! `trace_id=...` to every log line written meanwhile: every line about the
//! request, from any module, carries it.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

/// The `traceparent` header field.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A trace id: 16 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub u128);

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// The trace id of the request in `headers`: its `traceparent`'s when that
/// is valid, else a new one, written into `headers` as a new
/// `traceparent` (version 00, a new parent id, not sampled).
pub fn take_or_make(headers: &mut HeaderMap) -> TraceId {
    if let Some(id) = headers.get(&TRACEPARENT).and_then(|v| parse(v.as_bytes())) {
        return id;
    }
    let (id, parent) = RNG.with(|rng| {
        let mut id = 0u128;
        while id == 0 {
            id = (u128::from(next(rng)) << 64) | u128::from(next(rng));
        }
        let mut parent = 0;
        while parent == 0 {
            parent = next(rng);
        }
        (TraceId(id), parent)
    });
    headers.insert(TRACEPARENT.clone(), traceparent(id, parent));
    id
}

/// The `traceparent` value `00-<id>-<parent>-00`. Written by hand into a
/// stack buffer: `format!` of the two hex numbers cost about 5% of the
/// server's CPU on pipelined `/plaintext` (every request without a
/// `traceparent` gets one; benches/RESULTS.md, "A cheaper call").
fn traceparent(id: TraceId, parent: u64) -> HeaderValue {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-00";
    for (i, byte) in value[3..35].iter_mut().enumerate() {
        *byte = DIGITS[(id.0 >> (124 - 4 * i) & 0xf) as usize];
    }
    for (i, byte) in value[36..52].iter_mut().enumerate() {
        *byte = DIGITS[(parent >> (60 - 4 * i) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&value).expect("hex digits and dashes")
}

/// Parses a `traceparent` value (W3C Trace Context, level 1): version 00
/// exactly 55 bytes, a later version at least that; lower-case hex; trace
/// and parent ids not all zero.
pub fn parse(value: &[u8]) -> Option<TraceId> {
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let hex = |bytes: &[u8]| -> Option<u128> {
        bytes.iter().try_fold(0u128, |acc, &b| {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            Some(acc << 4 | u128::from(digit))
        })
    };
    let version = hex(&value[0..2])?;
    if version == 0xff || (version == 0 && value.len() != 55) {
        return None;
    }
    if version != 0 && value.len() > 55 && value[55] != b'-' {
        return None;
    }
    let id = hex(&value[3..35])?;
    let parent = hex(&value[36..52])?;
    hex(&value[53..55])?;
    (id != 0 && parent != 0).then_some(TraceId(id))
}

thread_local! {
    /// The trace id of the request whose future this thread is polling.
    static CURRENT: Cell<Option<TraceId>> = const { Cell::new(None) };
    /// This thread's generator of ids (splitmix64), seeded from the
    /// process's random hasher keys.
    static RNG: Cell<u64> = Cell::new({
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write_u64(0);
        hasher.finish()
    });
}

fn next(state: &Cell<u64>) -> u64 {
    let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
    state.set(z);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The trace id of the request being served on this thread, if any.
pub fn current() -> Option<TraceId> {
    CURRENT.with(Cell::get)
}

/// Runs `f` with `id` as the current trace id.
pub fn in_trace<T>(id: TraceId, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|current| current.replace(Some(id)));
    let result = f();
    CURRENT.with(|current| current.set(previous));
    result
}

pin_project_lite::pin_project! {
    /// A request's future, with its trace id made current while it is
    /// polled.
    pub struct InTrace<F> {
        #[pin]
        future: F,
        id: Option<TraceId>,
    }
}

impl<F> InTrace<F> {
    /// `future`, polled with `id` as the current trace id.
    pub fn new(id: TraceId, future: F) -> Self {
        InTrace {
            future,
            id: Some(id),
        }
    }

    /// `future`, polled with the current trace id (if any) as its own: for
    /// a task that goes on with a request's work.
    pub fn inherit(future: F) -> Self {
        InTrace {
            future,
            id: current(),
        }
    }
}

impl<F: Future> Future for InTrace<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let previous = CURRENT.with(|current| current.replace(*this.id));
        let result = this.future.poll(cx);
        CURRENT.with(|current| current.set(previous));
        result
    }
}

/// A log line format: `tracing_subscriber`'s default, with `trace_id=...`
/// added to the lines written while a request is served.
pub struct TraceIdFormat<F> {
    /// The format that writes the line.
    pub inner: F,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for TraceIdFormat<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Some(id) = current() else {
            return self.inner.format_event(ctx, writer, event);
        };
        // Rare (a line about a request): format into a buffer, then add the
        // id before the line's end.
        let mut line = String::new();
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        // At the end of the line's first line (a message may span more).
        let first = line.find('\n').unwrap_or(line.len());
        line.insert_str(first, &format!(" trace_id={id}"));
        if !line.ends_with('\n') {
            line.push('\n');
        }
        writer.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, HeaderValue::from_static(VALID));
        let id = take_or_make(&mut headers);
        assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(headers[&TRACEPARENT], VALID);
    }

    #[test]
    fn invalid_traceparents_are_replaced() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
            let mut headers = HeaderMap::new();
            headers.insert(&TRACEPARENT, HeaderValue::from_str(bad).unwrap());
            let id = take_or_make(&mut headers);
            let made = headers[&TRACEPARENT].to_str().unwrap().to_owned();
            assert_eq!(parse(made.as_bytes()), Some(id), "{made}");
        }
        // A later version may carry more fields.
        assert!(parse(format!("01{}-more", &VALID[2..]).as_bytes()).is_some());
    }

    #[test]
    fn a_made_traceparent_is_the_ids_in_hex() {
        let value = traceparent(
            TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            0xf067aa0ba902b7,
        );
        assert_eq!(
            value,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
    }

    #[test]
    fn made_ids_differ() {
        let mut a = HeaderMap::new();
        let mut b = HeaderMap::new();
        let id = take_or_make(&mut a);
        assert_ne!(id, take_or_make(&mut b));
        // Version 00, the id as `Display` writes it, a parent, not sampled.
        let made = a[&TRACEPARENT].to_str().unwrap();
        assert_eq!(made.len(), 55, "{made}");
        assert!(made.starts_with(&format!("00-{id}-")), "{made}");
        assert!(made.ends_with("-00"), "{made}");
        assert_ne!(&made[36..52], "0000000000000000", "{made}");
    }
}
