//! CPU pinning for the scaling pass: which CPUs this process may use
//! (`sched_getaffinity`), how they are split between the server's workers
//! and the load client ([`plan`], pure and unit-tested), and the `taskset`
//! prefix that pins a command ([`pinned`]). The client gets the last CPUs,
//! the server the first ones, so that they do not share a core while the
//! workers fit in the rest; past that they share, and the plan says so.

use std::fmt;
use std::process::Command;

use serde::Serialize;

/// The CPUs this process may run on, ascending (every CPU unless it was
/// started under `taskset` or in a cpuset); empty when unknown.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Whether `taskset` (util-linux) can be run.
pub fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Where a measurement's processes ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pinning {
    /// The server's CPUs; empty: not pinned.
    pub server: Vec<usize>,
    /// The load client's CPUs; empty: not pinned.
    pub client: Vec<usize>,
}

impl Pinning {
    /// Whether server and client share a CPU (or either is unpinned).
    pub fn shared(&self) -> bool {
        self.server.is_empty()
            || self.client.is_empty()
            || self.server.iter().any(|cpu| self.client.contains(cpu))
    }
}

impl fmt::Display for Pinning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.server.is_empty() && self.client.is_empty() {
            return f.write_str("not pinned");
        }
        let side = |cpus: &[usize]| {
            if cpus.is_empty() {
                "any CPU".to_owned()
            } else {
                format!(
                    "CPU{} {}",
                    if cpus.len() == 1 { "" } else { "s" },
                    list(cpus)
                )
            }
        };
        write!(
            f,
            "server {}, wrk {}{}",
            side(&self.server),
            side(&self.client),
            if self.shared() { " (shared)" } else { "" }
        )
    }
}

/// How to place a server with `workers` workers and a client on
/// `client_cpus` of the `allowed` CPUs: the client on the last
/// `client_cpus` (at most all but one), the server on the first `workers`
/// (all of them when there are fewer), overlapping the client's only when
/// the workers do not fit beside it. Nothing is pinned with fewer than two
/// CPUs or `client_cpus == 0`.
pub fn plan(allowed: &[usize], workers: usize, client_cpus: usize) -> Pinning {
    if allowed.len() < 2 || client_cpus == 0 {
        return Pinning::default();
    }
    let client_n = client_cpus.min(allowed.len() - 1);
    Pinning {
        server: allowed[..workers.clamp(1, allowed.len())].to_vec(),
        client: allowed[allowed.len() - client_n..].to_vec(),
    }
}

/// A CPU list as `taskset -c` reads it: `0-3,8,10-11`.
pub fn list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", cpus[i], cpus[j])
        } else {
            cpus[i].to_string()
        });
        i = j + 1;
    }
    parts.join(",")
}

/// `cmd` run under `taskset -c CPUS` (taskset sets the affinity and execs
/// the program, so the process id is the program's); `cmd` itself when
/// `cpus` is empty.
pub fn pinned(cmd: Command, cpus: &[usize]) -> Command {
    if cpus.is_empty() {
        return cmd;
    }
    let mut out = Command::new("taskset");
    out.arg("-c").arg(list(cpus)).arg(cmd.get_program());
    out.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => out.env(key, value),
            None => out.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    out
}

/// Worker counts 1, 2, 4, ... up to `most`, which is always the last.
pub fn doubling(most: usize) -> Vec<usize> {
    let most = most.max(1);
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|&n| n < most)
        .collect();
    counts.push(most);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cpus_split_one_and_one() {
        let one = plan(&[0, 1], 1, 1);
        assert_eq!(
            (one.server.as_slice(), one.client.as_slice()),
            (&[0][..], &[1][..])
        );
        assert!(!one.shared());
        assert_eq!(one.to_string(), "server CPU 0, wrk CPU 1");
        let two = plan(&[0, 1], 2, 1);
        assert!(two.shared());
        assert_eq!(two.to_string(), "server CPUs 0-1, wrk CPU 1 (shared)");
    }

    #[test]
    fn sixteen_cpus_keep_the_client_apart_while_workers_fit() {
        let cpus: Vec<usize> = (0..16).collect();
        for workers in [1, 2, 4, 8] {
            let p = plan(&cpus, workers, 8);
            assert_eq!(p.server.len(), workers);
            assert_eq!(p.client, (8..16).collect::<Vec<_>>());
            assert!(!p.shared(), "{workers}: {p}");
        }
        let all = plan(&cpus, 16, 8);
        assert_eq!(all.to_string(), "server CPUs 0-15, wrk CPUs 8-15 (shared)");
        // More workers than CPUs: the server gets every CPU.
        assert_eq!(plan(&cpus, 32, 8).server.len(), 16);
    }

    #[test]
    fn nothing_is_pinned_on_one_cpu_or_without_client_cpus() {
        assert_eq!(plan(&[3], 1, 1), Pinning::default());
        assert_eq!(plan(&[0, 1, 2], 2, 0).to_string(), "not pinned");
        // The client never takes every CPU.
        assert_eq!(plan(&[0, 1, 2], 1, 5).client, [1, 2]);
    }

    #[test]
    fn lists_and_ladders() {
        assert_eq!(list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(list(&[5]), "5");
        assert_eq!(doubling(2), [1, 2]);
        assert_eq!(doubling(16), [1, 2, 4, 8, 16]);
        assert_eq!(doubling(12), [1, 2, 4, 8, 12]);
        assert_eq!(doubling(1), [1]);
    }

    #[test]
    fn pinned_commands_go_through_taskset() {
        let mut cmd = Command::new("wrk");
        cmd.arg("-t1").env("A", "b");
        let p = pinned(cmd, &[1]);
        assert_eq!(p.get_program(), "taskset");
        let args: Vec<_> = p.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(args, ["-c", "1", "wrk", "-t1"]);
        assert_eq!(p.get_envs().count(), 1);
        assert_eq!(pinned(Command::new("wrk"), &[]).get_program(), "wrk");
    }
}
