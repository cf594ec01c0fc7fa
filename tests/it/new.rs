//! `percore new`: each Rust template (`hello`, `json-api`, `wiki-browser`)
//! and each language (`--lang python`, `--lang js`) is scaffolded by the
//! real binary, built as is (Rust offline, from the cargo cache, into one
//! target directory shared by the tests), deployed through the admin API
//! and answers as its README says. The Python and JavaScript scaffolds skip
//! with a visible `SKIPPED` line where their language's tools are missing,
//! unless `CI` is set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use percore::config::{Config, RouteOptions};

use crate::deploy::{admin, admin_config, percore, temp_dir};
use crate::support::{Response, TestHost};
use crate::wasi_http::{in_ci, missing_tool};

/// Components built from scaffolds, by `percore new` arguments, once per
/// test binary.
fn built(name: &str, args: &[&str]) -> Vec<u8> {
    static BUILT: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    // One build at a time: the builds share a target directory.
    let mut built = BUILT.get_or_init(Mutex::default).lock().unwrap();
    if let Some(wasm) = built.get(name) {
        return wasm.clone();
    }
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffolds");
    std::fs::create_dir_all(&scratch).unwrap();
    let dir = scratch.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let mut new_args = vec!["new", name, "--dir", dir.to_str().unwrap()];
    new_args.extend_from_slice(args);
    let (ok, out) = percore(&new_args);
    assert!(ok, "percore new {name} {args:?}: {out}");
    assert!(
        out.contains("PERCORE_ADMIN_TOKEN") && out.contains(&format!("percore deploy /{name} ")),
        "the next steps name the token and the deploy: {out}"
    );
    let rust = !args.contains(&"--lang");
    let mut build = if rust {
        let mut cargo =
            std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
        cargo.args(["build", "--release", "--target", "wasm32-wasip2"]);
        cargo
    } else {
        std::process::Command::new(dir.join("build.sh"))
    };
    build.current_dir(&dir);
    // Nothing of this test's own cargo run may reach the scaffold's build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" || key.starts_with("RUSTC") {
            build.env_remove(key.as_ref());
        }
    }
    // A target directory shared by the scaffolds, so that wit-bindgen
    // compiles once; the crates come from the cargo cache.
    let target = scratch.join("target");
    build
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_NET_OFFLINE", "true");
    let output = build.output().expect("run the scaffold's build");
    assert!(
        output.status.success(),
        "the scaffold {name} ({args:?}) does not build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = if rust {
        target.join(format!(
            "wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ))
    } else {
        dir.join(format!("{name}.wasm"))
    };
    let wasm = std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    built.insert(name.to_owned(), wasm.clone());
    wasm
}

/// The wiki-browser template, built (shared with `wiki::`'s tests).
pub(crate) fn wiki_browser() -> Vec<u8> {
    built("wiki-browser-percore", &["--template", "wiki-browser"])
}

/// A host with the admin API (and `index`, if given) serving `wasm` at
/// `prefix`.
pub(crate) fn serving(dir: &Path, prefix: &str, wasm: &[u8], index: Option<PathBuf>) -> TestHost {
    let host = TestHost::start(Config {
        index,
        max_upload_bytes: 64 << 20,
        ..admin_config(dir)
    });
    admin(&host)
        .deploy(prefix, wasm, &RouteOptions::default())
        .unwrap_or_else(|e| panic!("deploy to {prefix}: {e}"));
    host
}

/// Sends a raw request with `body` and reads the response.
fn request(host: &TestHost, method: &str, path: &str, body: &str) -> Response {
    let mut client = host.client();
    client.send(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    client.read_response(method == "HEAD")
}

/// Whether the core module inside `component` has a `name` section (the
/// function names a trap's backtrace shows).
fn has_function_names(component: &[u8]) -> bool {
    fn leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0, 0);
        loop {
            let byte = bytes[*at];
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                return value;
            }
        }
    }
    fn walk(bytes: &[u8]) -> bool {
        let component = bytes[4..8] != [1, 0, 0, 0];
        let mut at = 8;
        while at < bytes.len() {
            let id = bytes[at];
            at += 1;
            let len = leb(bytes, &mut at);
            let body = &bytes[at..at + len];
            if id == 0 {
                let mut n = 0;
                let name_len = leb(body, &mut n);
                if !component && &body[n..n + name_len] == b"name" {
                    return true;
                }
            } else if component && id == 1 && walk(body) {
                return true;
            }
            at += len;
        }
        false
    }
    walk(component)
}

#[test]
fn hello_builds_and_deploys_as_is_with_function_names() {
    let wasm = built("hello-percore", &[]);
    assert!(
        has_function_names(&wasm),
        "the release build keeps the name section"
    );
    let dir = temp_dir("new-hello");
    let host = serving(dir.path(), "/hello", &wasm, None);
    let response = host.get("/hello/world");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        "Hello from hello-percore! You asked for GET /hello/world\n"
    );
    host.shutdown();
}

#[test]
fn json_api_routes_by_method_and_path() {
    let wasm = built("json-api-percore", &["--template", "json-api"]);
    let dir = temp_dir("new-json");
    let host = serving(dir.path(), "/api", &wasm, None);
    let json = |r: &Response| -> serde_json::Value {
        assert_eq!(r.header("content-type"), Some("application/json"));
        serde_json::from_slice(&r.body).unwrap()
    };
    let status = host.get("/api/status");
    assert_eq!(status.status, 200);
    assert_eq!(
        json(&status),
        serde_json::json!({"name": "json-api-percore", "version": "0.1.0"})
    );
    let greet = host.get("/api/greet/Ada%20%22L%22?excited=true");
    assert_eq!(
        json(&greet),
        serde_json::json!({"greeting": "Hello, Ada \"L\"!"})
    );
    let calm = host.get("/api/greet/Bob");
    assert_eq!(json(&calm), serde_json::json!({"greeting": "Hello, Bob."}));
    let echo = request(&host, "POST", "/api/echo", "héllo \"x\"\n");
    assert_eq!(echo.status, 200);
    assert_eq!(
        json(&echo),
        serde_json::json!({"bytes": 11, "text": "héllo \"x\"\n"})
    );
    let wrong = request(&host, "GET", "/api/echo", "");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST"));
    let wrong = request(&host, "DELETE", "/api/greet/x", "");
    assert_eq!(
        (wrong.status, wrong.header("allow")),
        (405, Some("GET, HEAD"))
    );
    assert_eq!(host.get("/api/nothing/here").status, 404);
    assert_eq!(host.get("/api/greet/a/b").status, 404);
    host.shutdown();
}

#[test]
fn wiki_browser_lists_titles_and_shows_pages() {
    let wasm = wiki_browser();
    let dir = temp_dir("new-wiki");
    let host = serving(
        dir.path(),
        "/browse",
        &wasm,
        Some(crate::wiki::sample_index()),
    );
    let list = host.get("/browse/titles/Py?limit=3");
    assert_eq!(list.status, 200);
    assert_eq!(
        list.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = list.text();
    let links: Vec<&str> = html
        .split("<a href=\"")
        .skip(1)
        .map(|l| &l[..l.find('"').unwrap()])
        .collect();
    assert_eq!(links.len(), 3, "{html}");
    assert!(
        links.iter().all(|l| l.starts_with("/browse/page/Py")),
        "{links:?}"
    );
    // ?limit= is honoured, and the default is 20.
    let all = host.get("/browse/titles/").text();
    assert_eq!(all.matches("<li>").count(), 20, "{all}");
    // A link leads to the page's text.
    let page = host.get(links[0]);
    assert_eq!(page.status, 200, "{}", links[0]);
    assert!(page.text().contains("<pre>"), "{}", page.text());
    assert_eq!(host.get("/browse/page/No_such_page_here").status, 404);
    assert_eq!(host.get("/browse/elsewhere").status, 404);
    host.shutdown();
}

#[test]
fn python_and_js_scaffolds_build_and_deploy_as_is() {
    for (lang, tools, greeting) in [
        (
            "python",
            "python-wiki",
            "Hello from Python! You asked for /py/x?y=1\n",
        ),
        (
            "js",
            "js-wiki",
            "Hello from JavaScript! You asked for GET /js/x\n",
        ),
    ] {
        if let Some(tool) = missing_tool(tools) {
            assert!(
                !in_ci(),
                "the {lang} scaffold cannot be built in CI: {tool} is missing"
            );
            eprintln!("SKIPPED the {lang} scaffold test: {tool} is missing (CI installs it)");
            continue;
        }
        let name = format!("{lang}-percore");
        let wasm = built(&name, &["--lang", lang]);
        let dir = temp_dir(&format!("new-{lang}"));
        let prefix = format!("/{}", &lang[..2]);
        let host = serving(dir.path(), &prefix, &wasm, None);
        let response = host.get(&format!("{prefix}/x?y=1"));
        assert_eq!(response.status, 200, "{lang}: {}", response.text());
        assert_eq!(response.text(), greeting, "{lang}");
        host.shutdown();
    }
}
