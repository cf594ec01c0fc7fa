//! Integration tests of the title index, as one binary.
//!
//! | module | what it proves |
//! | --- | --- |
//! | `support` | (helpers) an independent reading of a dump with quick-xml, and temp-dir builds |
//! | `fixtures` | on hand-written fixtures (entities, Unicode, namespaces, colons, redirects, several ids, self-closing text, escaped `<page>` in text, a duplicate, CRLF, no indentation, no trailing newline, schema 0.10) every page the scanner finds matches quick-xml's reading, byte range and fields |
//! | `errors` | truncated, not-an-export, UTF-16 and empty dumps fail with the byte offset in the message and leave no partial index; a failed rebuild keeps the old index; 200 random cuts and corruptions never panic |
//! | `api` | exact, normalised, prefix and case-insensitive prefix lookups with limits and cursors; `open` rejects a stale, moved, damaged or foreign index with a message that says how to fix it |
//! | `corrupt` | a flipped byte or a wrong size in any index file is refused at open, naming the file; an index from before checksums (format 1) is refused with a rebuild hint; damaged records and strings that get past verification (unverified open, files rewritten while mapped) never panic a lookup |
//! | `synth` | generated dumps, scanned in many small chunks by several threads, match quick-xml too, and give the same answers as one thread; duplicate titles that straddle fst shards keep their first page |

mod api;
mod corrupt;
mod errors;
mod fixtures;
mod support;
mod synth;
