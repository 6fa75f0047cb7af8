//! `presence`: what presence (contract section 15) costs the hub at N members.
//!
//! One hub with `rooms.presence = true` and a JWT secret; a watcher session
//! subscribes to the room first, then N members (user `u{i}` each, one
//! session per user) subscribe, spread over loopback source addresses. Every
//! member drains its socket (each join and leave reaches every subscriber).
//!
//! - join: for the last `sample` members (connected to `/ws` beforehand), the
//!   time from sending `subscribe` to the watcher reading that user's
//!   `presence_join`, and the hub's CPU time over those joins / joins;
//! - answer: the `presence` command's round trip on the watcher and
//!   `GET /api/rooms/{room}/presence`, asked repeatedly with no change (the
//!   shared encoded answer) and with a change (a leave or join) before each ask;
//! - leave: the same `sample` members closing one at a time, close frame sent
//!   to the watcher's `presence_leave`, and CPU per leave;
//! - memory: hub RSS delta per member, against a second hub without presence
//!   with the same N members (same tokens, same room), so the difference is
//!   presence alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::endpoint::{source_ip, Endpoint};
use crate::hub::{HubProcess, Storage};
use crate::latency::{new_histogram, round3, summarize, LatencySummary};
use crate::procfs;
use crate::ws::{self, WsStream};

/// The JWT secret of the hubs this scenario starts (32 bytes, the hub's minimum).
pub const SECRET: &str = "hub-bench-presence-secret-0123456789";

const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Parameters of a run.
#[derive(Debug, Clone, Serialize)]
pub struct PresenceParams {
    /// Members (distinct users), the sample included.
    pub members: usize,
    /// Joins and leaves timed one at a time (the last members).
    pub sample: usize,
    /// Asks of each kind (command, HTTP) × (unchanged, changed).
    pub asks: usize,
    /// Handshakes in flight while the bulk of the members connect.
    pub concurrency: usize,
    /// Members per loopback source address.
    pub per_source: usize,
    /// The room.
    pub room: String,
    /// Also measure RSS on a hub without presence.
    pub baseline: bool,
    /// Milliseconds to wait before an RSS reading.
    pub settle_ms: u64,
}

/// One run's results.
#[derive(Debug, Serialize)]
pub struct PresenceReport {
    /// Always `presence`.
    pub scenario: &'static str,
    /// What was asked.
    pub params: PresenceParams,
    /// Subscribe sent → watcher reads the `presence_join`.
    pub join: LatencySummary,
    /// Hub CPU (user + system) per timed join, microseconds.
    pub join_hub_cpu_us: f64,
    /// Close frame sent → watcher reads the `presence_leave`.
    pub leave: LatencySummary,
    /// Hub CPU per timed leave, microseconds.
    pub leave_hub_cpu_us: f64,
    /// `presence` command round trip, no change between asks.
    pub ask_cached: LatencySummary,
    /// `presence` command round trip, one join or leave before each ask.
    pub ask_changed: LatencySummary,
    /// `GET /api/rooms/{room}/presence`, no change between asks.
    pub http_cached: LatencySummary,
    /// The same, one join or leave before each ask.
    pub http_changed: LatencySummary,
    /// Bytes of the `presence` frame with all members in.
    pub answer_frame_bytes: usize,
    /// Bytes of the HTTP body with all members in.
    pub http_body_bytes: usize,
    /// Users in the answer with all members in (the watcher included).
    pub answer_users: usize,
    /// Hub RSS growth per member with presence, bytes.
    pub rss_per_member_bytes: f64,
    /// The same on a hub without presence (`baseline`).
    pub baseline_rss_per_member_bytes: Option<f64>,
    /// The difference: presence's own memory per member, bytes.
    pub presence_rss_per_member_bytes: Option<f64>,
    /// Frames the members read in total (mostly joins of later users).
    pub member_frames: u64,
    /// Seconds the bulk of the members took to connect and be announced.
    pub bulk_connect_s: f64,
}

type Sink = SplitSink<WsStream, Message>;

/// A frame the watcher read, with when.
#[derive(Debug)]
enum Seen {
    Join(String),
    Leave(String),
    Answer { reference: String, bytes: usize },
    Error(String),
}

#[derive(Deserialize)]
struct RawPresenceFrame {
    #[serde(rename = "type")]
    kind: String,
    user: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<serde_json::Value>,
}

/// `presence_join` / `presence_leave` / `presence` frames; `None` for anything else.
fn classify(text: &str) -> Option<Seen> {
    let frame: RawPresenceFrame = serde_json::from_str(text).ok()?;
    match frame.kind.as_str() {
        "presence_join" => Some(Seen::Join(frame.user?)),
        "presence_leave" => Some(Seen::Leave(frame.user?)),
        "presence" => Some(Seen::Answer {
            reference: match frame.reference? {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
            bytes: text.len(),
        }),
        "error" => Some(Seen::Error(text.to_owned())),
        _ => None,
    }
}

/// The watcher's reader: forwards presence frames with their arrival time.
fn spawn_watcher(
    mut stream: SplitStream<WsStream>,
) -> mpsc::UnboundedReceiver<(Instant, Result<Seen>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            let at = Instant::now();
            let text = match message {
                Ok(Message::Text(t)) => t,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send((at, Err(anyhow::anyhow!("watcher socket: {e}"))));
                    return;
                }
            };
            if let Some(seen) = classify(text.as_str()) {
                if tx.send((at, Ok(seen))).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send((
            Instant::now(),
            Err(anyhow::anyhow!("watcher socket closed")),
        ));
    });
    rx
}

/// Reads the watcher's frames until `want` matches one; returns its arrival time.
async fn await_seen(
    rx: &mut mpsc::UnboundedReceiver<(Instant, Result<Seen>)>,
    mut want: impl FnMut(&Seen) -> bool,
) -> Result<(Instant, Seen)> {
    let read = async {
        loop {
            let Some((at, seen)) = rx.recv().await else {
                bail!("watcher reader ended");
            };
            let seen = seen?;
            if let Seen::Error(text) = &seen {
                bail!("the watcher got an error frame: {text}");
            }
            if want(&seen) {
                return Ok((at, seen));
            }
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, read)
        .await
        .context("timed out waiting for a presence frame on the watcher")?
}

/// Reads and discards a member's frames until its socket ends.
fn spawn_drain(mut stream: SplitStream<WsStream>, frames: Arc<AtomicU64>) {
    tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Close(_) => break,
                Message::Text(_) => {
                    n += 1;
                    if n.is_multiple_of(256) {
                        frames.fetch_add(256, Ordering::Relaxed);
                        n = 0;
                    }
                }
                _ => {}
            }
        }
        frames.fetch_add(n, Ordering::Relaxed);
    });
}

fn token(user: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3_600;
    crate::jwt::hs256(SECRET.as_bytes(), user, exp)
}

fn source_for(index: usize, per_source: usize) -> Result<std::net::Ipv4Addr> {
    source_ip(index / per_source.max(1))
}

/// Connects members `range` subscribed through the URL (`/ws/{room}?token=…`),
/// `concurrency` at a time; returns their sinks, readers draining.
async fn connect_subscribed(
    endpoint: &Endpoint,
    params: &PresenceParams,
    range: std::ops::Range<usize>,
    frames: &Arc<AtomicU64>,
) -> Result<Vec<(usize, Sink)>> {
    let mut set = JoinSet::new();
    let mut sinks = Vec::with_capacity(range.len());
    let mut next = range.start;
    loop {
        while set.len() < params.concurrency && next < range.end {
            let i = next;
            next += 1;
            let endpoint = endpoint.clone();
            let path = format!("/ws/{}?token={}", params.room, token(&format!("u{i}")));
            let source = source_for(i, params.per_source)?;
            set.spawn(async move {
                let mut s = ws::connect(&endpoint, &path, Some(source), ws::IDLE_READ_BUFFER)
                    .await
                    .with_context(|| format!("member u{i}"))?;
                ws::wait_subscribed(&mut s, STEP_TIMEOUT).await?;
                anyhow::Ok((i, s))
            });
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        let (i, s) = done.context("member task")??;
        let (sink, stream) = s.split();
        spawn_drain(stream, frames.clone());
        sinks.push((i, sink));
    }
    Ok(sinks)
}

async fn rss_bytes(pid: u32, settle_ms: u64) -> Result<u64> {
    tokio::time::sleep(Duration::from_millis(settle_ms)).await;
    Ok(procfs::vm_rss_kib(pid)? * 1024)
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

fn hub_env(presence: bool) -> Vec<(String, String)> {
    vec![
        ("HUB_AUTH__JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("HUB_ROOMS__PRESENCE".to_owned(), presence.to_string()),
    ]
}

/// The hub's pid, needed for CPU and RSS.
fn pid_of(endpoint: &Endpoint) -> Result<u32> {
    endpoint
        .pid()
        .context("the presence scenario needs the hub's pid")
}

/// Memory of N subscribed members on a hub without presence: bytes per member.
async fn baseline_rss(bin: &std::path::Path, params: &PresenceParams) -> Result<f64> {
    let hub = HubProcess::start_with_env(bin, Storage::Memory, &hub_env(false)).await?;
    let endpoint = hub.endpoint().clone();
    let pid = pid_of(&endpoint)?;
    let frames = Arc::new(AtomicU64::new(0));
    let watcher = ws::connect(
        &endpoint,
        &format!("/ws/{}?token={}", params.room, token("watcher")),
        Some(source_ip(0)?),
        ws::BUSY_READ_BUFFER,
    )
    .await?;
    let before = rss_bytes(pid, params.settle_ms).await?;
    let sinks = connect_subscribed(&endpoint, params, 0..params.members, &frames).await?;
    let after = rss_bytes(pid, params.settle_ms).await?;
    drop(sinks);
    drop(watcher);
    drop(hub);
    Ok((after as f64 - before as f64) / params.members as f64)
}

/// Runs the scenario on fresh hubs started from `bin`.
pub async fn run(bin: &std::path::Path, params: PresenceParams) -> Result<PresenceReport> {
    if params.sample * 2 + params.asks + 2 > params.members {
        bail!("--members must exceed 2 × --sample + --asks + 2");
    }
    let hub = HubProcess::start_with_env(bin, Storage::Memory, &hub_env(true)).await?;
    let endpoint = hub.endpoint().clone();
    let pid = pid_of(&endpoint)?;
    let room = params.room.clone();
    let frames = Arc::new(AtomicU64::new(0));

    // The watcher first.
    let mut watcher = ws::connect(
        &endpoint,
        &format!("/ws/{room}?token={}", token("watcher")),
        Some(source_ip(0)?),
        ws::BUSY_READ_BUFFER,
    )
    .await?;
    ws::wait_subscribed(&mut watcher, STEP_TIMEOUT).await?;
    let (mut wsink, wstream) = watcher.split();
    let mut seen = spawn_watcher(wstream);
    await_seen(&mut seen, |s| matches!(s, Seen::Join(u) if u == "watcher")).await?;
    let rss_before = rss_bytes(pid, params.settle_ms).await?;

    // The bulk, announced to the watcher.
    let timed_from = params.members - params.sample;
    let bulk_started = Instant::now();
    let mut sinks: HashMap<usize, Sink> =
        connect_subscribed(&endpoint, &params, 0..timed_from, &frames)
            .await?
            .into_iter()
            .collect();
    let last_bulk = format!("u{}", timed_from - 1);
    let mut announced = 0usize;
    let mut waited_last = false;
    while announced < timed_from {
        let (_, s) = await_seen(&mut seen, |s| matches!(s, Seen::Join(_))).await?;
        announced += 1;
        if matches!(&s, Seen::Join(u) if *u == last_bulk) {
            waited_last = true;
        }
    }
    if !waited_last {
        bail!("the watcher never saw {last_bulk} join");
    }
    let bulk_connect_s = round3(bulk_started.elapsed().as_secs_f64());

    // The timed members: connected to /ws first, then subscribed one at a time.
    let mut pending = Vec::with_capacity(params.sample);
    for i in timed_from..params.members {
        let path = format!("/ws?token={}", token(&format!("u{i}")));
        let mut s = ws::connect(
            &endpoint,
            &path,
            Some(source_for(i, params.per_source)?),
            ws::IDLE_READ_BUFFER,
        )
        .await?;
        ws::wait_welcome(&mut s, STEP_TIMEOUT).await?;
        let (sink, stream) = s.split();
        spawn_drain(stream, frames.clone());
        pending.push((i, sink));
    }
    let subscribe = serde_json::json!({"op": "subscribe", "room": room}).to_string();
    let mut join_h = new_histogram();
    let cpu0 = procfs::cpu_ticks(pid)?;
    for (i, mut sink) in pending {
        let user = format!("u{i}");
        let t0 = Instant::now();
        sink.send(Message::text(subscribe.clone()))
            .await
            .context("sending subscribe")?;
        let (at, _) = await_seen(&mut seen, |s| matches!(s, Seen::Join(u) if *u == user)).await?;
        record(&mut join_h, at - t0);
        sinks.insert(i, sink);
    }
    let join_ticks = procfs::cpu_ticks(pid)?.saturating_sub(cpu0);
    let rss_after = rss_bytes(pid, params.settle_ms).await?;

    // Asks with no change.
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(STEP_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let url = endpoint.http_url(&format!("/api/rooms/{room}/presence"));
    let mut ask_n = 0u64;
    let mut ask = async |wsink: &mut Sink,
                         seen: &mut mpsc::UnboundedReceiver<(Instant, Result<Seen>)>|
           -> Result<(Duration, usize)> {
        ask_n += 1;
        let reference = format!("a{ask_n}");
        let frame = serde_json::json!({"op": "presence", "room": room, "ref": reference});
        let t0 = Instant::now();
        wsink
            .send(Message::text(frame.to_string()))
            .await
            .context("sending presence")?;
        let (at, s) = await_seen(
            seen,
            |s| matches!(s, Seen::Answer { reference: r, .. } if *r == reference),
        )
        .await?;
        let bytes = match s {
            Seen::Answer { bytes, .. } => bytes,
            _ => 0,
        };
        Ok((at - t0, bytes))
    };
    let get = async |http: &reqwest::Client| -> Result<(Duration, usize, usize)> {
        let t0 = Instant::now();
        let response = http.get(&url).send().await.context("GET presence")?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .context("reading the presence body")?;
        let took = t0.elapsed();
        if !status.is_success() {
            bail!("GET presence answered {status}");
        }
        #[derive(Deserialize)]
        struct Body {
            users: Vec<serde_json::Value>,
        }
        let parsed: Body = serde_json::from_slice(&body).context("presence body")?;
        Ok((took, body.len(), parsed.users.len()))
    };
    let mut ask_cached = new_histogram();
    let mut http_cached = new_histogram();
    let mut answer_frame_bytes = 0;
    let mut http_body_bytes = 0;
    let mut answer_users = 0;
    for _ in 0..params.asks {
        let (d, bytes) = ask(&mut wsink, &mut seen).await?;
        record(&mut ask_cached, d);
        answer_frame_bytes = bytes;
        let (d, bytes, users) = get(&http).await?;
        record(&mut http_cached, d);
        http_body_bytes = bytes;
        answer_users = users;
    }

    // Asks after a change: members 0.. leave (close) one before each ask.
    let mut ask_changed = new_histogram();
    let mut http_changed = new_histogram();
    for k in 0..params.asks {
        for (hist, over_http) in [(&mut ask_changed, false), (&mut http_changed, true)] {
            let index = 2 * k + usize::from(over_http);
            let user = format!("u{index}");
            let mut sink = sinks
                .remove(&index)
                .with_context(|| format!("member {user} missing"))?;
            let _ = sink.close().await;
            await_seen(&mut seen, |s| matches!(s, Seen::Leave(u) if *u == user)).await?;
            let d = if over_http {
                get(&http).await?.0
            } else {
                ask(&mut wsink, &mut seen).await?.0
            };
            record(hist, d);
        }
    }

    // Timed leaves: the timed members, one at a time.
    let mut leave_h = new_histogram();
    let cpu0 = procfs::cpu_ticks(pid)?;
    for i in timed_from..params.members {
        let user = format!("u{i}");
        let mut sink = sinks
            .remove(&i)
            .with_context(|| format!("member {user} missing"))?;
        let t0 = Instant::now();
        let _ = sink.close().await;
        let (at, _) = await_seen(&mut seen, |s| matches!(s, Seen::Leave(u) if *u == user)).await?;
        record(&mut leave_h, at - t0);
    }
    let leave_ticks = procfs::cpu_ticks(pid)?.saturating_sub(cpu0);
    drop(sinks);
    drop(wsink);
    drop(hub);
    let member_frames = frames.load(Ordering::Relaxed);

    let per_us =
        |ticks: u64| round3(ticks as f64 / procfs::TICKS_PER_S * 1e6 / params.sample.max(1) as f64);
    let rss_per_member = (rss_after as f64 - rss_before as f64) / params.members as f64;
    let baseline = if params.baseline {
        Some(baseline_rss(bin, &params).await?)
    } else {
        None
    };
    Ok(PresenceReport {
        scenario: "presence",
        join: summarize(&join_h),
        join_hub_cpu_us: per_us(join_ticks),
        leave: summarize(&leave_h),
        leave_hub_cpu_us: per_us(leave_ticks),
        ask_cached: summarize(&ask_cached),
        ask_changed: summarize(&ask_changed),
        http_cached: summarize(&http_cached),
        http_changed: summarize(&http_changed),
        answer_frame_bytes,
        http_body_bytes,
        answer_users,
        rss_per_member_bytes: round3(rss_per_member),
        baseline_rss_per_member_bytes: baseline.map(round3),
        presence_rss_per_member_bytes: baseline.map(|b| round3(rss_per_member - b)),
        member_frames,
        bulk_connect_s,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_presence_frames_and_ignores_the_rest() {
        assert!(matches!(
            classify(r#"{"type":"presence_join","room":"r","user":"u1"}"#),
            Some(Seen::Join(u)) if u == "u1"
        ));
        assert!(matches!(
            classify(r#"{"type":"presence_leave","room":"r","user":"u2"}"#),
            Some(Seen::Leave(u)) if u == "u2"
        ));
        let answer = r#"{"type":"presence","room":"r","users":[],"anonymous":0,"ref":"a1"}"#;
        assert!(matches!(
            classify(answer),
            Some(Seen::Answer { reference, bytes }) if reference == "a1" && bytes == answer.len()
        ));
        assert!(matches!(
            classify(r#"{"type":"error","code":"forbidden"}"#),
            Some(Seen::Error(_))
        ));
        assert!(classify(r#"{"type":"subscribed","room":"r","seq":0}"#).is_none());
        assert!(classify(r#"{"type":"presence_join","room":"r"}"#).is_none());
        assert!(classify("not json").is_none());
    }
}
