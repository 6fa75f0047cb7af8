//! `keyed-replay`: what a fresh subscriber to a keyed room costs, and what a
//! key costs the hub's memory.
//!
//! On a hub that holds the room keyed (`rooms.keyed`, `max_keys` at least
//! `keys`; the harness starts it so), the hub's RSS is read, then `keys`
//! distinct keys (`key-000000`, `key-000001`, …) get one event each (a
//! 256-byte `data` as in the other scenarios) through `POST /api/events`
//! batches; after a settle the RSS is read again: bytes per key =
//! (after − before) ÷ keys (history holds only the room's last events, so
//! the difference is the state).
//!
//! Then fresh subscribers, first `subscribers` one at a time, then
//! `subscribers` at once (all connected first, then all sending `subscribe`
//! together). Each connects to `/ws`, waits for `welcome`, sends `subscribe`
//! and reads `subscribed` and the state frames after it. Measured per
//! subscriber: from sending `subscribe` to `subscribed`, and to the last state
//! frame. Checked per subscriber: `subscribed` names the head and
//! `"state": keys`; exactly `keys` state frames follow, in increasing seq
//! order, each the event its key's publish was acknowledged with (so one per
//! key); and after the last one a `ping` is answered by `pong` with no event
//! in between (no extra state frame).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::SinkExt;
use serde::Serialize;
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::clock::now_ns;
use crate::endpoint::{source_ip, Endpoint};
use crate::http::{BatchOutcome, HubHttp};
use crate::latency::{new_histogram, round3, summarize, LatencySummary};
use crate::payload::{event_data, keyed_batch_item, parse_keyed_frame, KeyedFrame};
use crate::procfs::{vm_rss_kib, CpuMeter, CpuUse};
use crate::report::Check;
use crate::ws::{self, WsStream, BUSY_READ_BUFFER};

/// How long one subscriber has to connect and get `welcome`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one replay may take, `subscribe` to the `pong` after it.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(60);

/// Loopback source addresses the subscribers are spread over.
const SOURCE_IPS: usize = 4;

/// What a keyed-replay run does.
#[derive(Debug, Clone, Serialize)]
pub struct KeyedReplayParams {
    /// The room (keyed on the hub).
    pub room: String,
    /// Distinct keys published, one event each.
    pub keys: usize,
    /// Fresh subscribers one at a time, then as many at once.
    pub subscribers: usize,
    /// Items per `POST /api/events` request.
    pub batch_items: usize,
    /// Batch requests in flight at once.
    pub concurrency: usize,
    /// Wait after publishing before the "after" RSS reading, in milliseconds.
    pub settle_ms: u64,
}

/// One phase of fresh subscribers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayPhase {
    /// Subscribers of the phase.
    pub subscribers: usize,
    /// Replays that passed every check.
    pub replays_ok: usize,
    /// Replays that failed to connect, timed out or broke a check.
    pub replays_failed: usize,
    /// The first failure.
    pub first_failure: Option<String>,
    /// From sending `subscribe` to `subscribed`, replays that passed.
    pub to_subscribed: LatencySummary,
    /// From sending `subscribe` to the last state frame, replays that passed.
    pub to_last_state_frame: LatencySummary,
    /// From the first `subscribe` sent to the last state frame of any
    /// subscriber of the phase, in milliseconds.
    pub wall_ms: f64,
    /// State frames received per second over the phase's wall time.
    pub state_frames_per_s: f64,
}

/// What a keyed-replay run measured.
#[derive(Debug, Clone, Serialize)]
pub struct KeyedReplayResult {
    /// Keys whose publish was acknowledged.
    pub keys_published: u64,
    /// Items or requests that failed while publishing.
    pub publish_errors: u64,
    /// The first such failure.
    pub first_publish_error: Option<String>,
    /// The room's head after publishing (the highest acknowledged seq).
    pub head_seq: u64,
    /// Seconds spent publishing.
    pub publish_s: f64,
    /// Acknowledged keys per second while publishing.
    pub publish_keys_per_s: f64,
    /// Hub RSS before publishing.
    pub hub_rss_before_kib: Option<u64>,
    /// Hub RSS after publishing and the settle.
    pub hub_rss_after_kib: Option<u64>,
    /// (after − before) ÷ keys, in bytes.
    pub hub_rss_per_key_bytes: Option<f64>,
    /// Hub RSS after both replay phases (sockets closed).
    pub hub_rss_after_replays_kib: Option<u64>,
    /// Fresh subscribers one at a time.
    pub one_at_a_time: ReplayPhase,
    /// Fresh subscribers all at once.
    pub at_once: ReplayPhase,
    /// CPU use over both replay phases.
    pub replay_cpu: CpuUse,
}

impl KeyedReplayResult {
    /// Every key acknowledged and every replay exact; the replay times and
    /// the memory per key are reported.
    pub fn checks(&self, params: &KeyedReplayParams) -> Vec<Check> {
        let subs = params.subscribers as u64;
        let mut checks = vec![
            Check::equals("publish_errors", self.publish_errors, 0),
            Check::equals("keys_published", self.keys_published, params.keys as u64),
            Check::equals(
                "replays_ok_one_at_a_time",
                self.one_at_a_time.replays_ok as u64,
                subs,
            ),
            Check::equals("replays_ok_at_once", self.at_once.replays_ok as u64, subs),
        ];
        for (phase, name) in [(&self.one_at_a_time, "one"), (&self.at_once, "all")] {
            let t = &phase.to_last_state_frame;
            checks.push(Check::reported(&format!("replay_p50_ms_{name}"), t.p50_ms));
            checks.push(Check::reported(&format!("replay_max_ms_{name}"), t.max_ms));
        }
        if let Some(bytes) = self.hub_rss_per_key_bytes {
            checks.push(Check::reported("hub_rss_per_key_bytes", bytes));
        }
        checks
    }
}

/// The state key of the `index`-th key of a run.
pub fn key_name(index: usize) -> String {
    format!("key-{index:06}")
}

/// What the hub acknowledged: each key's seq, and the head.
#[derive(Debug, Default)]
struct Expected {
    seqs: HashMap<String, u64>,
    head: u64,
}

/// Runs the scenario against `endpoint` (its room must be keyed and hold no
/// keys yet).
pub async fn run(endpoint: &Endpoint, params: &KeyedReplayParams) -> Result<KeyedReplayResult> {
    if params.keys == 0 || params.subscribers == 0 {
        bail!("keyed-replay needs at least one key and one subscriber");
    }
    let rss = || endpoint.pid().and_then(|pid| vm_rss_kib(pid).ok());
    let http = HubHttp::new(endpoint, params.concurrency.max(1))?;

    let hub_rss_before_kib = rss();
    let started = now_ns();
    let published = publish_keys(&http, params).await;
    let publish_s = now_ns().saturating_sub(started) as f64 / 1e9;
    tokio::time::sleep(Duration::from_millis(params.settle_ms)).await;
    let hub_rss_after_kib = rss();
    if published.expected.seqs.is_empty() {
        bail!(
            "no key was published: {}",
            published.first_error.unwrap_or_default()
        );
    }
    let keys_published = published.expected.seqs.len() as u64;
    let head_seq = published.expected.head;
    let expected = Arc::new(published.expected);

    let cpu = CpuMeter::start(endpoint.pid());
    let one_at_a_time = one_at_a_time(endpoint, params, &expected).await;
    let at_once = at_once(endpoint, params, &expected).await;
    let replay_cpu = cpu.stop();
    let hub_rss_after_replays_kib = rss();

    let hub_rss_per_key_bytes = hub_rss_before_kib
        .zip(hub_rss_after_kib)
        .map(|(before, after)| {
            let delta = after as f64 - before as f64;
            (delta * 1024.0 / keys_published as f64).round()
        });
    Ok(KeyedReplayResult {
        keys_published,
        publish_errors: published.errors,
        first_publish_error: published.first_error,
        head_seq,
        publish_s: round3(publish_s),
        publish_keys_per_s: if publish_s > 0.0 {
            (keys_published as f64 / publish_s).round()
        } else {
            0.0
        },
        hub_rss_before_kib,
        hub_rss_after_kib,
        hub_rss_per_key_bytes,
        hub_rss_after_replays_kib,
        one_at_a_time,
        at_once,
        replay_cpu,
    })
}

/// What publishing did.
#[derive(Debug, Default)]
struct Published {
    expected: Expected,
    errors: u64,
    first_error: Option<String>,
}

impl Published {
    fn fail(&mut self, count: u64, error: String) {
        self.errors += count;
        self.first_error.get_or_insert(error);
    }

    /// Records the answer to a batch of `keys` (in the batch's order).
    fn add(&mut self, keys: Vec<String>, answer: Result<Vec<BatchOutcome>>) {
        let outcomes = match answer {
            Ok(outcomes) => outcomes,
            Err(e) => return self.fail(keys.len() as u64, format!("{e:#}")),
        };
        if outcomes.len() != keys.len() {
            let missing = keys.len().abs_diff(outcomes.len()) as u64;
            self.fail(
                missing.max(1),
                format!("{} items sent, {} results", keys.len(), outcomes.len()),
            );
        }
        for (key, outcome) in keys.into_iter().zip(outcomes) {
            match (outcome.seq, outcome.error) {
                (Some(seq), None) => {
                    self.expected.head = self.expected.head.max(seq);
                    if self.expected.seqs.insert(key.clone(), seq).is_some() {
                        self.fail(1, format!("{key}: acknowledged twice"));
                    }
                }
                (_, error) => {
                    let code = error.unwrap_or_else(|| "no seq".to_owned());
                    self.fail(1, format!("{key}: {code}"));
                }
            }
        }
    }
}

/// Publishes one event for each of the `keys` keys, in batches of
/// `batch_items`, `concurrency` batches in flight.
async fn publish_keys(http: &HubHttp, params: &KeyedReplayParams) -> Published {
    let per_batch = params.batch_items.max(1);
    let gate = Arc::new(Semaphore::new(params.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let mut published = Published::default();
    let mut next = 0;
    while next < params.keys {
        let end = (next + per_batch).min(params.keys);
        let keys: Vec<String> = (next..end).map(key_name).collect();
        let body = batch_body(&params.room, &keys);
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let http = http.clone();
        in_flight.spawn(async move {
            let answer = http.publish_batch(body).await;
            drop(permit);
            (keys, answer)
        });
        while let Some(done) = in_flight.try_join_next() {
            add_joined(&mut published, done);
        }
        next = end;
    }
    while let Some(done) = in_flight.join_next().await {
        add_joined(&mut published, done);
    }
    published
}

fn add_joined(
    published: &mut Published,
    joined: Result<(Vec<String>, Result<Vec<BatchOutcome>>), tokio::task::JoinError>,
) {
    match joined {
        Ok((keys, answer)) => published.add(keys, answer),
        Err(e) => published.fail(1, format!("batch task: {e}")),
    }
}

/// The `POST /api/events` body publishing one event for each of `keys`.
fn batch_body(room: &str, keys: &[String]) -> String {
    let mut body = String::with_capacity(keys.len() * 340 + 2);
    body.push('[');
    for (n, key) in keys.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&keyed_batch_item(room, key, &event_data(now_ns())));
    }
    body.push(']');
    body
}

/// One replay that passed its checks, on the process clock.
#[derive(Debug, Clone, Copy)]
struct Replay {
    /// `subscribe` sent.
    sent_ns: u64,
    /// `subscribed` received.
    subscribed_ns: u64,
    /// The last state frame received.
    last_ns: u64,
}

/// Summarises the replays of one phase.
#[derive(Debug)]
struct PhaseLog {
    phase: ReplayPhase,
    replays: Vec<Replay>,
}

impl PhaseLog {
    fn new(subscribers: usize) -> Self {
        Self {
            phase: ReplayPhase {
                subscribers,
                ..ReplayPhase::default()
            },
            replays: Vec::with_capacity(subscribers),
        }
    }

    fn add(&mut self, outcome: Result<Replay>) {
        match outcome {
            Ok(replay) => {
                self.phase.replays_ok += 1;
                self.replays.push(replay);
            }
            Err(e) => {
                self.phase.replays_failed += 1;
                self.phase.first_failure.get_or_insert(format!("{e:#}"));
            }
        }
    }

    fn finish(mut self, keys: u64) -> ReplayPhase {
        let mut to_subscribed = new_histogram();
        let mut to_last = new_histogram();
        for r in &self.replays {
            to_subscribed.saturating_record(r.subscribed_ns.saturating_sub(r.sent_ns).max(1));
            to_last.saturating_record(r.last_ns.saturating_sub(r.sent_ns).max(1));
        }
        self.phase.to_subscribed = summarize(&to_subscribed);
        self.phase.to_last_state_frame = summarize(&to_last);
        let first = self.replays.iter().map(|r| r.sent_ns).min();
        let last = self.replays.iter().map(|r| r.last_ns).max();
        if let (Some(first), Some(last)) = (first, last) {
            let wall_s = last.saturating_sub(first) as f64 / 1e9;
            self.phase.wall_ms = round3(wall_s * 1e3);
            if wall_s > 0.0 {
                let frames = keys as f64 * self.replays.len() as f64;
                self.phase.state_frames_per_s = (frames / wall_s).round();
            }
        }
        self.phase
    }
}

/// `subscribers` fresh subscribers, each connected and replayed after the
/// previous one closed.
async fn one_at_a_time(
    endpoint: &Endpoint,
    params: &KeyedReplayParams,
    expected: &Expected,
) -> ReplayPhase {
    let mut log = PhaseLog::new(params.subscribers);
    for i in 0..params.subscribers {
        let outcome = async {
            let mut ws = connect_fresh(endpoint, i).await?;
            let replay = replay(&mut ws, &params.room, expected, None).await;
            close(&mut ws).await;
            replay
        };
        log.add(outcome.await);
    }
    log.finish(expected.seqs.len() as u64)
}

/// `subscribers` fresh subscribers connected first, then subscribing together.
async fn at_once(
    endpoint: &Endpoint,
    params: &KeyedReplayParams,
    expected: &Arc<Expected>,
) -> ReplayPhase {
    let mut log = PhaseLog::new(params.subscribers);
    let mut sockets = Vec::with_capacity(params.subscribers);
    for i in 0..params.subscribers {
        match connect_fresh(endpoint, i).await {
            Ok(ws) => sockets.push(ws),
            Err(e) => log.add(Err(e)),
        }
    }
    let barrier = Arc::new(Barrier::new(sockets.len()));
    let mut tasks = JoinSet::new();
    for mut ws in sockets {
        let (room, expected, barrier) = (params.room.clone(), expected.clone(), barrier.clone());
        tasks.spawn(async move {
            let replay = replay(&mut ws, &room, &expected, Some(&barrier)).await;
            close(&mut ws).await;
            replay
        });
    }
    while let Some(joined) = tasks.join_next().await {
        log.add(joined.map_err(anyhow::Error::from).and_then(|r| r));
    }
    log.finish(expected.seqs.len() as u64)
}

/// A socket on `/ws` (no room yet) from source address `index mod 4`, past
/// its `welcome`.
async fn connect_fresh(endpoint: &Endpoint, index: usize) -> Result<WsStream> {
    let source = source_ip(index % SOURCE_IPS)?;
    let mut ws = ws::connect(endpoint, "/ws", Some(source), BUSY_READ_BUFFER).await?;
    ws::wait_welcome(&mut ws, CONNECT_TIMEOUT).await?;
    Ok(ws)
}

async fn close(ws: &mut WsStream) {
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
}

/// Subscribes `ws` to `room` (after `start`, when given, lets every
/// subscriber go) and checks the state replay against `expected`.
async fn replay(
    ws: &mut WsStream,
    room: &str,
    expected: &Expected,
    start: Option<&Barrier>,
) -> Result<Replay> {
    if let Some(barrier) = start {
        barrier.wait().await;
    }
    let command = serde_json::json!({"op": "subscribe", "room": room}).to_string();
    let sent_ns = now_ns();
    ws.send(Message::text(command))
        .await
        .context("sending subscribe")?;
    tokio::time::timeout(REPLAY_TIMEOUT, read_replay(ws, expected, sent_ns))
        .await
        .with_context(|| format!("replay not complete after {REPLAY_TIMEOUT:?}"))?
}

/// Reads `subscribed`, the state frames and, after a `ping`, the `pong`.
async fn read_replay(ws: &mut WsStream, expected: &Expected, sent_ns: u64) -> Result<Replay> {
    let keys = expected.seqs.len() as u64;
    let (seq, state) = loop {
        match next_frame(ws).await? {
            KeyedFrame::Subscribed { seq, state } => break (seq, state),
            KeyedFrame::Error { code } => bail!("subscribe answered error `{code}`"),
            _ => {}
        }
    };
    let subscribed_ns = now_ns();
    let Some(state) = state else {
        bail!("subscribed carries no state: the room is not keyed on this hub");
    };
    if seq != expected.head {
        bail!(
            "subscribed at seq {seq}, the room's head is {}",
            expected.head
        );
    }
    if state != keys {
        bail!("subscribed announces {state} state frames, {keys} keys were published");
    }
    let mut last_seq = 0;
    let mut last_ns = subscribed_ns;
    for n in 0..state {
        let (frame_seq, key) = match next_frame(ws).await? {
            KeyedFrame::Event { seq, key } => (seq, key),
            other => bail!("state frame {n}: expected an event, got {other:?}"),
        };
        last_ns = now_ns();
        if frame_seq <= last_seq {
            bail!("state frame {n}: seq {frame_seq} after seq {last_seq}");
        }
        last_seq = frame_seq;
        let Some(key) = key else {
            bail!("state frame {n} (seq {frame_seq}) has no key");
        };
        match expected.seqs.get(&key) {
            Some(&acked) if acked == frame_seq => {}
            Some(&acked) => {
                bail!("state frame {n}: key {key} at seq {frame_seq}, acknowledged at {acked}")
            }
            None => bail!("state frame {n}: key {key} was never published"),
        }
    }
    // Seqs strictly increase and each is its key's acknowledged seq, so the
    // `keys` frames name `keys` different keys. Nothing may follow them: the
    // pong answering a ping sent now comes after anything already queued.
    let ping = Message::text(r#"{"op":"ping"}"#);
    ws.send(ping).await.context("sending ping")?;
    let mut extra = 0;
    loop {
        match next_frame(ws).await? {
            KeyedFrame::Pong => break,
            KeyedFrame::Event { .. } => extra += 1,
            _ => {}
        }
    }
    if extra > 0 {
        bail!("{extra} event frames after the {state} state frames");
    }
    Ok(Replay {
        sent_ns,
        subscribed_ns,
        last_ns,
    })
}

async fn next_frame(ws: &mut WsStream) -> Result<KeyedFrame> {
    let Some(text) = ws::next_text(ws).await? else {
        bail!("socket closed during the replay");
    };
    parse_keyed_frame(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_body_names_every_key_once() {
        let keys: Vec<String> = (3..6).map(key_name).collect();
        let body: serde_json::Value =
            serde_json::from_str(&batch_body("bench", &keys)).expect("JSON");
        let items = body.as_array().expect("array");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["key"], "key-000003");
        assert_eq!(items[2]["room"], "bench");
        assert!(items.iter().all(|i| i["data"]["t_ns"].is_u64()));
    }

    #[test]
    fn publishing_records_each_key_seq_and_errors() {
        let ok = |seq| BatchOutcome {
            room: "bench".to_owned(),
            seq: Some(seq),
            epoch: Some("e".to_owned()),
            error: None,
        };
        let refused = BatchOutcome {
            room: "bench".to_owned(),
            seq: None,
            epoch: None,
            error: Some("limit_exceeded".to_owned()),
        };
        let mut p = Published::default();
        let keys = |r: std::ops::Range<usize>| r.map(key_name).collect::<Vec<_>>();
        p.add(keys(0..2), Ok(vec![ok(2), ok(1)]));
        p.add(keys(2..4), Ok(vec![ok(3), refused]));
        p.add(keys(4..6), Err(anyhow::anyhow!("boom")));
        assert_eq!(p.expected.seqs.len(), 3);
        assert_eq!(p.expected.seqs.get("key-000000"), Some(&2));
        assert_eq!(p.expected.head, 3);
        assert_eq!(p.errors, 3);
        assert_eq!(p.first_error.as_deref(), Some("key-000003: limit_exceeded"));
    }

    #[test]
    fn a_phase_summarises_passed_replays_only() {
        let mut log = PhaseLog::new(3);
        log.add(Ok(Replay {
            sent_ns: 1_000_000,
            subscribed_ns: 2_000_000,
            last_ns: 11_000_000,
        }));
        log.add(Ok(Replay {
            sent_ns: 2_000_000,
            subscribed_ns: 3_000_000,
            last_ns: 21_000_000,
        }));
        log.add(Err(anyhow::anyhow!("state frame 0: no key")));
        let phase = log.finish(100);
        assert_eq!((phase.replays_ok, phase.replays_failed), (2, 1));
        assert_eq!(phase.to_last_state_frame.count, 2);
        assert!((phase.to_last_state_frame.max_ms - 19.0).abs() < 0.1);
        assert!((phase.wall_ms - 20.0).abs() < 1e-9);
        assert_eq!(phase.state_frames_per_s, 10_000.0);
        assert_eq!(
            phase.first_failure.as_deref(),
            Some("state frame 0: no key")
        );
    }
}
