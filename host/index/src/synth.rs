//! A deterministic generator of synthetic MediaWiki dumps for benchmarks and
//! tests: the same seed always gives the same bytes.
//!
//! The dumps look like `pages-articles.xml` in the ways that matter to the
//! scanner and the index: schema 0.11 with `<siteinfo>`; about half of the
//! pages redirects; titles of Wikipedia-like length in Latin, Cyrillic,
//! Greek and CJK script, some with `&amp;`, `&quot;`, `&#039;` and numeric
//! character references, some in `Talk:`, `User:`, `Category:` …, some with
//! colons; a duplicate title now and then; three `<id>` elements per page;
//! and article text from a few hundred bytes to megabytes, full of escaped
//! markup (`&lt;ref&gt;`, even `&lt;page&gt;`). Titles are unique apart
//! from the deliberate duplicates: each carries a word that encodes its
//! page number through a bijective scramble.

use std::io::{self, Write};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Stop after this many pages. Default: 10 000.
    pub pages: u64,
    /// Stop before the dump would grow past this many bytes. Default: no limit.
    pub max_bytes: Option<u64>,
    /// Seed of the random generator. Default: 1.
    pub seed: u64,
    /// Longest article text in bytes; small values give dumps of many small
    /// pages. Default: 3 MiB.
    pub max_text: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            pages: 10_000,
            max_bytes: None,
            seed: 1,
            max_text: 3 << 20,
        }
    }
}

/// What [`write_dump`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynthStats {
    /// `<page>` elements.
    pub pages: u64,
    /// Pages with `<redirect/>`.
    pub redirects: u64,
    /// Pages whose title an earlier page has.
    pub duplicates: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes a synthetic dump to `out`.
pub fn write_dump(out: impl Write, opts: &SynthOptions) -> io::Result<SynthStats> {
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut rng = Rng(opts.seed ^ 0x5045_5243_4f52_4521);
    let pool = text_pool(&mut rng);
    let mut stats = SynthStats::default();
    out.write_all(HEADER.as_bytes())?;
    stats.bytes += HEADER.len() as u64;
    let footer = b"</mediawiki>\n";
    // Unique words need as many bits as there can be pages; a page takes
    // well over 256 bytes, which bounds the count when only a size is given.
    let most_pages = opts.pages.min(opts.max_bytes.map_or(u64::MAX, |b| b / 256));
    let bits = 64 - most_pages.max(2).leading_zeros();
    let mut recent: Vec<String> = Vec::with_capacity(64);
    let mut page = Vec::with_capacity(64 << 10);
    let mut page_id = 10u64;
    let mut rev_id = 1_000_000u64;
    for n in 0..opts.pages {
        page.clear();
        page_id += 1 + rng.below(40);
        rev_id += 1 + rng.below(5000);
        let duplicate = n > 20 && (n % 49_999 == 29 || n == 41);
        let (ns, title) = if duplicate {
            let t = recent[rng.below(recent.len() as u64) as usize].clone();
            (ns_of(&t), t)
        } else {
            make_title(&mut rng, scramble(n, bits))
        };
        let redirect = (ns == 0 && !recent.is_empty() && rng.below(100) < 58)
            .then(|| recent[rng.below(recent.len() as u64) as usize].clone());
        page.extend_from_slice(b"  <page>\n    <title>");
        escape_into(&title, &mut page, &mut rng);
        page.extend_from_slice(b"</title>\n    <ns>");
        page.extend_from_slice(ns.to_string().as_bytes());
        page.extend_from_slice(b"</ns>\n    <id>");
        page.extend_from_slice(page_id.to_string().as_bytes());
        page.extend_from_slice(b"</id>\n");
        if let Some(target) = &redirect {
            page.extend_from_slice(b"    <redirect title=\"");
            escape_into(target, &mut page, &mut rng);
            page.extend_from_slice(b"\" />\n");
        }
        let user = scramble(rng.below(1 << 20), 20);
        write!(
            page,
            "    <revision>\n      <id>{rev_id}</id>\n      <parentid>{}</parentid>\n      \
             <timestamp>20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z</timestamp>\n      <contributor>\n",
            rev_id - 1 - rng.below(100_000),
            10 + rng.below(15),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
        )?;
        if rng.below(10) == 0 {
            writeln!(
                page,
                "        <ip>10.{}.{}.{}</ip>",
                rng.below(256),
                rng.below(256),
                rng.below(256)
            )?;
        } else {
            page.extend_from_slice(b"        <username>");
            page.extend_from_slice(word(user, &LATIN).as_bytes());
            write!(page, "</username>\n        <id>{user}</id>\n")?;
        }
        page.extend_from_slice(b"      </contributor>\n");
        if rng.below(3) == 0 {
            page.extend_from_slice(b"      <comment>");
            let at = rng.below(pool.len() as u64 / 2) as usize;
            page.extend_from_slice(slice_at(&pool, at, 20 + rng.below(60) as usize));
            page.extend_from_slice(b"</comment>\n");
        }
        write!(
            page,
            "      <origin>{rev_id}</origin>\n      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
        )?;
        let text_start = page.len();
        page.extend_from_slice(b"      <text bytes=\"00000000\" sha1=\"");
        let sha1 = sha1ish(&mut rng);
        page.extend_from_slice(&sha1);
        page.extend_from_slice(b"\" xml:space=\"preserve\">");
        let body_start = page.len();
        if let Some(target) = &redirect {
            page.extend_from_slice(b"#REDIRECT [[");
            escape_into(target, &mut page, &mut rng);
            page.extend_from_slice(b"]]");
            if rng.below(4) == 0 {
                page.extend_from_slice(b"\n\n{{R from alternative name}}");
            }
        } else {
            let len = text_len(&mut rng).min(opts.max_text);
            let mut left = len;
            while left > 0 {
                let take = left.min(pool.len() / 2);
                let at = rng.below((pool.len() - take) as u64) as usize;
                let piece = slice_at(&pool, at, take);
                page.extend_from_slice(piece);
                left = left.saturating_sub(piece.len().max(1));
            }
        }
        let body_len = page.len() - body_start;
        let digits = format!("{body_len:08}");
        page[text_start + 19..text_start + 27]
            .copy_from_slice(&digits.as_bytes()[digits.len() - 8..]);
        page.extend_from_slice(b"</text>\n      <sha1>");
        page.extend_from_slice(&sha1);
        page.extend_from_slice(b"</sha1>\n    </revision>\n  </page>\n");
        if opts
            .max_bytes
            .is_some_and(|max| stats.bytes + (page.len() + footer.len()) as u64 > max)
        {
            break;
        }
        out.write_all(&page)?;
        stats.bytes += page.len() as u64;
        stats.pages += 1;
        stats.redirects += u64::from(redirect.is_some());
        stats.duplicates += u64::from(duplicate);
        if recent.len() < 64 {
            recent.push(title);
        } else {
            let slot = rng.below(64) as usize;
            recent[slot] = title;
        }
    }
    out.write_all(footer)?;
    stats.bytes += footer.len() as u64;
    out.flush()?;
    Ok(stats)
}

const HEADER: &str = r#"<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.mediawiki.org/xml/export-0.11/ http://www.mediawiki.org/xml/export-0.11.xsd" version="0.11" xml:lang="en">
  <siteinfo>
    <sitename>Synthpedia</sitename>
    <dbname>synthwiki</dbname>
    <base>https://synth.example/wiki/Main_Page</base>
    <generator>percore-index synth</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="-2" case="first-letter">Media</namespace>
      <namespace key="-1" case="first-letter">Special</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Talk</namespace>
      <namespace key="2" case="first-letter">User</namespace>
      <namespace key="3" case="first-letter">User talk</namespace>
      <namespace key="4" case="first-letter">Wikipedia</namespace>
      <namespace key="6" case="first-letter">File</namespace>
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
"#;

/// Namespace prefixes used in titles, with their numbers and weights (per 100).
const NAMESPACES: [(&str, i32, u64); 6] = [
    ("Talk:", 1, 5),
    ("User:", 2, 3),
    ("Category:", 14, 3),
    ("Template:", 10, 2),
    ("File:", 6, 2),
    ("Wikipedia:", 4, 1),
];

fn ns_of(title: &str) -> i32 {
    NAMESPACES
        .iter()
        .find(|(p, ..)| title.starts_with(p))
        .map_or(0, |&(_, ns, _)| ns)
}

/// A script for unique words: 16 consonants × 4 vowels make 64 syllables
/// of two characters each, so a word decodes one way only.
struct Script {
    consonants: [char; 16],
    vowels: [char; 4],
}

const LATIN: Script = Script {
    consonants: [
        'b', 'c', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z', 'h',
    ],
    vowels: ['a', 'e', 'i', 'o'],
};
const CYRILLIC: Script = Script {
    consonants: [
        'б', 'в', 'г', 'д', 'з', 'к', 'л', 'м', 'н', 'п', 'р', 'с', 'т', 'ф', 'х', 'ш',
    ],
    vowels: ['а', 'е', 'и', 'о'],
};
const GREEK: Script = Script {
    consonants: [
        'β', 'γ', 'δ', 'ζ', 'θ', 'κ', 'λ', 'μ', 'ν', 'π', 'ρ', 'σ', 'τ', 'φ', 'χ', 'ψ',
    ],
    vowels: ['α', 'ε', 'ο', 'ι'],
};
/// Dictionary words for the non-unique part of titles and for article text.
const WORDS: [&str; 48] = [
    "history",
    "river",
    "station",
    "of",
    "the",
    "and",
    "national",
    "park",
    "university",
    "battle",
    "language",
    "football",
    "club",
    "album",
    "church",
    "railway",
    "county",
    "school",
    "district",
    "music",
    "island",
    "mountain",
    "computer",
    "programming",
    "system",
    "network",
    "theory",
    "science",
    "art",
    "war",
    "café",
    "Zürich",
    "naïve",
    "São",
    "Москва",
    "東京",
    "Ελλάδα",
    "Kraków",
    "élite",
    "Ångström",
    "protocol",
    "memory",
    "index",
    "title",
    "page",
    "dump",
    "parallel",
    "server",
];
const DISAMBIGUATION: [&str; 10] = [
    "film",
    "band",
    "album",
    "river",
    "novel",
    "company",
    "1998 film",
    "programming language",
    "song",
    "surname",
];

/// A bijection on `0..2^bits`, so that every page gets a different code.
fn scramble(n: u64, bits: u32) -> u64 {
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let mut x = n & mask;
    for k in [0x9E37_79B9_7F4A_7C15u64, 0xBF58_476D_1CE4_E5B9] {
        x = x.wrapping_mul(k | 1) & mask;
        x ^= x >> (bits / 2 + 1);
    }
    x
}

/// The unique word for a code: one syllable per 6 bits.
fn word(mut code: u64, script: &Script) -> String {
    let mut w = String::new();
    loop {
        w.push(script.consonants[(code & 15) as usize]);
        w.push(script.vowels[((code >> 4) & 3) as usize]);
        code >>= 6;
        if code == 0 {
            break;
        }
    }
    w
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A title and its namespace; `code` makes it unique.
fn make_title(rng: &mut Rng, code: u64) -> (i32, String) {
    let mut ns = 0;
    let mut prefix = "";
    let mut roll = rng.below(100);
    for &(p, n, weight) in &NAMESPACES {
        if roll < weight {
            (ns, prefix) = (n, p);
            break;
        }
        roll -= weight;
    }
    let script = rng.below(100);
    let unique = match script {
        0..=4 => word(code, &CYRILLIC),
        5..=6 => word(code, &GREEK),
        7..=9 => cjk(code),
        _ => word(code, &LATIN),
    };
    let mut words = vec![capitalize(&unique)];
    for _ in 0..rng.below(3) {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        if rng.below(2) == 0 {
            words.push(w.into())
        } else {
            words.insert(0, capitalize(w))
        }
    }
    let mut title = words.join(" ");
    match rng.below(100) {
        0..=7 => {
            let d = DISAMBIGUATION[rng.below(DISAMBIGUATION.len() as u64) as usize];
            title.push_str(&format!(" ({d})"));
        }
        8..=9 => title.push_str(": The Sequel"),
        10 => title.push_str(" & Sons"),
        11 => title = format!("\"{title}\" (song)"),
        12 => title.push_str("'s Law"),
        _ => {}
    }
    (ns, format!("{prefix}{title}"))
}

/// CJK characters, 6 bits each.
fn cjk(mut code: u64) -> String {
    let mut w = String::new();
    loop {
        w.push(char::from_u32(0x4E00 + (code & 63) as u32 * 37).unwrap_or('中'));
        code >>= 6;
        if code == 0 {
            break;
        }
    }
    w
}

/// Appends `s` escaped for XML; one in 50 non-ASCII characters becomes a
/// numeric character reference (decimal or hex), as some exporters write.
fn escape_into(s: &str, out: &mut Vec<u8>, rng: &mut Rng) {
    for c in s.chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '"' => out.extend_from_slice(b"&quot;"),
            '\'' => out.extend_from_slice(b"&#039;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            c if !c.is_ascii() && rng.below(50) == 0 => {
                let r = if rng.below(2) == 0 {
                    format!("&#{};", c as u32)
                } else {
                    format!("&#x{:X};", c as u32)
                };
                out.extend_from_slice(r.as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Article text length: log-normal around 5 KB, with a rare huge page.
fn text_len(rng: &mut Rng) -> usize {
    if rng.below(20_000) == 0 {
        return (1 << 20) + rng.below(2 << 20) as usize;
    }
    // Sum of uniforms approximates a normal; exp of it, a log-normal.
    let z = (0..6).map(|_| rng.unit()).sum::<f64>() - 3.0;
    (5000.0 * (z * 1.1).exp()).clamp(40.0, 1e6) as usize
}

/// 31 base-36 characters, like MediaWiki's sha1 fields.
fn sha1ish(rng: &mut Rng) -> [u8; 31] {
    let mut s = [0u8; 31];
    for b in &mut s {
        *b = b"0123456789abcdefghijklmnopqrstuvwxyz"[rng.below(36) as usize];
    }
    s
}

/// About `len` bytes of `pool` from near `at`, cut at spaces so that no
/// entity or UTF-8 character is split.
fn slice_at(pool: &[u8], at: usize, len: usize) -> &[u8] {
    let start = pool[at..]
        .iter()
        .position(|&b| b == b' ')
        .map_or(at, |p| at + p + 1);
    let end = (start + len).min(pool.len());
    let end = pool[start..end]
        .iter()
        .rposition(|&b| b == b' ')
        .map_or(start, |p| start + p);
    &pool[start..end]
}

/// A megabyte of escaped wikitext to cut article texts from.
fn text_pool(rng: &mut Rng) -> Vec<u8> {
    let mut pool = String::with_capacity(1 << 20);
    let pick = |rng: &mut Rng| WORDS[rng.below(WORDS.len() as u64) as usize];
    while pool.len() < 1 << 20 {
        match rng.below(40) {
            0 => pool.push_str(&format!("\n\n== {} {} ==\n", capitalize(pick(rng)), pick(rng))),
            1 => pool.push_str(&format!(
                "&lt;ref&gt;{{{{cite web |url=https://example.org/{} |title={} &amp; {}}}}}&lt;/ref&gt; ",
                pick(rng),
                capitalize(pick(rng)),
                pick(rng)
            )),
            2 => pool.push_str(&format!("[[{}|{}]] ", capitalize(pick(rng)), pick(rng))),
            3 => pool.push_str(&format!("'''{}''' ", capitalize(pick(rng)))),
            4 => pool.push_str("&quot;quoted&quot; "),
            5 if rng.below(10) == 0 => pool.push_str("the &lt;page&gt; and &lt;title&gt; elements "),
            6 => pool.push_str(&format!("[[{}]] ", capitalize(pick(rng)))),
            7 => pool.push_str(&format!("{{{{Infobox {} | name = {} }}}}\n", pick(rng), pick(rng))),
            _ => {
                pool.push_str(pick(rng));
                pool.push_str(if rng.below(12) == 0 { ". " } else { " " });
            }
        }
    }
    pool.into_bytes()
}

/// SplitMix64: small, fast, and good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scramble_is_a_bijection() {
        let bits = 10;
        let mut seen = vec![false; 1 << bits];
        for n in 0..1 << bits {
            let s = scramble(n, bits) as usize;
            assert!(!seen[s], "{n} collides");
            seen[s] = true;
        }
    }

    #[test]
    fn same_seed_same_bytes() {
        let opts = SynthOptions {
            pages: 200,
            seed: 7,
            ..SynthOptions::default()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let sa = write_dump(&mut a, &opts).unwrap();
        write_dump(&mut b, &opts).unwrap();
        assert_eq!(a, b);
        assert_eq!(sa.bytes, a.len() as u64);
        assert_eq!(sa.pages, 200);
        assert!(sa.redirects > 60 && sa.redirects < 120, "{sa:?}");
    }

    #[test]
    fn respects_max_bytes() {
        let opts = SynthOptions {
            pages: 1_000_000,
            max_bytes: Some(200_000),
            ..SynthOptions::default()
        };
        let mut out = Vec::new();
        let stats = write_dump(&mut out, &opts).unwrap();
        assert!(out.len() <= 200_000 && out.len() > 100_000, "{}", out.len());
        assert!(out.ends_with(b"</mediawiki>\n"));
        assert!(stats.pages > 10);
    }
}
