//! `fanout` and `fanout-max`: S subscribers on one room, HTTP publishes into it.
//!
//! Every subscriber connects to `/ws/{room}` and notes the head seq from its
//! `subscribed` frame. The publisher then posts events whose `data` carries the
//! send time on the process clock ([`crate::clock`]), either at a fixed rate
//! for a fixed time (`fanout`) or as fast as the hub answers (`fanout-max`).
//! The seqs the hub answers with are the expected deliveries; every
//! subscriber's arrivals are checked against them exactly
//! ([`crate::accounting`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::accounting::{sorted_unique, Arrival, SeqCounts, SeqTracker};
use crate::clock::now_ns;
use crate::endpoint::{source_ip, Endpoint};
use crate::http::HubHttp;
use crate::latency::{new_histogram, round3, summarize, LatencySummary, SharedHistogram};
use crate::payload::{parse_frame, publish_body, Frame};
use crate::procfs::{vm_rss_kib, CpuMeter, CpuUse};
use crate::report::Check;
use crate::ws::{self, WsStream, BUSY_READ_BUFFER};

/// How long one subscriber has to connect and be subscribed.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long subscribers have to finish once told to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a fan-out run does.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutParams {
    /// The room subscribed to and published into.
    pub room: String,
    /// Subscribers (sockets), each on its own connection.
    pub subscribers: usize,
    /// Events per second; `None` publishes as fast as the hub answers.
    pub rate: Option<f64>,
    /// How long to publish, in seconds.
    pub duration_s: f64,
    /// Publish requests in flight at once (at a rate: at most; flat out: exactly).
    pub publishers: usize,
    /// Hard cap on events published in the run.
    pub max_events: u64,
    /// Loopback source addresses the subscribers are spread over.
    pub source_ips: usize,
    /// Subscribers connecting at once.
    pub connect_concurrency: usize,
    /// After publishing, stop waiting for deliveries once none arrived for this long.
    pub drain_idle_ms: u64,
    /// After publishing, stop waiting for deliveries after this long in any case.
    pub drain_max_ms: u64,
}

impl FanoutParams {
    /// A run of `subscribers` subscribers on `room`, publishing at `rate`
    /// (`None`: flat out) for `duration_s` seconds, with default settings.
    pub fn new(room: &str, subscribers: usize, rate: Option<f64>, duration_s: f64) -> Self {
        Self {
            room: room.to_owned(),
            subscribers,
            rate,
            duration_s,
            publishers: if rate.is_some() { 32 } else { 4 },
            max_events: 2_000_000,
            source_ips: 4,
            connect_concurrency: 64,
            drain_idle_ms: 2_000,
            drain_max_ms: 30_000,
        }
    }
}

/// What a fan-out run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    /// Subscribers that connected and were subscribed.
    pub subscribers_connected: usize,
    /// Subscribers that could not connect or subscribe.
    pub connect_failures: usize,
    /// The first connect failure, if any.
    pub first_connect_error: Option<String>,
    /// Publishes the hub accepted.
    pub published: u64,
    /// Publishes that failed (non-2xx, timeout, bad answer).
    pub publish_errors: u64,
    /// The first publish failure, if any.
    pub first_publish_error: Option<String>,
    /// Accepted publishes per second over the publishing phase.
    pub publish_rate_per_s: f64,
    /// Exact delivery accounting, summed over subscribers.
    #[serde(flatten)]
    pub counts: SeqCounts,
    /// Frames the harness could not read.
    pub bad_frames: u64,
    /// Subscribers whose socket ended before the run did, by close code.
    pub closed_early: BTreeMap<String, u64>,
    /// Delivered events per second, from the first publish to the last delivery.
    pub deliveries_per_s: f64,
    /// Publish (send time) to subscriber (receive time), first arrival of each seq.
    pub latency: LatencySummary,
    /// HTTP publish round trips.
    pub publish_rtt: LatencySummary,
    /// Seconds spent publishing.
    pub publish_wall_s: f64,
    /// Seconds from the first publish to the last delivery.
    pub delivery_wall_s: f64,
    /// CPU use while publishing and draining.
    pub cpu: CpuUse,
    /// Hub RSS with the subscribers connected, before publishing.
    pub hub_rss_before_kib: Option<u64>,
    /// Hub RSS after the drain, subscribers still connected.
    pub hub_rss_after_kib: Option<u64>,
}

impl FanoutResult {
    /// The checks every fan-out run has: nothing lost, duplicated or reordered,
    /// and every subscriber connected.
    pub fn exactness_checks(&self, requested: usize) -> Vec<Check> {
        vec![
            Check::equals(
                "subscribers_connected",
                self.subscribers_connected as u64,
                requested as u64,
            ),
            Check::equals("lost", self.counts.lost, 0),
            Check::equals("duplicates", self.counts.duplicates, 0),
            Check::equals("out_of_order", self.counts.out_of_order, 0),
        ]
    }
}

/// Counters the subscribers update as events arrive.
#[derive(Debug, Default)]
struct Progress {
    /// First arrivals of seqs past each subscriber's start, all subscribers.
    distinct: AtomicU64,
    /// Process-clock time of the latest first arrival.
    last_ns: AtomicU64,
}

/// What one subscriber saw.
#[derive(Debug)]
struct SubOutcome {
    tracker: SeqTracker,
    bad_frames: u64,
    ended_early: Option<String>,
}

/// What the publisher did.
#[derive(Debug)]
struct PublishLog {
    seqs: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    rtt: Histogram<u64>,
}

impl PublishLog {
    fn new() -> Self {
        Self {
            seqs: Vec::new(),
            errors: 0,
            first_error: None,
            rtt: new_histogram(),
        }
    }

    fn add(&mut self, outcome: Result<u64>, rtt_ns: u64) {
        self.rtt.saturating_record(rtt_ns.max(1));
        match outcome {
            Ok(seq) => self.seqs.push(seq),
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    fn merge(&mut self, other: PublishLog) {
        self.seqs.extend(other.seqs);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.rtt.add(&other.rtt);
    }
}

/// Runs one fan-out scenario against `endpoint`.
pub async fn run(endpoint: &Endpoint, params: &FanoutParams) -> Result<FanoutResult> {
    if params.subscribers == 0 || params.duration_s <= 0.0 {
        bail!("fanout needs at least one subscriber and a positive duration");
    }
    let http = HubHttp::new(endpoint, params.publishers.max(1))?;
    let (sockets, connect_failures, first_connect_error) = connect_all(endpoint, params).await;
    if sockets.is_empty() {
        bail!(
            "no subscriber could connect: {}",
            first_connect_error.unwrap_or_default()
        );
    }
    let connected = sockets.len();
    let hub_rss_before_kib = endpoint.pid().and_then(|pid| vm_rss_kib(pid).ok());

    let progress = Arc::new(Progress::default());
    let latency = SharedHistogram::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut subscribers = JoinSet::new();
    for (ws, base) in sockets {
        subscribers.spawn(subscriber(
            ws,
            base,
            progress.clone(),
            latency.clone(),
            stop_rx.clone(),
        ));
    }

    let cpu = CpuMeter::start(endpoint.pid());
    let publish_start_ns = now_ns();
    let log = match params.rate {
        Some(rate) => publish_at_rate(&http, params, rate).await,
        None => publish_flat_out(&http, params).await,
    };
    let publish_wall_s = (now_ns() - publish_start_ns) as f64 / 1e9;
    let published = log.seqs.len() as u64;

    drain(&progress, connected as u64 * published, params).await;
    let cpu = cpu.stop();
    let hub_rss_after_kib = endpoint.pid().and_then(|pid| vm_rss_kib(pid).ok());
    let _ = stop_tx.send(true);
    let outcomes = collect(subscribers).await;

    let expected = sorted_unique(&log.seqs);
    let mut counts = SeqCounts::default();
    let mut bad_frames = 0;
    let mut closed_early = BTreeMap::new();
    for outcome in &outcomes {
        counts += outcome.tracker.finish(&expected);
        bad_frames += outcome.bad_frames;
        if let Some(reason) = &outcome.ended_early {
            *closed_early.entry(reason.clone()).or_insert(0) += 1;
        }
    }
    let unfinished = connected - outcomes.len();
    if unfinished > 0 {
        closed_early.insert("did_not_stop".to_owned(), unfinished as u64);
    }
    let last_ns = progress.last_ns.load(Ordering::Relaxed);
    let delivery_wall_s = last_ns.saturating_sub(publish_start_ns) as f64 / 1e9;
    Ok(FanoutResult {
        subscribers_connected: connected,
        connect_failures,
        first_connect_error,
        published,
        publish_errors: log.errors,
        first_publish_error: log.first_error,
        publish_rate_per_s: per_second(published, publish_wall_s),
        counts,
        bad_frames,
        closed_early,
        deliveries_per_s: per_second(counts.delivered, delivery_wall_s),
        latency: latency.summary(),
        publish_rtt: summarize(&log.rtt),
        publish_wall_s: round3(publish_wall_s),
        delivery_wall_s: round3(delivery_wall_s),
        cpu,
        hub_rss_before_kib,
        hub_rss_after_kib,
    })
}

fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (count as f64 / secs).round()
    } else {
        0.0
    }
}

/// Connects every subscriber; returns the sockets with their starting seqs,
/// the number of failures and the first failure.
async fn connect_all(
    endpoint: &Endpoint,
    params: &FanoutParams,
) -> (Vec<(WsStream, u64)>, usize, Option<String>) {
    let path = format!("/ws/{}", params.room);
    let gate = Arc::new(Semaphore::new(params.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..params.subscribers {
        let (endpoint, path, gate) = (endpoint.clone(), path.clone(), gate.clone());
        let ips = params.source_ips.max(1);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let source = source_ip(i % ips)?;
            let mut ws = ws::connect(&endpoint, &path, Some(source), BUSY_READ_BUFFER).await?;
            let base = ws::wait_subscribed(&mut ws, SUBSCRIBE_TIMEOUT).await?;
            anyhow::Ok((ws, base))
        });
    }
    let mut sockets = Vec::with_capacity(params.subscribers);
    let mut failures = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(socket) => sockets.push(socket),
            Err(e) => {
                failures += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (sockets, failures, first_error)
}

/// Reads one subscriber's socket until told to stop or until it ends.
async fn subscriber(
    mut ws: WsStream,
    base: u64,
    progress: Arc<Progress>,
    latency: SharedHistogram,
    mut stop: watch::Receiver<bool>,
) -> SubOutcome {
    let mut tracker = SeqTracker::new(base);
    let mut recorder = latency.recorder();
    let mut bad_frames = 0;
    let ended_early = loop {
        let message = tokio::select! {
            biased;
            _ = stop.changed() => break None,
            message = ws.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => match parse_frame(text.as_str()) {
                Ok(Frame::Event { seq, t_ns }) => {
                    let now = now_ns();
                    if tracker.record(seq) == Arrival::New {
                        progress.distinct.fetch_add(1, Ordering::Relaxed);
                        progress.last_ns.fetch_max(now, Ordering::Relaxed);
                        if let Some(sent) = t_ns {
                            recorder.record(now.saturating_sub(sent));
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => bad_frames += 1,
            },
            Some(Ok(close @ Message::Close(_))) => break Some(ws::close_reason(Some(&close))),
            Some(Ok(_)) => {}
            Some(Err(e)) => break Some(format!("error: {e}")),
            None => break Some(ws::close_reason(None)),
        }
    };
    recorder.flush();
    if ended_early.is_none() {
        let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
    }
    SubOutcome {
        tracker,
        bad_frames,
        ended_early,
    }
}

/// One publish; returns its outcome and round trip in nanoseconds.
async fn publish_one(http: &HubHttp, room: &str) -> (Result<u64>, u64) {
    let started = now_ns();
    let outcome = http.publish(room, publish_body(started)).await;
    (outcome, now_ns().saturating_sub(started))
}

/// Publishes `rate × duration` events on a fixed schedule, with up to
/// `publishers` requests in flight so that one slow answer does not delay the
/// schedule.
async fn publish_at_rate(http: &HubHttp, params: &FanoutParams, rate: f64) -> PublishLog {
    let total = ((rate * params.duration_s).round() as u64).min(params.max_events);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1e-3)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let gate = Arc::new(Semaphore::new(params.publishers.max(1)));
    let mut in_flight = JoinSet::new();
    let mut log = PublishLog::new();
    for _ in 0..total {
        ticker.tick().await;
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let (http, room) = (http.clone(), params.room.clone());
        in_flight.spawn(async move {
            let result = publish_one(&http, &room).await;
            drop(permit);
            result
        });
        while let Some(done) = in_flight.try_join_next() {
            record_joined(&mut log, done);
        }
    }
    while let Some(done) = in_flight.join_next().await {
        record_joined(&mut log, done);
    }
    log
}

fn record_joined(log: &mut PublishLog, joined: Result<(Result<u64>, u64), tokio::task::JoinError>) {
    match joined {
        Ok((outcome, rtt)) => log.add(outcome, rtt),
        Err(e) => log.add(Err(e.into()), 0),
    }
}

/// Publishes back to back from `publishers` loops for the run's duration.
async fn publish_flat_out(http: &HubHttp, params: &FanoutParams) -> PublishLog {
    let deadline = Instant::now() + Duration::from_secs_f64(params.duration_s);
    let budget = Arc::new(AtomicU64::new(params.max_events));
    let mut loops = JoinSet::new();
    for _ in 0..params.publishers.max(1) {
        let (http, room, budget) = (http.clone(), params.room.clone(), budget.clone());
        loops.spawn(async move {
            let mut log = PublishLog::new();
            while Instant::now() < deadline && take_one(&budget) {
                let (outcome, rtt) = publish_one(&http, &room).await;
                log.add(outcome, rtt);
            }
            log
        });
    }
    let mut log = PublishLog::new();
    while let Some(joined) = loops.join_next().await {
        match joined {
            Ok(part) => log.merge(part),
            Err(e) => log.add(Err(e.into()), 0),
        }
    }
    log
}

fn take_one(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

/// Waits until `target` first arrivals were seen, or until deliveries stop
/// for `drain_idle_ms`, or `drain_max_ms` passed.
async fn drain(progress: &Progress, target: u64, params: &FanoutParams) {
    let started = Instant::now();
    let idle = Duration::from_millis(params.drain_idle_ms);
    let max = Duration::from_millis(params.drain_max_ms);
    let mut last_seen = progress.distinct.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        let seen = progress.distinct.load(Ordering::Relaxed);
        if seen >= target || started.elapsed() >= max {
            return;
        }
        if seen != last_seen {
            last_seen = seen;
            last_change = Instant::now();
        } else if last_change.elapsed() >= idle {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Joins the subscribers, giving them [`STOP_TIMEOUT`] to finish.
async fn collect(mut subscribers: JoinSet<SubOutcome>) -> Vec<SubOutcome> {
    let mut outcomes = Vec::with_capacity(subscribers.len());
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, subscribers.join_next()).await {
        if let Ok(outcome) = joined {
            outcomes.push(outcome);
        }
    }
    subscribers.abort_all();
    outcomes
}
