//! `fanout` and `fanout-max`: S subscribers on one room, HTTP publishes into it.
//!
//! Every subscriber connects to `/ws/{room}` (or, with [`Transport::Sse`],
//! opens `/sse?rooms={room}`) and notes the head seq from its `subscribed`
//! frame; both transports carry the same JSON frames, read by the same code. The publisher then posts events whose `data` carries the
//! send time on the process clock ([`crate::clock`]), either at a fixed rate
//! for a fixed time (`fanout`) or as fast as the hub answers (`fanout-max`).
//! The seqs the hub answers with are the expected deliveries; every
//! subscriber's arrivals are checked against them exactly
//! ([`crate::accounting`]).
//!
//! `publish-rate` and `publish-rtt` run it with few subscribers or none (then
//! only the publishes are measured).
//!
//! [`run_multi`] does the same against several hub nodes of one cluster:
//! subscriber `i` connects to node `i mod N`, publishes go to the nodes in
//! turn, and each event's `data` names the node it was published through, so
//! latency is also reported split into same-node and cross-node deliveries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::accounting::{sorted_unique, Arrival, SeqCounts, SeqTracker};
use crate::clock::now_ns;
use crate::endpoint::{source_ip, Endpoint};
use crate::http::HubHttp;
use crate::latency::{new_histogram, round3, summarize, LatencySummary, SharedHistogram};
use crate::payload::{
    event_data, event_data_from, keyed_publish_body, parse_frame, publish_body, publish_body_from,
    Frame,
};
use crate::procfs::{vm_rss_kib, CpuMeter, CpuUse};
use crate::report::Check;
use crate::transport::{Conn, Incoming, Transport};
use crate::ws::BUSY_READ_BUFFER;

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
    /// A keyed room: every publish carries a `key`, cycling over this many
    /// keys (`k-0`, `k-1`, …) so the room's state stays this size. The hub
    /// must hold the room keyed with `max_keys` at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<usize>,
    /// How subscribers connect: WebSocket or Server-Sent Events.
    pub transport: Transport,
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
            keys: None,
            transport: Transport::Websocket,
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
    /// At a rate: publishes sent per second, from the first send to the last
    /// (the offered load; below the rate when the in-flight cap held sends back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_rate_per_s: Option<f64>,
    /// At a rate: how late each publish was sent against its schedule
    /// (waiting for an in-flight slot, or the load generator's own delay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag: Option<LatencySummary>,
    /// At a rate: publishes that were due while all `publishers` requests were
    /// in flight, and so waited for an answer (the cap, not the schedule, held them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_slot_waits: Option<u64>,
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
    /// With several nodes: latency of events a subscriber received from the
    /// node they were published through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_same_node: Option<LatencySummary>,
    /// With several nodes: latency of events a subscriber received from
    /// another node than the one they were published through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_cross_node: Option<LatencySummary>,
    /// With several nodes: subscribers connected to each node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribers_per_node: Option<Vec<usize>>,
    /// With several nodes: publishes each node accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_per_node: Option<Vec<u64>>,
    /// HTTP publish round trips.
    pub publish_rtt: LatencySummary,
    /// Seconds spent publishing.
    pub publish_wall_s: f64,
    /// Seconds from the first publish to the last delivery.
    pub delivery_wall_s: f64,
    /// CPU use while publishing and draining.
    pub cpu: CpuUse,
    /// Hub RSS with the subscribers connected, before publishing (all nodes).
    pub hub_rss_before_kib: Option<u64>,
    /// Hub RSS after the drain, subscribers still connected (all nodes).
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

impl Progress {
    /// Seconds from `start_ns` to the latest first arrival.
    fn wall_s_since(&self, start_ns: u64) -> f64 {
        self.last_ns
            .load(Ordering::Relaxed)
            .saturating_sub(start_ns) as f64
            / 1e9
    }
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
    per_node: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    rtt: Histogram<u64>,
    /// At a rate: schedule to send, per publish.
    lag: Option<Histogram<u64>>,
    /// At a rate: process-clock times of the first and the last send.
    sends: Option<(u64, u64)>,
    /// At a rate: sends that waited for a free in-flight slot.
    slot_waits: u64,
}

impl PublishLog {
    fn new(nodes: usize) -> Self {
        Self {
            seqs: Vec::new(),
            per_node: vec![0; nodes],
            errors: 0,
            first_error: None,
            rtt: new_histogram(),
            lag: None,
            sends: None,
            slot_waits: 0,
        }
    }

    fn add(&mut self, node: usize, outcome: Result<u64>, rtt_ns: u64) {
        self.rtt.saturating_record(rtt_ns.max(1));
        match outcome {
            Ok(seq) => {
                self.seqs.push(seq);
                if let Some(n) = self.per_node.get_mut(node) {
                    *n += 1;
                }
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    fn merge(&mut self, other: PublishLog) {
        self.seqs.extend(other.seqs);
        for (mine, theirs) in self.per_node.iter_mut().zip(other.per_node) {
            *mine += theirs;
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.rtt.add(&other.rtt);
    }

    /// At `rate`: publishes sent per second, from the first send to the last.
    fn offered_per_s(&self, rate: Option<f64>) -> Option<f64> {
        self.sends.zip(rate).map(|((first, last), rate)| {
            // N sends on schedule span (N - 1) / rate: count the last one's slot too.
            per_second(
                self.seqs.len() as u64 + self.errors,
                last.saturating_sub(first) as f64 / 1e9 + 1.0 / rate,
            )
        })
    }
}

/// Runs one fan-out scenario against `endpoint`.
pub async fn run(endpoint: &Endpoint, params: &FanoutParams) -> Result<FanoutResult> {
    run_multi(std::slice::from_ref(endpoint), None, params).await
}

/// Runs one fan-out scenario against the nodes `endpoints` of one cluster
/// (subscribers spread over them, publishes in turn); `redis_pid`, when
/// given, is measured for CPU along with the hubs.
pub async fn run_multi(
    endpoints: &[Endpoint],
    redis_pid: Option<u32>,
    params: &FanoutParams,
) -> Result<FanoutResult> {
    check_shape(endpoints, params)?;
    let publisher = Publisher::new(endpoints, params)?;
    let subscribed = connect_subscribers(endpoints, params).await?;
    let connected = subscribed.sockets.len();
    let subscribers_per_node = subscribed.per_node(endpoints.len());
    let pids: Vec<u32> = endpoints.iter().filter_map(Endpoint::pid).collect();
    let hub_rss_before_kib = hubs_rss_kib(&pids);

    let progress = Arc::new(Progress::default());
    let latency = Latencies::new(endpoints.len() > 1);
    let (stop, subscribers) = spawn_subscribers(subscribed.sockets, &progress, &latency);

    let cpu = CpuMeter::start_many(&pids, redis_pid);
    let publishing = publish(&publisher, params).await;
    let log = publishing.log;
    let published = log.seqs.len() as u64;
    drain(&progress, connected as u64 * published, params).await;
    let cpu = cpu.stop();
    let hub_rss_after_kib = hubs_rss_kib(&pids);
    let outcomes = stop_subscribers(stop, subscribers).await;

    let tally = Tally::of(&outcomes, &log.seqs, connected);
    let delivery_wall_s = progress.wall_s_since(publishing.start_ns);
    let offered_rate_per_s = log.offered_per_s(params.rate);
    let multi = endpoints.len() > 1;
    Ok(FanoutResult {
        subscribers_connected: connected,
        connect_failures: subscribed.failures,
        first_connect_error: subscribed.first_error,
        published,
        publish_errors: log.errors,
        first_publish_error: log.first_error,
        publish_rate_per_s: per_second(published, publishing.wall_s),
        offered_rate_per_s,
        send_lag: log.lag.as_ref().map(summarize),
        send_slot_waits: params.rate.map(|_| log.slot_waits),
        counts: tally.counts,
        bad_frames: tally.bad_frames,
        closed_early: tally.closed_early,
        deliveries_per_s: per_second(tally.counts.delivered, delivery_wall_s),
        latency: latency.all.summary(),
        latency_same_node: latency.same.as_ref().map(SharedHistogram::summary),
        latency_cross_node: latency.cross.as_ref().map(SharedHistogram::summary),
        subscribers_per_node: multi.then_some(subscribers_per_node),
        published_per_node: multi.then_some(log.per_node),
        publish_rtt: summarize(&log.rtt),
        publish_wall_s: round3(publishing.wall_s),
        delivery_wall_s: round3(delivery_wall_s),
        cpu,
        hub_rss_before_kib,
        hub_rss_after_kib,
    })
}

/// Refuses a run without a duration, or with no node or more nodes than an
/// event's origin tag can name.
fn check_shape(endpoints: &[Endpoint], params: &FanoutParams) -> Result<()> {
    if params.duration_s <= 0.0 {
        bail!("fanout needs a positive duration");
    }
    let nodes = endpoints.len();
    if nodes == 0 || nodes > usize::from(u8::MAX) {
        bail!("fanout needs 1 to 255 hub endpoints, got {nodes}");
    }
    Ok(())
}

/// The summed RSS of the hubs, `None` without their pids or when one
/// cannot be read.
fn hubs_rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| vm_rss_kib(pid).ok()).sum()
}

/// Starts one reader per subscribed socket; they stop when the returned
/// sender sends `true`.
fn spawn_subscribers(
    sockets: Vec<Subscribed>,
    progress: &Arc<Progress>,
    latency: &Latencies,
) -> (watch::Sender<bool>, JoinSet<SubOutcome>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut subscribers = JoinSet::new();
    for socket in sockets {
        subscribers.spawn(subscriber(
            socket,
            progress.clone(),
            latency.clone(),
            stop_rx.clone(),
        ));
    }
    (stop_tx, subscribers)
}

/// Tells the subscribers to stop and joins them.
async fn stop_subscribers(
    stop: watch::Sender<bool>,
    subscribers: JoinSet<SubOutcome>,
) -> Vec<SubOutcome> {
    let _ = stop.send(true);
    collect(subscribers).await
}

/// The publishing phase: what was published, and when.
struct Publishing {
    log: PublishLog,
    /// Process-clock time publishing started.
    start_ns: u64,
    /// Seconds spent publishing.
    wall_s: f64,
}

/// Publishes at the run's rate, or flat out without one.
async fn publish(publisher: &Publisher, params: &FanoutParams) -> Publishing {
    let start_ns = now_ns();
    let log = match params.rate {
        Some(rate) => publish_at_rate(publisher, params, rate).await,
        None => publish_flat_out(publisher, params).await,
    };
    let wall_s = (now_ns() - start_ns) as f64 / 1e9;
    Publishing {
        log,
        start_ns,
        wall_s,
    }
}

/// The subscribers' outcomes summed against the seqs the hub acknowledged.
struct Tally {
    counts: SeqCounts,
    bad_frames: u64,
    closed_early: BTreeMap<String, u64>,
}

impl Tally {
    /// `connected` subscribers were started; those missing from `outcomes`
    /// did not stop in time.
    fn of(outcomes: &[SubOutcome], acked: &[u64], connected: usize) -> Self {
        let expected = sorted_unique(acked);
        let mut tally = Tally {
            counts: SeqCounts::default(),
            bad_frames: 0,
            closed_early: BTreeMap::new(),
        };
        for outcome in outcomes {
            tally.counts += outcome.tracker.finish(&expected);
            tally.bad_frames += outcome.bad_frames;
            if let Some(reason) = &outcome.ended_early {
                *tally.closed_early.entry(reason.clone()).or_insert(0) += 1;
            }
        }
        let unfinished = connected - outcomes.len();
        if unfinished > 0 {
            tally
                .closed_early
                .insert("did_not_stop".to_owned(), unfinished as u64);
        }
        tally
    }
}

/// The latency histograms subscribers record into.
#[derive(Debug, Clone)]
struct Latencies {
    all: SharedHistogram,
    /// Only with several nodes: deliveries by the node the event was published through.
    same: Option<SharedHistogram>,
    /// Only with several nodes: deliveries by another node.
    cross: Option<SharedHistogram>,
}

impl Latencies {
    fn new(split: bool) -> Self {
        Self {
            all: SharedHistogram::default(),
            same: split.then(SharedHistogram::default),
            cross: split.then(SharedHistogram::default),
        }
    }
}

/// Publishes into one room through the nodes in turn.
#[derive(Debug, Clone)]
struct Publisher {
    https: Vec<HubHttp>,
    next: Arc<AtomicU64>,
    room: String,
    /// Write the node's index into each event's data (several nodes).
    tag_origin: bool,
    /// Give publish `n` the key `k-{n mod keys}` (a keyed room).
    keys: Option<u64>,
}

impl Publisher {
    /// Publishes through every node in `endpoints`, with the run's requests
    /// in flight shared among them.
    fn new(endpoints: &[Endpoint], params: &FanoutParams) -> Result<Self> {
        let nodes = endpoints.len();
        let pool = params.publishers.max(1).div_ceil(nodes);
        let https = endpoints
            .iter()
            .map(|e| HubHttp::new(e, pool))
            .collect::<Result<Vec<_>>>()?;
        Ok(Publisher {
            https,
            next: Arc::new(AtomicU64::new(0)),
            room: params.room.clone(),
            tag_origin: nodes > 1,
            keys: params.keys.filter(|&k| k > 0).map(|k| k as u64),
        })
    }

    fn nodes(&self) -> usize {
        self.https.len()
    }

    /// One publish through the next node; returns the node, the outcome and
    /// the round trip in nanoseconds.
    async fn publish_one(&self) -> (usize, Result<u64>, u64) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let node = (n % self.https.len() as u64) as usize;
        let started = now_ns();
        let body = match (self.keys, self.tag_origin) {
            (None, false) => publish_body(started),
            // At most 255 nodes (checked by `run_multi`).
            (None, true) => publish_body_from(started, node as u8),
            (Some(keys), tag) => {
                let data = if tag {
                    event_data_from(started, node as u8)
                } else {
                    event_data(started)
                };
                keyed_publish_body(&data, &fanout_key(n % keys))
            }
        };
        let outcome = self.https[node].publish(&self.room, body).await;
        (node, outcome, now_ns().saturating_sub(started))
    }
}

/// The state key of the `index`-th key of a keyed fan-out.
pub fn fanout_key(index: u64) -> String {
    format!("k-{index}")
}

fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (count as f64 / secs).round()
    } else {
        0.0
    }
}

/// A subscribed socket, with the node it is connected to and its starting seq.
#[derive(Debug)]
struct Subscribed {
    conn: Conn,
    node: usize,
    base: u64,
}

/// The subscribers that connected, and how many did not.
struct Connected {
    sockets: Vec<Subscribed>,
    failures: usize,
    first_error: Option<String>,
}

impl Connected {
    /// Sockets connected to each of `nodes` nodes.
    fn per_node(&self, nodes: usize) -> Vec<usize> {
        let mut per_node = vec![0; nodes];
        for socket in &self.sockets {
            per_node[socket.node] += 1;
        }
        per_node
    }
}

/// Connects every subscriber (subscriber `i` to node `i mod N`); refuses a
/// run in which subscribers were asked for and none connected.
async fn connect_subscribers(endpoints: &[Endpoint], params: &FanoutParams) -> Result<Connected> {
    let gate = Arc::new(Semaphore::new(params.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..params.subscribers {
        let node = i % endpoints.len();
        let (endpoint, room, gate) = (endpoints[node].clone(), params.room.clone(), gate.clone());
        let (ips, transport) = (params.source_ips.max(1), params.transport);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let source = source_ip(i % ips)?;
            let (conn, base) = Conn::subscribe(
                transport,
                &endpoint,
                &room,
                Some(source),
                BUSY_READ_BUFFER,
                SUBSCRIBE_TIMEOUT,
            )
            .await?;
            anyhow::Ok(Subscribed { conn, node, base })
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
    if params.subscribers > 0 && sockets.is_empty() {
        bail!(
            "no subscriber could connect: {}",
            first_error.unwrap_or_default()
        );
    }
    Ok(Connected {
        sockets,
        failures,
        first_error,
    })
}

/// Reads one subscriber's socket until told to stop or until it ends.
async fn subscriber(
    socket: Subscribed,
    progress: Arc<Progress>,
    latency: Latencies,
    mut stop: watch::Receiver<bool>,
) -> SubOutcome {
    let Subscribed {
        mut conn,
        node,
        base,
    } = socket;
    let mut tracker = SeqTracker::new(base);
    let mut recorder = latency.all.recorder();
    let mut same = latency.same.as_ref().map(SharedHistogram::recorder);
    let mut cross = latency.cross.as_ref().map(SharedHistogram::recorder);
    let mut bad_frames = 0;
    let ended_early = loop {
        let incoming = tokio::select! {
            biased;
            _ = stop.changed() => break None,
            incoming = conn.next() => incoming,
        };
        let text = match &incoming {
            Incoming::Text(t) => t.as_str(),
            Incoming::Data(d) => d.as_str(),
            Incoming::Control => continue,
            Incoming::Ended(reason) => break Some(reason.clone()),
        };
        match parse_frame(text) {
            Ok(Frame::Event { seq, t_ns, origin }) => {
                let now = now_ns();
                if tracker.record(seq) == Arrival::New {
                    progress.distinct.fetch_add(1, Ordering::Relaxed);
                    progress.last_ns.fetch_max(now, Ordering::Relaxed);
                    if let Some(sent) = t_ns {
                        let ns = now.saturating_sub(sent);
                        recorder.record(ns);
                        let split = match origin {
                            Some(o) if usize::from(o) == node => same.as_mut(),
                            Some(_) => cross.as_mut(),
                            None => None,
                        };
                        if let Some(split) = split {
                            split.record(ns);
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(_) => bad_frames += 1,
        }
    };
    recorder.flush();
    for split in [same.as_mut(), cross.as_mut()].into_iter().flatten() {
        split.flush();
    }
    if ended_early.is_none() {
        conn.close(Duration::from_millis(500)).await;
    }
    SubOutcome {
        tracker,
        bad_frames,
        ended_early,
    }
}

/// Publishes `rate × duration` events on a fixed schedule, with up to
/// `publishers` requests in flight so that one slow answer does not delay the
/// schedule.
async fn publish_at_rate(publisher: &Publisher, params: &FanoutParams, rate: f64) -> PublishLog {
    let total = ((rate * params.duration_s).round() as u64).min(params.max_events);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1e-3)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let gate = Arc::new(Semaphore::new(params.publishers.max(1)));
    let mut in_flight = JoinSet::new();
    let mut log = PublishLog::new(publisher.nodes());
    let mut lag = new_histogram();
    let schedule_start = now_ns();
    let period_ns = 1e9 / rate.max(1e-3);
    for k in 0..total {
        ticker.tick().await;
        let permit = match gate.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                log.slot_waits += 1;
                let Ok(permit) = gate.clone().acquire_owned().await else {
                    break;
                };
                permit
            }
        };
        let sent = now_ns();
        let due = schedule_start + (k as f64 * period_ns) as u64;
        lag.saturating_record(sent.saturating_sub(due).max(1));
        let first = log.sends.map_or(sent, |(first, _)| first);
        log.sends = Some((first, sent));
        let publisher = publisher.clone();
        in_flight.spawn(async move {
            let result = publisher.publish_one().await;
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
    log.lag = Some(lag);
    log
}

fn record_joined(
    log: &mut PublishLog,
    joined: Result<(usize, Result<u64>, u64), tokio::task::JoinError>,
) {
    match joined {
        Ok((node, outcome, rtt)) => log.add(node, outcome, rtt),
        Err(e) => log.add(usize::MAX, Err(e.into()), 0),
    }
}

/// Publishes back to back from `publishers` loops for the run's duration.
async fn publish_flat_out(publisher: &Publisher, params: &FanoutParams) -> PublishLog {
    let deadline = Instant::now() + Duration::from_secs_f64(params.duration_s);
    let budget = Arc::new(AtomicU64::new(params.max_events));
    let mut loops = JoinSet::new();
    for _ in 0..params.publishers.max(1) {
        let (publisher, budget) = (publisher.clone(), budget.clone());
        loops.spawn(async move {
            let mut log = PublishLog::new(publisher.nodes());
            while Instant::now() < deadline && take_one(&budget) {
                let (node, outcome, rtt) = publisher.publish_one().await;
                log.add(node, outcome, rtt);
            }
            log
        });
    }
    let mut log = PublishLog::new(publisher.nodes());
    while let Some(joined) = loops.join_next().await {
        match joined {
            Ok(part) => log.merge(part),
            Err(e) => log.add(usize::MAX, Err(e.into()), 0),
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
