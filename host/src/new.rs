//! `percore new NAME [--lang rust|python|js] [--template ...]`: writes a
//! handler crate (or Python or JavaScript project) that builds and deploys
//! as is, offline: everything it needs besides its language's tools is
//! carried in this binary.
//!
//! - Rust (the default): a `cdylib` of percore's `handler` world, with the
//!   `percore-guest` SDK (`guests/sdk`, and the `percore-httpkit` crate it
//!   uses) written into the crate's `sdk/` directory and percore's WIT into
//!   `wit/`; `src/lib.rs` is one of the templates in `host/templates/rust`
//!   (`hello`, `json-api`, `wiki-browser`). Only `wit-bindgen` comes from
//!   the cargo registry (or its cache).
//! - Python and JavaScript: a standard `wasi:http/proxy` handler
//!   (`host/templates/python`, `host/templates/js`) with a `build.sh` that
//!   installs componentize-py or componentize-js, pinned, into the tools
//!   cache, and a `wit/` directory holding WASI's WIT (as linked by this
//!   host) and percore's, for a handler that imports `percore:host/wiki`.

use std::path::{Path, PathBuf};

/// percore's WIT world, as the host was built with it.
pub const HANDLER_WIT: &str = include_str!("../../wit/handler.wit");

/// The `percore:http-wiki` package: wasi:http/proxy plus `wiki`, and
/// `respond` (a whole response in one call), which the Python scaffold
/// imports.
pub const HTTP_WIKI_WIT: &str = include_str!("../../wit/http-wiki/world.wit");

/// The `wit-bindgen` version the SDK uses (the one the repo's guests are
/// built with; a test ties the two).
pub const WIT_BINDGEN_VERSION: &str = "0.61";

/// The SDK's sources (`guests/sdk/src`), written into a new Rust crate's
/// `sdk/percore-guest/src` (a test checks that none is missing).
pub const SDK_SOURCES: &[(&str, &str)] = &[
    ("lib.rs", include_str!("../../guests/sdk/src/lib.rs")),
    ("html.rs", include_str!("../../guests/sdk/src/html.rs")),
    ("json.rs", include_str!("../../guests/sdk/src/json.rs")),
    ("router.rs", include_str!("../../guests/sdk/src/router.rs")),
    ("url.rs", include_str!("../../guests/sdk/src/url.rs")),
    ("wiki.rs", include_str!("../../guests/sdk/src/wiki.rs")),
];

/// The SDK's one dependency besides `wit-bindgen` (`guests/httpkit`).
pub const HTTPKIT_SOURCE: &str = include_str!("../../guests/httpkit/src/lib.rs");

mod wasi {
    include!(concat!(env!("OUT_DIR"), "/wasi_wit.rs"));
}
pub use wasi::WASI_WIT;

/// The wasi:http version componentize-js 0.23 exports (its StarlingMonkey
/// is built against it), which its WIT must name.
pub const COMPONENTIZE_JS_WASI_VERSION: &str = "0.2.10";

/// The language of a new handler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust against percore's `handler` world, with the SDK.
    #[default]
    Rust,
    /// Python, a `wasi:http/proxy` component built with componentize-py.
    Python,
    /// JavaScript, a `wasi:http/proxy` component built with componentize-js.
    Js,
}

/// What a new Rust handler does (`src/lib.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Answers every request with a line of text.
    #[default]
    Hello,
    /// A JSON API with the SDK's router: path parameters, methods, 404/405.
    JsonApi,
    /// A title browser over the shared Wikipedia index (needs `--index`).
    WikiBrowser,
}

impl Template {
    /// The template's `src/lib.rs`.
    pub fn lib_rs(self) -> &'static str {
        match self {
            Template::Hello => include_str!("../templates/rust/hello.rs"),
            Template::JsonApi => include_str!("../templates/rust/json-api.rs"),
            Template::WikiBrowser => include_str!("../templates/rust/wiki-browser.rs"),
        }
    }

    /// The template's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Template::Hello => "hello",
            Template::JsonApi => "json-api",
            Template::WikiBrowser => "wiki-browser",
        }
    }
}

/// Why a crate could not be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The name is not a valid crate name.
    #[error(
        "{0:?} is not a valid crate name: use ASCII letters, digits, '-' and '_', starting with a letter"
    )]
    BadName(String),
    /// The target directory exists.
    #[error("{} already exists; choose another name or remove it", .0.display())]
    Exists(PathBuf),
    /// A template that the language does not have.
    #[error(
        "--template {template} is for Rust handlers; a {lang} handler starts from the hello template (leave out --template)"
    )]
    NoTemplate {
        /// The template asked for.
        template: &'static str,
        /// The language.
        lang: &'static str,
    },
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The file that `percore new` builds for `name` in `lang`, relative to
/// the new directory.
pub fn component_path(name: &str, lang: Lang) -> String {
    match lang {
        Lang::Rust => format!(
            "target/wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ),
        Lang::Python | Lang::Js => format!("{name}.wasm"),
    }
}

/// The command that builds the new handler, run in its directory.
pub fn build_command(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "cargo build --release --target wasm32-wasip2",
        Lang::Python | Lang::Js => "./build.sh",
    }
}

/// Writes a handler called `name` in `lang` from `template` into the new
/// directory `dir` and returns the files written.
pub fn scaffold(
    dir: &Path,
    name: &str,
    lang: Lang,
    template: Template,
) -> Result<Vec<PathBuf>, NewError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::BadName(name.into()));
    }
    if lang != Lang::Rust && template != Template::Hello {
        return Err(NewError::NoTemplate {
            template: template.name(),
            lang: match lang {
                Lang::Python => "Python",
                _ => "JavaScript",
            },
        });
    }
    if dir.exists() {
        return Err(NewError::Exists(dir.to_path_buf()));
    }
    let files = match lang {
        Lang::Rust => rust_files(name, template),
        Lang::Python => script_files(name, lang),
        Lang::Js => script_files(name, lang),
    };
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(&file);
        let io = |source| NewError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("files are inside dir")).map_err(io)?;
        std::fs::write(&path, text).map_err(io)?;
        if file.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
        written.push(path);
    }
    Ok(written)
}

/// A Rust crate: its manifest, `src/lib.rs`, the SDK and the WIT.
fn rust_files(name: &str, template: Template) -> Vec<(String, String)> {
    let mut files = vec![
        ("Cargo.toml".to_owned(), cargo_toml(name)),
        ("src/lib.rs".to_owned(), template.lib_rs().to_owned()),
        ("wit/handler.wit".to_owned(), HANDLER_WIT.to_owned()),
        (
            "sdk/percore-guest/Cargo.toml".to_owned(),
            sdk_cargo_toml(
                "percore-guest",
                &format!(
                    "wit-bindgen = {{ version = \"{WIT_BINDGEN_VERSION}\", default-features = false, features = [\"macros\", \"realloc\", \"std\"] }}\n\
                     percore-httpkit = {{ path = \"../percore-httpkit\" }}\n"
                ),
            ),
        ),
        (
            "sdk/percore-httpkit/Cargo.toml".to_owned(),
            sdk_cargo_toml("percore-httpkit", ""),
        ),
        (
            "sdk/percore-httpkit/src/lib.rs".to_owned(),
            HTTPKIT_SOURCE.to_owned(),
        ),
        ("README.md".to_owned(), rust_readme(name, template)),
        (".gitignore".to_owned(), "/target\n".to_owned()),
    ];
    for (file, text) in SDK_SOURCES {
        files.push((format!("sdk/percore-guest/src/{file}"), (*text).to_owned()));
    }
    files
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A percore handler: a WebAssembly component built for wasm32-wasip2.
[lib]
crate-type = ["cdylib"]

[dependencies]
# percore's SDK (sdk/, written by `percore new`): the bindings to
# wit/handler.wit, a router, query, HTML, JSON and wiki helpers.
percore-guest = {{ path = "sdk/percore-guest" }}

# Small, fast components: deploys upload less and compile sooner. Only the
# debug info is stripped: the function names stay, so that a trap's
# backtrace in the host's log names the functions.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
debug = false
strip = "debuginfo"

# A crate of its own, even when created inside another Cargo workspace.
[workspace]
"#
    )
}

fn sdk_cargo_toml(name: &str, dependencies: &str) -> String {
    format!(
        r#"# Written by `percore new` from the percore binary that created this crate.
[package]
name = "{name}"
version = "{version}"
edition = "2024"
publish = false

[dependencies]
{dependencies}"#,
        version = env!("CARGO_PKG_VERSION"),
    )
}

fn rust_readme(name: &str, template: Template) -> String {
    let wasm = component_path(name, Lang::Rust);
    let (what, index, call) = match template {
        Template::Hello => (
            "It answers every request with a line of text.",
            "",
            format!("curl http://127.0.0.1:8080/{name}"),
        ),
        Template::JsonApi => (
            "A JSON API: `GET /status`, `GET /greet/{name}` (`?excited=true`) and \
             `POST /echo`, routed by the SDK's `Router` below the route it is deployed at.",
            "",
            format!(
                "curl http://127.0.0.1:8080/{name}/greet/Ada\ncurl -d hello http://127.0.0.1:8080/{name}/echo"
            ),
        ),
        Template::WikiBrowser => (
            "A title browser over percore's shared Wikipedia index: `/titles/{prefix}` \
             (`?limit=`, default 20) lists titles as links, `/page/{title}` shows a \
             page's wikitext.",
            "\n# It reads the wiki index: the host must be started with --index DIR\n\
             # (an index of a dump made by `percore index DUMP.xml --out DIR`).\n",
            format!(
                "curl 'http://127.0.0.1:8080/{name}/titles/Py?limit=5'\ncurl http://127.0.0.1:8080/{name}/page/Python"
            ),
        ),
    };
    format!(
        r#"# {name}

A percore handler: a WebAssembly component of the `percore:host/handler`
world (`wit/handler.wit`), built for the `wasm32-wasip2` target, from
`percore new --template {template}`. {what}

```sh
# Build the component (once: rustup target add wasm32-wasip2).
cargo build --release --target wasm32-wasip2
{index}
# Deploy it to a running host's route /{name}. The admin token is the one
# the host was started with (--admin-token-file FILE, or
# PERCORE_ADMIN_TOKEN); the admin API is PERCORE_ADMIN or --admin URL
# (default http://127.0.0.1:9090).
export PERCORE_ADMIN_TOKEN=...
percore deploy /{name} {wasm}

# Call it.
{call}

# Change src/lib.rs, build and deploy again; if the new version misbehaves:
percore rollback /{name}
```

`sdk/` holds percore's SDK (`percore-guest`, and `percore-httpkit`, which
it uses), and `wit/handler.wit` percore's WIT, both written by the `percore`
binary that created this crate: it builds offline once `wit-bindgen` is in
the cargo cache. A handler only imports the `wiki` interface if it calls
it, and a host started without `--index` refuses such a handler.
"#,
        template = template.name(),
    )
}

/// A Python or JavaScript project: the app, its `build.sh`, the WIT.
fn script_files(name: &str, lang: Lang) -> Vec<(String, String)> {
    let wasm = component_path(name, lang);
    let (app, source, build, version) = match lang {
        Lang::Python => (
            "app.py",
            include_str!("../templates/python/app.py"),
            include_str!("../templates/python/build.sh"),
            None,
        ),
        _ => (
            "app.js",
            include_str!("../templates/js/app.js"),
            include_str!("../templates/js/build.sh"),
            Some(COMPONENTIZE_JS_WASI_VERSION),
        ),
    };
    let mut files = vec![
        (app.to_owned(), source.to_owned()),
        ("build.sh".to_owned(), build.replace("__WASM__", &wasm)),
        ("wit/world.wit".to_owned(), world_wit(lang, version)),
        (
            "wit/deps/percore-host.wit".to_owned(),
            HANDLER_WIT.to_owned(),
        ),
        ("README.md".to_owned(), script_readme(name, lang)),
        (".gitignore".to_owned(), format!("/{wasm}\n")),
    ];
    if lang == Lang::Python {
        files.push((
            "wit/deps/percore-http-wiki.wit".to_owned(),
            HTTP_WIKI_WIT.to_owned(),
        ));
    }
    if lang == Lang::Js {
        files.push((
            "componentize.mjs".to_owned(),
            include_str!("../../guests/js-wiki/componentize.mjs").to_owned(),
        ));
    }
    for (file, text) in WASI_WIT {
        let text = match version {
            Some(version) => wasi_wit_at(text, version),
            None => (*text).to_owned(),
        };
        files.push((format!("wit/deps/{file}"), text));
    }
    files
}

/// The wasi:http version of the WASI WIT this binary carries.
fn wasi_http_version() -> &'static str {
    WASI_WIT
        .iter()
        .find(|(file, _)| *file == "http.wit")
        .and_then(|(_, text)| {
            let line = text.lines().find(|l| l.starts_with("package wasi:http@"))?;
            line.strip_prefix("package wasi:http@")?.strip_suffix(';')
        })
        .expect("WASI's http.wit names its package")
}

/// The scaffold's world: wasi:http/proxy at `version` (this binary's
/// WASI by default), and for Python percore's `respond` too.
fn world_wit(lang: Lang, version: Option<&str>) -> String {
    let version = version.unwrap_or_else(|| wasi_http_version());
    let (respond_doc, respond) = if lang == Lang::Python {
        (
            "\n///\n\
             /// It also imports percore's `respond` (deps/percore-http-wiki.wit): a\n\
             /// whole response in one call, far cheaper in Python than the four\n\
             /// wasi:http resources of a response with a body.",
            "\n    import percore:http-wiki/respond@0.2.0;",
        )
    } else {
        ("", "")
    };
    format!(
        r#"/// The handler's world: a standard wasi:http/proxy component.{respond_doc}
///
/// To read percore's shared Wikipedia index (the host must then be started
/// with --index), add `import percore:host/wiki@0.2.0;` (deps/percore-host.wit
/// documents it). deps/ holds WASI's WIT at the versions this percore links.
package local:app;

world handler {{
    include wasi:http/proxy@{version};{respond}
}}
"#
    )
}

/// WASI's WIT package `text` renamed to `version`, less the functions
/// that releases after `version` added (`@since(version = X)` with X
/// newer): what a tool built against that version accepts. The same as
/// `guests/wit-deps.sh OUT VERSION` does for the repo's JS guest.
pub fn wasi_wit_at(text: &str, version: &str) -> String {
    let parse = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    let have = text
        .lines()
        .find_map(|l| l.strip_prefix("package wasi:")?.split_once('@'))
        .and_then(|(_, v)| v.strip_suffix(';'))
        .unwrap_or(version);
    let renamed = text.replace(&format!("@{have}"), &format!("@{version}"));
    let mut out = String::with_capacity(renamed.len());
    let mut lines = renamed.lines().peekable();
    while let Some(line) = lines.next() {
        let since = line
            .trim()
            .strip_prefix("@since(version = ")
            .and_then(|v| v.strip_suffix(')'));
        let next_is_func = lines.peek().is_some_and(|l| l.contains(": func("));
        if let Some(since) = since
            && next_is_func
            && parse(since) > parse(version)
        {
            // Drop the function, to the end of its signature.
            for func in lines.by_ref() {
                if func.contains(';') {
                    break;
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn script_readme(name: &str, lang: Lang) -> String {
    let wasm = component_path(name, lang);
    let (language, tool, app, needs) = match lang {
        Lang::Python => (
            "Python",
            "componentize-py 0.25.1 (PyPI)",
            "app.py",
            "python3 with pip",
        ),
        _ => (
            "JavaScript",
            "componentize-js 0.23.0 (npm)",
            "app.js",
            "node and npm",
        ),
    };
    format!(
        r#"# {name}

A percore handler in {language}: a standard `wasi:http/proxy` component
(`wit/world.wit`), built by `build.sh` with {tool}, which it installs,
pinned, into `~/.cache/percore-tools` (`$PERCORE_TOOLS`) on first use. It
needs {needs}.

```sh
# Build the component.
./build.sh

# Deploy it to a running host's route /{name}. The admin token is the one
# the host was started with (--admin-token-file FILE, or
# PERCORE_ADMIN_TOKEN); the admin API is PERCORE_ADMIN or --admin URL
# (default http://127.0.0.1:9090).
export PERCORE_ADMIN_TOKEN=...
percore deploy /{name} {wasm}{isolation}

# Call it.
curl http://127.0.0.1:8080/{name}

# Change {app}, build and deploy again; if the new version misbehaves:
percore rollback /{name}
```

{respond_note}`wit/deps` holds WASI's WIT at the versions the `percore` binary that
created this project links, and percore's (`percore-host.wit`): add
`import percore:host/wiki@0.2.0;` to the world in `wit/world.wit` to read
the shared Wikipedia index (a host started without `--index` then refuses
the handler).{wiki_note}
"#,
        respond_note = if lang == Lang::Python {
            "`app.py` answers with percore's `respond`\n\
             (`wit/deps/percore-http-wiki.wit`): a whole response in one call, which\n\
             in componentize-py costs a fraction of the four `wasi:http` resources\n\
             (each a Python object with a finalizer) and dozen calls of a response\n\
             built with `wasi:http/types`. A body streamed as it is made takes those.\n\n"
        } else {
            ""
        },
        wiki_note = if lang == Lang::Python {
            " The world then has two `types` interfaces, and componentize-py\n\
             names them by package: import from `wit_world.imports.wasi_http_types`\n\
             instead of `wit_world.imports.types` in `app.py` (and the wiki from\n\
             `wit_world.imports.wiki`)."
        } else {
            " Then `import { lookup, prefix, text } from 'percore:host/wiki@0.2.0';`\n\
             in `app.js`."
        },
        isolation = if lang == Lang::Js {
            " --isolation request\n# (a componentize-js component answers one request per instance)"
        } else {
            ""
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffold_writes_a_crate_and_refuses_bad_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my-handler");
        let files = scaffold(&dir, "my-handler", Lang::Rust, Template::Hello).unwrap();
        assert_eq!(files.len(), 8 + SDK_SOURCES.len());
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-handler\"") && manifest.contains("cdylib"));
        assert!(!manifest.contains("strip = true"), "{manifest}");
        assert_eq!(
            std::fs::read_to_string(dir.join("wit/handler.wit")).unwrap(),
            HANDLER_WIT
        );
        assert!(matches!(
            scaffold(&dir, "my-handler", Lang::Rust, Template::Hello),
            Err(NewError::Exists(_))
        ));
        assert!(matches!(
            scaffold(&dir, "9lives", Lang::Rust, Template::Hello),
            Err(NewError::BadName(_))
        ));
        assert!(matches!(
            scaffold(&dir, "a/b", Lang::Rust, Template::Hello),
            Err(NewError::BadName(_))
        ));
        let err = scaffold(
            &tmp.path().join("py"),
            "py",
            Lang::Python,
            Template::JsonApi,
        )
        .unwrap_err();
        assert!(err.to_string().contains("leave out --template"), "{err}");
    }

    #[test]
    fn the_sdk_carried_is_all_of_guests_sdk() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/sdk/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut carried: Vec<String> = SDK_SOURCES.iter().map(|(f, _)| f.to_string()).collect();
        carried.sort();
        assert_eq!(carried, on_disk, "add the new file to SDK_SOURCES");
        let guests = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/Cargo.toml"),
        )
        .unwrap();
        assert!(
            guests.contains(&format!(
                "wit-bindgen = {{ version = \"{WIT_BINDGEN_VERSION}\""
            )),
            "WIT_BINDGEN_VERSION is not the guests' wit-bindgen version"
        );
    }

    /// The README's "Writing a handler" shows what `percore new` writes:
    /// each ```rust block after a `<!-- percore new ...: FILE -->` marker
    /// is that template's file, character for character.
    #[test]
    fn the_readme_shows_what_percore_new_writes() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        let mut seen = Vec::new();
        for (at, _) in readme.match_indices("<!-- percore new ") {
            let marker = &readme[at..at + readme[at..].find("-->").unwrap()];
            let block = &readme[at..];
            let start = block.find("```").unwrap();
            let body = &block[start..];
            let body = &body[body.find('\n').unwrap() + 1..];
            let body = &body[..body.find("```").unwrap()];
            let expected = if marker.contains("--lang python") {
                include_str!("../templates/python/app.py")
            } else if marker.contains("--lang js") {
                include_str!("../templates/js/app.js")
            } else {
                let template = [Template::Hello, Template::JsonApi, Template::WikiBrowser]
                    .into_iter()
                    .find(|t| marker.contains(&format!("--template {}", t.name())))
                    .unwrap_or_else(|| panic!("no template in {marker:?}"));
                template.lib_rs()
            };
            assert_eq!(body, expected, "the README's block after {marker:?}");
            seen.push(marker.to_owned());
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
        // The title browser is the SDK's yardstick: at most 40 lines.
        assert!(Template::WikiBrowser.lib_rs().lines().count() <= 40);
    }

    #[test]
    fn wasi_wit_for_componentize_js() {
        let cli = WASI_WIT.iter().find(|(f, _)| *f == "cli.wit").unwrap().1;
        let at = wasi_wit_at(cli, "0.2.10");
        assert!(at.contains("package wasi:cli@0.2.10;"), "{at}");
        // exit-with-code came with 0.2.12.
        assert!(!at.contains("exit-with-code"), "{at}");
        assert!(at.contains("exit: func(status: result);"));
        let text = "package wasi:x@0.2.12;\ninterface i {\n  @since(version = 0.2.0)\n  a: func();\n  @since(version = 0.2.11)\n  b: func(\n    x: u8);\n}\n";
        assert_eq!(
            wasi_wit_at(text, "0.2.10"),
            "package wasi:x@0.2.10;\ninterface i {\n  @since(version = 0.2.0)\n  a: func();\n}\n"
        );
        let python = world_wit(Lang::Python, None);
        assert!(python.contains(&format!("wasi:http/proxy@{}", wasi_http_version())));
        assert!(python.contains("import percore:http-wiki/respond@0.2.0;"));
        let js = world_wit(Lang::Js, Some("0.2.10"));
        assert!(js.contains("wasi:http/proxy@0.2.10"));
        assert!(!js.contains("respond"));
    }
}
