//! A browser test: headless Chromium, driven through ChromeDriver's W3C
//! WebDriver HTTP API, loads the search page, types a prefix, sees the
//! suggestions, opens a page and checks the text shown. Without Chromium or
//! ChromeDriver it skips with a printed reason locally and fails when `CI`
//! is set (`.ci/run` installs both from Debian's `chromium` and
//! `chromium-driver` packages, so CI always runs it).

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percore::config::Isolation;
use serde_json::{Value, json};

use crate::support::Client;
use crate::wiki::wiki_host;

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
fn chromium_searches_and_opens_a_page() {
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
    let host = wiki_host(Isolation::Request);
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
        request(
            driver.addr,
            "POST",
            &s(&format!("/element/{input}/value")),
            Some(&json!({"text": "webas"})),
        );
        // Wait (bounded) for the suggestions to appear.
        let script = |js: &str| {
            request(
                driver.addr,
                "POST",
                &s("/execute/sync"),
                Some(&json!({"script": js, "args": []})),
            )
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let suggestions = loop {
            let texts = script(
                "return [...document.querySelectorAll('#suggestions li button')].map(b => b.firstChild.textContent)",
            );
            let texts: Vec<String> = serde_json::from_value(texts).unwrap();
            if !texts.is_empty() {
                break texts;
            }
            assert!(Instant::now() < deadline, "no suggestions appeared");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            suggestions.contains(&"WebAssembly".to_string()),
            "{suggestions:?}"
        );
        script(
            "[...document.querySelectorAll('#suggestions li button')].find(b => b.firstChild.textContent === 'WebAssembly').click()",
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let shown = script(
                "return [document.getElementById('page-title').textContent, document.getElementById('page-text').textContent]",
            );
            let shown: (String, String) = serde_json::from_value(shown).unwrap();
            if shown.0 == "WebAssembly" && !shown.1.is_empty() {
                assert!(shown.1.contains("WebAssembly"), "page text: {}", shown.1);
                assert!(
                    !shown.1.contains("<revision>"),
                    "the text, not the XML, is shown"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the page was not shown: {shown:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    request(driver.addr, "DELETE", &s(""), None);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
