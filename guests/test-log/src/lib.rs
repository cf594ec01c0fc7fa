//! Test guest: writes to stdout and stderr, for the host's log. Each path
//! is matched on its last segment (`/any/prefix/print`):
//!
//! - `/print?id=X`: `test-log stdout X` on stdout, `test-log stderr X` on
//!   stderr, then `test-log unfinished X` on stderr without a line end;
//! - `/flood?lines=N&len=L`: N lines of L bytes on stdout
//!   (`flood X 0 xxx...`, `flood X 1 xxx...`, with `id=X`);
//! - `/escape`: a line with terminal escapes and a carriage return in it;
//! - anything else: answers without writing.
//!
//! Every path answers 200 with what it did.

use std::io::Write as _;

use percore_guest::{Guest, Request, Response, query_param, text};

struct Test;

impl Guest for Test {
    fn handle(req: Request) -> Response {
        let id = query_param(&req.query, "id").unwrap_or_default();
        let number = |name: &str, default: usize| {
            query_param(&req.query, name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let body = match req.path.rsplit('/').next().unwrap_or_default() {
            "print" => {
                println!("test-log stdout {id}");
                eprintln!("test-log stderr {id}");
                eprint!("test-log unfinished {id}");
                "printed".to_string()
            }
            "flood" => {
                let (lines, len) = (number("lines", 1000), number("len", 100));
                let mut out = std::io::stdout().lock();
                for i in 0..lines {
                    let mut line = format!("flood {id} {i} ");
                    while line.len() < len {
                        line.push('x');
                    }
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
                format!("flooded {lines} lines")
            }
            "escape" => {
                println!("test-log \u{1b}[2J{id}\rforged line");
                "escaped".to_string()
            }
            _ => "quiet".to_string(),
        };
        text(200, "text/plain; charset=utf-8", &body)
    }
}

percore_guest::export_handler!(Test);
