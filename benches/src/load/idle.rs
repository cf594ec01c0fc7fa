//! Memory per connection: opens thousands of idle keep-alive connections to
//! a server (each has made one request, as a real client would have),
//! spreads them over several 127.0.N.x source addresses so that the
//! loopback's ephemeral ports do not run out, reads the server's resident
//! memory at each step, and then checks that the server still answers a new
//! client promptly while they are all open. It frames those responses with
//! its own small response-head parser ([`parse_head`], on httparse): no
//! load tool measures memory per idle connection.
//!
//! PyParallel's claim was 50,000 clients in about 3 GB (some 60 KB each);
//! the target for percore is no more host RSS per connection than native
//! hyper's in the same run.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use socket2::{Domain, Socket, Type};

/// Connections opened from one source address: well under the ~28,000
/// ephemeral ports Linux hands out per (source, destination) pair.
const PER_SOURCE: u32 = 20_000;

/// What one step measured: the server with `connections` idle clients.
#[derive(Clone, Debug, Serialize)]
pub struct IdleStep {
    /// Idle keep-alive connections open.
    pub connections: u32,
    /// Server RSS before any of them was opened, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with all of them open, KiB.
    pub rss_kib: u64,
    /// `(rss - rss_before) / connections`, bytes.
    pub bytes_per_connection: f64,
    /// Seconds it took to open them (one request each).
    pub open_seconds: f64,
    /// Latency of fresh requests (one new connection each) while they are
    /// all open: median and worst, microseconds.
    pub probe_p50_us: f64,
    /// The slowest probe, microseconds.
    pub probe_max_us: f64,
    /// Probes that failed.
    pub probe_failures: u32,
    /// Idle connections the server had closed by the end of the step (an
    /// idle timeout shorter than the measurement would make RSS look
    /// better than it is): should be 0.
    pub closed_by_server: u32,
}

/// Raises this process's open-file limit towards `needed` (children
/// inherit it, so call it before starting servers) and returns the limit
/// it got. Raising the hard limit needs `CAP_SYS_RESOURCE`; without it the
/// soft limit goes as high as the hard one.
pub fn raise_fd_limit(needed: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum.unwrap_or(u64::MAX);
    let soft = current.current.unwrap_or(u64::MAX);
    if soft >= needed {
        return soft;
    }
    let want = Rlimit {
        current: Some(needed),
        maximum: Some(hard.max(needed)),
    };
    if setrlimit(Resource::Nofile, want).is_ok() {
        return needed;
    }
    let most = Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    if setrlimit(Resource::Nofile, most).is_ok() {
        hard
    } else {
        soft
    }
}

/// Descriptors kept free beside the idle connections (the server's
/// listeners, epoll, logs; the harness's probes and pipes).
pub const FD_MARGIN: u32 = 1024;

/// The steps that fit under an open-file limit of `limit` in both the server
/// and the client (each holds one descriptor per connection): larger ones
/// become the largest that fits. The note says so when any did.
pub fn fit_steps(steps: &[u32], limit: u64) -> (Vec<u32>, Option<String>) {
    let most = u32::try_from(limit.saturating_sub(u64::from(FD_MARGIN))).unwrap_or(u32::MAX);
    let mut fitted: Vec<u32> = steps.iter().map(|&n| n.min(most)).collect();
    fitted.sort_unstable();
    fitted.dedup();
    let wanted = steps.iter().copied().max().unwrap_or(0);
    let note = (wanted > most).then(|| {
        format!(
            "idle connections: {wanted} need an open-file limit above {wanted} in the server and \
             in the harness, and this machine allows {limit} (the hard RLIMIT_NOFILE, which \
             only CAP_SYS_RESOURCE can raise); measured up to {most} instead"
        )
    });
    (fitted, note)
}

/// Idle connections held open against one server.
pub struct IdleClients {
    addr: SocketAddr,
    /// The third octet of the source addresses (127.0.N.x): a new one for
    /// every set of clients, so that the ports of an earlier set, closed
    /// moments ago and still in TIME_WAIT, are never asked for again.
    net: u8,
    request: Vec<u8>,
    streams: Vec<TcpStream>,
}

impl IdleClients {
    /// No connections yet; each one will `GET path` once.
    pub fn new(addr: SocketAddr, path: &str) -> Self {
        static SETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let set = SETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        IdleClients {
            addr,
            net: (std::process::id().wrapping_add(set) % 250) as u8 + 1,
            request: format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes(),
            streams: Vec::new(),
        }
    }

    /// Connections open now.
    pub fn len(&self) -> u32 {
        self.streams.len() as u32
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// How many of the connections the server has closed (a read that does
    /// not block finds the end of the stream or an error).
    pub fn closed(&self) -> u32 {
        let mut byte = [0u8; 1];
        let mut closed = 0;
        for stream in &self.streams {
            let gone = stream.set_nonblocking(true).is_err()
                || match stream.peek(&mut byte) {
                    Ok(_) => true, // EOF, or bytes nobody asked for
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                };
            let _ = stream.set_nonblocking(false);
            closed += u32::from(gone);
        }
        closed
    }

    /// Opens connections until `total` are open, each making one request
    /// and reading its whole response, then staying idle.
    pub fn grow_to(&mut self, total: u32) -> anyhow::Result<()> {
        let mut buf = [0u8; 4096];
        while self.len() < total {
            let n = self.len();
            let source = Ipv4Addr::new(127, 0, self.net, 2 + (n / PER_SOURCE) as u8);
            let mut stream = connect_from(source, self.addr)
                .with_context(|| format!("opening idle connection {} from {source}", n + 1))?;
            stream.write_all(&self.request)?;
            read_response(&mut stream, &mut buf)
                .with_context(|| format!("the response on idle connection {}", n + 1))?;
            self.streams.push(stream);
        }
        Ok(())
    }
}

/// Measures the server (`rss` reads its RSS in KiB) at each count of idle
/// connections in `steps` (ascending), with `probes` fresh requests at each.
pub fn measure(
    addr: SocketAddr,
    path: &str,
    steps: &[u32],
    probes: u32,
    rss: &dyn Fn() -> anyhow::Result<u64>,
) -> anyhow::Result<Vec<IdleStep>> {
    let rss_before_kib = rss()?;
    let mut clients = IdleClients::new(addr, path);
    let mut results = Vec::new();
    let started = Instant::now();
    for &connections in steps {
        clients.grow_to(connections)?;
        let open_seconds = started.elapsed().as_secs_f64();
        // Let the server settle (allocator caches, lazily grown buffers).
        std::thread::sleep(Duration::from_millis(500));
        let rss_kib = rss()?;
        let (probe_p50_us, probe_max_us, probe_failures) = probe(addr, path, probes);
        let closed_by_server = clients.closed();
        results.push(IdleStep {
            connections,
            rss_before_kib,
            rss_kib,
            bytes_per_connection: rss_kib.saturating_sub(rss_before_kib) as f64 * 1024.0
                / f64::from(connections.max(1)),
            open_seconds,
            probe_p50_us,
            probe_max_us,
            probe_failures,
            closed_by_server,
        });
    }
    Ok(results)
}

/// `count` requests, each on a new connection from 127.0.0.1: median and
/// worst latency in microseconds, and how many failed.
fn probe(addr: SocketAddr, path: &str, count: u32) -> (f64, f64, u32) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut buf = [0u8; 4096];
    let mut micros = Vec::new();
    let mut failures = 0;
    for _ in 0..count {
        let start = Instant::now();
        let ok = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(request.as_bytes())?;
            read_response(&mut s, &mut buf)
        });
        match ok {
            Ok(()) => micros.push(start.elapsed().as_secs_f64() * 1e6),
            Err(_) => failures += 1,
        }
    }
    micros.sort_by(f64::total_cmp);
    let p50 = micros.get(micros.len() / 2).copied().unwrap_or(f64::NAN);
    let max = micros.last().copied().unwrap_or(f64::NAN);
    (p50, max, failures)
}

/// A blocking connection to `addr` from `source` (any port).
fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddrV4::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads one response with a `Content-Length` body (every server the
/// harness measures sends one; [`parse_head`] frames it)
/// and checks that its status is 200.
fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    let (len, body) = loop {
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        filled += n;
        match parse_head(&buf[..filled]).map_err(std::io::Error::other)? {
            Parsed::Head {
                len, status, body, ..
            } => {
                if status != 200 {
                    return Err(std::io::Error::other(format!("status {status}")));
                }
                break (len, body);
            }
            Parsed::Partial if filled == buf.len() => {
                return Err(std::io::Error::other("response head too long"));
            }
            Parsed::Partial => {}
        }
    };
    let mut rest = (len + body).saturating_sub(filled);
    while rest > 0 {
        let take = rest.min(buf.len());
        let n = stream.read(&mut buf[..take])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        rest -= n;
    }
    Ok(())
}

/// What a response head said.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// More bytes needed.
    Partial,
    /// A complete head.
    Head {
        /// Its length in bytes; the body follows.
        len: usize,
        /// Status code.
        status: u16,
        /// Body length (`Content-Length`).
        body: usize,
        /// Whether the server closes the connection after the body.
        close: bool,
    },
}

/// Parses a response head far enough to frame the body. Chunked (or any
/// `Transfer-Encoding`) bodies are refused: the servers measured here send
/// `Content-Length`.
fn parse_head(bytes: &[u8]) -> Result<Parsed, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err("more than 32 response headers"),
        Err(_) => return Err("malformed response head"),
    };
    let status = response.code.unwrap_or(0);
    let mut body = None;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok();
            body = Some(
                value
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or("malformed Content-Length")?,
            );
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("Transfer-Encoding (chunked) responses are not supported");
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = header.value.trim_ascii();
            close = if value.eq_ignore_ascii_case(b"close") {
                true
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                false
            } else {
                close
            };
        }
    }
    let body = match body {
        Some(body) => body,
        None if status < 200 || status == 204 || status == 304 => 0,
        None => return Err("response without Content-Length"),
    };
    Ok(Parsed::Head {
        len,
        status,
        body,
        close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers one request per connection and keeps it open.
    fn tiny_server() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().take(64) {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 1024];
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let n = stream.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                    .unwrap();
                held.push(stream);
            }
        });
        addr
    }

    #[test]
    fn holds_connections_from_several_sources() {
        let addr = tiny_server();
        let mut clients = IdleClients::new(addr, "/");
        clients.grow_to(8).unwrap();
        assert_eq!(clients.len(), 8);
        let steps = measure(addr, "/", &[4], 2, &|| Ok(1000)).unwrap();
        assert_eq!(steps[0].connections, 4);
        assert_eq!(steps[0].probe_failures, 0, "probes get answers");
        assert_eq!(steps[0].bytes_per_connection, 0.0);
        assert_eq!(steps[0].closed_by_server, 0);
    }

    #[test]
    fn steps_fit_the_fd_limit() {
        assert_eq!(
            fit_steps(&[10_000, 50_000], 1 << 20),
            (vec![10_000, 50_000], None)
        );
        let (steps, note) = fit_steps(&[10_000, 50_000], 20_000);
        assert_eq!(steps, [10_000, 20_000 - FD_MARGIN]);
        assert!(note.unwrap().contains("allows 20000"));
        assert_eq!(fit_steps(&[30_000, 50_000], 20_000).0, [20_000 - FD_MARGIN]);
    }

    #[test]
    fn a_non_200_answer_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        });
        let mut clients = IdleClients::new(addr, "/");
        let err = clients.grow_to(1).unwrap_err();
        assert!(format!("{err:#}").contains("503"), "{err:#}");
    }

    #[test]
    fn response_heads() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello";
        assert_eq!(
            parse_head(ok),
            Ok(Parsed::Head {
                len: 39,
                status: 200,
                body: 13,
                close: false
            })
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nConte"), Ok(Parsed::Partial));
        let close = b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_head(close),
            Ok(Parsed::Head {
                status: 503,
                close: true,
                ..
            })
        ));
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert!(matches!(
            parse_head(no_content),
            Ok(Parsed::Head { body: 0, .. })
        ));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(parse_head(chunked).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }
}
