//! Test support: [`TestHost`] starts the real host in-process on an
//! ephemeral loopback port and shuts it down on drop; [`Client`] is a small
//! HTTP/1.1 client over a raw `TcpStream` (so tests control every byte and
//! can pipeline), with read timeouts so that no test can hang.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use percore::admin::client::ClientError;
use percore::config::{Config, Isolation, RouteConfig};
use percore::{RunningServer, Server};

/// How long a test waits for any one read before failing.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A test configuration: loopback, ephemeral port, few instances.
pub fn config(routes: Vec<RouteConfig>, workers: usize, isolation: Isolation) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: Some(workers),
        isolation,
        routes,
        max_instances: 64,
        ..Config::default()
    }
}

/// A host running in this process; shut down gracefully on drop.
pub struct TestHost {
    server: Option<RunningServer>,
    /// The bound address.
    pub addr: SocketAddr,
}

impl TestHost {
    /// Starts a host with `config`.
    pub fn start(config: Config) -> TestHost {
        TestHost::start_server(Server::new(config))
    }

    /// Starts a host that compiles uploads in child processes of the real
    /// binary, within the config's compile budget (as `percore serve` does).
    pub fn start_with_compiler(config: Config) -> TestHost {
        TestHost::start_server(
            Server::new(config).with_compiler(env!("CARGO_BIN_EXE_percore-under-test").into()),
        )
    }

    /// Starts `server`.
    pub fn start_server(server: Server) -> TestHost {
        let server = server.start().expect("host starts");
        let addr = server.local_addr();
        TestHost {
            server: Some(server),
            addr,
        }
    }

    /// Starts a host serving `guest` (a component's path, from
    /// [`crate::guests`]) at `/`.
    pub fn guest(guest: &str, workers: usize, isolation: Isolation) -> TestHost {
        TestHost::start(config(
            vec![RouteConfig::file("/", guest)],
            workers,
            isolation,
        ))
    }

    /// A new connection to the host.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// One GET on a new connection.
    pub fn get(&self, path: &str) -> Response {
        self.client().get(path)
    }

    /// The running server (its admin address, deployments, engine).
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("the host is running")
    }

    /// Shuts the host down and waits for it.
    pub fn shutdown(mut self) {
        self.server.take().unwrap().shutdown();
    }

    /// Takes the server out (for tests that shut it down from elsewhere).
    pub fn into_server(mut self) -> RunningServer {
        self.server.take().unwrap()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }
}

/// A child process that is killed when dropped, so that a failing test
/// leaves nothing running.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl ChildGuard {
    /// Sends SIGTERM and waits (at most 30 s) for the process to exit;
    /// returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.0.try_wait().expect("wait for percore") {
                return exit;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "percore did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts the real `percore` binary with `args` and waits (at most 60 s)
/// for its startup log line; returns the child and the address it serves.
pub fn spawn_binary(args: &[&str]) -> (ChildGuard, SocketAddr) {
    let spawned = spawn_binary_logged(args);
    (spawned.child, spawned.addr)
}

/// A `percore` binary started by [`spawn_binary_logged`].
pub struct Spawned {
    /// The process, killed on drop.
    pub child: ChildGuard,
    /// The address it serves.
    pub addr: SocketAddr,
    /// Its startup log line.
    pub startup: String,
    /// Its later log lines (stderr), as they come.
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Spawned {
    /// The ops listener's address, from the startup line.
    pub fn ops_addr(&self) -> SocketAddr {
        let at = self
            .startup
            .find("ops=Some(")
            .unwrap_or_else(|| panic!("no ops address in {:?}", self.startup));
        let rest = &self.startup[at + "ops=Some(".len()..];
        rest[..rest.find(')').unwrap()].parse().unwrap()
    }
}

/// [`spawn_binary`], keeping the startup line and the log.
pub fn spawn_binary_logged(args: &[&str]) -> Spawned {
    spawn_binary_logged_with_env(args, &[])
}

/// [`spawn_binary`] with `env` added to its environment.
pub fn spawn_binary_with_env(args: &[&str], env: &[(&str, &str)]) -> (ChildGuard, SocketAddr) {
    let spawned = spawn_binary_logged_with_env(args, env);
    (spawned.child, spawned.addr)
}

/// [`spawn_binary_logged`] with `env` added to its environment.
pub fn spawn_binary_logged_with_env(args: &[&str], env: &[(&str, &str)]) -> Spawned {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_percore-under-test"));
    command.args(args).envs(env.iter().copied());
    spawn_logged(command, Duration::from_secs(60))
}

/// Starts `command` (the `percore` binary, set up by the caller) and waits
/// at most `within` for its startup log line.
pub fn spawn_logged(mut command: std::process::Command, within: Duration) -> Spawned {
    use std::process::Stdio;
    let mut child = command
        .env("PERCORE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start percore");
    // Read stderr on a thread so that a silent child cannot hang the test;
    // the thread keeps draining it so the child never blocks on a full pipe.
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            let _ = lines_tx.send(line);
        }
    });
    let started = std::time::Instant::now();
    let addr = loop {
        let remaining = within.saturating_sub(started.elapsed());
        let line = lines_rx
            .recv_timeout(remaining)
            .unwrap_or_else(|_| panic!("percore printed no startup line within {within:?}"));
        if let Some(at) = line.find("listen=") {
            let rest = &line[at + "listen=".len()..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let addr = rest[..end]
                .parse::<SocketAddr>()
                .unwrap_or_else(|e| panic!("bad address in startup line {line:?}: {e}"));
            break (addr, line);
        }
    };
    Spawned {
        child: ChildGuard(child),
        addr: addr.0,
        startup: addr.1,
        lines: lines_rx,
    }
}

/// Waits (at most 30 s, polling) until `condition` holds; fails the test,
/// naming `what`, when it does not.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads until EOF, bounded by the client's read timeout; true if the host
/// closed the connection.
pub fn closed_by_host(client: &mut Client) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match client.stream().read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// The status and message of an admin request the host refused; fails
/// the test when it was not refused.
pub fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Refused { status, message }) => (status, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body, names lower-cased.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    /// The first header called `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("body is UTF-8")
    }
}

/// A raw HTTP/1.1 client on one connection.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect to the host"))
    }

    /// A client on a connected `stream`.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the host");
    }

    /// A GET request's bytes.
    pub fn get_request(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
    }

    /// Sends a GET and reads its response.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(&Client::get_request(path));
        self.read_response(false)
    }

    /// Reads one response (of a HEAD request when `head`).
    pub fn read_response(&mut self, head: bool) -> Response {
        let header_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at;
            }
            self.fill();
        };
        let head_text = String::from_utf8(self.buf[..header_end].to_vec()).expect("ASCII head");
        let mut lines = head_text.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (n, v) = line.split_once(':').expect("header line has a colon");
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        self.buf.drain(..header_end + 4);
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let mut trailers = Vec::new();
        let body = if head {
            Vec::new()
        } else if chunked {
            self.read_chunked(&mut trailers)
        } else {
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse().expect("numeric content-length"))
                .unwrap_or_else(|| panic!("response has no content-length: {headers:?}"));
            while self.buf.len() < length {
                self.fill();
            }
            self.buf.drain(..length).collect()
        };
        Response {
            status,
            headers,
            body,
            trailers,
        }
    }

    /// A body in chunked transfer coding; its trailer fields go to
    /// `trailers`.
    fn read_chunked(&mut self, trailers: &mut Vec<(String, String)>) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = find(&self.buf, b"\r\n") {
                    break at;
                }
                self.fill();
            };
            let size_text = String::from_utf8(self.buf[..line_end].to_vec()).expect("ASCII size");
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
            self.buf.drain(..line_end + 2);
            if size == 0 {
                self.read_trailers(trailers);
                return body;
            }
            while self.buf.len() < size + 2 {
                self.fill();
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// The trailer section after a chunked body's last chunk, up to its
    /// empty line.
    fn read_trailers(&mut self, trailers: &mut Vec<(String, String)>) {
        loop {
            let line_end = loop {
                if let Some(at) = find(&self.buf, b"\r\n") {
                    break at;
                }
                self.fill();
            };
            let line = String::from_utf8(self.buf.drain(..line_end + 2).collect()).expect("ASCII");
            let line = line.trim_end();
            if line.is_empty() {
                return;
            }
            let (name, value) = line.split_once(':').expect("trailer line has a colon");
            trailers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }

    /// The next response, or `None` when the host closes the connection
    /// before sending one (failing at the read timeout, as every read).
    pub fn next_response_or_close(&mut self) -> Option<Response> {
        let mut chunk = [0u8; 16 << 10];
        while find(&self.buf, b"\r\n\r\n").is_none() {
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read from the host: {e}"),
            }
        }
        Some(self.read_response(false))
    }

    /// Whether response bytes are waiting, without blocking.
    pub fn has_data(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        self.stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let ready = matches!(self.stream.peek(&mut byte), Ok(n) if n > 0);
        self.stream.set_nonblocking(false).unwrap();
        ready
    }

    /// The underlying stream.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16 << 10];
        let n = self.stream.read(&mut chunk).expect("read from the host");
        assert!(n > 0, "the host closed the connection mid-response");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
