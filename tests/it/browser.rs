//! A browser test: headless Chromium, driven through ChromeDriver's W3C
//! WebDriver HTTP API, loads the search page, types a prefix, moves through
//! the suggestions with the arrow keys, opens the rendered article with
//! Enter, follows an internal link, goes back and forward, and opens a page
//! of hostile markup without any of its script running. Without Chromium or
//! ChromeDriver it skips with a printed reason locally and fails when `CI`
//! is set (`.ci/run` installs both from Debian's `chromium` and
//! `chromium-driver` packages, so CI always runs it).

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percore::config::Isolation;
use serde_json::{Value, json};

use crate::reader::reader_host;
use crate::support::Client;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver {
    child: Child,
    addr: SocketAddr,
    /// The browser's profile directory, removed when the driver is dropped.
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut client = Client::connect(addr);
    client.send(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let response = client.read_response(false);
    let value: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    assert!(
        response.status < 300,
        "{method} {path}: {} {value}",
        response.status
    );
    value["value"].clone()
}

#[test]
fn chromium_searches_reads_and_follows_links() {
    if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
        let reason = format!(
            "{CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser test cannot run in CI: {reason}"
        );
        eprintln!("SKIPPED browser test: {reason}");
        return;
    }
    let host = reader_host(Isolation::Request);
    let port = free_port();
    let profile = tempfile::Builder::new()
        .prefix("percore-chromium-")
        .tempdir()
        .unwrap();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        profile,
    };
    let started = Instant::now();
    while std::net::TcpStream::connect(driver.addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                     format!("--user-data-dir={}", driver.profile.path().display())]
        }
    }}});
    let session = request(driver.addr, "POST", "/session", Some(&caps));
    let id = session["sessionId"]
        .as_str()
        .expect("a session id")
        .to_string();
    let s = |path: &str| format!("/session/{id}{path}");
    let result = std::panic::catch_unwind(|| {
        request(
            driver.addr,
            "POST",
            &s("/url"),
            Some(&json!({"url": format!("http://{}/", host.addr)})),
        );
        let find = |css: &str| {
            let found = request(
                driver.addr,
                "POST",
                &s("/element"),
                Some(&json!({"using": "css selector", "value": css})),
            );
            found
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        };
        let input = find("#q");
        let keys = |element: &str, text: &str| {
            request(
                driver.addr,
                "POST",
                &s(&format!("/element/{element}/value")),
                Some(&json!({"text": text})),
            );
        };
        keys(&input, "tok");
        let script = |js: &str| {
            request(
                driver.addr,
                "POST",
                &s("/execute/sync"),
                Some(&json!({"script": js, "args": []})),
            )
        };
        // Poll (bounded) until `js` returns `want`.
        let wait_for = |what: &str, js: &str, want: Value| {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let got = script(js);
                if got == want {
                    return;
                }
                assert!(Instant::now() < deadline, "{what}: got {got}, want {want}");
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        wait_for(
            "suggestions for 'tok'",
            "return [...document.querySelectorAll('#suggestions li')].map(li => li.textContent)",
            json!(["Tokio", "Tokyo"]),
        );
        // Arrow keys move the selection (wrapping); Enter opens it.
        keys(&input, "\u{E015}\u{E015}\u{E015}");
        wait_for(
            "the selected suggestion",
            "return document.querySelector('#suggestions li[aria-selected=true]').textContent",
            json!("Tokio"),
        );
        keys(&input, "\u{E015}\u{E007}");
        let heading = "return location.pathname + ' ' + (document.getElementById('firstHeading') || {}).textContent";
        wait_for("the article opened", heading, json!("/read/Tokyo Tokyo"));
        let text = script("return document.getElementById('content').innerText");
        let text = text.as_str().unwrap();
        assert!(text.contains("Tokyo is the capital of Japan"), "{text}");
        assert!(
            text.contains("Contents") && text.contains("References"),
            "{text}"
        );
        assert!(!text.contains("{{") && !text.contains("[["), "{text}");
        // Follow an internal link, then back and forward through history.
        let link = find("#content a[href='/read/Japan']");
        request(
            driver.addr,
            "POST",
            &s(&format!("/element/{link}/click")),
            Some(&json!({})),
        );
        wait_for("the linked article", heading, json!("/read/Japan Japan"));
        request(driver.addr, "POST", &s("/back"), Some(&json!({})));
        wait_for("back", heading, json!("/read/Tokyo Tokyo"));
        request(driver.addr, "POST", &s("/forward"), Some(&json!({})));
        wait_for("forward", heading, json!("/read/Japan Japan"));
        // The search box above the article works too (the page's own
        // script runs), and the hostile page's scripts do not.
        let input = find("#q");
        keys(&input, "Hostile\u{E007}");
        wait_for("the hostile page", heading, json!("/read/Hostile Hostile"));
        wait_for("loaded", "return document.readyState", json!("complete"));
        assert_eq!(script("return typeof window.pwned"), json!("undefined"));
        assert_eq!(
            script(
                "return document.querySelectorAll('#content script, #content img, #content svg, #content [onmouseover]').length"
            ),
            json!(0)
        );
    });
    request(driver.addr, "DELETE", &s(""), None);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
