//! `conns`: N idle connections held across worker processes: WebSockets on
//! `/ws` (or, with `subscribe`, each subscribed to the room on `/ws/{room}`),
//! or Server-Sent Events streams on `/sse?rooms={room}` (a stream always has a
//! room).
//!
//! The coordinator starts one [`crate::worker`] process per `per_worker`
//! sockets, each with its own loopback source addresses, tells them all to
//! connect at once, and measures the hub while the sockets are held: RSS per
//! connection, `/socket-status` total and latency, and optionally
//! `/socket-status` latency while a fan-out runs on top.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::endpoint::Endpoint;
use crate::http::HubHttp;
use crate::latency::{round3, LatencySummary, SharedHistogram};
use crate::procfs::{vm_rss_kib, CpuMeter, CpuUse};
use crate::report::Check;
use crate::scenario::fanout::{self, FanoutParams, FanoutResult};
use crate::transport::Transport;
use crate::worker::WorkerMessage;

/// How long workers have to start.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the connect phase may take in all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long workers have to drop their sockets and exit.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for the hub to count the released sockets as gone. An
/// SSE stream whose reader went away is only noticed by a failing write: the
/// keep-alives of `heartbeat_interval_s` (15 s) are those writes.
const GONE_TIMEOUT: Duration = Duration::from_secs(50);

/// What an idle-connections run does.
#[derive(Debug, Clone, Serialize)]
pub struct ConnsParams {
    /// Idle sockets to hold.
    pub count: usize,
    /// Sockets per worker process at most.
    pub per_worker: usize,
    /// Source addresses per worker.
    pub sources_per_worker: usize,
    /// Handshakes in flight per worker.
    pub connect_concurrency: usize,
    /// Seconds to hold the idle sockets while sampling `/socket-status`.
    pub hold_s: f64,
    /// Pause between `/socket-status` samples, in milliseconds.
    pub status_interval_ms: u64,
    /// A fan-out to run while the sockets are held, if any.
    pub fanout: Option<FanoutParams>,
    /// How the idle clients connect.
    pub transport: Transport,
    /// The room idle clients subscribe to (SSE always; WebSocket with `subscribe`).
    pub room: String,
    /// WebSocket clients subscribe to `room` (`/ws/{room}`, waiting for
    /// `subscribed`) instead of connecting to `/ws` (waiting for `welcome`).
    pub subscribe: bool,
    /// The binary to run workers from (this one).
    #[serde(skip)]
    pub worker_exe: PathBuf,
}

impl ConnsParams {
    /// True when every idle client is subscribed to [`ConnsParams::room`].
    pub fn subscribed(&self) -> bool {
        self.subscribe || self.transport == Transport::Sse
    }
}

/// What an idle-connections run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ConnsResult {
    /// Worker processes used.
    pub workers: usize,
    /// Clients that received `welcome` (`subscribed` when subscribed).
    pub connected: u64,
    /// Sockets that did not.
    pub failed: u64,
    /// The first failure a worker reported.
    pub first_error: Option<String>,
    /// Seconds from `go` to the last worker's last handshake.
    pub connect_wall_s: f64,
    /// Connected sockets per second over the connect phase.
    pub connects_per_s: f64,
    /// CPU use during the connect phase (the hub's, and the coordinator's).
    pub connect_cpu: CpuUse,
    /// CPU use of the worker processes during the connect phase, in cores.
    pub connect_workers_cores: f64,
    /// Hub RSS before connecting.
    pub hub_rss_before_kib: Option<u64>,
    /// Hub RSS with every socket held (after a one-second settle).
    pub hub_rss_held_kib: Option<u64>,
    /// `(held − before) / connected`, in bytes.
    pub hub_rss_per_conn_bytes: Option<f64>,
    /// `/socket-status` `total_sockets` before connecting.
    pub status_total_before: u64,
    /// `/socket-status` `total_sockets` while held (last idle sample).
    pub status_total_while_held: u64,
    /// `/socket-status` round trips while held and idle.
    pub status_latency_idle: LatencySummary,
    /// `/socket-status` round trips while held and fanning out.
    pub status_latency_during_fanout: Option<LatencySummary>,
    /// The fan-out run on top, if any.
    pub fanout: Option<FanoutResult>,
    /// Sockets the hub ended while they were held.
    pub dropped_while_held: u64,
    /// `/socket-status` total minus the starting total, after release.
    pub sockets_left_after_release: u64,
    /// Seconds from the workers' exit (every client socket closed) until
    /// `/socket-status` was back to its starting total; `None` if it was not
    /// within the wait (50 s).
    pub release_to_gone_s: Option<f64>,
}

impl ConnsResult {
    /// Checks against the targets for idle connections.
    pub fn checks(&self, params: &ConnsParams) -> Vec<Check> {
        let mut checks = vec![
            Check::equals("connected", self.connected, params.count as u64),
            Check::equals(
                "status_total_while_held",
                self.status_total_while_held
                    .saturating_sub(self.status_total_before),
                params.count as u64,
            ),
            Check::at_least("connects_per_s", self.connects_per_s, 7_000.0, "/s"),
        ];
        if let Some(bytes) = self.hub_rss_per_conn_bytes {
            checks.push(Check::at_most(
                "hub_rss_per_conn_bytes",
                bytes,
                5_120.0,
                "B",
            ));
        }
        if let Some(status) = &self.status_latency_during_fanout {
            checks.push(Check::at_most(
                "status_p99_ms_during_fanout",
                status.p99_ms,
                5.0,
                "ms",
            ));
        }
        if let Some(f) = &self.fanout {
            checks.push(Check::equals("fanout_lost", f.counts.lost, 0));
        }
        checks
    }
}

/// One worker process and its pipes.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn spawn(
        exe: &PathBuf,
        endpoint: &Endpoint,
        count: usize,
        first: usize,
        params: &ConnsParams,
    ) -> Result<Self> {
        let mut child = Command::new(exe)
            .arg("conns-worker")
            .arg("--url")
            .arg(endpoint.base_url())
            .arg("--count")
            .arg(count.to_string())
            .arg("--first-source")
            .arg(first.to_string())
            .arg("--sources")
            .arg(params.sources_per_worker.to_string())
            .arg("--concurrency")
            .arg(params.connect_concurrency.to_string())
            .arg("--max-life-s")
            .arg(max_life_s(params).to_string())
            .arg("--transport")
            .arg(params.transport.to_string())
            .arg("--room")
            .arg(&params.room)
            .args(params.subscribe.then_some("--subscribe"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting worker {}", exe.display()))?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        Ok(Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn send(&mut self, line: &str) -> Result<()> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .context("writing to a worker")?;
        self.stdin.flush().await.context("writing to a worker")
    }

    async fn receive(&mut self, deadline: tokio::time::Instant) -> Result<WorkerMessage> {
        let line = tokio::time::timeout_at(deadline, self.lines.next_line())
            .await
            .context("worker did not answer in time")?
            .context("reading a worker")?
            .context("worker exited")?;
        serde_json::from_str(&line).with_context(|| format!("bad worker line `{line}`"))
    }
}

/// A worker lives for the whole run and a margin, then exits by itself.
fn max_life_s(params: &ConnsParams) -> u64 {
    let fanout_s = params
        .fanout
        .as_ref()
        .map_or(0.0, |f| f.duration_s + f.drain_max_ms as f64 / 1e3 + 60.0);
    (CONNECT_TIMEOUT.as_secs_f64() + params.hold_s + fanout_s + 60.0).ceil() as u64
}

/// Runs one idle-connections scenario against `endpoint`.
pub async fn run(endpoint: &Endpoint, params: &ConnsParams) -> Result<ConnsResult> {
    if params.count == 0 || params.per_worker == 0 {
        bail!("conns needs a positive count and per-worker count");
    }
    if params.fanout.is_some() && params.subscribed() {
        bail!(
            "a fan-out on top of idle clients subscribed to `{}` would be delivered to them \
             too: use WebSocket clients without --subscribe",
            params.room
        );
    }
    let n_workers = params.count.div_ceil(params.per_worker);
    if n_workers * params.sources_per_worker.max(1) > 253 {
        bail!(
            "{n_workers} workers × {} sources exceed 127.0.0.2–254",
            params.sources_per_worker
        );
    }
    let http = HubHttp::new(endpoint, 2)?;
    let status_total_before = http.socket_status().await?.total_sockets;
    let hub_rss_before_kib = endpoint.pid().and_then(|pid| vm_rss_kib(pid).ok());

    let mut workers = Vec::with_capacity(n_workers);
    for w in 0..n_workers {
        let count = params.count / n_workers + usize::from(w < params.count % n_workers);
        let first = w * params.sources_per_worker.max(1);
        workers.push(Worker::spawn(
            &params.worker_exe,
            endpoint,
            count,
            first,
            params,
        )?);
    }
    let ready_deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    for worker in &mut workers {
        match worker.receive(ready_deadline).await? {
            WorkerMessage::Ready => {}
            other => bail!("worker said {other:?} before ready"),
        }
    }

    let cpu = CpuMeter::start(endpoint.pid());
    let started = Instant::now();
    for worker in &mut workers {
        worker.send("go").await?;
    }
    let (mut connected, mut failed, mut first_error, mut workers_cpu_s) = (0, 0, None, 0.0);
    let connect_deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    for worker in &mut workers {
        match worker.receive(connect_deadline).await? {
            WorkerMessage::Connected {
                connected: c,
                failed: f,
                first_error: e,
                cpu_s,
                ..
            } => {
                connected += c;
                workers_cpu_s += cpu_s;
                failed += f;
                if first_error.is_none() {
                    first_error = e;
                }
            }
            other => bail!("worker said {other:?} instead of connected"),
        }
    }
    let connect_wall_s = started.elapsed().as_secs_f64();
    let connect_cpu = cpu.stop();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let hub_rss_held_kib = endpoint.pid().and_then(|pid| vm_rss_kib(pid).ok());
    let idle = SharedHistogram::default();
    let hold = Duration::from_secs_f64(params.hold_s);
    let status_total_while_held = sample_status(&http, &idle, params.status_interval_ms, async {
        tokio::time::sleep(hold).await;
    })
    .await?;

    let (fanout, status_latency_during_fanout) = match &params.fanout {
        Some(fanout_params) => {
            let during = SharedHistogram::default();
            let mut outcome = None;
            sample_status(&http, &during, params.status_interval_ms, async {
                outcome = Some(fanout::run(endpoint, fanout_params).await);
            })
            .await?;
            let result = outcome.context("fan-out did not run")??;
            (Some(result), Some(during.summary()))
        }
        None => (None, None),
    };

    let dropped_while_held = release(&mut workers).await?;
    let released = Instant::now();
    let left = http
        .wait_sockets_at_most(status_total_before, GONE_TIMEOUT)
        .await?;
    let release_to_gone_s =
        (left <= status_total_before).then(|| round3(released.elapsed().as_secs_f64()));

    Ok(ConnsResult {
        workers: n_workers,
        connected,
        failed,
        first_error,
        connect_wall_s: round3(connect_wall_s),
        connects_per_s: (connected as f64 / connect_wall_s.max(1e-9)).round(),
        connect_cpu,
        connect_workers_cores: round3(workers_cpu_s / connect_wall_s.max(1e-9)),
        hub_rss_before_kib,
        hub_rss_held_kib,
        hub_rss_per_conn_bytes: match (hub_rss_before_kib, hub_rss_held_kib) {
            (Some(before), Some(held)) if connected > 0 => Some(round3(
                held.saturating_sub(before) as f64 * 1024.0 / connected as f64,
            )),
            _ => None,
        },
        status_total_before,
        status_total_while_held,
        status_latency_idle: idle.summary(),
        status_latency_during_fanout,
        fanout,
        dropped_while_held,
        sockets_left_after_release: left.saturating_sub(status_total_before),
        release_to_gone_s,
    })
}

/// Samples `/socket-status` into `latency` until `until` completes; returns the
/// last `total_sockets` seen.
async fn sample_status(
    http: &HubHttp,
    latency: &SharedHistogram,
    interval_ms: u64,
    until: impl std::future::Future<Output = ()>,
) -> Result<u64> {
    let mut last_total = 0;
    let sampler = async {
        loop {
            last_total = http.timed_socket_status(latency).await?.total_sockets;
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        }
    };
    tokio::select! {
        () = until => {}
        failed = sampler => return failed,
    }
    Ok(last_total)
}

/// Tells every worker to drop its sockets and waits for them to exit; returns
/// the sockets the hub had ended while they were held.
async fn release(workers: &mut [Worker]) -> Result<u64> {
    let deadline = tokio::time::Instant::now() + RELEASE_TIMEOUT;
    for worker in workers.iter_mut() {
        worker.send("release").await?;
    }
    let mut dropped = 0;
    for worker in workers.iter_mut() {
        if let WorkerMessage::Released { dropped_while_held } = worker.receive(deadline).await? {
            dropped += dropped_while_held;
        }
        if tokio::time::timeout_at(deadline, worker.child.wait())
            .await
            .is_err()
        {
            let _ = worker.child.kill().await;
        }
    }
    Ok(dropped)
}
