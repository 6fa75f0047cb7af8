//! Running a parsed command: its scenarios one after another, each on the hub
//! at --url or on a hub started for it, then the tables that compare them.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use hub_bench::endpoint::Endpoint;
use hub_bench::hub::HubProcess;
use hub_bench::report::{cluster_table, markdown_table, Report};
use hub_bench::scenario::presence;
use hub_bench::scenario::soak::{self, SoakParams};
use hub_bench::worker::{self, WorkerParams};

use crate::cli::{Cli, Command, KEYED_VS_PLAIN_TARGET};
use crate::plan::{self, Scenario};

/// Runs the parsed command within `--max-run-s`, stopping early on Ctrl-C.
pub async fn run(cli: Cli) -> Result<()> {
    let limit = Duration::from_secs(cli.max_run_s);
    tokio::select! {
        outcome = tokio::time::timeout(limit, dispatch(cli)) => {
            outcome.with_context(|| format!("run exceeded --max-run-s ({}s)", limit.as_secs()))?
        }
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let storage = cli.storage();
    let worker = matches!(cli.command, Command::ConnsWorker(_));
    if !worker && cli.url.is_some() && storage.is_durable() {
        bail!(
            "--storage applies to the hubs the harness starts; a hub given with --url keeps \
             its own storage"
        );
    }
    if !worker && !storage.is_durable() && !cli.fsync {
        bail!("--fsync false needs --storage durable (a memory hub has nothing to sync)");
    }
    let scenarios = match &cli.command {
        Command::Soak(a) => {
            if cli.url.is_some() {
                bail!(
                    "soak starts its own hubs, Redis and Sentinels: it takes --hub-bin, not --url"
                );
            }
            if a.min_life_s > a.max_life_s {
                bail!("--min-life-s is above --max-life-s");
            }
            let params = SoakParams {
                duration_s: a.duration_s,
                clients: a.clients as usize,
                rate: a.rate,
                replicas: a.replicas as usize,
                down_after_ms: a.down_after_ms,
                failover_every_s: a.failover_every_s,
                sources: 16,
                client_life_s: (a.min_life_s, a.max_life_s),
                history: a.history as usize,
                room: cli.room.clone(),
                hub_bin: cli.hub_bin.clone(),
                redis_bin: a.redis_bin.clone(),
            };
            let result = soak::run(&params).await?;
            let line = serde_json::json!({"scenario": "soak", "params": params, "result": result});
            println!("{line}");
            println!();
            print!("{}", soak::table(&result));
            let violations = result.violations();
            if !violations.is_empty() {
                bail!("the soak broke its guarantee: {}", violations.join("; "));
            }
            return Ok(());
        }
        Command::ConnsWorker(w) => {
            let url = cli.url.clone().context("conns-worker needs --url")?;
            return worker::run(WorkerParams {
                url,
                count: w.count as usize,
                first_source: w.first_source,
                sources: w.sources,
                concurrency: w.concurrency,
                max_life_s: w.max_life_s,
                transport: w.transport.into(),
                room: cli.room.clone(),
                subscribe: w.subscribe,
            })
            .await;
        }
        Command::Presence(a) => {
            if cli.url.is_some() {
                bail!("presence starts its own hubs (JWT secret, presence on): it takes --hub-bin, not --url");
            }
            let report = presence::run(
                &cli.hub_bin,
                presence::PresenceParams {
                    members: a.members as usize,
                    sample: a.sample as usize,
                    asks: a.asks as usize,
                    concurrency: a.concurrency as usize,
                    per_source: a.per_source as usize,
                    room: cli.room.clone(),
                    baseline: !a.no_baseline,
                    settle_ms: a.settle_ms,
                },
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            return Ok(());
        }
        Command::Conns(a) => vec![plan::conns(a, &cli.room, exe)],
        Command::Fanout(a) => vec![plan::fanout(a, &cli.room)],
        Command::FanoutMax(a) => vec![plan::fanout_max(a, &cli.room)],
        Command::Churn(a) => vec![plan::churn(a, &cli.room)],
        Command::KeyedReplay(a) => vec![plan::keyed_replay(a, &cli.room)],
        Command::KeyedVsPlain(a) => {
            if cli.url.is_some() {
                bail!(
                    "keyed-vs-plain needs a plain and a keyed hub: it starts its own from \
                     --hub-bin, not --url"
                );
            }
            plan::keyed_vs_plain(a, &cli.room)
        }
        Command::PublishRate(a) => vec![plan::publish_rate(a, &cli.room)],
        Command::PublishRtt(a) => vec![plan::publish_rtt(a, &cli.room)],
        Command::Restart(a) => {
            if cli.url.is_some() {
                bail!("restart starts and stops its own hubs: it takes --hub-bin, not --url");
            }
            vec![plan::restart(a, storage, &cli.hub_bin)?]
        }
        Command::All(a) => plan::all(a.scale, &cli.room, exe, storage, &cli.hub_bin)?,
        Command::Cluster(a) => {
            if cli.url.is_some() {
                bail!("cluster starts its own hubs and Redis: it takes --hub-bin, not --url");
            }
            plan::cluster(a, &cli.room, &cli.hub_bin, storage)
        }
    };
    let table = matches!(cli.command, Command::All(_) | Command::KeyedVsPlain(_));
    let comparison = matches!(cli.command, Command::Cluster(_));
    let mut reports = Vec::new();
    for scenario in &scenarios {
        let report = run_one(&cli, scenario).await;
        match report {
            Ok(report) => {
                println!("{}", report.json_line()?);
                reports.push(report);
            }
            Err(e) if table || comparison => {
                let line =
                    serde_json::json!({"scenario": scenario.name(), "error": format!("{e:#}")});
                println!("{line}");
            }
            Err(e) => return Err(e),
        }
    }
    let ratio_target = match &cli.command {
        Command::KeyedVsPlain(a) => Some(a.target_ratio),
        Command::All(_) => Some(KEYED_VS_PLAIN_TARGET),
        _ => None,
    };
    if let Some(target) = ratio_target {
        if let Some(comparison) = plan::keyed_vs_plain_report(&reports, target)? {
            println!("{}", comparison.json_line()?);
            reports.push(comparison);
        }
    }
    let header = match &cli.url {
        Some(url) => format!("hub: {url} (its own storage)"),
        None if storage.is_durable() => {
            format!("hubs: storage {storage} (a fresh store directory per hub)")
        }
        None => format!("hubs: storage {storage}"),
    };
    if table {
        println!();
        println!("{header}");
        println!();
        print!("{}", markdown_table(&reports));
    }
    if comparison {
        println!();
        println!("{header}");
        println!();
        print!("{}", cluster_table(&reports));
        println!();
        print!("{}", markdown_table(&reports));
    }
    Ok(())
}

/// Runs one scenario against the hub at --url, or against a fresh hub.
async fn run_one(cli: &Cli, scenario: &Scenario) -> Result<Report> {
    let storage = cli.storage();
    if scenario.starts_own_hubs() {
        let report = scenario.run_standalone().await?;
        return Ok(report.with_storage(Some(storage)));
    }
    match &cli.url {
        Some(url) => scenario.run(&Endpoint::new(url, cli.hub_pid)?).await,
        None => {
            let hub =
                HubProcess::start_with_env(&cli.hub_bin, storage, &scenario.hub_env()).await?;
            let report = scenario.run(hub.endpoint()).await;
            drop(hub);
            Ok(report?.with_storage(Some(storage)))
        }
    }
}
