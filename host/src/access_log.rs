//! The access log: one JSON line per request (off by default; `access_log`
//! in the config, `--access-log FILE`, `-` for stdout). Each worker appends
//! its lines to a buffer of its own and hands full buffers (or, once a
//! second, what it has) to the log's writer thread through a bounded
//! channel, never waiting: when the writer falls behind, the buffer is
//! dropped and counted ([`AccessLog::dropped_lines`]), and the request path
//! never blocks on the disk.

use std::cell::RefCell;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::trace::TraceId;

/// A worker hands its buffer over once it holds this many bytes.
const FLUSH_BYTES: usize = 32 << 10;
/// Buffers waiting for the writer; past this, buffers are dropped.
const QUEUE: usize = 64;
/// How often a worker hands over a partly filled buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The log's writer thread and where it writes.
pub struct AccessLog {
    sender: Option<SyncSender<(Vec<u8>, u64)>>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Opens `path` for appending (`-`: stdout) and starts the writer.
    pub fn open(path: &Path) -> anyhow::Result<AccessLog> {
        let out: Box<dyn std::io::Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot open the access log {}: {e}", path.display())
                    })?,
            )
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let path: PathBuf = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("percore-access-log".into())
            .spawn(move || write_all(out, receiver, &path))?;
        Ok(AccessLog {
            sender: Some(sender),
            thread: Some(thread),
            dropped: Arc::default(),
        })
    }

    /// A worker's handle on the log.
    pub fn worker(&self, worker: usize) -> WorkerLog {
        WorkerLog {
            worker,
            buffer: RefCell::new(Vec::with_capacity(FLUSH_BYTES)),
            lines: std::cell::Cell::new(0),
            sender: self.sender.clone().expect("the log is open"),
            dropped: self.dropped.clone(),
        }
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits for the writer to write what the workers handed over (call it
    /// after the workers have stopped).
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the access log thread panicked");
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_all(
    mut out: Box<dyn std::io::Write + Send>,
    buffers: Receiver<(Vec<u8>, u64)>,
    path: &Path,
) {
    let mut failed = false;
    for (buffer, _lines) in buffers {
        if let Err(e) = out.write_all(&buffer).and_then(|()| out.flush()) {
            if !failed {
                tracing::error!("cannot write the access log {}: {e}", path.display());
            }
            failed = true;
        }
    }
}

/// One request, as logged.
pub struct Entry<'a> {
    /// Its trace id.
    pub trace_id: TraceId,
    /// The method.
    pub method: &'a str,
    /// The path (without the query, which may carry secrets).
    pub path: &'a str,
    /// The route prefix that served it; `None` when none matched.
    pub route: Option<&'a str>,
    /// The response's status.
    pub status: u16,
    /// Time to the response head.
    pub duration: Duration,
}

/// A worker's buffer of log lines (only its thread uses it).
pub struct WorkerLog {
    worker: usize,
    buffer: RefCell<Vec<u8>>,
    lines: std::cell::Cell<u64>,
    sender: SyncSender<(Vec<u8>, u64)>,
    dropped: Arc<AtomicU64>,
}

impl WorkerLog {
    /// Appends `entry`'s line; hands the buffer over when it is full.
    pub fn record(&self, entry: &Entry<'_>) {
        let time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mut buffer = self.buffer.borrow_mut();
        let _ = write!(
            buffer,
            "{{\"time\":{}.{:03},\"worker\":{},\"trace_id\":\"{}\",\"method\":",
            time.as_secs(),
            time.subsec_millis(),
            self.worker,
            entry.trace_id,
        );
        json_string(&mut buffer, entry.method);
        buffer.extend_from_slice(b",\"path\":");
        json_string(&mut buffer, entry.path);
        buffer.extend_from_slice(b",\"route\":");
        match entry.route {
            Some(route) => json_string(&mut buffer, route),
            None => buffer.extend_from_slice(b"null"),
        }
        let _ = writeln!(
            buffer,
            ",\"status\":{},\"duration_us\":{}}}",
            entry.status,
            entry.duration.as_micros()
        );
        self.lines.set(self.lines.get() + 1);
        if buffer.len() >= FLUSH_BYTES {
            drop(buffer);
            self.flush();
        }
    }

    /// Hands what the buffer holds to the writer, without waiting.
    pub fn flush(&self) {
        let mut buffer = self.buffer.borrow_mut();
        if buffer.is_empty() {
            return;
        }
        let full = std::mem::replace(&mut *buffer, Vec::with_capacity(FLUSH_BYTES));
        let lines = self.lines.replace(0);
        match self.sender.try_send((full, lines)) {
            Ok(()) => {}
            Err(TrySendError::Full((_, lines)) | TrySendError::Disconnected((_, lines))) => {
                self.dropped.fetch_add(lines, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for WorkerLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Appends `s` as a JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&path).unwrap();
        let worker = log.worker(3);
        worker.record(&Entry {
            trace_id: TraceId(0xab),
            method: "GET",
            path: "/a\"b\\c\u{1}",
            route: Some("/a"),
            status: 200,
            duration: Duration::from_micros(42),
        });
        worker.record(&Entry {
            trace_id: TraceId(1),
            method: "POST",
            path: "/nowhere",
            route: None,
            status: 404,
            duration: Duration::from_micros(1),
        });
        drop(worker);
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["path"], "/a\"b\\c\u{1}");
        assert_eq!(lines[0]["worker"], 3);
        assert_eq!(lines[0]["trace_id"], format!("{:032x}", 0xab));
        assert_eq!(lines[0]["duration_us"], 42);
        assert_eq!(lines[1]["route"], serde_json::Value::Null);
        assert_eq!(lines[1]["status"], 404);
    }
}
