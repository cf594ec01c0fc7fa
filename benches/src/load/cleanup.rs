//! Children that never outlive the harness. Every process the harness
//! starts (servers and wrk) is a [`Guarded`] child: dropping it (normal
//! return, error, or panic unwinding) stops it, and [`on_signal_stop_all`]
//! stops whatever is still running when the harness gets SIGINT, SIGTERM or
//! SIGHUP, then exits. Without this a `timeout` or a closed terminal would
//! leave servers holding the CPU that the next benchmark needs.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Process ids of the children alive now.
static ALIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn alive() -> std::sync::MutexGuard<'static, Vec<u32>> {
    ALIVE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Guarded {
    /// The process; `None` once it has been waited for.
    child: Option<Child>,
    /// What it is, for error messages.
    name: String,
}

impl Guarded {
    /// Spawns `command` and registers it for stopping on signals.
    pub fn spawn(name: impl Into<String>, command: &mut Command) -> anyhow::Result<Self> {
        let name = name.into();
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        alive().push(child.id());
        Ok(Guarded {
            child: Some(child),
            name,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The exit status if the process has exited, without blocking.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let name = &self.name;
        let Some(child) = &mut self.child else {
            return Ok(None);
        };
        let status = child
            .try_wait()
            .with_context(|| format!("checking whether {name} is still running"))?;
        if status.is_some() {
            let pid = child.id();
            alive().retain(|&p| p != pid);
        }
        Ok(status)
    }

    /// Waits until the process exits or `limit` has passed; `None` when it
    /// is still running.
    pub fn wait_for(&mut self, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= end {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The child itself (to read its piped output).
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILLs; returns the exit
    /// status.
    pub fn stop(mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        self.stop_inner(grace)
    }

    fn stop_inner(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            anyhow::bail!("{} was already stopped", self.name);
        };
        let pid = child.id();
        let status = match child.try_wait()? {
            Some(status) => status,
            None => {
                terminate(pid);
                let end = Instant::now() + grace;
                loop {
                    if let Some(status) = child.try_wait()? {
                        break status;
                    }
                    if Instant::now() >= end {
                        eprintln!(
                            "load: {} (pid {pid}) ignored SIGTERM for {grace:?}; killing it",
                            self.name
                        );
                        let _ = child.kill();
                        break child.wait()?;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        alive().retain(|&p| p != pid);
        Ok(status)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop_inner(Duration::from_secs(5));
        }
    }
}

/// Sends SIGTERM to `pid` (std can only send SIGKILL, and the workspace
/// forbids `unsafe`, so this asks `kill(1)`).
fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// Runs a load tool (`what`: "wrk URL", "oha URL") as a [`Guarded`] child
/// to completion within `limit`, reading its stdout and stderr while it
/// runs (so that no output size can deadlock it), and returns them; fails
/// when it overruns `limit` or exits unsuccessfully, with what it printed.
pub fn run_tool(
    what: &str,
    command: &mut Command,
    limit: Duration,
) -> anyhow::Result<(String, String)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Guarded::spawn(what, command)?;
    let (stdout, stderr) = match child.child_mut() {
        Some(proc) => (proc.stdout.take(), proc.stderr.take()),
        None => (None, None),
    };
    let out = std::thread::spawn(move || read_all(stdout));
    let err = std::thread::spawn(move || read_all(stderr));
    let status = child
        .wait_for(limit)?
        .with_context(|| format!("{what} ran longer than {limit:?}"))?;
    drop(child);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    anyhow::ensure!(
        status.success(),
        "{what} failed ({status}): {}{}",
        stderr.trim(),
        stdout.trim()
    );
    Ok((stdout, stderr))
}

/// Everything a pipe gives until it closes (empty without one).
fn read_all(pipe: Option<impl std::io::Read>) -> String {
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_string(&mut text);
    }
    text
}

/// Starts a thread that, on SIGINT, SIGTERM or SIGHUP, stops every guarded
/// child and exits the process with status 130.
pub fn on_signal_stop_all() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registering in this thread makes the signals ours before any child
    // starts; the thread below only waits for them.
    let signals = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        anyhow::Ok((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("load-signals".into())
        .spawn(move || {
            let (mut int, mut term, mut hup) = signals;
            runtime.block_on(async {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
            });
            let pids = alive().clone();
            eprintln!(
                "load: interrupted; stopping {} child process(es)",
                pids.len()
            );
            for &pid in &pids {
                terminate(pid);
            }
            // Give servers their graceful shutdown, then make sure.
            std::thread::sleep(Duration::from_secs(2));
            for pid in alive().clone() {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
            std::process::exit(130);
        })?;
    Ok(())
}
