//! Embedding percore: start the host from Rust, call it, stop it.
//!
//! `percore serve` is a thin wrapper around what this example does by hand:
//! build a [`Config`], hand it to [`Server::start`], and keep the
//! [`RunningServer`](percore::RunningServer) it returns until you want to
//! stop. Run it with:
//!
//! ```sh
//! cargo run -p percore-examples --example embed
//! ```

#![deny(warnings)]

use std::io::{Read, Write};
use std::net::TcpStream;

use percore::Server;
use percore::config::{Config, Isolation, RouteConfig, RouteOptions, Source};

fn main() -> anyhow::Result<()> {
    // 1. A configuration: one route serving the TechEmpower guest that is
    //    built into the `percore` library, on a free loopback port, with one
    //    reused instance per worker (`core` isolation).
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        workers: Some(2),
        routes: vec![RouteConfig {
            prefix: "/".into(),
            source: Source::Embedded {
                name: "hello",
                bytes: percore::guests::HELLO,
            },
            options: RouteOptions {
                isolation: Some(Isolation::Core),
                ..RouteOptions::default()
            },
        }],
        ..Config::default()
    };

    // 2. Start it: this compiles the component once, binds one listener per
    //    worker and returns as soon as every worker is accepting.
    let server = Server::new(config).start()?;
    let addr = server.local_addr();
    println!("serving on http://{addr}");

    // 3. Talk to it like any client would: plain HTTP/1.1 over TCP.
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"GET /json HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    println!("{response}");

    // 4. Stop: stop accepting, let in-flight requests finish, join the workers.
    server.shutdown();
    Ok(())
}
