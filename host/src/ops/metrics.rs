//! `/metrics`: the host's counters in the Prometheus text format (0.0.4)
//! or, when the scraper asks for it, OpenMetrics 1.0. Names follow the
//! OpenTelemetry semantic conventions where they exist
//! (`http_server_request_duration_seconds`, `http_server_active_requests`,
//! labels `http_route`, `http_request_method`, `http_response_status_code`);
//! percore's own are `percore_*`. The route label is always the route's
//! prefix, never the raw path.
//!
//! Everything is summed from the workers' own counters at scrape time
//! ([`crate::stats::HostStats`]); nothing here runs on a worker.

use std::fmt::Write as _;

use super::OpsState;
use crate::stats::{DURATION_BUCKETS_NS, Discard, HistogramSnapshot, LogDrop, METHODS};

/// The exposition format of one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4 (the default).
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text`, else Prometheus text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The metric families of one scrape, as text.
struct Encoder {
    out: String,
    format: Format,
}

impl Encoder {
    /// Starts a family: `# HELP` and `# TYPE`. A counter's family name has
    /// no `_total` in OpenMetrics; its samples always do.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let family = match (self.format, kind) {
            (Format::OpenMetrics, "counter") => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let _ = writeln!(self.out, "# HELP {family} {help}");
        let _ = writeln!(self.out, "# TYPE {family} {kind}");
    }

    /// One sample.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A histogram's samples (seconds).
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut cumulative = 0;
        for (i, count) in h.buckets.iter().enumerate() {
            cumulative += count;
            let le = match DURATION_BUCKETS_NS.get(i) {
                Some(ns) => seconds(*ns),
                None => "+Inf".to_owned(),
            };
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        self.sample(&format!("{name}_count"), labels, cumulative);
        self.sample(&format!("{name}_sum"), labels, seconds(h.sum_ns));
    }
}

/// Nanoseconds as seconds, exactly.
fn seconds(ns: u64) -> String {
    let (s, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
    if frac == 0 {
        return format!("{s}.0");
    }
    let frac = format!("{frac:09}");
    format!("{s}.{}", frac.trim_end_matches('0'))
}

/// `{a="x",b="y"}` (with `le` last, for buckets), values escaped.
fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// Every metric of the host, in `format`.
pub fn render(state: &OpsState, format: Format) -> String {
    let mut e = Encoder {
        out: String::with_capacity(16 << 10),
        format,
    };
    let stats = &state.stats;
    let routes = stats.routes();
    // A route label only for requests that matched a route.
    let route_labels = |prefix: &str| -> Vec<(&'static str, String)> {
        if prefix.is_empty() {
            Vec::new()
        } else {
            vec![("http_route", prefix.to_owned())]
        }
    };

    e.family(
        "http_server_request_duration_seconds",
        "histogram",
        "Time from a request's head read to its response head made.",
    );
    for route in &routes {
        for (method, status, h) in &route.requests {
            let status = status.to_string();
            let mut labels = route_labels(&route.prefix);
            labels.push(("http_request_method", METHODS[*method as usize].to_owned()));
            labels.push(("http_response_status_code", status));
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            e.histogram("http_server_request_duration_seconds", &labels, h);
        }
    }

    e.family(
        "http_server_active_requests",
        "gauge",
        "Requests read and not yet answered.",
    );
    e.sample("http_server_active_requests", &[], stats.active_requests());

    e.family(
        "percore_connections_open",
        "gauge",
        "Client connections open.",
    );
    e.sample("percore_connections_open", &[], stats.open_connections());
    e.family(
        "percore_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    );
    e.sample(
        "percore_connections_accepted_total",
        &[],
        stats.connections_accepted(),
    );
    e.family(
        "percore_connections_refused_total",
        "counter",
        "Client connections refused at the connection limit (http.max_connections).",
    );
    e.sample(
        "percore_connections_refused_total",
        &[],
        stats.connections_refused(),
    );

    e.family(
        "percore_instances_created_total",
        "counter",
        "Handler instances created, by route.",
    );
    for route in routes.iter().filter(|r| !r.prefix.is_empty()) {
        e.sample(
            "percore_instances_created_total",
            &[("http_route", &route.prefix)],
            route.instances_created,
        );
    }
    e.family(
        "percore_instances_discarded_total",
        "counter",
        "Handler instances dropped before their time, by route and reason.",
    );
    for route in routes.iter().filter(|r| !r.prefix.is_empty()) {
        for reason in Discard::ALL {
            e.sample(
                "percore_instances_discarded_total",
                &[("http_route", &route.prefix), ("reason", reason.label())],
                route.discarded[reason as usize],
            );
        }
    }
    e.family(
        "percore_guest_call_duration_seconds",
        "histogram",
        "Guest calls, from taking an instance to the guest's response head, by route.",
    );
    for route in routes.iter().filter(|r| !r.prefix.is_empty()) {
        e.histogram(
            "percore_guest_call_duration_seconds",
            &[("http_route", &route.prefix)],
            &route.guest_calls,
        );
    }
    e.family(
        "percore_wiki_calls_total",
        "counter",
        "Calls of the wiki interface (lookups, prefix searches, reads), by route.",
    );
    for route in routes.iter().filter(|r| !r.prefix.is_empty()) {
        e.sample(
            "percore_wiki_calls_total",
            &[("http_route", &route.prefix)],
            route.wiki_calls,
        );
    }
    e.family(
        "percore_dump_bytes_sent_total",
        "counter",
        "Bytes of the dump streamed as response bodies, by route.",
    );
    for route in routes.iter().filter(|r| !r.prefix.is_empty()) {
        e.sample(
            "percore_dump_bytes_sent_total",
            &[("http_route", &route.prefix)],
            route.dump_bytes,
        );
    }
    e.family(
        "percore_guest_log_lines_dropped_total",
        "counter",
        "Lines of guest stdout and stderr not logged, by route and reason (rate_limit: over the route's lines a second on a worker; truncated: past a request's bytes of output).",
    );
    for route in routes.iter().filter(|r| !r.prefix.is_empty()) {
        for reason in LogDrop::ALL {
            e.sample(
                "percore_guest_log_lines_dropped_total",
                &[("http_route", &route.prefix), ("reason", reason.label())],
                route.guest_log_dropped[reason as usize],
            );
        }
    }

    if let Some(registry) = state.registry.get() {
        let counts = registry.change_counts();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        e.family("percore_routes", "gauge", "Routes being served.");
        e.sample(
            "percore_routes",
            &[],
            registry.routes().current().router.iter().count(),
        );
        for (name, help, value) in [
            (
                "percore_deploys_total",
                "Versions deployed.",
                load(&counts.deploys),
            ),
            (
                "percore_deploys_failed_total",
                "Deploys refused (invalid, not compiled, over the limits).",
                load(&counts.failed_deploys),
            ),
            (
                "percore_rollbacks_total",
                "Rollbacks.",
                load(&counts.rollbacks),
            ),
            (
                "percore_undeploys_total",
                "Routes removed.",
                load(&counts.undeploys),
            ),
        ] {
            e.family(name, "counter", help);
            e.sample(name, &[], value);
        }
    }
    if let Some(cache) = state.engine.get().and_then(|engine| engine.cache_stats()) {
        e.family(
            "percore_compile_cache_hits_total",
            "counter",
            "Compilations answered from the compile cache.",
        );
        e.sample("percore_compile_cache_hits_total", &[], cache.hits);
        e.family(
            "percore_compile_cache_misses_total",
            "counter",
            "Compilations that generated code.",
        );
        e.sample("percore_compile_cache_misses_total", &[], cache.misses);
    }

    e.family("percore_workers", "gauge", "Workers (one per core).");
    e.sample("percore_workers", &[], stats.workers());
    e.family(
        "percore_workers_accepting",
        "gauge",
        "Workers whose accept loop runs.",
    );
    e.sample("percore_workers_accepting", &[], stats.accepting_workers());
    e.family(
        "percore_draining",
        "gauge",
        "1 while the host drains (after SIGTERM), else 0.",
    );
    e.sample(
        "percore_draining",
        &[],
        u8::from(state.health.is_draining()),
    );
    e.family(
        "percore_build_info",
        "gauge",
        "The percore and wasmtime versions of this binary.",
    );
    e.sample(
        "percore_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("wasmtime_version", crate::engine::WASMTIME_VERSION),
        ],
        1,
    );
    if format == Format::OpenMetrics {
        e.out.push_str("# EOF\n");
    }
    e.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(100_000), "0.0001");
        assert_eq!(seconds(2_500_000_000), "2.5");
        assert_eq!(seconds(10_000_000_000), "10.0");
        assert_eq!(seconds(1), "0.000000001");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        write_labels(&mut out, &[("http_route", "/a\"b\\c\nd")], Some("+Inf"));
        assert_eq!(out, r#"{http_route="/a\"b\\c\nd",le="+Inf"}"#);
    }

    #[test]
    fn openmetrics_is_asked_for_by_accept() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
    }

    #[test]
    fn counter_families_drop_total_in_openmetrics() {
        for (format, family) in [
            (Format::Prometheus, "# TYPE x_total counter"),
            (Format::OpenMetrics, "# TYPE x counter"),
        ] {
            let mut e = Encoder {
                out: String::new(),
                format,
            };
            e.family("x_total", "counter", "X.");
            e.sample("x_total", &[], 3);
            assert!(e.out.contains(family), "{}", e.out);
            assert!(e.out.ends_with("x_total 3\n"), "{}", e.out);
        }
    }
}
