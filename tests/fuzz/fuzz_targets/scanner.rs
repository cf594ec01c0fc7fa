//! Fuzzes the dump scanner through the public API: any bytes, written to a
//! file, either index cleanly (and then every page's range holds a `<page>`
//! element) or fail with an error; never panic, never leave a partial index.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use percore_index::{TitleIndex, build_index};

/// A scratch directory for the whole run. A static is never dropped, so it
/// outlives the run; `run.sh` points `TMPDIR` at a folder it removes.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let dump = dir.join("dump.xml");
    let out = dir.join("index");
    std::fs::write(&dump, data).unwrap();
    match build_index(&dump, &out, Default::default()) {
        Ok(_) => {
            let index = TitleIndex::open(&out).expect("a built index opens");
            for page in index.prefix("", None, 10_000) {
                let bytes = index.page_bytes(&page);
                assert!(bytes.starts_with(b"<page"), "{page:?}");
                assert!(bytes.ends_with(b"</page>"), "{page:?}");
            }
        }
        Err(_) => assert!(!out.exists(), "a failed build left an index behind"),
    }
    let _ = std::fs::remove_dir_all(&out);
});
