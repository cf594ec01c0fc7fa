//! Read-only memory maps of files: the crate's one `unsafe` call.
//!
//! Everything else sees a [`Mapped`] as a `&[u8]`. An empty file (or an
//! empty tail of one) is not mapped at all: a zero-length map is an error
//! on some systems.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::{Advice, Mmap, MmapOptions};

use crate::IndexError;

/// The bytes of a file, mapped read-only.
#[derive(Debug)]
pub(crate) enum Mapped {
    /// A non-empty file.
    Map(Mmap),
    /// An empty file.
    Empty,
}

/// How the mapping will be read, passed on to the kernel as `madvise`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access {
    /// Front to back once (building): read ahead aggressively.
    Sequential,
    /// Here and there (lookups): the kernel's default read-ahead.
    Normal,
}

impl Mapped {
    /// Opens and maps the whole file at `path`.
    pub(crate) fn open(
        path: &Path,
        access: Access,
        action: &'static str,
    ) -> Result<Mapped, IndexError> {
        let file = File::open(path).map_err(|e| IndexError::io(action, path, e))?;
        Mapped::file(&file, path, access)
    }

    /// Maps the whole of `file` (opened from `path`, named in errors).
    pub(crate) fn file(file: &File, path: &Path, access: Access) -> Result<Mapped, IndexError> {
        Mapped::file_from(file, path, 0, access)
    }

    /// Maps `file` from byte `offset` to its end. The builder maps each
    /// chunk of a dump separately and drops the map when done, so the pages
    /// it touched stop counting towards its resident memory.
    ///
    /// # Safety (why this function is safe to call)
    ///
    /// Mapping a file is `unsafe` because the program's view of the bytes
    /// changes if another process writes to or truncates the file while it
    /// is mapped, which Rust's `&[u8]` promises cannot happen. We map dumps
    /// and index files that percore treats as immutable: index files are
    /// written under a temporary name and renamed into place (never written
    /// again), and a dump is only read. If someone rewrites a dump in place
    /// anyway, readers may see inconsistent bytes or get `SIGBUS`; the
    /// dump's size and fingerprint are checked when an index is opened, so a
    /// dump replaced *between* runs is caught.
    pub(crate) fn file_from(
        file: &File,
        path: &Path,
        offset: u64,
        access: Access,
    ) -> Result<Mapped, IndexError> {
        let len = file
            .metadata()
            .map_err(|e| IndexError::io("cannot stat", path, e))?
            .len();
        if len <= offset {
            return Ok(Mapped::Empty);
        }
        #[expect(
            unsafe_code,
            reason = "memory-mapping a file is unsafe; see `# Safety` above"
        )]
        // SAFETY: the map is read-only and percore never writes to a mapped
        // file; modification by another process is outside our control and
        // documented above.
        let map = unsafe { MmapOptions::new().offset(offset).map(file) }
            .map_err(|e| IndexError::io("cannot map", path, e))?;
        // Advice is only a hint; a kernel that refuses it changes nothing.
        if let Access::Sequential = access {
            let _ = map.advise(Advice::Sequential);
        }
        Ok(Mapped::Map(map))
    }
}

impl Mapped {
    /// Drops this process's page-table entries for `range` (rounded out to
    /// whole pages), so that bytes already sent stop counting towards its
    /// resident memory. The pages stay in the page cache; a later read of
    /// the range faults them back in with the same contents. Streaming a
    /// large dump to many clients then keeps the host's RSS flat.
    pub(crate) fn release(&self, range: std::ops::Range<usize>) {
        let Mapped::Map(map) = self else { return };
        let end = range.end.min(map.len());
        if range.start >= end {
            return;
        }
        #[expect(
            unsafe_code,
            reason = "MADV_DONTNEED is an unchecked advice; see the SAFETY note"
        )]
        // SAFETY: the map is a read-only, shared mapping of a file nobody
        // writes (see `file_from`). For such a mapping MADV_DONTNEED only
        // discards page-table entries: any later access, including through a
        // `&[u8]` borrowed from this map that is still alive, faults the
        // same file bytes back in. No contents change, so no reference
        // observes a change. (It would not be sound for a private mapping
        // that had been written to; this one never is.)
        let result = unsafe {
            map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.start,
                end - range.start,
            )
        };
        // Only a hint for memory accounting: a refusal changes nothing.
        let _ = result;
    }

    /// Whether every page of `range` is in memory now (`mincore`), so that
    /// reading it cannot wait for the disk. A refusal of the call, or a
    /// range outside the map, answers `false`: the caller then prefetches,
    /// which is always safe.
    pub(crate) fn resident(&self, range: std::ops::Range<usize>) -> bool {
        let Mapped::Map(map) = self else { return true };
        let end = range.end.min(map.len());
        if range.start >= end {
            return true;
        }
        let page = page_size();
        // mincore wants a page-aligned address. memmap2 maps from the
        // page-aligned offset below the one asked for, so the page holding
        // any byte of the map is mapped in full.
        let base = map.as_ptr() as usize;
        let stop = base + end;
        // One byte of answer per page, asked in batches of BATCH pages so
        // that no allocation is needed.
        const BATCH: usize = 128;
        let mut answer = [0u8; BATCH];
        let mut at = (base + range.start) & !(page - 1);
        while at < stop {
            let span = (stop - at).min(BATCH * page);
            #[expect(
                unsafe_code,
                reason = "mincore has no safe wrapper in libc, memmap2 or rustix"
            )]
            // SAFETY: `at..at + span` lies within pages of this live mapping
            // (see above), `at` is page-aligned, and `answer` has room for
            // the `span.div_ceil(page) <= BATCH` bytes mincore writes.
            let rc = unsafe { libc::mincore(at as *mut libc::c_void, span, answer.as_mut_ptr()) };
            if rc != 0 {
                return false;
            }
            if answer[..span.div_ceil(page)].iter().any(|b| b & 1 == 0) {
                return false;
            }
            at += span;
        }
        true
    }

    /// Reads one byte of every page of `range`, so that each is in the page
    /// cache and mapped afterwards. Blocks on the disk for pages that are
    /// not cached: call it off the threads that serve requests.
    pub(crate) fn touch(&self, range: std::ops::Range<usize>) {
        let Some(bytes) = self.get(range.start..range.end.min(self.len())) else {
            return;
        };
        let page = page_size();
        let mut sum = 0u8;
        for chunk in bytes.chunks(page) {
            sum = sum.wrapping_add(chunk[0]);
        }
        std::hint::black_box(sum);
    }

    /// Asks the kernel to read the whole file into its cache in the
    /// background (`MADV_WILLNEED`): lookups that follow find their pages
    /// there instead of waiting for the disk one page at a time.
    pub(crate) fn will_need(&self) {
        if let Mapped::Map(map) = self {
            // Only a hint: a refusal changes nothing.
            let _ = map.advise(Advice::WillNeed);
        }
    }
}

/// The size of a memory page (read once by rustix from the aux vector).
fn page_size() -> usize {
    rustix::param::page_size()
}

impl Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Mapped::Map(m) => m,
            Mapped::Empty => &[],
        }
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        self
    }
}
