//! Scenario plans: what each subcommand, and `all`, runs with which targets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use hub_bench::endpoint::Endpoint;
use hub_bench::hub::{keyed_room_env, Storage};
use hub_bench::report::{Check, Report};
use hub_bench::scenario::churn::{self, ChurnParams};
use hub_bench::scenario::cluster::{self, ClusterParams, Topology};
use hub_bench::scenario::conns::{self, ConnsParams};
use hub_bench::scenario::fanout::{self, FanoutParams, FanoutResult};
use hub_bench::scenario::keyed::{self, KeyedReplayParams};
use hub_bench::scenario::restart::{self, RestartParams};

use crate::cli::{
    ChurnArgs, ClusterArgs, ConnsArgs, FanoutArgs, FanoutMaxArgs, KeyedReplayArgs,
    KeyedVsPlainArgs, PublishRateArgs, PublishRttArgs, RestartArgs, TransportArg,
};

/// `publish-rate` meets its target when at least this share of the rate was
/// acknowledged per second.
pub const ACHIEVED_RATE_SHARE: f64 = 0.95;

/// Targets of a publish load (`publish-rate`, `publish-rtt`), beyond no errors.
#[derive(Debug, Clone, Default)]
pub struct PublishTargets {
    /// Acknowledged publishes per second at least this.
    achieved_per_s: Option<f64>,
    /// Publish round trip p50 at most this (ms).
    rtt_p50_ms: Option<f64>,
}

/// Latency targets a fan-out run is checked against, beyond exactness.
#[derive(Debug, Clone, Default)]
pub struct FanoutTargets {
    p99_ms: Option<f64>,
    p50_ms: Option<f64>,
    publish_p50_ms: Option<f64>,
    deliveries_per_s: Option<f64>,
}

/// One planned run.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// Idle connections (optionally with a fan-out on top).
    Conns(ConnsParams),
    /// A fan-out at a rate, or flat out when `rate` is `None`.
    Fanout(FanoutParams, FanoutTargets),
    /// Connect / subscribe / close cycles.
    Churn(ChurnParams),
    /// A fan-out against hubs (and a Redis) the run starts itself.
    Cluster(ClusterParams),
    /// HTTP publishes into one room at a rate (0 or more subscribers):
    /// `publish-rate`, or `publish-rtt` when `sequential` (one in flight, low rate).
    Publish {
        /// The load (a fan-out with few or no subscribers).
        params: FanoutParams,
        /// What it must meet.
        targets: PublishTargets,
        /// The round-trip flavour, `publish-rtt`.
        rtt: bool,
    },
    /// A durable hub stopped and started again on its store.
    Restart(RestartParams),
    /// A keyed room's state replayed to fresh subscribers.
    KeyedReplay(KeyedReplayParams),
}

impl Scenario {
    /// The scenario's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Conns(_) => "conns",
            Scenario::Fanout(p, _) if p.rate.is_none() && p.keys.is_some() => "fanout-max-keyed",
            Scenario::Fanout(p, _) if p.rate.is_none() => "fanout-max",
            Scenario::Fanout(p, _) if p.keys.is_some() => "fanout-keyed",
            Scenario::Fanout(..) => "fanout",
            Scenario::Churn(_) => "churn",
            Scenario::Cluster(p) if p.fanout.rate.is_none() => "cluster-max",
            Scenario::Cluster(_) => "cluster",
            Scenario::Publish { rtt: true, .. } => "publish-rtt",
            Scenario::Publish { .. } => "publish-rate",
            Scenario::Restart(_) => "restart",
            Scenario::KeyedReplay(_) => "keyed-replay",
        }
    }

    /// What a hub the harness starts for this scenario needs beyond its
    /// defaults: a keyed room, for the keyed scenarios.
    pub fn hub_env(&self) -> Vec<(String, String)> {
        match self {
            Scenario::KeyedReplay(p) => keyed_room_env(p.keys),
            Scenario::Fanout(p, _) => p.keys.map(keyed_room_env).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// True when the scenario starts its own hubs (no --url, no shared hub).
    pub fn starts_own_hubs(&self) -> bool {
        matches!(self, Scenario::Cluster(_) | Scenario::Restart(_))
    }

    /// Runs a scenario that starts its own hubs.
    pub async fn run_standalone(&self) -> Result<Report> {
        match self {
            Scenario::Cluster(p) => {
                let r = cluster::run(p).await?;
                Report::new(self.name(), p, &r, r.checks(p))
            }
            Scenario::Restart(p) => {
                let r = restart::run(p).await?;
                Report::new(self.name(), p, &r, r.checks(p))
            }
            _ => bail!("{} needs a hub to run against", self.name()),
        }
    }

    /// Runs it against `endpoint` and checks its targets.
    pub async fn run(&self, endpoint: &Endpoint) -> Result<Report> {
        match self {
            Scenario::Conns(p) => {
                let r = conns::run(endpoint, p).await?;
                Report::new(self.name(), p, &r, r.checks(p))
            }
            Scenario::Fanout(p, t) => {
                let r = fanout::run(endpoint, p).await?;
                let mut checks = r.exactness_checks(p.subscribers);
                if p.keys.is_some() {
                    // A key sent to a room that is not keyed is refused (400):
                    // no error means every publish went into the keyed state.
                    checks.push(Check::equals("publish_errors", r.publish_errors, 0));
                    if t.deliveries_per_s.is_none() {
                        checks.push(Check::reported("deliveries_per_s", r.deliveries_per_s));
                    }
                }
                if let Some(limit) = t.p99_ms {
                    checks.push(Check::at_most(
                        "latency_p99_ms",
                        r.latency.p99_ms,
                        limit,
                        "ms",
                    ));
                }
                if let Some(limit) = t.p50_ms {
                    checks.push(Check::at_most(
                        "latency_p50_ms",
                        r.latency.p50_ms,
                        limit,
                        "ms",
                    ));
                }
                if let Some(limit) = t.publish_p50_ms {
                    let p50 = r.publish_rtt.p50_ms;
                    checks.push(Check::at_most("publish_rtt_p50_ms", p50, limit, "ms"));
                }
                if let Some(limit) = t.deliveries_per_s {
                    checks.push(Check::at_least(
                        "deliveries_per_s",
                        r.deliveries_per_s,
                        limit,
                        "/s",
                    ));
                }
                Report::new(self.name(), p, &r, checks)
            }
            Scenario::Churn(p) => {
                let r = churn::run(endpoint, p).await?;
                Report::new(self.name(), p, &r, r.checks(p))
            }
            Scenario::KeyedReplay(p) => {
                let r = keyed::run(endpoint, p).await?;
                Report::new(self.name(), p, &r, r.checks(p))
            }
            Scenario::Publish {
                params, targets, ..
            } => {
                let r = fanout::run(endpoint, params).await?;
                Report::new(self.name(), params, &r, publish_checks(params, targets, &r))
            }
            Scenario::Cluster(_) => bail!("cluster starts its own hubs; it cannot use --url"),
            Scenario::Restart(_) => bail!("restart starts its own hubs; it cannot use --url"),
        }
    }
}

/// No publish failed, the targets, and with subscribers exact delivery; the
/// offered rate and round trips are reported.
fn publish_checks(p: &FanoutParams, t: &PublishTargets, r: &FanoutResult) -> Vec<Check> {
    let mut checks = vec![Check::equals("publish_errors", r.publish_errors, 0)];
    if let Some(limit) = t.achieved_per_s {
        checks.push(Check::at_least(
            "acked_per_s",
            r.publish_rate_per_s,
            limit,
            "/s",
        ));
    }
    if let Some(offered) = r.offered_rate_per_s {
        checks.push(Check::reported("offered_per_s", offered));
    }
    match t.rtt_p50_ms {
        Some(limit) => checks.push(Check::at_most(
            "publish_rtt_p50_ms",
            r.publish_rtt.p50_ms,
            limit,
            "ms",
        )),
        None => checks.push(Check::reported("publish_rtt_p50_ms", r.publish_rtt.p50_ms)),
    }
    checks.push(Check::reported("publish_rtt_p99_ms", r.publish_rtt.p99_ms));
    if p.subscribers > 0 {
        checks.extend(r.exactness_checks(p.subscribers));
    }
    checks
}

/// `conns` as asked on the command line.
pub fn conns(a: &ConnsArgs, room: &str, exe: PathBuf) -> Scenario {
    let fanout = a.fanout_subs.map(|subs| {
        FanoutParams::new(
            room,
            subs as usize,
            Some(a.fanout_rate),
            a.fanout_duration_s,
        )
    });
    Scenario::Conns(ConnsParams {
        count: a.count as usize,
        per_worker: a.per_worker as usize,
        sources_per_worker: a.sources_per_worker as usize,
        connect_concurrency: a.concurrency as usize,
        hold_s: a.hold_s,
        status_interval_ms: a.status_interval_ms,
        fanout,
        transport: a.transport.into(),
        room: room.to_owned(),
        subscribe: a.subscribe,
        worker_exe: exe,
    })
}

/// `fanout` as asked on the command line.
pub fn fanout(a: &FanoutArgs, room: &str) -> Scenario {
    let mut p = FanoutParams::new(room, a.subs as usize, Some(a.rate), a.duration_s);
    p.publishers = a.publishers as usize;
    p.transport = a.transport.into();
    let targets = FanoutTargets {
        p99_ms: a.target_p99_ms,
        p50_ms: a.target_p50_ms,
        publish_p50_ms: a.target_publish_p50_ms,
        deliveries_per_s: None,
    };
    Scenario::Fanout(p, targets)
}

/// `fanout-max` as asked on the command line.
pub fn fanout_max(a: &FanoutMaxArgs, room: &str) -> Scenario {
    let mut p = FanoutParams::new(room, a.subs as usize, None, a.duration_s);
    p.publishers = a.publishers as usize;
    p.transport = a.transport.into();
    if a.keyed {
        p.keys = Some(a.keys as usize);
    }
    let targets = FanoutTargets {
        deliveries_per_s: a.target_deliveries_per_s,
        ..Default::default()
    };
    Scenario::Fanout(p, targets)
}

/// `keyed-replay` as asked on the command line.
pub fn keyed_replay(a: &KeyedReplayArgs, room: &str) -> Scenario {
    Scenario::KeyedReplay(KeyedReplayParams {
        room: room.to_owned(),
        keys: a.keys as usize,
        subscribers: a.subscribers as usize,
        batch_items: a.batch_items as usize,
        concurrency: a.concurrency as usize,
        settle_ms: a.settle_ms,
    })
}

/// `keyed-vs-plain`: `repeat` pairs of `fanout-max`, plain room then keyed
/// room, each on a fresh hub.
pub fn keyed_vs_plain(a: &KeyedVsPlainArgs, room: &str) -> Vec<Scenario> {
    let run = |keyed: bool| {
        let args = FanoutMaxArgs {
            subs: a.subs,
            duration_s: a.duration_s,
            publishers: a.publishers,
            target_deliveries_per_s: None,
            keyed,
            keys: a.keys,
            transport: TransportArg::Websocket,
        };
        fanout_max(&args, room)
    };
    (0..a.repeat)
        .flat_map(|_| [run(false), run(true)])
        .collect()
}

/// With `fanout-max` reports of both a plain and a keyed room among
/// `reports`: one `keyed-vs-plain` report, the ratio of their median
/// deliveries per second checked against `target`.
pub fn keyed_vs_plain_report(reports: &[Report], target: f64) -> Result<Option<Report>> {
    let rates = |name: &str| -> Vec<f64> {
        reports
            .iter()
            .filter(|r| r.scenario == name)
            .filter_map(|r| r.results.get("deliveries_per_s").and_then(|v| v.as_f64()))
            .collect()
    };
    let (plain, keyed) = (rates("fanout-max"), rates("fanout-max-keyed"));
    let (Some(plain_median), Some(keyed_median)) = (median(&plain), median(&keyed)) else {
        return Ok(None);
    };
    let ratio = if plain_median > 0.0 {
        (keyed_median / plain_median * 1000.0).round() / 1000.0
    } else {
        0.0
    };
    let keyed_params = reports
        .iter()
        .find(|r| r.scenario == "fanout-max-keyed")
        .map(|r| r.params.clone())
        .unwrap_or_default();
    let param = |k: &str| keyed_params.get(k).cloned().unwrap_or_default();
    let params = serde_json::json!({
        "subscribers": param("subscribers"),
        "duration_s": param("duration_s"),
        "keys": param("keys"),
        "runs": plain.len().min(keyed.len()),
        "target_ratio": target,
    });
    let results = serde_json::json!({
        "plain_deliveries_per_s": plain,
        "keyed_deliveries_per_s": keyed,
        "plain_median_deliveries_per_s": plain_median,
        "keyed_median_deliveries_per_s": keyed_median,
        "keyed_over_plain": ratio,
    });
    let checks = vec![
        Check::reported("plain_deliveries_per_s", plain_median),
        Check::reported("keyed_deliveries_per_s", keyed_median),
        Check::at_least("keyed_over_plain", ratio, target, "×"),
    ];
    Report::new("keyed-vs-plain", &params, &results, checks).map(Some)
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// `churn` as asked on the command line.
pub fn churn(a: &ChurnArgs, room: &str) -> Scenario {
    Scenario::Churn(ChurnParams {
        cycles: a.cycles,
        concurrency: a.concurrency as usize,
        room: room.to_owned(),
        source_ips: a.source_ips as usize,
        await_tcp_close: a.await_tcp_close,
        warmup_cycles: a.warmup_cycles,
    })
}

/// `publish-rate` as asked on the command line: open-loop at the rate, as many
/// requests in flight (keep-alive connections) as it takes, up to the cap.
pub fn publish_rate(a: &PublishRateArgs, room: &str) -> Scenario {
    let mut params = FanoutParams::new(room, a.subs as usize, Some(a.rate), a.duration_s);
    params.publishers = a.max_in_flight as usize;
    Scenario::Publish {
        params,
        targets: PublishTargets {
            achieved_per_s: Some(ACHIEVED_RATE_SHARE * a.rate),
            rtt_p50_ms: None,
        },
        rtt: false,
    }
}

/// `publish-rtt` as asked on the command line: a low rate, one request in
/// flight, for the round trip of a single publish.
pub fn publish_rtt(a: &PublishRttArgs, room: &str) -> Scenario {
    let mut params = FanoutParams::new(room, a.subs as usize, Some(a.rate), a.duration_s);
    params.publishers = a.in_flight as usize;
    Scenario::Publish {
        params,
        targets: PublishTargets {
            achieved_per_s: None,
            rtt_p50_ms: Some(a.target_p50_ms),
        },
        rtt: true,
    }
}

/// `restart` as asked on the command line; refused unless the hubs are durable.
pub fn restart(a: &RestartArgs, storage: Storage, hub_bin: &Path) -> Result<Scenario> {
    if !storage.is_durable() {
        bail!(
            "restart measures a durable store across restarts: run it with --storage durable \
             (a memory hub keeps nothing to restart from)"
        );
    }
    Ok(Scenario::Restart(RestartParams {
        rooms: a.rooms as usize,
        events_per_room: a.events_per_room as usize,
        batch_items: a.batch_items as usize,
        concurrency: a.concurrency as usize,
        kill_round: !a.no_kill,
        storage,
        hub_bin: hub_bin.to_owned(),
    }))
}

/// `cluster`: for the fixed-rate and the flat-out fan-out (unless skipped),
/// `repeat` rounds of every topology in turn.
pub fn cluster(a: &ClusterArgs, room: &str, hub_bin: &Path, storage: Storage) -> Vec<Scenario> {
    let topologies = a.topologies.clone().unwrap_or_else(|| {
        vec![
            Topology::Single,
            Topology::Cluster { nodes: 1 },
            Topology::Cluster {
                nodes: a.nodes as usize,
            },
        ]
    });
    let mut loads = Vec::new();
    if !a.no_rate {
        let mut p = FanoutParams::new(room, a.subs as usize, Some(a.rate), a.duration_s);
        p.publishers = a.publishers as usize;
        loads.push(p);
    }
    if !a.no_max {
        let mut p = FanoutParams::new(room, a.subs as usize, None, a.max_duration_s);
        p.publishers = a.max_publishers as usize;
        loads.push(p);
    }
    let mut plan = Vec::new();
    for fanout in &loads {
        for _ in 0..a.repeat {
            for &topology in &topologies {
                plan.push(Scenario::Cluster(ClusterParams {
                    topology,
                    fanout: fanout.clone(),
                    hub_bin: hub_bin.to_owned(),
                    redis_bin: a.redis_bin.clone(),
                    storage,
                }));
            }
        }
    }
    plan
}

/// The target table (with `fanout-max` also on a keyed room, and
/// `keyed-replay`), with counts and durations scaled by `scale`;
/// with durable storage followed by `publish-rate`, `publish-rtt` and
/// `restart` (which needs a store).
pub fn all(
    scale: f64,
    room: &str,
    exe: PathBuf,
    storage: Storage,
    hub_bin: &Path,
) -> Result<Vec<Scenario>> {
    if !(scale > 0.0 && scale <= 1.0) {
        bail!("--scale must be in (0, 1]");
    }
    let n = |x: f64| ((x * scale).round() as u64).max(1);
    let secs = |x: f64| (x * scale).max(1.0);
    let conns_args = ConnsArgs {
        count: n(18_000.0),
        per_worker: 9_000,
        sources_per_worker: 2,
        concurrency: 128,
        hold_s: 3.0,
        status_interval_ms: 20,
        fanout_subs: Some(n(200.0)),
        fanout_rate: 100.0,
        fanout_duration_s: secs(10.0),
        transport: TransportArg::Websocket,
        subscribe: false,
    };
    let fanout_small = FanoutArgs {
        subs: n(200.0),
        rate: 100.0,
        duration_s: secs(10.0),
        publishers: 32,
        target_p99_ms: Some(8.0),
        target_p50_ms: None,
        target_publish_p50_ms: Some(3.0),
        transport: TransportArg::Websocket,
    };
    let fanout_large = FanoutArgs {
        subs: n(2_000.0),
        rate: 20.0,
        duration_s: secs(10.0),
        publishers: 32,
        target_p99_ms: None,
        target_p50_ms: Some(40.0),
        target_publish_p50_ms: Some(2.0),
        transport: TransportArg::Websocket,
    };
    let fanout_max_args = FanoutMaxArgs {
        subs: n(1_000.0),
        duration_s: secs(10.0),
        publishers: 4,
        target_deliveries_per_s: Some(125_000.0),
        keyed: false,
        keys: 1_000,
        transport: TransportArg::Websocket,
    };
    let fanout_max_keyed_args = FanoutMaxArgs {
        keyed: true,
        target_deliveries_per_s: None,
        ..fanout_max_args
    };
    let keyed_replay_args = KeyedReplayArgs {
        keys: n(10_000.0),
        subscribers: 20,
        batch_items: 500,
        concurrency: 4,
        settle_ms: 1_000,
    };
    let churn_args = ChurnArgs {
        cycles: n(10_000.0),
        concurrency: 50,
        source_ips: 8,
        await_tcp_close: false,
        warmup_cycles: n(2_000.0),
    };
    let mut plan = vec![
        conns(&conns_args, room, exe),
        fanout(&fanout_small, room),
        fanout(&fanout_large, room),
        fanout_max(&fanout_max_args, room),
        fanout_max(&fanout_max_keyed_args, room),
        keyed_replay(&keyed_replay_args, room),
        churn(&churn_args, room),
    ];
    if storage.is_durable() {
        let rate_args = PublishRateArgs {
            rate: 10_000.0,
            duration_s: secs(10.0),
            subs: 1,
            max_in_flight: 512,
        };
        let rtt_args = PublishRttArgs {
            rate: 100.0,
            duration_s: secs(10.0),
            in_flight: 1,
            subs: 0,
            target_p50_ms: 3.0,
        };
        let restart_args = RestartArgs {
            rooms: n(10_000.0),
            events_per_room: 10,
            batch_items: 500,
            concurrency: 4,
            no_kill: false,
        };
        plan.push(publish_rate(&rate_args, room));
        plan.push(publish_rtt(&rtt_args, room));
        plan.push(restart(&restart_args, storage, hub_bin)?);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_has_the_target_table_sizes() {
        let hub = Path::new("hub");
        let plan = all(1.0, "bench", PathBuf::from("x"), Storage::Memory, hub).expect("plan");
        let names: Vec<_> = plan.iter().map(Scenario::name).collect();
        assert_eq!(
            names,
            [
                "conns",
                "fanout",
                "fanout",
                "fanout-max",
                "fanout-max-keyed",
                "keyed-replay",
                "churn"
            ]
        );
        assert!(plan[3].hub_env().is_empty());
        match (&plan[4], &plan[5]) {
            (Scenario::Fanout(p, t), Scenario::KeyedReplay(k)) => {
                assert_eq!((p.subscribers, p.keys), (1_000, Some(1_000)));
                assert_eq!(t.deliveries_per_s, None);
                assert_eq!((k.keys, k.subscribers), (10_000, 20));
            }
            other => panic!("unexpected {other:?}"),
        }
        let env = plan[5].hub_env();
        assert!(env.contains(&("HUB_ROOMS__KEYED".to_owned(), "true".to_owned())));
        assert!(env.contains(&("HUB_ROOMS__MAX_KEYS".to_owned(), "10000".to_owned())));
        match &plan[0] {
            Scenario::Conns(p) => {
                assert_eq!(p.count, 18_000);
                assert_eq!(p.fanout.as_ref().map(|f| f.subscribers), Some(200));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(all(0.0, "bench", PathBuf::from("x"), Storage::Memory, hub).is_err());
    }

    #[test]
    fn durable_all_adds_the_store_scenarios() {
        let storage = Storage::Durable { fsync: true };
        let plan = all(0.1, "bench", PathBuf::from("x"), storage, Path::new("hub")).expect("plan");
        let names: Vec<_> = plan.iter().map(Scenario::name).collect();
        assert_eq!(
            names,
            [
                "conns",
                "fanout",
                "fanout",
                "fanout-max",
                "fanout-max-keyed",
                "keyed-replay",
                "churn",
                "publish-rate",
                "publish-rtt",
                "restart"
            ]
        );
        match &plan[9] {
            Scenario::Restart(p) => {
                assert_eq!((p.rooms, p.events_per_room), (1_000, 10));
                assert_eq!(p.storage, storage);
            }
            other => panic!("unexpected {other:?}"),
        }
        match &plan[7] {
            Scenario::Publish { params, .. } => {
                assert_eq!(params.rate, Some(10_000.0));
                assert_eq!(params.subscribers, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn keyed_vs_plain_alternates_and_compares_medians() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from([
            "hub-bench",
            "keyed-vs-plain",
            "--repeat",
            "2",
            "--keys",
            "50",
        ]);
        let crate::cli::Command::KeyedVsPlain(a) = &cli.command else {
            panic!("not keyed-vs-plain: {:?}", cli.command);
        };
        let plan = keyed_vs_plain(a, "bench");
        let names: Vec<_> = plan.iter().map(Scenario::name).collect();
        assert_eq!(
            names,
            [
                "fanout-max",
                "fanout-max-keyed",
                "fanout-max",
                "fanout-max-keyed"
            ]
        );
        let env = plan[1].hub_env();
        assert!(env.contains(&("HUB_ROOMS__MAX_KEYS".to_owned(), "50".to_owned())));
        let report = |name: &str, rate: f64| {
            let params = serde_json::json!({"subscribers": 10, "duration_s": 1.0, "keys": 50});
            let results = serde_json::json!({"deliveries_per_s": rate});
            Report::new(name, &params, &results, vec![]).expect("report")
        };
        let reports = [
            report("fanout-max", 100.0),
            report("fanout-max-keyed", 95.0),
            report("fanout-max", 120.0),
            report("fanout-max-keyed", 99.0), // medians 110 and 97
        ];
        let r = keyed_vs_plain_report(&reports, 0.9)
            .expect("report")
            .expect("both kinds present");
        assert_eq!(r.results["keyed_over_plain"].as_f64(), Some(0.882));
        assert!(!r.target_met);
        assert_eq!(
            r.label(),
            "keyed-vs-plain fanout-max 10 subs × 1 s (50 keys)"
        );
        assert!(keyed_vs_plain_report(&reports[..1], 0.9)
            .expect("report")
            .is_none());
    }

    #[test]
    fn keyed_replay_takes_its_sizes() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["hub-bench", "keyed-replay", "--keys", "2000"]);
        let crate::cli::Command::KeyedReplay(a) = &cli.command else {
            panic!("not keyed-replay: {:?}", cli.command);
        };
        match keyed_replay(a, "bench") {
            Scenario::KeyedReplay(p) => {
                assert_eq!((p.keys, p.subscribers, p.batch_items), (2_000, 20, 500));
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = crate::cli::Cli::parse_from(["hub-bench", "fanout-max", "--keyed"]);
        let crate::cli::Command::FanoutMax(a) = &cli.command else {
            panic!("not fanout-max");
        };
        let s = fanout_max(a, "bench");
        assert_eq!(s.name(), "fanout-max-keyed");
        assert!(matches!(&s, Scenario::Fanout(p, _) if p.keys == Some(1_000)));
    }

    #[test]
    fn restart_is_refused_on_memory() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["hub-bench", "restart", "--rooms", "5"]);
        let crate::cli::Command::Restart(a) = &cli.command else {
            panic!("not restart: {:?}", cli.command);
        };
        let refused = restart(a, Storage::Memory, Path::new("hub"));
        assert!(refused.is_err_and(|e| e.to_string().contains("--storage durable")));
        let durable = restart(a, Storage::Durable { fsync: false }, Path::new("hub"));
        assert!(matches!(durable, Ok(Scenario::Restart(p)) if p.rooms == 5 && p.kill_round));
    }

    #[test]
    fn publish_rate_checks_rate_errors_and_exactness() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["hub-bench", "publish-rate", "--rate", "2000"]);
        let crate::cli::Command::PublishRate(a) = &cli.command else {
            panic!("not publish-rate: {:?}", cli.command);
        };
        let Scenario::Publish {
            params, targets, ..
        } = publish_rate(a, "bench")
        else {
            panic!("not a publish load");
        };
        assert_eq!(targets.achieved_per_s, Some(1_900.0));
        assert_eq!((params.subscribers, params.publishers), (1, 512));
    }

    #[test]
    fn cluster_runs_every_topology_at_a_rate_then_flat_out() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["hub-bench", "cluster", "--repeat", "2"]);
        let crate::cli::Command::Cluster(a) = &cli.command else {
            panic!("not cluster: {:?}", cli.command);
        };
        let plan = cluster(a, "bench", Path::new("hub"), Storage::Memory);
        let runs: Vec<_> = plan
            .iter()
            .map(|s| match s {
                Scenario::Cluster(p) => (s.name(), p.topology.to_string(), p.fanout.subscribers),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let topologies = ["single", "cluster-1", "cluster-2"];
        assert_eq!(runs.len(), 12);
        for (i, (name, topology, subs)) in runs.iter().enumerate() {
            assert_eq!(*name, if i < 6 { "cluster" } else { "cluster-max" });
            assert_eq!(topology, topologies[i % 3]);
            assert_eq!(*subs, 1_000);
        }
        let cli = crate::cli::Cli::parse_from([
            "hub-bench",
            "cluster",
            "--no-max",
            "--topologies",
            "cluster-3,single",
        ]);
        let crate::cli::Command::Cluster(a) = &cli.command else {
            panic!("not cluster");
        };
        let names: Vec<_> = cluster(a, "bench", Path::new("hub"), Storage::Memory)
            .iter()
            .map(|s| match s {
                Scenario::Cluster(p) => p.topology.to_string(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(names, ["cluster-3", "single"]);
    }
}
