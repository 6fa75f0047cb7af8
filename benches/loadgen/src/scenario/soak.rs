//! `soak`: two hub nodes on a Redis primary with replicas and three Sentinels,
//! WebSocket clients dropped at random and resuming on either node, HTTP
//! publishes with idempotency keys and retries, and a fault schedule (primary
//! SIGKILLed, a hub node SIGKILLed and restarted, a Sentinel killed).
//!
//! At the end every client's stream is checked against the acknowledged
//! publishes: per (epoch, seq) segment of its subscription, every acknowledged
//! event must have arrived exactly once and in order. Events a client was told
//! it would not get (`recovered:false`: a new epoch, or history trimmed) are
//! counted apart, not as lost.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use crate::endpoint::{source_ip, Endpoint};
use crate::hub::{free_port, HubProcess, StopSignal, Storage};
use crate::procfs::vm_rss_kib;
use crate::redis::{RedisNode, SentinelProcess};
use crate::ws::{self, BUSY_READ_BUFFER};

/// The name the Sentinels monitor the primary under.
pub const MASTER: &str = "soakmaster";

/// Hub nodes of a soak.
const NODES: usize = 2;

/// A publish is given up (counted as never succeeded) after this long.
const PUBLISH_GIVE_UP: Duration = Duration::from_secs(30);

/// One publish attempt's timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a soak does.
#[derive(Debug, Clone, Serialize)]
pub struct SoakParams {
    /// Seconds of publishing and faults.
    pub duration_s: u64,
    /// WebSocket clients.
    pub clients: usize,
    /// Publishes per second.
    pub rate: f64,
    /// Redis replicas besides the primary.
    pub replicas: usize,
    /// Sentinel `down-after-milliseconds`.
    pub down_after_ms: u64,
    /// Seconds between primary kills; 0 kills it once per third of the run.
    pub failover_every_s: u64,
    /// Loopback source addresses the clients are spread over.
    pub sources: usize,
    /// A client's connection lives a random time in this range (s) before the
    /// harness drops it.
    pub client_life_s: (u64, u64),
    /// Events the room keeps for resumes (`HUB_ROOMS__HISTORY`; the hub's
    /// default of 100 is half a second at 200/s).
    pub history: usize,
    /// The room.
    pub room: String,
    /// The hub binary.
    #[serde(skip)]
    pub hub_bin: PathBuf,
    /// `redis-server`.
    #[serde(skip)]
    pub redis_bin: PathBuf,
}

/// One fault the schedule applied.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// When (ms since the start of publishing).
    pub at_ms: u64,
    /// What.
    pub fault: String,
    /// What followed (failover time, restart time, or an error).
    pub detail: String,
}

/// RSS of one hub node slot over the run.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRss {
    /// Node slot (0 or 1).
    pub node: usize,
    /// Processes that ran in this slot (a restart adds one).
    pub incarnations: usize,
    /// Samples taken.
    pub samples: usize,
    /// Highest RSS (KiB).
    pub max_kib: u64,
    /// Mean of the first 5 samples of the last half (KiB), of the process
    /// that ran through it.
    pub last_half_start_kib: u64,
    /// Mean of the last 5 samples (KiB).
    pub end_kib: u64,
    /// Growth from `last_half_start_kib` to `end_kib`, %.
    pub growth_last_half_pct: f64,
}

/// What a soak measured.
#[derive(Debug, Clone, Serialize)]
pub struct SoakResult {
    /// Publishes attempted.
    pub publishes: u64,
    /// Publishes acknowledged (200), retries' `duplicate` answers included once.
    pub acknowledged: u64,
    /// Of those, acknowledged as `duplicate:true` (a retry of an event that
    /// had in fact been stored).
    pub acknowledged_duplicate: u64,
    /// Publishes that never got a 200 within the give-up time.
    pub never_succeeded: u64,
    /// Retries (503, 5xx, timeouts, connection errors).
    pub retries: u64,
    /// Longest stretch without an acknowledged publish while publishing (ms).
    pub longest_publish_outage_ms: u64,
    /// When that stretch started (ms since the start of publishing).
    pub longest_outage_at_ms: u64,
    /// Distinct epochs the room had.
    pub epochs: usize,
    /// Two acknowledgements with the same epoch and seq for different events.
    pub acked_seq_conflicts: u64,
    /// An (epoch, seq) delivered with a different event than acknowledged or
    /// than delivered to another client.
    pub delivered_seq_conflicts: u64,
    /// Events delivered under more than one (epoch, seq) (a publish applied twice).
    pub published_twice: u64,
    /// Delivered events that were never acknowledged.
    pub delivered_unacked: u64,
    /// Sum over clients of acknowledged events they should have received and did not.
    pub lost: u64,
    /// Clients with at least one lost event.
    pub clients_with_loss: u64,
    /// The same (epoch, seq) received twice by one client.
    pub duplicated: u64,
    /// An event arriving after a later seq of its epoch.
    pub reordered: u64,
    /// Acknowledged events skipped because the room moved to a new epoch
    /// (`recovered:false`, the Sentinel-failover gap), summed over clients.
    pub skipped_epoch_change: u64,
    /// Acknowledged events skipped after `recovered:false` in the same epoch
    /// (history trimmed), summed over clients.
    pub skipped_not_recovered: u64,
    /// A `recovered:false` subscribe in the same epoch whose head was below
    /// the seq the client had already received (a node behind the client).
    pub head_behind: u64,
    /// `subscribed` frames with `recovered:false` after a resume, by clients.
    pub resumes_not_recovered: u64,
    /// Resumes answered `recovered:true`.
    pub resumes_recovered: u64,
    /// Subscribes answered with an `error` frame (a node that cannot read
    /// the room now); the client reconnects and tries again.
    pub subscribes_refused: u64,
    /// Connections the harness dropped on purpose.
    pub dropped_by_client: u64,
    /// Connections the hub closed or that failed.
    pub closed_by_hub: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Clients caught up with the last acknowledged event at the end.
    pub clients_caught_up: usize,
    /// Clients.
    pub clients: usize,
    /// RSS per node slot.
    pub rss: Vec<NodeRss>,
    /// The faults applied.
    pub faults: Vec<FaultRecord>,
    /// Load average (1 min) at the start and at the end.
    pub loadavg_start: f64,
    /// Load average (1 min) at the end.
    pub loadavg_end: f64,
}

/// The hubs' shared view: where each node listens now (`None` while down).
#[derive(Default)]
struct Nodes {
    endpoints: Mutex<Vec<Option<Endpoint>>>,
}

impl Nodes {
    fn pick(&self, n: u64) -> Option<Endpoint> {
        let eps = self.endpoints.lock().ok()?;
        let alive: Vec<&Endpoint> = eps.iter().flatten().collect();
        if alive.is_empty() {
            return None;
        }
        Some(alive[(n % alive.len() as u64) as usize].clone())
    }

    fn set(&self, slot: usize, ep: Option<Endpoint>) {
        if let Ok(mut eps) = self.endpoints.lock() {
            if let Some(e) = eps.get_mut(slot) {
                *e = ep;
            }
        }
    }
}

/// What is known about the published events, shared by all tasks.
#[derive(Default)]
struct Ledger {
    epochs: Mutex<HashMap<String, u32>>,
    /// (epoch, seq) → the event id first delivered under it.
    delivered: Vec<Mutex<HashMap<(u32, u64), u64>>>,
    delivered_conflicts: AtomicU64,
    /// (epoch, seq, id, ack time in ms).
    acks: Mutex<Vec<(u32, u64, u64, u64)>>,
    acked_duplicate: AtomicU64,
    never_succeeded: AtomicU64,
    retries: AtomicU64,
}

const SHARDS: usize = 16;

impl Ledger {
    fn new() -> Self {
        Self {
            delivered: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            ..Self::default()
        }
    }

    fn epoch(&self, text: &str) -> u32 {
        let Ok(mut epochs) = self.epochs.lock() else {
            return u32::MAX;
        };
        let next = epochs.len() as u32;
        *epochs.entry(text.to_owned()).or_insert(next)
    }

    fn delivered(&self, epoch: u32, seq: u64, id: u64) {
        let shard = &self.delivered[(seq as usize) % SHARDS];
        if let Ok(mut map) = shard.lock() {
            let first = *map.entry((epoch, seq)).or_insert(id);
            if first != id {
                self.delivered_conflicts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A stretch of one client's subscription in one epoch: it started after
/// `start` (the head `subscribed` reported) and received `ranges`.
#[derive(Debug, Clone)]
struct Segment {
    epoch: u32,
    start: u64,
    ranges: Vec<(u64, u64)>,
}

impl Segment {
    fn last(&self) -> u64 {
        self.ranges.last().map_or(self.start, |r| r.1)
    }

    fn contains(&self, seq: u64) -> bool {
        self.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&seq))
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientLog {
    segments: Vec<Segment>,
    duplicated: u64,
    reordered: u64,
    resumes_recovered: u64,
    resumes_not_recovered: u64,
    subscribes_refused: u64,
    dropped_by_client: u64,
    closed_by_hub: u64,
    connect_failures: u64,
}

#[derive(Deserialize)]
struct WireFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: Option<u64>,
    #[serde(borrow)]
    epoch: Option<Cow<'a, str>>,
    recovered: Option<bool>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SoakData {
    id: u64,
}

/// A tiny xorshift generator (no `rand` dependency).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }
}

fn now_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

struct Shared {
    nodes: Nodes,
    ledger: Ledger,
    room: String,
    /// Clients stop dropping their connections on purpose.
    draining: AtomicBool,
    /// Clients end.
    stop: AtomicBool,
    /// Per client: (epoch, last seq) of its current segment.
    positions: Vec<Mutex<Option<(u32, u64)>>>,
}

/// One client: connect to a node, subscribe (resuming when it has a
/// position), read, drop at a random time, repeat until told to stop.
async fn client(shared: Arc<Shared>, index: usize, params: SoakParams) -> ClientLog {
    let mut log = ClientLog::default();
    let mut rng = Rng::new(index as u64 + 1);
    let source = source_ip(index % params.sources.max(1)).ok();
    // (epoch text, last seq)
    let mut resume: Option<(String, u64)> = None;
    let mut attempt = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        attempt += 1;
        let Some(endpoint) = shared.nodes.pick(rng.next()) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let path = match &resume {
            Some((epoch, seq)) => format!("/ws/{}?since={seq}&epoch={epoch}", shared.room),
            None => format!("/ws/{}", shared.room),
        };
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            ws::connect(&endpoint, &path, source, BUSY_READ_BUFFER),
        )
        .await;
        let mut socket = match connected {
            Ok(Ok(s)) => s,
            _ => {
                log.connect_failures += 1;
                tokio::time::sleep(Duration::from_millis(rng.range(50, 300))).await;
                continue;
            }
        };
        let life = Duration::from_secs(rng.range(params.client_life_s.0, params.client_life_s.1));
        let drop_at = tokio::time::Instant::now() + life;
        let was_resume = resume.is_some();
        loop {
            let next = tokio::select! {
                m = socket.next() => m,
                () = tokio::time::sleep_until(drop_at), if !shared.draining.load(Ordering::Relaxed) => {
                    log.dropped_by_client += 1;
                    break;
                }
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if shared.stop.load(Ordering::Relaxed) { break; }
                    continue;
                }
            };
            let text = match next {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    log.closed_by_hub += 1;
                    break;
                }
                Some(Ok(_)) => continue,
            };
            let Ok(frame) = serde_json::from_str::<WireFrame<'_>>(text.as_str()) else {
                continue;
            };
            match frame.kind.as_ref() {
                "subscribed" => {
                    let (Some(epoch), Some(head)) = (frame.epoch.as_deref(), frame.seq) else {
                        continue;
                    };
                    let eid = shared.ledger.epoch(epoch);
                    let recovered = frame.recovered == Some(true);
                    let same = log.segments.last().is_some_and(|s| s.epoch == eid);
                    if was_resume && recovered && same {
                        log.resumes_recovered += 1;
                    } else {
                        if was_resume {
                            log.resumes_not_recovered += 1;
                        }
                        log.segments.push(Segment {
                            epoch: eid,
                            start: head,
                            ranges: Vec::new(),
                        });
                        resume = Some((epoch.to_owned(), head));
                    }
                    if let Some(seg) = log.segments.last() {
                        if let Ok(mut p) = shared.positions[index].lock() {
                            *p = Some((seg.epoch, seg.last()));
                        }
                    }
                }
                // The only request this client makes is its subscribe.
                "error" => {
                    log.subscribes_refused += 1;
                    break;
                }
                "welcome" | "pong" | "unsubscribed" | "published" | "status_update" => {}
                _ => {
                    let (Some(seq), Some(data)) = (frame.seq, frame.data) else {
                        continue;
                    };
                    let Ok(SoakData { id }) = serde_json::from_str::<SoakData>(data.get()) else {
                        continue;
                    };
                    let Some(seg) = log.segments.last_mut() else {
                        continue;
                    };
                    shared.ledger.delivered(seg.epoch, seq, id);
                    let last = seg.last();
                    if seq == last + 1 {
                        match seg.ranges.last_mut() {
                            Some(r) => r.1 = seq,
                            None => seg.ranges.push((seq, seq)),
                        }
                    } else if seq > last + 1 {
                        seg.ranges.push((seq, seq));
                    } else if seg.contains(seq) || seq <= seg.start {
                        log.duplicated += 1;
                    } else {
                        log.reordered += 1;
                        seg.ranges.push((seq, seq));
                        seg.ranges.sort_unstable();
                    }
                    let last = seg.last();
                    if let Some((_, s)) = resume.as_mut() {
                        *s = last;
                    }
                    if let Ok(mut p) = shared.positions[index].lock() {
                        *p = Some((seg.epoch, last));
                    }
                }
            }
        }
        drop(socket);
        if !shared.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(rng.range(0, 500))).await;
        }
        let _ = attempt;
    }
    log
}

/// One publish: retried on 503, other 5xx, timeouts and connection errors,
/// with the same idempotency key, through the nodes in turn.
async fn publish(shared: Arc<Shared>, http: reqwest::Client, run: u64, id: u64, start: Instant) {
    let key = format!("soak-{run}-{id}");
    let body = format!("{{\"type\":\"soak\",\"data\":{{\"id\":{id}}}}}");
    let give_up = Instant::now() + PUBLISH_GIVE_UP;
    let mut turn = id;
    let mut first = true;
    while Instant::now() < give_up {
        if !first {
            shared.ledger.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        first = false;
        turn += 1;
        let Some(endpoint) = shared.nodes.pick(turn) else {
            continue;
        };
        let url = endpoint.http_url(&format!("/api/rooms/{}/events", shared.room));
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("Idempotency-Key", &key)
            .timeout(ATTEMPT_TIMEOUT)
            .body(body.clone())
            .send()
            .await;
        let Ok(response) = sent else { continue };
        let status = response.status();
        let Ok(bytes) = response.bytes().await else {
            continue;
        };
        if status.is_success() {
            #[derive(Deserialize)]
            struct Ack {
                epoch: String,
                seq: u64,
                #[serde(default)]
                duplicate: bool,
            }
            let Ok(ack) = serde_json::from_slice::<Ack>(&bytes) else {
                continue;
            };
            if ack.duplicate {
                shared
                    .ledger
                    .acked_duplicate
                    .fetch_add(1, Ordering::Relaxed);
            }
            let eid = shared.ledger.epoch(&ack.epoch);
            if let Ok(mut acks) = shared.ledger.acks.lock() {
                acks.push((eid, ack.seq, id, now_ms(start)));
            }
            return;
        }
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            // Not retryable: count it as never succeeded.
            break;
        }
    }
    shared
        .ledger
        .never_succeeded
        .fetch_add(1, Ordering::Relaxed);
}

/// The Redis set: data nodes (index 0 starts as the primary) and Sentinels.
struct RedisSet {
    nodes: Vec<RedisNode>,
    sentinels: Vec<SentinelProcess>,
}

impl RedisSet {
    async fn start(params: &SoakParams) -> Result<Self> {
        let primary = RedisNode::start(&params.redis_bin, free_port()?, None).await?;
        let pport = primary.port();
        let mut nodes = vec![primary];
        for _ in 0..params.replicas {
            nodes.push(RedisNode::start(&params.redis_bin, free_port()?, Some(pport)).await?);
        }
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(
                SentinelProcess::start(&params.redis_bin, pport, MASTER, params.down_after_ms)
                    .await?,
            );
        }
        let set = Self { nodes, sentinels };
        set.wait_settled(params.replicas).await?;
        Ok(set)
    }

    /// Waits until every Sentinel knows the replicas and the two others.
    async fn wait_settled(&self, replicas: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut ok = true;
            for s in self.sentinels.iter().filter(|s| s.is_running()) {
                let info = crate::redis::command(s.port(), &["SENTINEL", "master", MASTER])
                    .await
                    .unwrap_or_default();
                let field = |name: &str| -> usize {
                    info.chunks(2)
                        .find(|c| c.first().map(String::as_str) == Some(name))
                        .and_then(|c| c.get(1)?.parse().ok())
                        .unwrap_or(0)
                };
                if field("num-slaves") < replicas || field("num-other-sentinels") < 2 {
                    ok = false;
                }
            }
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("Sentinels did not see {replicas} replicas and each other within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn addrs(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The primary's port, as the first running Sentinel that answers names it.
    async fn primary(&self) -> Option<u16> {
        for s in self.sentinels.iter().filter(|s| s.is_running()) {
            if let Some(p) = s.primary_port(MASTER).await {
                return Some(p);
            }
        }
        None
    }
}

fn hub_env(sentinels: &str, node: usize, history: usize) -> Vec<(String, String)> {
    [
        ("HUB_ROOMS__HISTORY", history.to_string()),
        ("HUB_CLUSTER__SENTINELS", sentinels.to_owned()),
        ("HUB_CLUSTER__SENTINEL_MASTER", MASTER.to_owned()),
        ("HUB_CLUSTER__NODE_ID", format!("soak-node-{node}")),
        ("HUB_CLUSTER__MIN_REPLICAS_ACKED", "1".to_owned()),
        ("HUB_CLUSTER__HEARTBEAT_MS", "200".to_owned()),
        ("HUB_CLUSTER__CONNECT_TIMEOUT_MS", "1000".to_owned()),
        ("HUB_CLUSTER__COMMAND_TIMEOUT_MS", "500".to_owned()),
        ("HUB_CLUSTER__RECONNECT_MAX_MS", "300".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// (node slot, incarnation, ms since the start, RSS KiB).
type RssSample = (usize, usize, u64, u64);

/// (pid of the node's current process, incarnation).
type NodePid = (Option<u32>, usize);

/// A fault of the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// SIGKILL the current primary (Sentinel fails over), then bring it back
    /// as a replica of the new one.
    KillPrimary,
    /// SIGKILL hub node 1, restart it 2 s later.
    KillHub,
    /// SIGKILL the third Sentinel (for good).
    KillSentinel,
}

/// The fault schedule for a run of `duration_s`: hub node 1 SIGKILLed at 1/4
/// (restarted 2 s later), the third Sentinel SIGKILLed at 2/5 (for good), and
/// the primary SIGKILLed once per third of the run (at 1/6, 1/2 and 5/6: 10,
/// 30 and 50 s of a 60 s run) or, with `failover_every_s`, every that many
/// seconds starting half a period in.
pub fn schedule(duration_s: u64, failover_every_s: u64) -> Vec<(Duration, Fault)> {
    let d = duration_s as f64;
    let mut faults = vec![(d / 4.0, Fault::KillHub), (d * 0.4, Fault::KillSentinel)];
    if failover_every_s == 0 {
        for at in [d / 6.0, d / 2.0, d * 5.0 / 6.0] {
            faults.push((at, Fault::KillPrimary));
        }
    } else {
        let every = failover_every_s as f64;
        let mut at = every / 2.0;
        while at < d {
            faults.push((at, Fault::KillPrimary));
            at += every;
        }
    }
    faults.sort_by(|a, b| a.0.total_cmp(&b.0));
    faults
        .into_iter()
        .map(|(s, f)| (Duration::from_secs_f64(s), f))
        .collect()
}

/// Runs the soak.
pub async fn run(params: &SoakParams) -> Result<SoakResult> {
    if params.clients == 0 || params.rate <= 0.0 || params.duration_s == 0 {
        bail!("a soak needs clients, a rate and a duration");
    }
    let loadavg_start = loadavg();
    let mut redis = RedisSet::start(params)
        .await
        .context("starting Redis and Sentinels")?;
    let sentinels = redis.addrs();
    let mut hubs: Vec<Option<HubProcess>> = Vec::new();
    for node in 0..NODES {
        let mut hub = HubProcess::start_with_env(
            &params.hub_bin,
            Storage::Memory,
            &hub_env(&sentinels, node, params.history),
        )
        .await
        .with_context(|| format!("starting hub node {node}"))?;
        hub.wait_ready(Duration::from_secs(20)).await?;
        hubs.push(Some(hub));
    }
    let shared = Arc::new(Shared {
        nodes: Nodes {
            endpoints: Mutex::new(
                hubs.iter()
                    .map(|h| h.as_ref().map(|h| h.endpoint().clone()))
                    .collect(),
            ),
        },
        ledger: Ledger::new(),
        room: params.room.clone(),
        draining: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        positions: (0..params.clients).map(|_| Mutex::new(None)).collect(),
    });

    // Clients, connected over about two seconds.
    let mut clients = Vec::with_capacity(params.clients);
    for i in 0..params.clients {
        clients.push(tokio::spawn(client(shared.clone(), i, params.clone())));
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let start = Instant::now();
    let duration = Duration::from_secs(params.duration_s);

    // RSS sampler: (slot, incarnation, t_ms, kib).
    let rss_samples: Arc<Mutex<Vec<RssSample>>> = Arc::default();
    let pids: Arc<Mutex<Vec<NodePid>>> = Arc::new(Mutex::new(
        hubs.iter()
            .map(|h| (h.as_ref().and_then(|h| h.endpoint().pid()), 0))
            .collect(),
    ));
    let sampler = {
        let (samples, pids, shared) = (rss_samples.clone(), pids.clone(), shared.clone());
        tokio::spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                let current: Vec<NodePid> = pids.lock().map(|p| p.clone()).unwrap_or_default();
                for (slot, (pid, inc)) in current.into_iter().enumerate() {
                    if let Some(kib) = pid.and_then(|p| vm_rss_kib(p).ok()) {
                        if let Ok(mut s) = samples.lock() {
                            s.push((slot, inc, now_ms(start), kib));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // Publisher.
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let publisher = {
        let (shared, rate) = (shared.clone(), params.rate);
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            let mut id = 0u64;
            while start.elapsed() < duration {
                let due = Duration::from_secs_f64(id as f64 / rate);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                tasks.push(tokio::spawn(publish(
                    shared.clone(),
                    http.clone(),
                    run_id,
                    id,
                    start,
                )));
                id += 1;
            }
            for t in tasks {
                let _ = t.await;
            }
            id
        })
    };

    // Faults.
    let mut faults = Vec::new();
    for (at, fault) in schedule(params.duration_s, params.failover_every_s) {
        if let Some(wait) = at.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let at_ms = now_ms(start);
        let detail = match fault {
            Fault::KillPrimary => kill_primary(&mut redis, params).await,
            Fault::KillHub => kill_hub(&mut hubs, &shared, &pids, &sentinels, params).await,
            Fault::KillSentinel => {
                let s = redis.sentinels.last_mut();
                match s {
                    Some(s) => {
                        let port = s.port();
                        s.kill();
                        Ok(format!(
                            "Sentinel on {port} SIGKILLed (2 of 3 left, quorum 2)"
                        ))
                    }
                    None => Ok("no Sentinel".to_owned()),
                }
            }
        };
        faults.push(FaultRecord {
            at_ms,
            fault: format!("{fault:?}"),
            detail: detail.unwrap_or_else(|e| format!("error: {e:#}")),
        });
    }

    let publishes = publisher.await.context("publisher task")?;
    // Drain: clients stop dropping on purpose and catch up with the last ack.
    shared.draining.store(true, Ordering::Relaxed);
    let last_ack = shared
        .ledger
        .acks
        .lock()
        .ok()
        .and_then(|a| a.iter().max_by_key(|x| x.3).map(|x| (x.0, x.1)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let caught_up = |shared: &Shared| -> usize {
        let Some((e, s)) = last_ack else { return 0 };
        shared
            .positions
            .iter()
            .filter(|p| {
                p.lock()
                    .ok()
                    .and_then(|p| *p)
                    .is_some_and(|(pe, ps)| pe == e && ps >= s)
            })
            .count()
    };
    while caught_up(&shared) < params.clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let clients_caught_up = caught_up(&shared);
    shared.stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::with_capacity(clients.len());
    for c in clients {
        logs.push(c.await.context("client task")?);
    }
    let _ = sampler.await;
    let loadavg_end = loadavg();
    let samples = rss_samples.lock().map(|s| s.clone()).unwrap_or_default();
    drop(hubs);
    drop(redis);
    Ok(account(
        &shared,
        publishes,
        &logs,
        clients_caught_up,
        params,
        &samples,
        faults,
        loadavg_start,
        loadavg_end,
    ))
}

async fn kill_primary(redis: &mut RedisSet, params: &SoakParams) -> Result<String> {
    let old = redis
        .primary()
        .await
        .context("no Sentinel names a primary")?;
    let node = redis
        .nodes
        .iter_mut()
        .find(|n| n.port() == old)
        .context("the named primary is not one of ours")?;
    let killed = Instant::now();
    node.kill();
    let deadline = killed + Duration::from_secs(30);
    let new = loop {
        if let Some(p) = redis.primary().await.filter(|&p| p != old) {
            break p;
        }
        if Instant::now() >= deadline {
            bail!("no failover within 30 s of killing the primary on {old}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let failover_ms = killed.elapsed().as_millis();
    // Bring the old one back as a replica of the new primary, same port.
    let pos = redis.nodes.iter().position(|n| n.port() == old);
    if let Some(pos) = pos {
        redis.nodes.remove(pos);
    }
    let back = RedisNode::start(&params.redis_bin, old, Some(new)).await;
    let back_detail = match back {
        Ok(n) => {
            redis.nodes.push(n);
            "back as its replica".to_owned()
        }
        Err(e) => format!("not restarted: {e:#}"),
    };
    Ok(format!(
        "primary {old} SIGKILLed; Sentinels named {new} after {failover_ms} ms; {old} {back_detail}"
    ))
}

async fn kill_hub(
    hubs: &mut [Option<HubProcess>],
    shared: &Shared,
    pids: &Mutex<Vec<NodePid>>,
    sentinels: &str,
    params: &SoakParams,
) -> Result<String> {
    let slot = 1;
    shared.nodes.set(slot, None);
    if let Ok(mut p) = pids.lock() {
        p[slot].0 = None;
    }
    if let Some(mut hub) = hubs[slot].take() {
        hub.stop(StopSignal::Kill, Duration::from_secs(5)).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let mut hub = HubProcess::start_with_env(
        &params.hub_bin,
        Storage::Memory,
        &hub_env(sentinels, slot, params.history),
    )
    .await?;
    hub.wait_ready(Duration::from_secs(20)).await?;
    let ready_ms = started.elapsed().as_millis();
    shared.nodes.set(slot, Some(hub.endpoint().clone()));
    if let Ok(mut p) = pids.lock() {
        p[slot] = (hub.endpoint().pid(), p[slot].1 + 1);
    }
    let addr = hub.endpoint().addr();
    hubs[slot] = Some(hub);
    Ok(format!(
        "hub node {slot} SIGKILLed; restarted 2 s later on {addr}, ready after {ready_ms} ms"
    ))
}

#[allow(clippy::too_many_arguments)]
fn account(
    shared: &Shared,
    publishes: u64,
    logs: &[ClientLog],
    clients_caught_up: usize,
    params: &SoakParams,
    samples: &[RssSample],
    faults: Vec<FaultRecord>,
    loadavg_start: f64,
    loadavg_end: f64,
) -> SoakResult {
    let ledger = &shared.ledger;
    let acks = ledger.acks.lock().map(|a| a.clone()).unwrap_or_default();
    // (epoch, seq) → id, and per epoch the acknowledged seqs in order.
    let mut acked: HashMap<(u32, u64), u64> = HashMap::new();
    let mut acked_seq_conflicts = 0;
    let mut by_epoch: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for &(e, s, id, _) in &acks {
        match acked.get(&(e, s)) {
            Some(&other) if other != id => acked_seq_conflicts += 1,
            Some(_) => {}
            None => {
                acked.insert((e, s), id);
                by_epoch.entry(e).or_default().push(s);
            }
        }
    }
    for seqs in by_epoch.values_mut() {
        seqs.sort_unstable();
    }
    // Delivered vs acknowledged.
    let mut delivered_seq_conflicts = ledger.delivered_conflicts.load(Ordering::Relaxed);
    let mut delivered_unacked = 0;
    let mut per_id: HashMap<u64, u32> = HashMap::new();
    for shard in &ledger.delivered {
        if let Ok(map) = shard.lock() {
            for (k, &id) in map.iter() {
                match acked.get(k) {
                    Some(&a) if a != id => delivered_seq_conflicts += 1,
                    Some(_) => {}
                    None => delivered_unacked += 1,
                }
                *per_id.entry(id).or_default() += 1;
            }
        }
    }
    let published_twice = per_id.values().filter(|&&n| n > 1).count() as u64;
    // Longest stretch without an ack while publishing.
    let mut times: Vec<u64> = acks.iter().map(|a| a.3).collect();
    times.sort_unstable();
    let end_ms = params.duration_s * 1000;
    let mut prev = 0;
    let (mut longest, mut longest_at) = (0, 0);
    for &t in times
        .iter()
        .filter(|&&t| t <= end_ms)
        .chain(std::iter::once(&end_ms))
    {
        if t - prev > longest {
            longest = t - prev;
            longest_at = prev;
        }
        prev = t;
    }
    // Per client.
    let count_in = |epoch: u32, lo: u64, hi: u64| -> Vec<u64> {
        // acknowledged seqs of `epoch` in (lo, hi]
        if hi <= lo {
            return Vec::new();
        }
        by_epoch.get(&epoch).map_or_else(Vec::new, |seqs| {
            let a = seqs.partition_point(|&s| s <= lo);
            let b = seqs.partition_point(|&s| s <= hi);
            seqs[a..b].to_vec()
        })
    };
    let (mut lost, mut clients_with_loss, mut skipped_epoch, mut skipped_same) = (0, 0, 0, 0);
    let mut r = SoakResult {
        publishes,
        acknowledged: acks.len() as u64,
        acknowledged_duplicate: ledger.acked_duplicate.load(Ordering::Relaxed),
        never_succeeded: ledger.never_succeeded.load(Ordering::Relaxed),
        retries: ledger.retries.load(Ordering::Relaxed),
        longest_publish_outage_ms: longest,
        longest_outage_at_ms: longest_at,
        epochs: by_epoch.len(),
        acked_seq_conflicts,
        delivered_seq_conflicts,
        published_twice,
        delivered_unacked,
        lost: 0,
        clients_with_loss: 0,
        duplicated: 0,
        reordered: 0,
        skipped_epoch_change: 0,
        skipped_not_recovered: 0,
        resumes_not_recovered: 0,
        head_behind: 0,
        resumes_recovered: 0,
        subscribes_refused: 0,
        dropped_by_client: 0,
        closed_by_hub: 0,
        connect_failures: 0,
        clients_caught_up,
        clients: params.clients,
        rss: rss_summary(samples, params.duration_s),
        faults,
        loadavg_start,
        loadavg_end,
    };
    for log in logs {
        r.duplicated += log.duplicated;
        r.reordered += log.reordered;
        r.resumes_recovered += log.resumes_recovered;
        r.resumes_not_recovered += log.resumes_not_recovered;
        r.subscribes_refused += log.subscribes_refused;
        r.dropped_by_client += log.dropped_by_client;
        r.closed_by_hub += log.closed_by_hub;
        r.connect_failures += log.connect_failures;
        let mut client_lost = 0;
        for (i, seg) in log.segments.iter().enumerate() {
            let next = log.segments.get(i + 1);
            let last = seg.last();
            // Inside the segment: every acknowledged seq up to its last must be there.
            client_lost += count_in(seg.epoch, seg.start, last)
                .into_iter()
                .filter(|&s| !seg.contains(s))
                .count() as u64;
            match next {
                // The final segment: everything acknowledged after it is missing.
                None => client_lost += count_in(seg.epoch, last, u64::MAX).len() as u64,
                Some(n) if n.epoch == seg.epoch => {
                    if n.start < last {
                        r.head_behind += 1;
                    }
                    skipped_same += count_in(seg.epoch, last, n.start).len() as u64;
                }
                Some(_) => skipped_epoch += count_in(seg.epoch, last, u64::MAX).len() as u64,
            }
        }
        lost += client_lost;
        if client_lost > 0 {
            clients_with_loss += 1;
        }
    }
    r.lost = lost;
    r.clients_with_loss = clients_with_loss;
    r.skipped_epoch_change = skipped_epoch;
    r.skipped_not_recovered = skipped_same;
    r
}

fn rss_summary(samples: &[RssSample], duration_s: u64) -> Vec<NodeRss> {
    let half_ms = duration_s * 1000 / 2;
    (0..NODES)
        .map(|node| {
            let mine: Vec<&RssSample> = samples.iter().filter(|s| s.0 == node).collect();
            let incarnations = mine.iter().map(|s| s.1).max().map_or(0, |m| m + 1);
            let last_inc = incarnations.saturating_sub(1);
            let half: Vec<u64> = mine
                .iter()
                .filter(|s| s.1 == last_inc && s.2 >= half_ms)
                .map(|s| s.3)
                .collect();
            let mean = |v: &[u64]| -> u64 {
                if v.is_empty() {
                    0
                } else {
                    v.iter().sum::<u64>() / v.len() as u64
                }
            };
            let first = mean(&half[..half.len().min(5)]);
            let end = mean(&half[half.len().saturating_sub(5)..]);
            NodeRss {
                node,
                incarnations,
                samples: mine.len(),
                max_kib: mine.iter().map(|s| s.3).max().unwrap_or(0),
                last_half_start_kib: first,
                end_kib: end,
                growth_last_half_pct: if first > 0 {
                    (end as f64 - first as f64) * 100.0 / first as f64
                } else {
                    f64::NAN
                },
            }
        })
        .collect()
}

/// The human table of a soak.
impl SoakResult {
    /// What broke the guarantee (the run fails on any): an acknowledged event
    /// lost, duplicated or reordered, one seq for two events, a resume
    /// answered with a head behind the client, a client not caught up.
    pub fn violations(&self) -> Vec<String> {
        let counts = [
            ("acknowledged events lost", self.lost),
            ("duplicated deliveries", self.duplicated),
            ("reordered deliveries", self.reordered),
            ("acknowledged seq conflicts", self.acked_seq_conflicts),
            ("delivered seq conflicts", self.delivered_seq_conflicts),
            ("events published twice", self.published_twice),
            (
                "resumes answered with a head behind the client",
                self.head_behind,
            ),
        ];
        let mut out: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        if self.clients_caught_up < self.clients {
            out.push(format!(
                "{} of {} clients caught up at the end",
                self.clients_caught_up, self.clients
            ));
        }
        out
    }
}

pub fn table(r: &SoakResult) -> String {
    let mut out = String::new();
    let mut row = |k: &str, v: String| out.push_str(&format!("| {k} | {v} |\n"));
    row("publishes attempted", r.publishes.to_string());
    row(
        "acknowledged (of which duplicate:true)",
        format!("{} ({})", r.acknowledged, r.acknowledged_duplicate),
    );
    row("never succeeded", r.never_succeeded.to_string());
    row("retries", r.retries.to_string());
    row(
        "longest publish outage",
        format!(
            "{} ms (from {} ms)",
            r.longest_publish_outage_ms, r.longest_outage_at_ms
        ),
    );
    row("epochs", r.epochs.to_string());
    row(
        "lost / duplicated / reordered (acked, all clients)",
        format!("{} / {} / {}", r.lost, r.duplicated, r.reordered),
    );
    row("clients with a loss", r.clients_with_loss.to_string());
    row(
        "seq conflicts (acked / delivered), published twice",
        format!(
            "{} / {}, {}",
            r.acked_seq_conflicts, r.delivered_seq_conflicts, r.published_twice
        ),
    );
    row("delivered but never acked", r.delivered_unacked.to_string());
    row(
        "skipped: new epoch / recovered:false same epoch",
        format!("{} / {}", r.skipped_epoch_change, r.skipped_not_recovered),
    );
    row(
        "resumes recovered / not recovered (head behind the client)",
        format!(
            "{} / {} ({})",
            r.resumes_recovered, r.resumes_not_recovered, r.head_behind
        ),
    );
    row(
        "drops by client / closes by hub / connect failures / subscribes refused",
        format!(
            "{} / {} / {} / {}",
            r.dropped_by_client, r.closed_by_hub, r.connect_failures, r.subscribes_refused
        ),
    );
    row(
        "clients caught up at the end",
        format!("{} of {}", r.clients_caught_up, r.clients),
    );
    for n in &r.rss {
        row(
            &format!("node {} RSS", n.node),
            format!(
                "max {} KiB; last half {} → {} KiB ({:+.1}%); {} process(es)",
                n.max_kib, n.last_half_start_kib, n.end_kib, n.growth_last_half_pct, n.incarnations
            ),
        );
    }
    for f in &r.faults {
        row(
            &format!("fault at {} ms: {}", f.at_ms, f.fault),
            f.detail.clone(),
        );
    }
    row(
        "load average (1 min) start / end",
        format!("{:.2} / {:.2}", r.loadavg_start, r.loadavg_end),
    );
    format!("| measure | value |\n|---|---|\n{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_has_a_failover_every_third_and_the_other_faults() {
        let primaries = |s: &[(Duration, Fault)]| -> Vec<u64> {
            s.iter()
                .filter(|f| f.1 == Fault::KillPrimary)
                .map(|f| f.0.as_secs())
                .collect()
        };
        let s = schedule(60, 0);
        assert_eq!(primaries(&s), vec![10, 30, 50]);
        assert!(s.iter().any(|f| f.1 == Fault::KillHub));
        assert!(s.iter().any(|f| f.1 == Fault::KillSentinel));
        assert!(s.windows(2).all(|w| w[0].0 <= w[1].0));
        let s = schedule(1800, 300);
        assert_eq!(primaries(&s), vec![150, 450, 750, 1050, 1350, 1650]);
        assert!(s.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn segments_count_gaps_and_skips() {
        let seg = Segment {
            epoch: 0,
            start: 2,
            ranges: vec![(3, 5), (7, 9)],
        };
        assert_eq!(seg.last(), 9);
        assert!(seg.contains(4) && !seg.contains(6) && !seg.contains(2));
    }
}
