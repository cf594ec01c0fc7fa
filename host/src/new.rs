//! `percore new NAME`: writes a guest crate that builds with
//! `cargo build --release --target wasm32-wasip2` and deploys as is. The
//! crate carries its own copy of percore's WIT (embedded in this binary),
//! so it depends on nothing but `wit-bindgen`.

use std::path::{Path, PathBuf};

/// percore's WIT world, as the host was built with it.
pub const HANDLER_WIT: &str = include_str!("../../wit/handler.wit");

/// The `wit-bindgen` version the scaffold uses (the one the repo's guests
/// are built with).
pub const WIT_BINDGEN_VERSION: &str = "0.61";

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
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Writes a guest crate called `name` into the new directory `dir` and
/// returns the files written.
pub fn scaffold(dir: &Path, name: &str) -> Result<Vec<PathBuf>, NewError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::BadName(name.into()));
    }
    if dir.exists() {
        return Err(NewError::Exists(dir.to_path_buf()));
    }
    let wasm = format!("{}.wasm", name.replace('-', "_"));
    let files = [
        ("Cargo.toml", cargo_toml(name)),
        ("src/lib.rs", lib_rs(name)),
        ("wit/handler.wit", HANDLER_WIT.to_owned()),
        ("README.md", readme(name, &wasm)),
        (".gitignore", "/target\n".to_owned()),
    ];
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(file);
        let io = |source| NewError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("files are inside dir")).map_err(io)?;
        std::fs::write(&path, text).map_err(io)?;
        written.push(path);
    }
    Ok(written)
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
wit-bindgen = {{ version = "{WIT_BINDGEN_VERSION}", default-features = false, features = ["macros", "realloc", "std"] }}

# Small, fast components: deploys upload less and compile sooner.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A crate of its own, even when created inside another Cargo workspace.
[workspace]
"#
    )
}

fn lib_rs(name: &str) -> String {
    format!(
        r#"//! `{name}`: a percore handler. percore calls `handle` once per HTTP
//! request routed to it; see `wit/handler.wit` for everything a request and
//! a response carry.

wit_bindgen::generate!({{
    path: "wit",
    world: "percore:host/handler",
}});

use percore::host::types::Body;

struct Handler;

impl Guest for Handler {{
    fn handle(req: Request) -> Response {{
        let body = format!("Hello from {name}! You asked for {{}} {{}}\n", req.method, req.path);
        Response {{
            status: 200,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: Body::Bytes(body.into_bytes()),
        }}
    }}
}}

export!(Handler);
"#
    )
}

fn readme(name: &str, wasm: &str) -> String {
    format!(
        r#"# {name}

A percore handler: a WebAssembly component of the `percore:host/handler`
world (`wit/handler.wit`), built for the `wasm32-wasip2` target.

```sh
# Build the component (once: rustup target add wasm32-wasip2).
cargo build --release --target wasm32-wasip2

# Deploy it to a running host's route /{name} (the token is the one the host
# was started with: --admin-token-file FILE or PERCORE_ADMIN_TOKEN).
export PERCORE_ADMIN_TOKEN=...
percore deploy --admin http://127.0.0.1:9090 /{name} target/wasm32-wasip2/release/{wasm}

# Call it.
curl http://127.0.0.1:8080/{name}

# Change src/lib.rs, build and deploy again; if the new version misbehaves:
percore rollback --admin http://127.0.0.1:9090 /{name}
```

`wit/handler.wit` is percore's handler world, copied from the `percore`
binary that created this crate. A handler only imports the `wiki` interface
if it calls it, and a host started without `--index` refuses such a handler.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffold_writes_a_crate_and_refuses_bad_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my-handler");
        let files = scaffold(&dir, "my-handler").unwrap();
        assert_eq!(files.len(), 5);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-handler\"") && manifest.contains("cdylib"));
        assert_eq!(
            std::fs::read_to_string(dir.join("wit/handler.wit")).unwrap(),
            HANDLER_WIT
        );
        assert!(matches!(
            scaffold(&dir, "my-handler"),
            Err(NewError::Exists(_))
        ));
        assert!(matches!(
            scaffold(&dir, "9lives"),
            Err(NewError::BadName(_))
        ));
        assert!(matches!(scaffold(&dir, "a/b"), Err(NewError::BadName(_))));
    }
}
