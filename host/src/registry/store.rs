//! The state directory: what survives a restart.
//!
//! ```text
//! STATE/
//!   components/<sha256>.wasm   every deployed component, named by the SHA-256
//!                              of its bytes (so a name is also a checksum)
//!   routes.json                the route table: each route's serving version
//!                              and its history (see [`PersistedTable`])
//!   cache/                     wasmtime's cache of compiled machine code
//!   oci/manifests/<sha256>.json  the manifest of every component pulled
//!                              from a registry, named by its digest: a
//!                              deploy of a digest already here needs no
//!                              registry (its layer is in components/)
//! ```
//!
//! Every file is written to a temporary name in the same directory, synced,
//! and renamed over the old one, so a crash leaves either the old or the new
//! file, never half of one. A component that no route's version or history
//! names any more is removed ([`StateStore::remove_components_except`]). This module does no compiling and knows nothing
//! of HTTP; [`super::deploy`] decides what to write.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{LegacyOptions, RouteOptions};
use crate::engine::sha256_hex;

/// The version of `routes.json`'s layout written now. Format 2 records a
/// version's [`RouteOptions`] at the top level of its record; format 1
/// (still read) nested its limits in a `limits` object.
pub const FORMAT: u32 = 2;

/// The oldest layout still read.
pub const OLDEST_FORMAT: u32 = 1;

/// Why the state directory could not be read or written. Every message
/// names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read, written or created.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot write", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `routes.json` is not a route table this version understands.
    #[error(
        "the route table {} is corrupt ({detail}); it was moved to {} and no deployed route was restored from it. Redeploy the routes, or repair the file and restart",
        path.display(), moved.display()
    )]
    CorruptTable {
        /// The file.
        path: PathBuf,
        /// Where it was moved so that the next write does not destroy it.
        moved: PathBuf,
        /// The parse error.
        detail: String,
    },
    /// A record of the route table is not valid (its file is named).
    #[error("the route table {} holds an invalid record: {detail}", path.display())]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A component file is missing.
    #[error(
        "the component {} of route {prefix} is missing from the state directory; redeploy the route",
        path.display()
    )]
    MissingComponent {
        /// The route.
        prefix: String,
        /// The file.
        path: PathBuf,
    },
    /// A component file's bytes do not match its name.
    #[error(
        "the component {} of route {prefix} is corrupt (its SHA-256 is {actual}); redeploy the route",
        path.display()
    )]
    CorruptComponent {
        /// The route.
        prefix: String,
        /// The file.
        path: PathBuf,
        /// The hash of what is in the file.
        actual: String,
    },
}

/// One version of a route as recorded in `routes.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// SHA-256 of the component, lower-case hex; the file is
    /// `components/<hash>.wasm`.
    pub hash: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// When this version was deployed, in seconds since the Unix epoch.
    pub deployed_at: u64,
    /// Where the component was pulled from, when it came from a registry
    /// (absent for files and uploads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciOrigin>,
    /// Isolation and limits asked for at deploy time; unset ones follow
    /// the host's defaults.
    #[serde(flatten, deserialize_with = "legacy_options")]
    pub options: RouteOptions,
}

/// The registry artifact a version was pulled from: the reference as
/// given (a tag, perhaps) and the manifest digest it resolved to at deploy
/// time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciOrigin {
    /// The reference as given, `oci://REGISTRY/REPO:TAG` or `...@sha256:...`.
    pub reference: String,
    /// The manifest's digest, `sha256:HEX`.
    pub digest: String,
}

/// Reads a record's options in either layout (see [`FORMAT`]).
fn legacy_options<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RouteOptions, D::Error> {
    LegacyOptions::deserialize(d).map(LegacyOptions::into_options)
}

/// One route in `routes.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedRoute {
    /// The path prefix.
    pub prefix: String,
    /// The version serving the route.
    pub current: VersionRecord,
    /// Earlier versions, oldest first; rollback returns to the last one.
    #[serde(default)]
    pub history: Vec<VersionRecord>,
}

/// The contents of `routes.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedTable {
    /// Layout version, [`FORMAT`].
    pub format: u32,
    /// The routes, by prefix.
    pub routes: Vec<PersistedRoute>,
}

/// A state directory.
#[derive(Clone, Debug)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// Opens (creating when needed) the state directory `dir`.
    pub fn open(dir: &Path) -> Result<StateStore, StoreError> {
        let store = StateStore {
            dir: dir.to_path_buf(),
        };
        for sub in [store.components_dir(), store.cache_dir()] {
            std::fs::create_dir_all(&sub).map_err(|source| StoreError::Io {
                action: "cannot create the state directory",
                path: sub.clone(),
                source,
            })?;
        }
        Ok(store)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where wasmtime caches compiled components.
    pub fn cache_dir(&self) -> PathBuf {
        cache_dir(&self.dir)
    }

    /// The route table file.
    pub fn table_path(&self) -> PathBuf {
        self.dir.join("routes.json")
    }

    fn components_dir(&self) -> PathBuf {
        self.dir.join("components")
    }

    fn manifests_dir(&self) -> PathBuf {
        self.dir.join("oci").join("manifests")
    }

    /// The file of the pulled manifest whose SHA-256 is `hash`.
    pub fn manifest_path(&self, hash: &str) -> PathBuf {
        self.manifests_dir().join(format!("{hash}.json"))
    }

    /// Stores a pulled manifest under its SHA-256 (a no-op when it is
    /// there already) and returns the hash.
    pub fn put_manifest(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let hash = sha256_hex(bytes);
        let path = self.manifest_path(&hash);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(hash);
        }
        let dir = self.manifests_dir();
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            action: "cannot create",
            path: dir,
            source,
        })?;
        write_atomically(&path, bytes)?;
        Ok(hash)
    }

    /// The pulled manifest whose SHA-256 is `hash`, when it is here and
    /// its bytes still hash to its name. A corrupt one is logged and
    /// treated as absent (it is pulled again).
    pub fn manifest(&self, hash: &str) -> Option<Vec<u8>> {
        if !is_sha256_hex(hash) {
            return None;
        }
        let path = self.manifest_path(hash);
        let bytes = std::fs::read(&path).ok()?;
        if sha256_hex(&bytes) != hash {
            tracing::warn!(file = %path.display(), "a cached manifest is corrupt; pulling it again");
            return None;
        }
        Some(bytes)
    }

    /// The component whose SHA-256 is `hash`, when it is here intact
    /// (`None` otherwise: it is pulled again).
    pub fn cached_component(&self, hash: &str) -> Option<Vec<u8>> {
        if !is_sha256_hex(hash) {
            return None;
        }
        let bytes = std::fs::read(self.component_path(hash)).ok()?;
        (sha256_hex(&bytes) == hash).then_some(bytes)
    }

    /// The file of the component whose SHA-256 is `hash`.
    pub fn component_path(&self, hash: &str) -> PathBuf {
        self.components_dir().join(format!("{hash}.wasm"))
    }

    /// Stores a component under its hash (a no-op when it is already there)
    /// and returns the hash.
    pub fn put_component(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let hash = sha256_hex(bytes);
        let path = self.component_path(&hash);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(hash);
        }
        write_atomically(&path, bytes)?;
        Ok(hash)
    }

    /// Removes every `components/<sha256>.wasm` whose hash is not in
    /// `keep` and returns the hashes removed. Files of other names are left
    /// alone.
    pub fn remove_components_except(
        &self,
        keep: &std::collections::BTreeSet<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let dir = self.components_dir();
        let entries = std::fs::read_dir(&dir).map_err(|source| StoreError::Io {
            action: "cannot list",
            path: dir.clone(),
            source,
        })?;
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(hash) = name.to_str().and_then(|n| n.strip_suffix(".wasm")) else {
                continue;
            };
            if !is_sha256_hex(hash) || keep.contains(hash) {
                continue;
            }
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|source| StoreError::Io {
                action: "cannot remove",
                path,
                source,
            })?;
            removed.push(hash.to_owned());
        }
        Ok(removed)
    }

    /// Reads the component `hash` of route `prefix`, checking that its bytes
    /// still hash to its name.
    pub fn component(&self, prefix: &str, hash: &str) -> Result<Vec<u8>, StoreError> {
        if !is_sha256_hex(hash) {
            return Err(StoreError::BadRecord {
                path: self.table_path(),
                detail: format!(
                    "route {prefix} names the component {hash:?}, which is not a SHA-256 in hex"
                ),
            });
        }
        let path = self.component_path(hash);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::MissingComponent {
                    prefix: prefix.into(),
                    path,
                });
            }
            Err(source) => {
                return Err(StoreError::Io {
                    action: "cannot read",
                    path,
                    source,
                });
            }
        };
        let actual = sha256_hex(&bytes);
        if actual != hash {
            return Err(StoreError::CorruptComponent {
                prefix: prefix.into(),
                path,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Reads the route table; an absent file is an empty table. A corrupt
    /// file is moved aside (so that it survives the next write) and
    /// reported.
    pub fn load_table(&self) -> Result<PersistedTable, StoreError> {
        let path = self.table_path();
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PersistedTable {
                    format: FORMAT,
                    routes: Vec::new(),
                });
            }
            Err(source) => {
                return Err(StoreError::Io {
                    action: "cannot read",
                    path,
                    source,
                });
            }
        };
        let parsed = serde_json::from_slice::<PersistedTable>(&text)
            .map_err(|e| e.to_string())
            .and_then(|table| {
                if (OLDEST_FORMAT..=FORMAT).contains(&table.format) {
                    Ok(table)
                } else {
                    Err(format!(
                        "format {} is not one of the supported {OLDEST_FORMAT} to {FORMAT}",
                        table.format
                    ))
                }
            });
        parsed.or_else(|detail| {
            let moved = self.dir.join(format!("routes.json.corrupt-{}", unix_now()));
            std::fs::rename(&path, &moved).map_err(|source| StoreError::Io {
                action: "cannot move the corrupt route table aside",
                path: path.clone(),
                source,
            })?;
            Err(StoreError::CorruptTable {
                path,
                moved,
                detail,
            })
        })
    }

    /// Replaces the route table atomically.
    pub fn save_table(&self, table: &PersistedTable) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(table).expect("the route table serialises");
        write_atomically(&self.table_path(), &json)
    }
}

/// Where wasmtime caches compiled components inside the state directory
/// `state` (an absolute path, as wasmtime requires).
pub fn cache_dir(state: &Path) -> PathBuf {
    std::path::absolute(state)
        .unwrap_or_else(|_| state.to_path_buf())
        .join("cache")
}

/// Whether `text` is a SHA-256 in lower-case hex (64 digits), as every
/// component's name is: nothing else may become a path.
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames
/// it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = std::fs::File::create(&tmp).map_err(io("cannot create", &tmp))?;
    file.write_all(bytes).map_err(io("cannot write", &tmp))?;
    file.sync_all().map_err(io("cannot sync", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io("cannot rename into place", path))?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Isolation;

    fn record(hash: &str) -> VersionRecord {
        VersionRecord {
            hash: hash.into(),
            size: 3,
            deployed_at: 1,
            oci: None,
            options: RouteOptions {
                isolation: Some(Isolation::Core),
                deadline_ms: Some(5),
                ..RouteOptions::default()
            },
        }
    }

    #[test]
    fn components_are_content_addressed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let hash = store.put_component(b"abc").unwrap();
        assert_eq!(
            hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(store.component("/", &hash).unwrap(), b"abc");
        std::fs::write(store.component_path(&hash), b"abd").unwrap();
        let err = store.component("/x", &hash).unwrap_err().to_string();
        assert!(err.contains("is corrupt") && err.contains(&hash), "{err}");
        let missing = "0".repeat(64);
        let err = store.component("/x", &missing).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{missing}.wasm")) && err.contains("missing"),
            "{err}"
        );
        // A name that is not a hash never becomes a path.
        for bad in ["00", "../../etc/passwd", &"A".repeat(64)] {
            let err = store.component("/x", bad).unwrap_err();
            assert!(matches!(err, StoreError::BadRecord { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn manifests_are_content_addressed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let hash = store.put_manifest(b"{}").unwrap();
        assert_eq!(store.manifest(&hash).unwrap(), b"{}");
        std::fs::write(store.manifest_path(&hash), b"{ }").unwrap();
        assert_eq!(store.manifest(&hash), None);
        assert_eq!(store.manifest("../x"), None);
        let component = store.put_component(b"abc").unwrap();
        assert_eq!(store.cached_component(&component).unwrap(), b"abc");
        assert_eq!(store.cached_component(&"0".repeat(64)), None);
    }

    #[test]
    fn table_round_trips_and_corrupt_tables_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert!(store.load_table().unwrap().routes.is_empty());
        let table = PersistedTable {
            format: FORMAT,
            routes: vec![PersistedRoute {
                prefix: "/api".into(),
                current: VersionRecord {
                    oci: Some(OciOrigin {
                        reference: "oci://r.io/x:1".into(),
                        digest: format!("sha256:{}", "1".repeat(64)),
                    }),
                    ..record("b")
                },
                history: vec![record("a")],
            }],
        };
        store.save_table(&table).unwrap();
        assert_eq!(store.load_table().unwrap(), table);
        std::fs::write(store.table_path(), b"{ not json").unwrap();
        let err = store.load_table().unwrap_err().to_string();
        assert!(err.contains("routes.json is corrupt"), "{err}");
        assert!(!store.table_path().exists());
        assert!(store.load_table().unwrap().routes.is_empty());
    }

    #[test]
    fn format_1_tables_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        std::fs::write(
            store.table_path(),
            r#"{"format": 1, "routes": [{"prefix": "/api",
                "current": {"hash": "b", "size": 3, "deployed_at": 1,
                            "isolation": "core", "limits": {"deadline_ms": 5}},
                "history": []}]}"#,
        )
        .unwrap();
        let table = store.load_table().unwrap();
        assert_eq!(table.routes[0].current, record("b"));
    }
}
