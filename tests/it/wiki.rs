//! The Wikipedia demo over real HTTP, against the sample dump the repo
//! ships (`host/index/testdata/sample.xml`). Expected values come from an
//! independent reading of the dump file (plain string search for `<page>`
//! and `<title>` elements), not from the index under test.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use percore::config::{Isolation, RouteConfig};

use crate::guests;
use crate::support::{Client, Response, TestHost, config};

/// The sample dump.
pub fn sample_dump() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../host/index/testdata/sample.xml"
    ))
}

/// One index of the sample for the whole test binary.
pub fn sample_index() -> PathBuf {
    static INDEX: OnceLock<PathBuf> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            // In cargo's scratch directory for this test target (under
            // target/), rebuilt by every run of the test binary.
            let index = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sample-index");
            percore_index::build_index(&sample_dump(), &index, Default::default())
                .expect("index the sample dump");
            index
        })
        .clone()
}

/// A host serving the wiki guest at `/` over the sample index.
pub fn wiki_host(isolation: Isolation) -> TestHost {
    let mut cfg = config(vec![RouteConfig::file("/", guests::WIKI)], 2, isolation);
    cfg.index = Some(sample_index());
    TestHost::start(cfg)
}

/// A page of the dump as read independently: its byte range and title.
#[derive(Debug, Clone)]
struct DumpPage {
    first: usize,
    last: usize,
    title: String,
}

fn decode_entities(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';').expect("entity ends with ;") + at;
        let entity = &rest[at + 1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&e[2..], 16).unwrap()).unwrap()
            }
            e if e.starts_with('#') => char::from_u32(e[1..].parse().unwrap()).unwrap(),
            e => panic!("unknown entity {e}"),
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn dump_pages() -> &'static (Vec<u8>, Vec<DumpPage>) {
    static PAGES: OnceLock<(Vec<u8>, Vec<DumpPage>)> = OnceLock::new();
    PAGES.get_or_init(|| {
        let bytes = std::fs::read(sample_dump()).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let mut pages = Vec::new();
        let mut from = 0;
        while let Some(at) = text[from..].find("<page>") {
            let first = from + at;
            let last = first + text[first..].find("</page>").unwrap() + "</page>".len() - 1;
            let element = &text[first..=last];
            let t0 = element.find("<title>").unwrap() + "<title>".len();
            let t1 = element.find("</title>").unwrap();
            pages.push(DumpPage {
                first,
                last,
                title: decode_entities(&element[t0..t1]),
            });
            from = last + 1;
        }
        (bytes, pages)
    })
}

fn titles() -> BTreeSet<String> {
    dump_pages().1.iter().map(|p| p.title.clone()).collect()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn offsets(host: &TestHost, path: &str) -> Vec<(String, u64, u64)> {
    let response = host.get(path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let rows: Vec<(String, u64, u64)> = serde_json::from_slice(&response.body).unwrap();
    rows
}

fn get_range(client: &mut Client, range: &str) -> Response {
    client.send(format!("GET /xml HTTP/1.1\r\nHost: t\r\nRange: {range}\r\n\r\n").as_bytes());
    client.read_response(false)
}

#[test]
fn offsets_lists_titles_by_prefix_with_exact_ranges() {
    let host = wiki_host(Isolation::Request);
    let (bytes, pages) = dump_pages();
    let rows = offsets(&host, "/offsets/Python");
    let expected: Vec<String> = titles()
        .into_iter()
        .filter(|t| t.starts_with("Python"))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        expected
    );
    for (title, first, last) in &rows {
        let page = pages.iter().find(|p| &p.title == title).unwrap();
        assert_eq!(
            (*first as usize, *last as usize),
            (page.first, page.last),
            "{title}"
        );
        assert!(bytes[*first as usize..=*last as usize].starts_with(b"<page>"));
        assert!(bytes[*first as usize..=*last as usize].ends_with(b"</page>"));
    }
    // Nothing matches: [].
    assert!(offsets(&host, "/offsets/Zzzzzz-no-such-title").is_empty());
    // Percent-decoded prefixes: & and Cyrillic.
    assert_eq!(
        offsets(&host, "/offsets/AT%26")
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["AT&T", "AT&T Inc."]
    );
    let moscow = offsets(&host, &format!("/offsets/{}", percent_encode("Моск")));
    assert_eq!(
        moscow.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["Москва"]
    );
    // Case-insensitive.
    let ci = offsets(&host, "/offsets/at%26t?ci=1");
    assert_eq!(ci.len(), 2);
    assert!(offsets(&host, "/offsets/at%26t").is_empty());
}

#[test]
fn offsets_pagination_visits_every_title_exactly_once() {
    let host = wiki_host(Isolation::Core);
    let all = titles();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => "/offsets/?limit=7".to_string(),
            Some(a) => format!("/offsets/?limit=7&after={}", percent_encode(a)),
        };
        let rows = offsets(&host, &path);
        assert!(rows.len() <= 7);
        if rows.is_empty() {
            break;
        }
        after = Some(rows.last().unwrap().0.clone());
        seen.extend(rows.into_iter().map(|r| r.0));
        assert!(seen.len() <= all.len(), "pagination does not end");
    }
    assert_eq!(
        seen,
        all.iter().cloned().collect::<Vec<_>>(),
        "every title once, in byte order"
    );
}

#[test]
fn offsets_of_the_empty_prefix_with_a_limit_and_bad_limits() {
    let host = wiki_host(Isolation::Request);
    let rows = offsets(&host, "/offsets/?limit=3");
    let first3: Vec<String> = titles().into_iter().take(3).collect();
    assert_eq!(rows.into_iter().map(|r| r.0).collect::<Vec<_>>(), first3);
    assert_eq!(offsets(&host, "/offsets").len(), 100.min(titles().len()));
    for bad in ["0", "10001", "x", "-1"] {
        let response = host.get(&format!("/offsets/A?limit={bad}"));
        assert_eq!(response.status, 400, "limit={bad}");
        assert!(response.text().contains("limit"));
    }
}

#[test]
fn wiki_pages_by_normalised_title() {
    let host = wiki_host(Isolation::Request);
    let (bytes, pages) = dump_pages();
    let cases = [
        ("AT%26T", "AT&T"),
        (
            "python_(programming_language)",
            "Python (programming language)",
        ),
        (&percent_encode("Москва") as &str, "Москва"),
        (&percent_encode("Talk:Москва") as &str, "Talk:Москва"),
    ];
    for (path, title) in cases {
        let response = host.get(&format!("/wiki/{path}"));
        assert_eq!(response.status, 200, "/wiki/{path}");
        assert_eq!(
            response.header("content-type"),
            Some("application/xml; charset=utf-8")
        );
        let page = pages.iter().find(|p| p.title == title).unwrap();
        assert_eq!(response.body, bytes[page.first..=page.last], "/wiki/{path}");
    }
    // The last page in the file (its title is unique in the sample).
    let last = pages.last().unwrap();
    assert_eq!(pages.iter().filter(|p| p.title == last.title).count(), 1);
    let response = host.get(&format!("/wiki/{}", percent_encode(&last.title)));
    assert_eq!(response.status, 200);
    assert_eq!(response.body, bytes[last.first..=last.last]);
    // Absent: 404 with suggestions.
    let response = host.get("/wiki/Pytho");
    assert_eq!(response.status, 404);
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let suggestions = body["suggestions"].as_array().unwrap();
    assert!(
        suggestions
            .iter()
            .any(|s| s == "Python (programming language)"),
        "{body}"
    );
}

#[test]
fn xml_serves_the_dump_with_ranges() {
    let host = wiki_host(Isolation::Core);
    let (bytes, _) = dump_pages();
    let size = bytes.len();
    let mut client = host.client();

    let whole = client.get("/xml");
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.body, *bytes);

    client.send(b"HEAD /xml HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = client.read_response(true);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(head.header("accept-ranges"), Some("bytes"));

    let cases = [
        ("bytes=0-0", 0, 0),
        ("bytes=0-9", 0, 9),
        ("bytes=-1", size - 1, size - 1),
        (&format!("bytes={}-", size - 1) as &str, size - 1, size - 1),
        ("bytes=-100", size - 100, size - 1),
        (&format!("bytes=10-{}", size * 2) as &str, 10, size - 1),
    ];
    for (range, first, last) in cases {
        let response = get_range(&mut client, range);
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(
            response.header("content-range"),
            Some(format!("bytes {first}-{last}/{size}").as_str()),
            "{range}"
        );
        assert_eq!(response.body, bytes[first..=last], "{range}");
    }
    for range in [
        format!("bytes={size}-"),
        format!("bytes={}-{}", size + 5, size + 9),
        "bytes=-0".into(),
    ] {
        let response = get_range(&mut client, &range);
        assert_eq!(response.status, 416, "{range}");
        assert_eq!(
            response.header("content-range"),
            Some(format!("bytes */{size}").as_str())
        );
        assert!(response.body.is_empty());
    }
    // Malformed ranges are ignored, and multi-range requests get the whole
    // body: 200.
    for range in ["bytes=abc", "pages=1-2", "bytes=5-1", "bytes=0-1,5-6"] {
        let response = get_range(&mut client, range);
        assert_eq!(response.status, 200, "{range}");
        assert_eq!(response.body.len(), size, "{range}");
    }
}

#[test]
fn a_page_range_from_offsets_fetches_the_page_element() {
    let host = wiki_host(Isolation::Request);
    let rows = offsets(&host, "/offsets/WebAssembly");
    let (title, first, last) = rows.iter().find(|r| r.0 == "WebAssembly").unwrap().clone();
    let mut client = host.client();
    let ranged = get_range(&mut client, &format!("bytes={first}-{last}"));
    assert_eq!(ranged.status, 206);
    let page = client.get(&format!("/wiki/{title}"));
    assert_eq!(ranged.body, page.body);
    assert!(page.text().contains("<title>WebAssembly</title>"));
}

#[test]
fn the_search_page_and_unknown_routes() {
    let host = wiki_host(Isolation::Request);
    let page = host.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains("<input id=\"q\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must work offline"
    );
    assert_eq!(host.get("/nothing").status, 404);
    let mut client = host.client();
    client.send(b"POST /xml HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(client.read_response(false).status, 405);
}

#[test]
fn a_wiki_guest_is_refused_by_a_host_without_an_index() {
    let cfg = config(
        vec![RouteConfig::file("/", guests::WIKI)],
        1,
        Isolation::Request,
    );
    let err = match percore::Server::new(cfg).start() {
        Ok(_) => panic!("a wiki guest started without an index"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("percore:host/wiki") && err.contains("--index"),
        "{err}"
    );
}

#[test]
fn a_host_refuses_a_damaged_index_naming_the_file() {
    // A copy of the sample index with one bit flipped in each file in
    // turn: the host does not start, and says which file and how to fix it.
    for victim in ["pages.bin", "strings.bin", "titles.0.fst"] {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(sample_index()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        let file = dir.path().join(victim);
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        std::fs::write(&file, bytes).unwrap();
        let mut cfg = config(
            vec![RouteConfig::file("/", guests::WIKI)],
            1,
            Isolation::Request,
        );
        cfg.index = Some(dir.path().to_path_buf());
        let err = match percore::Server::new(cfg).start() {
            Ok(_) => panic!("a host started on an index with {victim} damaged"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains(victim) && err.contains("percore index"),
            "{victim}: {err}"
        );
    }
}

/// Resident anonymous memory of process `pid`, in KiB.
fn rss_anon_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn streaming_the_dump_keeps_host_memory_flat() {
    // A 256 MiB generated dump, streamed whole by 4 clients at once from the
    // real binary: the host's anonymous memory must not grow with the bytes
    // sent (with hyper buffering a streamed body it grew by the dump size).
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let dump = dir.join("big.xml");
    let file = std::fs::File::create(&dump).unwrap();
    percore_index::synth::write_dump(
        file,
        &percore_index::synth::SynthOptions {
            pages: u64::MAX,
            max_bytes: Some(256 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    let index = dir.join("big.index");
    percore_index::build_index(&dump, &index, Default::default()).unwrap();
    let size = std::fs::metadata(&dump).unwrap().len();
    let route = format!("/={}", guests::WIKI);
    let (child, addr) = crate::support::spawn_binary(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--index",
        index.to_str().unwrap(),
        "--route",
        &route,
    ]);
    let pid = child.0.id();
    assert_eq!(Client::connect(addr).get("/").status, 200);
    // Drop the dump from the page cache (ext4, xfs and btrfs do; tmpfs
    // keeps it) so that the host finds its chunks cold and reads them on
    // its blocking pool before sending them: the bytes must still arrive
    // whole and in order.
    let expected = std::sync::Arc::new(std::fs::read(&dump).unwrap());
    let cached = std::fs::File::open(&dump).unwrap();
    cached.sync_all().unwrap();
    rustix::fs::fadvise(&cached, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    let before = rss_anon_kib(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_anon_kib(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let expected = expected.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                std::io::Write::write_all(
                    &mut stream,
                    b"GET /xml HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
                let mut total = 0u64;
                let mut buf = vec![0u8; 1 << 16];
                let mut head = Vec::new();
                // Bytes of the body received so far, all equal to the dump's.
                let mut same = 0usize;
                let mut compare = |piece: &[u8]| {
                    let end = same + piece.len();
                    assert!(
                        expected.get(same..end) == Some(piece),
                        "the body differs from the dump within bytes {same}..{end}"
                    );
                    same = end;
                };
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => break (total, same),
                        Ok(n) => {
                            total += n as u64;
                            if head.ends_with(b"\r\n\r\n") {
                                compare(&buf[..n]);
                            } else {
                                // Headers are short: byte by byte is fine.
                                for (i, &b) in buf[..n].iter().enumerate() {
                                    head.push(b);
                                    if head.ends_with(b"\r\n\r\n") {
                                        compare(&buf[i + 1..n]);
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) => panic!("reading /xml: {e}"),
                    }
                }
            })
        })
        .collect();
    for client in clients {
        let (received, body) = client.join().unwrap();
        assert!(received > size, "a client got {received} of {size} bytes");
        assert_eq!(
            body as u64, size,
            "a client got {body} of {size} body bytes"
        );
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let growth_kib = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    drop(child);
    println!(
        "streamed 4 x {} MiB; host RssAnon grew by {growth_kib} KiB",
        size >> 20
    );
    assert!(
        growth_kib < 64 << 10,
        "host anonymous memory grew by {growth_kib} KiB while streaming 4 x {size} bytes"
    );
}

#[test]
fn a_moved_dump_is_found_with_dump() {
    // Index a copy of the sample dump, then move the copy: the index still
    // names the old path, so the host needs `dump` to serve pages.
    let dir = tempfile::tempdir().unwrap();
    let (dump, moved, index) = (
        dir.path().join("dump.xml"),
        dir.path().join("moved.xml"),
        dir.path().join("index"),
    );
    std::fs::copy(sample_dump(), &dump).unwrap();
    percore_index::build_index(&dump, &index, Default::default()).unwrap();
    std::fs::rename(&dump, &moved).unwrap();

    let mut cfg = config(
        vec![RouteConfig::file("/", guests::WIKI)],
        1,
        Isolation::Core,
    );
    cfg.index = Some(index.clone());
    let err = match percore::Server::new(cfg.clone()).start() {
        Ok(_) => panic!("the index opened without its dump"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("dump.xml"), "{err}");

    cfg.dump = Some(moved);
    let host = TestHost::start(cfg);
    let page = host.get("/wiki/Python_(programming_language)");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text()
            .contains("<title>Python (programming language)</title>")
    );
    host.shutdown();
}

/// The wikitext of the last `<text>` element of a `<page>` element,
/// entities decoded; empty for `<text ... />`.
fn wikitext_of(element: &str) -> String {
    let open = element.rfind("<text").expect("a page has a <text> element");
    let gt = open + element[open..].find('>').unwrap();
    if element[..gt].ends_with('/') {
        return String::new();
    }
    let close = gt + element[gt..].find("</text>").unwrap();
    decode_entities(&element[gt + 1..close])
}

/// The text of an HTML page's `<pre>`, unescaped.
fn pre_text(html: &str) -> String {
    let start = html.find("<pre>").expect("a <pre>") + "<pre>".len();
    let end = html.rfind("</pre>").expect("a </pre>");
    html[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[test]
fn page_text_in_one_call_for_every_page_of_the_sample() {
    // The wiki-browser template's /page/{title} shows what `wiki.text`
    // returns, found as by `lookup-normalized`.
    let wasm = crate::new::wiki_browser();
    let dir = crate::deploy::temp_dir("wiki-text");
    let host = crate::new::serving(dir.path(), "/b", &wasm, Some(sample_index()));
    let (bytes, pages) = dump_pages();
    let dump = std::str::from_utf8(bytes).unwrap();
    let mut seen = std::collections::HashMap::new();
    for page in pages {
        *seen.entry(page.title.as_str()).or_insert(0) += 1;
    }
    let mut checked = 0;
    for page in pages {
        // A title given twice, or one that normalisation changes, may name
        // another page.
        if seen[page.title.as_str()] > 1
            || percore_index::normalize_title(&page.title) != page.title
        {
            continue;
        }
        let path = format!("/b/page/{}", percent_encode(&page.title));
        let response = host.get(&path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(
            pre_text(&response.text()),
            wikitext_of(&dump[page.first..=page.last]),
            "{path}"
        );
        checked += 1;
    }
    assert!(checked > pages.len() / 2, "{checked} of {}", pages.len());
    assert_eq!(host.get("/b/page/Not%20a%20page").status, 404);
    host.shutdown();
}

#[test]
fn page_text_past_one_call_comes_in_pieces() {
    // The reader's dump has a 3 MB page: three `text` calls and more, cut
    // at character boundaries (its text holds 東京都).
    let wasm = crate::new::wiki_browser();
    let dir = crate::deploy::temp_dir("wiki-text-big");
    let host = crate::new::serving(dir.path(), "/b", &wasm, Some(crate::reader::reader_index()));
    for (title, _, text) in crate::reader::pages() {
        let path = format!("/b/page/{}", percent_encode(&title));
        let response = host.get(&path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(pre_text(&response.text()), text, "{path}");
    }
    host.shutdown();
}
