//! Readings of a process from `/proc`: resident memory and CPU time.

use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

/// Clock ticks per second of `/proc/PID/stat` times (USER_HZ, 100 on Linux).
pub const TICKS_PER_S: f64 = 100.0;

/// `VmRSS` of `pid` in KiB, from `/proc/PID/status`.
pub fn vm_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of `pid` in clock ticks, from `/proc/PID/stat`.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("unreadable {path}"))
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the `(comm)`, which may contain spaces: state is field 3,
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Busy (non-idle, non-iowait) clock ticks of the whole machine, from `/proc/stat`.
pub fn machine_busy_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_machine_busy(&stat).context("unreadable /proc/stat")
}

fn parse_machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some(total - idle)
}

/// CPU used over an interval, in cores (1.0 = one core busy).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuUse {
    /// The hub's CPU use, when its pid is known (all hub processes together
    /// when a run has several).
    pub hub_cores: Option<f64>,
    /// The Redis server's CPU use, in runs against a cluster the harness started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cores: Option<f64>,
    /// This load generator's own CPU use (the coordinating process only).
    pub loadgen_cores: Option<f64>,
    /// The whole machine's CPU use: above hub + load generator means other
    /// processes competed for the cores during the run.
    pub machine_cores: Option<f64>,
}

/// Starts measuring CPU use of the hub (if `hub_pid`) and of this process.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    start: Instant,
    hubs: Vec<(u32, u64)>,
    redis: Option<(u32, u64)>,
    me: Option<u64>,
    machine: Option<u64>,
}

impl CpuMeter {
    /// Takes the starting readings.
    pub fn start(hub_pid: Option<u32>) -> Self {
        Self::start_many(hub_pid.as_slice(), None)
    }

    /// Takes the starting readings of several hub processes (their use is
    /// summed) and, optionally, of a Redis server.
    pub fn start_many(hub_pids: &[u32], redis_pid: Option<u32>) -> Self {
        let reading = |pid: u32| cpu_ticks(pid).ok().map(|t| (pid, t));
        Self {
            start: Instant::now(),
            hubs: hub_pids.iter().filter_map(|&pid| reading(pid)).collect(),
            redis: redis_pid.and_then(reading),
            me: cpu_ticks(std::process::id()).ok(),
            machine: machine_busy_ticks().ok(),
        }
    }

    /// CPU use since [`CpuMeter::start`].
    pub fn stop(&self) -> CpuUse {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let cores = |ticks: u64| crate::latency::round3(ticks as f64 / TICKS_PER_S / secs);
        let used =
            |(pid, before): (u32, u64)| cpu_ticks(pid).ok().map(|a| a.saturating_sub(before));
        let hub_ticks: Option<u64> = if self.hubs.is_empty() {
            None
        } else {
            self.hubs.iter().map(|&h| used(h)).sum()
        };
        CpuUse {
            hub_cores: hub_ticks.map(cores),
            redis_cores: self.redis.and_then(used).map(cores),
            loadgen_cores: self
                .me
                .and_then(|before| used((std::process::id(), before)))
                .map(cores),
            machine_cores: self
                .machine
                .and_then(|before| machine_busy_ticks().ok().map(|a| a.saturating_sub(before)))
                .map(cores),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\thub\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_a_comm_with_spaces() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 4";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
    }

    #[test]
    fn reads_machine_busy_ticks() {
        let stat = "cpu  100 5 50 1000 20 1 2 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_machine_busy(stat), Some(158));
        assert!(machine_busy_ticks().is_ok());
    }

    #[test]
    fn reads_this_process() {
        assert!(vm_rss_kib(std::process::id()).is_ok_and(|kib| kib > 0));
        assert!(cpu_ticks(std::process::id()).is_ok());
    }
}
