//! What a build reports: [`BuildReport`], whose `Display` is the summary
//! `percore index` prints, and the [`DuplicateTitle`]s it names.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A title that more than one page has; the first page keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateTitle {
    /// The title.
    pub title: String,
    /// Page id of the first page with the title, which the index maps it to.
    pub kept_id: u64,
    /// Byte offset of that page in the dump.
    pub kept_offset: u64,
    /// Page id of a later page with the same title (in the page table only).
    pub ignored_id: u64,
    /// Byte offset of that page in the dump.
    pub ignored_offset: u64,
}

/// What [`build_index`](crate::build_index) did. `Display` prints the summary the CLI shows.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The dump, as an absolute path (recorded in the index).
    pub dump: PathBuf,
    /// The index directory.
    pub out: PathBuf,
    /// Size of the dump in bytes.
    pub dump_len: u64,
    /// `<page>` elements in the dump (records in the page table).
    pub pages: u64,
    /// Distinct titles (keys in the title map).
    pub titles: u64,
    /// Pages with a `<redirect/>`.
    pub redirects: u64,
    /// Pages whose title an earlier page already has.
    pub duplicates: u64,
    /// The first few duplicates, in dump order.
    pub duplicate_examples: Vec<DuplicateTitle>,
    /// Total size of the index files in bytes.
    pub index_bytes: u64,
    /// Time spent scanning the dump (and writing the page table), from the
    /// start of the build.
    pub scan_elapsed: Duration,
    /// Time spent in each later phase: "sort" (titles), "fst" (writing
    /// the fst shards), "checksum" (hashing every index file), "sync"
    /// (header, footer and `fsync`).
    pub phases: Vec<(&'static str, Duration)>,
    /// Total build time.
    pub elapsed: Duration,
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let scan = self.scan_elapsed.as_secs_f64();
        writeln!(
            f,
            "indexed {} into {}",
            self.dump.display(),
            self.out.display()
        )?;
        writeln!(
            f,
            "  dump:       {} ({} bytes)",
            human_bytes(self.dump_len),
            self.dump_len
        )?;
        writeln!(f, "  pages:      {}", self.pages)?;
        writeln!(f, "  titles:     {} distinct", self.titles)?;
        writeln!(f, "  redirects:  {}", self.redirects)?;
        write!(f, "  duplicates: {}", self.duplicates)?;
        if self.duplicates > 0 {
            write!(
                f,
                " (the first page with a title wins; later ones stay in the page table only)"
            )?;
        }
        writeln!(f)?;
        for d in &self.duplicate_examples {
            writeln!(
                f,
                "    {:?}: kept page id {} (byte {}), ignored page id {} (byte {})",
                d.title, d.kept_id, d.kept_offset, d.ignored_id, d.ignored_offset
            )?;
        }
        if self.duplicates > self.duplicate_examples.len() as u64 {
            writeln!(
                f,
                "    … and {} more",
                self.duplicates - self.duplicate_examples.len() as u64
            )?;
        }
        writeln!(
            f,
            "  index size: {} ({:.1} bytes per title)",
            human_bytes(self.index_bytes),
            self.index_bytes as f64 / self.titles.max(1) as f64
        )?;
        write!(
            f,
            "  elapsed:    {secs:.2} s (scan {scan:.2} s, {:.2} GB/s",
            self.dump_len as f64 / scan.max(1e-9) / 1e9
        )?;
        for (name, took) in &self.phases {
            write!(f, "; {name} {:.2} s", took.as_secs_f64())?;
        }
        write!(f, ")")
    }
}

/// `1.5 GiB`, `12.0 MiB`, `900 B`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(900), "900 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
