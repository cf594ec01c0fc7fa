//! Where a build writes, and how the result gets into place: a scratch
//! directory `OUT.tmp-XXXXXX` next to the output (from `tempfile`, removed
//! on drop unless committed), and the renames that replace an old index
//! only once the new one is complete.
//!
//! It also refuses to replace an output directory that is not an index.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::IndexError;
use crate::format::PAGES_FILE;

/// Refuses to replace `out` unless it is absent, empty, or an index.
pub(super) fn check_output(out: &Path) -> Result<(), IndexError> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_none() || out.join(PAGES_FILE).is_file() {
                Ok(())
            } else {
                Err(IndexError::OutputNotAnIndex { path: out.into() })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if out.exists() => Err(IndexError::OutputNotAnIndex { path: out.into() }),
        Err(e) => Err(IndexError::io("cannot read", out, e)),
    }
}

/// The build's scratch directory, next to the output so that the final
/// rename stays on one file system.
pub(super) struct TempDir {
    /// `OUT.tmp-XXXXXX`; removed with its contents on drop.
    dir: tempfile::TempDir,
    /// `OUT.old-XXXXXX` (the same suffix): where [`commit`](Self::commit)
    /// moves an old index aside while it renames the new one into place.
    old: PathBuf,
}

impl TempDir {
    /// Creates `OUT.tmp-XXXXXX` (and the parents of `out` if needed).
    pub(super) fn create(out: &Path) -> Result<TempDir, IndexError> {
        let parent = match out.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => {
                fs::create_dir_all(parent)
                    .map_err(|e| IndexError::io("cannot create", parent, e))?;
                parent
            }
            None => Path::new("."),
        };
        let mut prefix = out.file_name().unwrap_or_default().to_os_string();
        prefix.push(".tmp-");
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(parent)
            .map_err(|e| IndexError::io("cannot create a temporary directory in", parent, e))?;
        let suffix = dir
            .path()
            .file_name()
            .and_then(|name| name.as_encoded_bytes().get(prefix.len()..))
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        let mut old = out.file_name().unwrap_or_default().to_os_string();
        old.push(OsString::from(format!(".old-{suffix}")));
        Ok(TempDir {
            old: out.with_file_name(old),
            dir,
        })
    }

    /// The directory to write the index files into.
    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Renames the finished directory to `out`, replacing an old index.
    pub(super) fn commit(self, out: &Path) -> Result<(), IndexError> {
        let old = &self.old;
        let had_old = match fs::rename(out, old) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(IndexError::io("cannot move aside", out, e)),
        };
        if let Err(e) = fs::rename(self.dir.path(), out) {
            if had_old {
                let _ = fs::rename(old, out);
            }
            return Err(IndexError::io("cannot rename into place", out, e));
        }
        // Renamed away: nothing is left at the temporary path to remove.
        let _ = self.dir.keep();
        if had_old {
            let _ = fs::remove_dir_all(old);
        }
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}
