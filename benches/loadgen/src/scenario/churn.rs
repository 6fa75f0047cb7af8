//! `churn`: connect → `welcome` → subscribe → `subscribed` → close, over and over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::endpoint::{source_ip, Endpoint};
use crate::http::{duration_ns, HubHttp};
use crate::latency::{round3, LatencySummary, SharedHistogram};
use crate::procfs::{vm_rss_kib, CpuMeter, CpuUse};
use crate::report::Check;
use crate::ws::{self, IDLE_READ_BUFFER};

/// How long one cycle may take.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the hub has to count every churned socket as gone.
const GONE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause before the "after" RSS reading, once the sockets are gone.
const SETTLE: Duration = Duration::from_secs(1);

/// What a churn run does.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnParams {
    /// Cycles to run.
    pub cycles: u64,
    /// Cycles in flight at once.
    pub concurrency: usize,
    /// The room each cycle subscribes to.
    pub room: String,
    /// Loopback source addresses the cycles are spread over.
    pub source_ips: usize,
    /// End each cycle when the hub closes TCP, not when it answers the close frame.
    pub await_tcp_close: bool,
    /// Cycles run (and not measured) before the "before" RSS reading, so that the
    /// hub's first-use allocations (allocator arenas, buffers) do not count as growth.
    pub warmup_cycles: u64,
}

/// What a churn run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnResult {
    /// Cycles that completed.
    pub cycles_ok: u64,
    /// Cycles that failed.
    pub cycles_failed: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Seconds for all cycles.
    pub wall_s: f64,
    /// Completed cycles per second.
    pub cycles_per_s: f64,
    /// Duration of one cycle.
    pub cycle_latency: LatencySummary,
    /// CPU use while churning.
    pub cpu: CpuUse,
    /// Hub RSS of the fresh hub, before the warm-up cycles.
    pub hub_rss_fresh_kib: Option<u64>,
    /// Hub RSS after the warm-up, before the first measured cycle.
    pub hub_rss_before_kib: Option<u64>,
    /// Hub RSS after the last cycle, the sockets gone and a settle.
    pub hub_rss_after_kib: Option<u64>,
    /// `after − before` in KiB (negative: the hub shrank).
    pub hub_rss_delta_kib: Option<i64>,
    /// `/socket-status` total before the run.
    pub status_total_before: u64,
    /// `/socket-status` total minus the starting total, after the run.
    pub sockets_left: u64,
}

impl ChurnResult {
    /// Checks against the churn targets.
    pub fn checks(&self, params: &ChurnParams) -> Vec<Check> {
        let mut checks = vec![
            Check::equals("cycles_ok", self.cycles_ok, params.cycles),
            Check::at_least("cycles_per_s", self.cycles_per_s, 2_500.0, "/s"),
            Check::equals("sockets_left", self.sockets_left, 0),
        ];
        if let Some(delta) = self.hub_rss_delta_kib {
            checks.push(Check::at_most(
                "hub_rss_delta_kib",
                delta as f64,
                1_024.0,
                "KiB",
            ));
        }
        checks
    }
}

/// Runs one churn scenario against `endpoint`.
pub async fn run(endpoint: &Endpoint, params: &ChurnParams) -> Result<ChurnResult> {
    if params.cycles == 0 {
        bail!("churn needs at least one cycle");
    }
    let http = HubHttp::new(endpoint, 1)?;
    let status_total_before = http.socket_status().await?.total_sockets;
    let hub_rss_before_kib = endpoint.pid().and_then(|pid| vm_rss_kib(pid).ok());

    let hub_rss_fresh_kib = hub_rss_before_kib;
    let hub_rss_before_kib = if params.warmup_cycles > 0 {
        let warmup = churn_phase(endpoint, params, params.warmup_cycles).await;
        if let Some(e) = warmup.first_error {
            bail!("warm-up cycle failed: {e}");
        }
        http.wait_sockets_at_most(status_total_before, GONE_TIMEOUT)
            .await?;
        tokio::time::sleep(SETTLE).await;
        endpoint.pid().and_then(|pid| vm_rss_kib(pid).ok())
    } else {
        hub_rss_before_kib
    };

    let cpu = CpuMeter::start(endpoint.pid());
    let phase = churn_phase(endpoint, params, params.cycles).await;
    let cpu = cpu.stop();

    let left = http
        .wait_sockets_at_most(status_total_before, GONE_TIMEOUT)
        .await?;
    tokio::time::sleep(SETTLE).await;
    let hub_rss_after_kib = endpoint.pid().and_then(|pid| vm_rss_kib(pid).ok());
    Ok(ChurnResult {
        cycles_ok: phase.ok,
        cycles_failed: phase.failed,
        first_error: phase.first_error,
        wall_s: round3(phase.wall_s),
        cycles_per_s: (phase.ok as f64 / phase.wall_s.max(1e-9)).round(),
        cycle_latency: phase.latency,
        cpu,
        hub_rss_fresh_kib,
        hub_rss_before_kib,
        hub_rss_after_kib,
        hub_rss_delta_kib: match (hub_rss_before_kib, hub_rss_after_kib) {
            (Some(before), Some(after)) => Some(after as i64 - before as i64),
            _ => None,
        },
        status_total_before,
        sockets_left: left.saturating_sub(status_total_before),
    })
}

/// What one batch of cycles did.
struct Phase {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    wall_s: f64,
    latency: LatencySummary,
}

/// Runs `cycles` cycles, `params.concurrency` at a time.
async fn churn_phase(endpoint: &Endpoint, params: &ChurnParams, cycles: u64) -> Phase {
    let next = Arc::new(AtomicU64::new(0));
    let latency = SharedHistogram::default();
    let started = Instant::now();
    let mut loops = JoinSet::new();
    for _ in 0..params.concurrency.max(1) {
        let (endpoint, params, next, latency) = (
            endpoint.clone(),
            params.clone(),
            next.clone(),
            latency.clone(),
        );
        loops.spawn(async move { cycle_loop(&endpoint, &params, cycles, &next, &latency).await });
    }
    let (mut ok, mut failed, mut first_error) = (0, 0, None);
    while let Some(joined) = loops.join_next().await {
        let (o, f, e) = joined.unwrap_or((0, 1, Some("cycle loop panicked".to_owned())));
        ok += o;
        failed += f;
        if first_error.is_none() {
            first_error = e;
        }
    }
    Phase {
        ok,
        failed,
        first_error,
        wall_s: started.elapsed().as_secs_f64(),
        latency: latency.summary(),
    }
}

/// Runs cycles until the shared counter reaches `cycles`; returns
/// (completed, failed, first error).
async fn cycle_loop(
    endpoint: &Endpoint,
    params: &ChurnParams,
    cycles: u64,
    next: &AtomicU64,
    latency: &SharedHistogram,
) -> (u64, u64, Option<String>) {
    let (mut ok, mut failed, mut first_error) = (0, 0, None);
    let mut recorder = latency.recorder();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= cycles {
            break;
        }
        let source = (i % params.source_ips.max(1) as u64) as usize;
        let started = Instant::now();
        let cycle = one_cycle(endpoint, &params.room, source, params.await_tcp_close);
        match tokio::time::timeout(CYCLE_TIMEOUT, cycle).await {
            Ok(Ok(())) => {
                ok += 1;
                recorder.record(duration_ns(started.elapsed()));
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(_) => {
                failed += 1;
                first_error.get_or_insert_with(|| "cycle timed out".to_owned());
            }
        }
    }
    (ok, failed, first_error)
}

/// One connect → welcome → subscribe → subscribed → close cycle.
async fn one_cycle(
    endpoint: &Endpoint,
    room: &str,
    source: usize,
    await_tcp_close: bool,
) -> Result<()> {
    let mut ws = ws::connect(endpoint, "/ws", Some(source_ip(source)?), IDLE_READ_BUFFER).await?;
    ws::wait_welcome(&mut ws, CYCLE_TIMEOUT).await?;
    let subscribe = format!("{{\"op\":\"subscribe\",\"room\":\"{room}\",\"ref\":\"churn\"}}");
    ws.send(Message::text(subscribe)).await?;
    ws::wait_subscribed(&mut ws, CYCLE_TIMEOUT).await?;
    ws.close(None).await?;
    // The cycle ends when the hub answers the close frame; dropping the socket
    // then ends the TCP connection from our side. (Waiting for the hub's own
    // FIN instead is `--await-tcp-close`.)
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Close(_)) if !await_tcp_close => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}
