//! Checksums of the index files: what the builder records for every file
//! and [`TitleIndex::open`](crate::TitleIndex::open) verifies, so that a
//! damaged index is refused instead of crashing a lookup or being served.
//!
//! A file's checksum is XXH3-64, seeded with the file's length, over the
//! XXH3-64 digests of its [`BLOCK`]-sized blocks (little-endian, in order).
//! Hashing blocks rather than whole files lets every core hash a part of
//! the index at once, whatever the sizes of its files.
//!
//! Why XXH3: it hashes about 20 GB/s on one core with the baseline x86-64
//! instruction set (no CPU-specific build or runtime detection needed) and
//! gives 64 bits, so a damaged file passes with odds of 2^-64. It is not
//! cryptographic: it catches bit rot, a bad copy or a stray write, not
//! somebody who can write the index directory (and so the checksums too).
//!
//! This module does not own where checksums are stored (see `format.rs`).

use std::thread;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Bytes per hashed block: big enough that handing out blocks costs
/// nothing, small enough that even one file of a few hundred MiB is
/// split over many cores.
pub(crate) const BLOCK: usize = 4 << 20;
/// Below this many bytes in all, hash on the calling thread: starting
/// threads would cost more than it saves.
const PARALLEL_MIN: usize = 4 * BLOCK;
/// The most threads one call uses: past this, memory bandwidth, not cores,
/// limits the rate.
const MAX_THREADS: usize = 8;

/// The checksum of each of `files`, hashing their blocks on up to
/// [`MAX_THREADS`] threads at once.
pub(crate) fn checksums(files: &[&[u8]]) -> Vec<u64> {
    // One task per block of every file, in file order.
    let tasks: Vec<&[u8]> = files.iter().flat_map(|f| f.chunks(BLOCK)).collect();
    let total: usize = files.iter().map(|f| f.len()).sum();
    let threads = if total < PARALLEL_MIN {
        1
    } else {
        thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS)
    };
    let digests = hash_blocks(&tasks, threads);

    let mut at = 0;
    files
        .iter()
        .map(|file| {
            let blocks = file.len().div_ceil(BLOCK);
            let list: Vec<u8> = digests[at..at + blocks]
                .iter()
                .flat_map(|d| d.to_le_bytes())
                .collect();
            at += blocks;
            xxh3_64_with_seed(&list, file.len() as u64)
        })
        .collect()
}

/// The digest of each of `blocks`, hashed on `threads` threads, each
/// taking an equal run of blocks. A run whose thread cannot be started is
/// hashed on this thread: slower, never wrong.
fn hash_blocks(blocks: &[&[u8]], threads: usize) -> Vec<u64> {
    let hash = |blocks: &[&[u8]]| blocks.iter().map(|b| xxh3_64(b)).collect::<Vec<u64>>();
    if threads <= 1 || blocks.len() <= 1 {
        return hash(blocks);
    }
    let run = blocks.len().div_ceil(threads);
    thread::scope(|scope| {
        let runs: Vec<_> = blocks
            .chunks(run)
            .map(|blocks| {
                thread::Builder::new()
                    .name("percore-index-checksum".into())
                    .spawn_scoped(scope, move || hash(blocks))
                    .map_err(|_| blocks)
            })
            .collect();
        runs.into_iter()
            .flat_map(|run| match run {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(blocks) => hash(blocks),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_every_byte_and_the_length() {
        let a = vec![7u8; BLOCK * 5 + 3];
        let base = checksums(&[&a])[0];
        for at in [0, BLOCK - 1, BLOCK, 3 * BLOCK + 17, a.len() - 1] {
            let mut b = a.clone();
            b[at] ^= 1;
            assert_ne!(checksums(&[&b])[0], base, "flip at {at}");
        }
        assert_ne!(checksums(&[&a[..a.len() - 1]])[0], base);
        assert_ne!(checksums(&[b""])[0], checksums(&[b"\0"])[0]);
    }

    #[test]
    fn threads_do_not_change_the_answer() {
        let data: Vec<u8> = (0..BLOCK * 9 + 5).map(|i| (i * 31 % 251) as u8).collect();
        let files: Vec<&[u8]> = vec![&data[..100], b"", &data, &data[..BLOCK]];
        let together = checksums(&files);
        for (n, file) in files.iter().enumerate() {
            assert_eq!(checksums(&[file])[0], together[n]);
        }
        let blocks: Vec<&[u8]> = data.chunks(BLOCK).collect();
        assert_eq!(hash_blocks(&blocks, 1), hash_blocks(&blocks, 4));
        assert_eq!(hash_blocks(&blocks, 4).len(), blocks.len());
    }
}
