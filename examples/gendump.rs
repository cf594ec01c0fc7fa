//! Writes a synthetic MediaWiki dump, for benchmarking the title index.
//!
//! ```text
//! cargo run --release -p percore-examples --example gendump -- \
//!     --out /tmp/synth.xml --pages 1000000 [--seed 1] [--size 4G] [--max-text BYTES]
//! ```
//!
//! A real `pages-articles.xml` is about 100 GB; benchmarks need something of
//! the same shape that anyone can make in a minute, and the same bytes every
//! time. This example is a thin front end: it parses the flags and hands
//! them to [`percore_index::synth::write_dump`], which does the work.
//!
//! * `--pages N` stops after N pages (default: unlimited when `--size` is
//!   given, else 10 000);
//! * `--size BYTES` stops before the file would grow past BYTES (suffixes
//!   K, M, G are powers of 1024);
//! * `--seed S` picks another, equally deterministic, dump;
//! * `--max-text BYTES` caps article text, for dumps of many small pages
//!   (15 million pages in under 10 GB needs `--max-text 200`).
//!
//! The dump is written to `FILE.partial` and renamed when complete, so a
//! half-written file never looks like a dump.

#![deny(warnings)]

use std::fs::{self, File};
use std::process::ExitCode;
use std::time::Instant;

use percore_index::synth::{SynthOptions, write_dump};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gendump: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut opts = SynthOptions {
        pages: u64::MAX,
        ..SynthOptions::default()
    };
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => out = Some(value()?),
            "--pages" => opts.pages = parse_size(&value()?)?,
            "--seed" => opts.seed = parse_size(&value()?)?,
            "--size" => opts.max_bytes = Some(parse_size(&value()?)?),
            "--max-text" => opts.max_text = parse_size(&value()?)? as usize,
            "-h" | "--help" => {
                println!(
                    "usage: gendump --out FILE [--pages N] [--size BYTES] [--seed S] [--max-text BYTES]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    let out = out.ok_or("--out FILE is required; try --help")?;
    if opts.pages == u64::MAX && opts.max_bytes.is_none() {
        opts.pages = 10_000;
    }
    let partial = format!("{out}.partial");
    let started = Instant::now();
    let file = File::create(&partial).map_err(|e| format!("cannot create {partial}: {e}"))?;
    let stats = write_dump(file, &opts).map_err(|e| format!("cannot write {partial}: {e}"))?;
    fs::rename(&partial, &out).map_err(|e| format!("cannot rename {partial} to {out}: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {out}: {} pages ({} redirects, {} duplicate titles), {} bytes in {secs:.1} s ({:.0} MB/s)",
        stats.pages,
        stats.redirects,
        stats.duplicates,
        stats.bytes,
        stats.bytes as f64 / secs / 1e6
    );
    Ok(())
}

/// `123`, `4K`, `10M`, `4G` (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '_')
    {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use K, M or G)")),
    };
    Ok(n << shift)
}
