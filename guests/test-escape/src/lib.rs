//! Test guest that tries every ambient-authority escape a Rust guest's std
//! offers (files, directories, environment variables, arguments, sockets) and
//! answers with one line per attempt: `name: denied (...)` or
//! `name: GOT <data>`. The tests assert that no line says `GOT`.

use std::fmt::Write as _;

use percore_guest::{Guest, Request, Response, text};

struct Escape;

fn attempt<T: std::fmt::Debug, E: std::fmt::Display>(
    out: &mut String,
    name: &str,
    result: Result<T, E>,
) {
    match result {
        Ok(v) => writeln!(out, "{name}: GOT {v:?}"),
        Err(e) => writeln!(out, "{name}: denied ({e})"),
    }
    .expect("writing to a String cannot fail");
}

impl Guest for Escape {
    fn handle(_req: Request) -> Response {
        let mut out = String::new();
        attempt(
            &mut out,
            "read /etc/passwd",
            std::fs::read_to_string("/etc/passwd"),
        );
        attempt(
            &mut out,
            "read ./Cargo.toml",
            std::fs::read_to_string("Cargo.toml"),
        );
        attempt(
            &mut out,
            "list /",
            std::fs::read_dir("/").map(|d| d.count()),
        );
        attempt(
            &mut out,
            "write /tmp/percore-escape",
            std::fs::write("/tmp/percore-escape", b"x"),
        );
        let vars: Vec<(String, String)> = std::env::vars().collect();
        attempt(
            &mut out,
            "env vars",
            if vars.is_empty() {
                Err("none")
            } else {
                Ok(vars)
            },
        );
        attempt(&mut out, "env PATH", std::env::var("PATH"));
        let args: Vec<String> = std::env::args().collect();
        attempt(
            &mut out,
            "args",
            if args.is_empty() {
                Err("none")
            } else {
                Ok(args)
            },
        );
        // wasi-libc reports "/" when the host names no working directory;
        // anything else would come from the host.
        attempt(
            &mut out,
            "current dir",
            std::env::current_dir()
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    if d == std::path::Path::new("/") {
                        Err("only the synthetic root /".to_string())
                    } else {
                        Ok(d)
                    }
                }),
        );
        attempt(
            &mut out,
            "tcp connect",
            std::net::TcpStream::connect("127.0.0.1:22"),
        );
        attempt(
            &mut out,
            "tcp bind",
            std::net::TcpListener::bind("127.0.0.1:0"),
        );
        attempt(
            &mut out,
            "udp bind",
            std::net::UdpSocket::bind("127.0.0.1:0"),
        );
        text(200, "text/plain; charset=utf-8", &out)
    }
}

percore_guest::export_handler!(Escape);
