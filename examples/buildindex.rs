//! Builds a title index and times opening it: the library behind
//! `percore index`, without the rest of percore.
//!
//! ```text
//! cargo run --release -p percore-examples --example buildindex -- DUMP.xml --out DIR [--threads N]
//! cargo run --release -p percore-examples --example buildindex -- --open DIR [TITLE...]
//! ```
//!
//! The first form is what `percore index DUMP.xml --out DIR` does: build
//! the index (what [`percore_index::build_index`] does, here through
//! [`IndexBuilder`] so that `--threads N` can pin the number of scanning
//! threads), with a progress bar only when standard error is a terminal,
//! and print the [`percore_index::BuildReport`].
//!
//! The second form opens an existing index the way the host does, prints
//! how long that took (the median of 20 opens, after a first one that may
//! fault pages in), beside the median of 20 opens that skip verifying the
//! checksums ([`TitleIndex::open_unverified`], which the host never uses):
//! the difference is what verification costs. Then it looks up any titles
//! given.

#![deny(warnings)]

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use percore_index::{IndexBuilder, TitleIndex};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [open, dir, titles @ ..] if open == "--open" => open_index(Path::new(dir), titles),
        [dump, out, dir, rest @ ..] if out == "--out" => {
            let mut builder =
                IndexBuilder::new(dump, dir).progress(std::io::stderr().is_terminal());
            if let [flag, n] = rest
                && flag == "--threads"
            {
                builder = builder.threads(n.parse().unwrap_or(0));
            }
            builder.build().map(|report| println!("{report}"))
        }
        _ => {
            eprintln!(
                "usage: buildindex DUMP.xml --out DIR [--threads N] | buildindex --open DIR [TITLE...]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buildindex: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_index(dir: &Path, titles: &[String]) -> Result<(), percore_index::IndexError> {
    let first = Instant::now();
    let index = TitleIndex::open(dir)?;
    let first = first.elapsed();
    let verified = median_ms(|| TitleIndex::open(dir))?;
    let unverified = median_ms(|| TitleIndex::open_unverified(dir))?;
    println!(
        "opened {} ({} titles, {} pages, dump {}): first open {:.2} ms, median {verified:.2} ms \
         ({unverified:.2} ms without verifying checksums)",
        dir.display(),
        index.len(),
        index.page_count(),
        index.dump_path().display(),
        first.as_secs_f64() * 1e3,
    );
    for title in titles {
        match index.lookup_normalized(title) {
            Some(page) => println!("{title:?} -> {page:?}"),
            None => println!("{title:?} -> not found"),
        }
    }
    Ok(())
}

/// The median time of 20 calls of `open`, in milliseconds.
fn median_ms(
    open: impl Fn() -> Result<TitleIndex, percore_index::IndexError>,
) -> Result<f64, percore_index::IndexError> {
    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let t = Instant::now();
            open().map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
