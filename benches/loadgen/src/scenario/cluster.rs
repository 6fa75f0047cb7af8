//! `cluster`: one fan-out, run against hubs in three deployments.
//!
//! - **single**: one hub without Redis (the single-node baseline);
//! - **cluster-1**: one hub in cluster mode on a private Redis;
//! - **cluster-N**: N hubs in cluster mode on one private Redis, subscribers
//!   spread evenly over them, publishes going to the nodes in turn.
//!
//! Each run starts its own hubs and, for cluster runs, its own `redis-server`
//! ([`crate::redis`]) on a free loopback port, and ends them all afterwards.
//! The fan-out itself is [`fanout::run_multi`]: the same exact accounting of
//! every subscriber's seqs, so in a cluster an event published on node 0 must
//! reach the subscribers of node 1 in the room's single cluster-wide order.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Serialize, Serializer};

use crate::endpoint::Endpoint;
use crate::hub::{HubProcess, Storage};
use crate::redis::RedisProcess;
use crate::report::Check;
use crate::scenario::fanout::{self, FanoutParams, FanoutResult};

/// How long a cluster node has to report ready (connected to Redis).
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The most hub nodes one run starts.
pub const MAX_NODES: usize = 8;

/// Which hubs a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One hub without Redis.
    Single,
    /// `nodes` hubs in cluster mode on one Redis.
    Cluster {
        /// Hub processes.
        nodes: usize,
    },
}

impl Topology {
    /// Hub processes in this topology.
    pub fn nodes(self) -> usize {
        match self {
            Topology::Single => 1,
            Topology::Cluster { nodes } => nodes,
        }
    }

    /// True when the hubs run in cluster mode (with a Redis).
    pub fn uses_redis(self) -> bool {
        matches!(self, Topology::Cluster { .. })
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::Single => f.write_str("single"),
            Topology::Cluster { nodes } => write!(f, "cluster-{nodes}"),
        }
    }
}

impl FromStr for Topology {
    type Err = String;

    /// `single`, or `cluster-N` with N from 1 to [`MAX_NODES`].
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "single" {
            return Ok(Topology::Single);
        }
        let nodes = text
            .strip_prefix("cluster-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=MAX_NODES).contains(n));
        match nodes {
            Some(nodes) => Ok(Topology::Cluster { nodes }),
            None => Err(format!(
                "`{text}` is not a topology: use single or cluster-N (N = 1..={MAX_NODES})"
            )),
        }
    }
}

impl Serialize for Topology {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What a cluster run does.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterParams {
    /// The hubs to start.
    pub topology: Topology,
    /// The fan-out to run against them.
    #[serde(flatten)]
    pub fanout: FanoutParams,
    /// The hub binary.
    pub hub_bin: PathBuf,
    /// The `redis-server` binary (cluster topologies).
    pub redis_bin: PathBuf,
    /// Where each hub keeps its rooms (in cluster mode Redis is the store and
    /// the hubs do not use theirs). Reported at the top of the report.
    #[serde(skip)]
    pub storage: Storage,
}

/// What a cluster run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterResult {
    /// The hubs the run used.
    pub topology: Topology,
    /// Hub processes.
    pub nodes: usize,
    /// The fan-out's measurements (per-node splits when there are several nodes).
    #[serde(flatten)]
    pub fanout: FanoutResult,
    /// Hub processes still running after the run (should be all of them).
    pub hubs_running_after: usize,
    /// Warning, error and panic lines the hubs logged during the run, i.e.
    /// once they were ready (they run with `RUST_LOG=warn`).
    pub hub_log_problems: u64,
    /// The first such line, if any.
    pub first_hub_log_problem: Option<String>,
    /// Where the hubs' logs are (kept after the run).
    pub hub_logs: Vec<String>,
}

impl ClusterResult {
    /// Exactness checks, plus: no publish failed, no seq arrived that was not
    /// published, every hub survived.
    pub fn checks(&self, params: &ClusterParams) -> Vec<Check> {
        let mut checks = self.fanout.exactness_checks(params.fanout.subscribers);
        checks.push(Check::equals(
            "unexpected",
            self.fanout.counts.unexpected,
            0,
        ));
        checks.push(Check::equals(
            "publish_errors",
            self.fanout.publish_errors,
            0,
        ));
        checks.push(Check::equals(
            "hubs_running_after",
            self.hubs_running_after as u64,
            self.nodes as u64,
        ));
        checks
    }
}

/// The processes of one run: hubs first, so they are ended before their Redis.
#[derive(Debug)]
pub struct Deployment {
    hubs: Vec<HubProcess>,
    redis: Option<RedisProcess>,
}

impl Deployment {
    /// Starts the Redis (cluster topologies) and the hubs, each with its own
    /// `storage`, and waits until every hub is ready.
    pub async fn start(
        topology: Topology,
        hub_bin: &std::path::Path,
        redis_bin: &std::path::Path,
        storage: Storage,
    ) -> Result<Self> {
        let redis = if topology.uses_redis() {
            Some(RedisProcess::start(redis_bin).await?)
        } else {
            None
        };
        let mut hubs = Vec::with_capacity(topology.nodes());
        for node in 0..topology.nodes() {
            let env = match &redis {
                Some(redis) => vec![
                    ("HUB_CLUSTER__REDIS_URL".to_owned(), redis.url()),
                    (
                        "HUB_CLUSTER__NODE_ID".to_owned(),
                        format!("bench-node-{node}"),
                    ),
                ],
                None => Vec::new(),
            };
            let mut hub = HubProcess::start_with_env(hub_bin, storage, &env)
                .await
                .with_context(|| format!("starting hub node {node} ({topology})"))?;
            hub.wait_ready(READY_TIMEOUT).await?;
            hubs.push(hub);
        }
        Ok(Self { hubs, redis })
    }

    /// The hubs, in node order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.hubs.iter().map(|h| h.endpoint().clone()).collect()
    }

    /// The Redis server's pid, in cluster topologies.
    pub fn redis_pid(&self) -> Option<u32> {
        self.redis.as_ref().map(RedisProcess::pid)
    }
}

/// Starts the topology, runs the fan-out against it, and ends it.
pub async fn run(params: &ClusterParams) -> Result<ClusterResult> {
    if params.topology.nodes() == 0 || params.topology.nodes() > MAX_NODES {
        bail!("a cluster run needs 1 to {MAX_NODES} nodes");
    }
    let mut deployment = Deployment::start(
        params.topology,
        &params.hub_bin,
        &params.redis_bin,
        params.storage,
    )
    .await?;
    let endpoints = deployment.endpoints();
    // What the hubs logged while starting (e.g. the loopback-only API
    // warning) is not part of the run.
    let log_starts: Vec<u64> = deployment
        .hubs
        .iter()
        .map(|h| std::fs::metadata(h.log_path()).map_or(0, |m| m.len()))
        .collect();
    let fanout = fanout::run_multi(&endpoints, deployment.redis_pid(), &params.fanout).await?;
    let hubs_running_after = deployment
        .hubs
        .iter_mut()
        .map(HubProcess::is_running)
        .filter(|&running| running)
        .count();
    let mut hub_log_problems = 0;
    let mut first_hub_log_problem = None;
    let mut hub_logs = Vec::new();
    for (hub, &start) in deployment.hubs.iter().zip(&log_starts) {
        let path = hub.log_path();
        hub_logs.push(path.display().to_string());
        let bytes = std::fs::read(path).unwrap_or_default();
        let during = bytes.get(start as usize..).unwrap_or_default();
        for line in String::from_utf8_lossy(during)
            .lines()
            .filter(|l| is_problem(l))
        {
            hub_log_problems += 1;
            first_hub_log_problem.get_or_insert_with(|| line.chars().take(300).collect());
        }
    }
    drop(deployment);
    Ok(ClusterResult {
        topology: params.topology,
        nodes: params.topology.nodes(),
        fanout,
        hubs_running_after,
        hub_log_problems,
        first_hub_log_problem,
        hub_logs,
    })
}

/// A log line that reports a problem (env_logger's text or JSON format).
fn is_problem(line: &str) -> bool {
    ["WARN", "ERROR", "panicked"]
        .iter()
        .any(|word| line.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies_parse_and_print() {
        for text in ["single", "cluster-1", "cluster-2", "cluster-8"] {
            let t: Topology = text.parse().expect(text);
            assert_eq!(t.to_string(), text);
        }
        assert_eq!("cluster-2".parse::<Topology>().map(Topology::nodes), Ok(2));
        assert!(!Topology::Single.uses_redis());
        for bad in ["cluster-0", "cluster-9", "cluster", "double", ""] {
            assert!(bad.parse::<Topology>().is_err(), "{bad}");
        }
    }

    #[test]
    fn log_problems_are_warnings_errors_and_panics() {
        assert!(is_problem(
            "[2026-11-22T15:55:09Z WARN  realtime_hub] redis gone"
        ));
        assert!(is_problem(r#"{"level":"ERROR","msg":"x"}"#));
        assert!(is_problem("thread 'main' panicked at src/x.rs"));
        assert!(!is_problem("realtime-hub listening on 127.0.0.1:9000"));
    }
}
