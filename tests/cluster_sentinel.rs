//! Cluster mode behind Redis Sentinel (issue 19, docs/CLUSTER.md "Sentinel"):
//! real `redis-server` primary + replicas + three `redis-server --sentinel`
//! per test, on free ports.
//!
//! - the primary SIGKILLed during steady publishing: publishes resume within
//!   `down-after-milliseconds` + election + reconnect, every acknowledged event
//!   is in the new primary's history and in every subscriber's stream exactly
//!   once, in order;
//! - `SENTINEL failover` with one Sentinel dead: publishes resume within the
//!   same bound; the room keeps its epoch with every acknowledged event, or —
//!   the known gap when the old primary still takes writes after the
//!   promotion — moves to one new epoch that every subscriber is told of,
//!   never a reused seq;
//! - the replica stopped with `min_replicas_acked = 1`: publishes answer 503,
//!   never an unreplicated 200; a retry with the idempotency key after the
//!   replica is back gets the first seq;
//! - the primary restored from an older snapshot: a new epoch, never a reused seq;
//! - the failover fence set up by hand: a room last written under another
//!   primary waits (503) until every live node has caught up at this one.
//!
//! The tests of this binary run one at a time (`SERIAL`): each starts 6-7
//! processes and the machine may have two cores.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::*;
use common::*;
use serde_json::{json, Value};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sentinel's `down-after-milliseconds` in the failover test.
const DOWN_AFTER_MS: u64 = 1000;
/// Longest publish outage a failover may cause here: down-after (1 s) + the
/// Sentinels' agreement and election (~1-2 s: quorum, a vote, the promotion)
/// + the hub's reconnect (backoff capped at 300 ms, a lookup, a catch-up).
const FAILOVER_BOUND: Duration = Duration::from_secs(6);

/// One publish that was acknowledged, after however many tries.
#[derive(Debug, Clone)]
struct Acked {
    n: u64,
    epoch: String,
    seq: u64,
    /// The try before it failed (the end of an outage, seen by this publisher).
    first_try: Instant,
    acked_at: Instant,
    tries: u32,
}

/// POSTs `{"n": n}` into `alerts` with `Idempotency-Key: k-n`; (status, body).
async fn post_keyed(client: &reqwest::Client, url: &str, n: u64) -> (u16, Value) {
    let key = format!("k-{n}");
    post_event_keyed(client, url, "alert_raised", &json!({"n": n}), Some(&key)).await
}

/// Publishers that retry each event (same idempotency key, round robin over
/// the nodes) until it is acknowledged: every `n` ends acknowledged once.
struct Steady {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    /// Time of every 200 and every failure, for the outage measurement.
    answers: Arc<Mutex<Vec<(Instant, u16)>>>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Steady {
    fn start(urls: Vec<String>, tasks: u64, period: Duration) -> Steady {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let urls = Arc::new(urls);
        let handles = (0..tasks)
            .map(|t| {
                let (urls, stop, acked, answers) =
                    (urls.clone(), stop.clone(), acked.clone(), answers.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .timeout(Duration::from_secs(3))
                        .build()
                        .expect("http client");
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let n = k * tasks + t;
                        let first_try = Instant::now();
                        let mut tries = 0u32;
                        let give_up = Instant::now() + Duration::from_secs(20);
                        loop {
                            let node = (n as usize + tries as usize) % urls.len();
                            tries += 1;
                            let (status, body) = post_keyed(&client, &urls[node], n).await;
                            answers
                                .lock()
                                .expect("answers")
                                .push((Instant::now(), status));
                            if status == 200 {
                                acked.lock().expect("acked").push(Acked {
                                    n,
                                    epoch: body["epoch"].as_str().unwrap_or("").to_string(),
                                    seq: body["seq"].as_u64().unwrap_or(0),
                                    first_try,
                                    acked_at: Instant::now(),
                                    tries,
                                });
                                break;
                            }
                            assert!(status == 0 || status == 503, "publish {n}: {status} {body}");
                            assert!(Instant::now() < give_up, "publish {n} never acknowledged");
                            tokio::time::sleep(Duration::from_millis(25)).await;
                        }
                        k += 1;
                        tokio::time::sleep(period).await;
                    }
                })
            })
            .collect();
        Steady {
            stop,
            acked,
            answers,
            handles,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    async fn finish(self) -> (Vec<Acked>, Vec<(Instant, u16)>) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.await.expect("publisher task");
        }
        let acked = std::mem::take(&mut *self.acked.lock().expect("acked"));
        let answers = std::mem::take(&mut *self.answers.lock().expect("answers"));
        (acked, answers)
    }
}

/// Waits (bounded) until `pred` holds, polling every 20 ms.
async fn wait_for(what: &str, wait: Duration, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + wait;
    while !pred() {
        assert!(Instant::now() < deadline, "{what}: not within {wait:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(seq, n)` of every event in the room's stream on the server at `port`.
fn stream_of(set: &SentinelSet, port: u16, room: &str) -> Vec<(u64, u64)> {
    let s = &set.servers[set.server(port)];
    let out = s.cmd(&["XRANGE", &format!("rthub:room:{{{room}}}:log"), "-", "+"]);
    let lines: Vec<&str> = out.lines().collect();
    // redis-cli prints: id, "f", frame per entry.
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(seq) = lines[i].split_once('-').and_then(|(s, _)| s.parse().ok()) else {
            i += 1;
            continue;
        };
        let frame: Value = lines
            .get(i + 2)
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or(Value::Null);
        found.push((seq, frame["data"]["n"].as_u64().unwrap_or(u64::MAX)));
        i += 3;
    }
    found
}

/// How the primary goes away in [`failover_under_publishing`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// SIGKILL: the Sentinels notice after down-after, agree, elect, promote.
    KillPrimary,
    /// `SENTINEL failover` with the first listed Sentinel dead: the old
    /// primary is demoted (READONLY, its clients killed) and `+switch-master`
    /// announced; every lookup first fails on the dead Sentinel.
    ManualWithASentinelDown,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_during_steady_publishing_loses_no_acknowledged_event() {
    // Two replicas: after the failover the new primary still has one, so
    // min_replicas_acked = 1 can be met without the old primary.
    failover_under_publishing(2, Fault::KillPrimary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failover_with_a_sentinel_down_never_reuses_a_seq() {
    // Two replicas as well: the other replica is moved to the new primary
    // during the failover, while Sentinel demotes the old primary only at its
    // next INFO (up to 10 s later) — with one replica, publishes would answer
    // 503 (safely) until then.
    failover_under_publishing(2, Fault::ManualWithASentinelDown).await;
}

/// Two nodes, a subscriber on each, four publishers retrying with
/// idempotency keys; the primary goes away (`fault`) after 50 acks; 50 more
/// after the failover. Checks the outage bound and that every acknowledged
/// event is in the new primary's stream and each subscriber's, once, in order.
async fn failover_under_publishing(replicas: usize, fault: Fault) {
    let _serial = SERIAL.lock().await;
    let mut cl = SentinelCluster::start(&["a", "b"], replicas, DOWN_AFTER_MS, &[]).await;
    let old = cl.set.primary_port().expect("a primary");
    let (mut s, _, sub_s) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    let (mut t, _, _) = subscribed_at(&cl.ws(1, "/ws/alerts")).await;
    let epoch = sub_s["epoch"].as_str().expect("epoch").to_string();

    let urls = (0..2)
        .map(|i| cl.http(i, "/api/rooms/alerts/events"))
        .collect();
    let steady = Steady::start(urls, 4, Duration::from_millis(20));
    wait_for("publishing warms up", Duration::from_secs(5), || {
        steady.acked() >= 50
    })
    .await;

    let killed = Instant::now();
    let i = cl.set.server(old);
    match fault {
        Fault::KillPrimary => cl.set.servers[i].kill(),
        Fault::ManualWithASentinelDown => {
            cl.set.sentinels[0].kill();
            let answer = cl.set.sentinels[1].cmd(&["SENTINEL", "failover", SENTINEL_MASTER]);
            assert_eq!(answer, "OK", "SENTINEL failover");
        }
    }
    let new = tokio::task::block_in_place(|| cl.set.wait_new_primary(old, Duration::from_secs(15)));
    let promoted = killed.elapsed();
    let before = steady.acked();
    wait_for(
        "publishes resume after the failover",
        FAILOVER_BOUND,
        || steady.acked() >= before + 50,
    )
    .await;
    let (acked, answers) = steady.finish().await;

    // The outage: the longest stretch without a 200 (answers in flight at the
    // kill may land just after it, so it is not measured from the kill).
    let mut oks: Vec<Instant> = answers
        .iter()
        .filter(|(_, st)| *st == 200)
        .map(|(at, _)| *at)
        .collect();
    oks.sort();
    assert!(
        oks.first().is_some_and(|t| *t < killed) && oks.last().is_some_and(|t| *t > killed),
        "publishes acknowledged on both sides of the kill"
    );
    let outage = oks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let failed = answers.iter().filter(|(_, st)| *st != 200).count();
    eprintln!(
        "{fault:?}: sentinels named the new primary {promoted:?} after the fault; publish \
         outage {outage:?} (bound {FAILOVER_BOUND:?}); {} acknowledged, {failed} failed tries",
        acked.len()
    );
    assert!(outage < FAILOVER_BOUND, "publish outage {outage:?}");

    let moved = acked.iter().any(|a| a.epoch != epoch);
    if moved {
        assert_eq!(
            fault,
            Fault::ManualWithASentinelDown,
            "a SIGKILLed primary must not cost an epoch"
        );
        return moved_epoch_is_told(&cl, new, &acked, &epoch, [&mut s, &mut t]).await;
    }

    // Every acknowledged event: once, in one epoch, at a seq of its own.
    let mut by_seq: HashMap<u64, u64> = HashMap::new();
    for a in &acked {
        assert_eq!(
            a.epoch, epoch,
            "publish {} moved to another epoch: {a:?}",
            a.n
        );
        if let Some(other) = by_seq.insert(a.seq, a.n) {
            panic!("seq {} acknowledged for {other} and {}", a.seq, a.n);
        }
        assert!(a.acked_at >= a.first_try && a.tries >= 1);
    }
    let head = *by_seq.keys().max().expect("acks");

    // In the new primary's history, with its data.
    let history: HashMap<u64, u64> = stream_of(&cl.set, new, "alerts").into_iter().collect();
    for (seq, n) in &by_seq {
        assert_eq!(
            history.get(seq),
            Some(n),
            "acknowledged seq {seq} (publish {n}) not in the new primary's history"
        );
    }

    // In every subscriber's stream, exactly once and in order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for (who, c) in [("subscriber on a", &mut s), ("subscriber on b", &mut t)] {
        let frames = read_to_seq(c, "alerts", head, deadline, who).await;
        assert!(
            frames.iter().all(|f| f["type"] != "subscribed"),
            "{who}: resynced (recovered:false) though nothing acknowledged was lost: {}",
            brief(&frames)
        );
        let got = events(&frames, "alerts");
        let seqs: Vec<u64> = got.iter().map(|e| e.0).collect();
        assert_consecutive(&seqs, 1, head, who);
        for (seq, data) in &got {
            if let Some(n) = by_seq.get(seq) {
                assert_eq!(data["n"].as_u64(), Some(*n), "{who}: data at seq {seq}");
            }
        }
    }
}

/// The known gap of a `SENTINEL failover` with the old primary alive (see
/// docs/CLUSTER.md, "The exact guarantee"): a replica may acknowledge writes
/// of the old primary after the new one was promoted, then be re-pointed and
/// drop them. What must hold then: the room moved to one new epoch, no
/// (epoch, seq) was acknowledged twice, every subscriber was told
/// (`subscribed`, `recovered:false`, the new epoch), and every event
/// acknowledged in the new epoch is in the new primary's history and each
/// subscriber's stream, once, in order.
async fn moved_epoch_is_told(
    cl: &SentinelCluster,
    new: u16,
    acked: &[Acked],
    old_epoch: &str,
    subscribers: [&mut Client; 2],
) {
    let mut seen: HashMap<(String, u64), u64> = HashMap::new();
    for a in acked {
        if let Some(other) = seen.insert((a.epoch.clone(), a.seq), a.n) {
            panic!("{}/{} acknowledged for {other} and {}", a.epoch, a.seq, a.n);
        }
    }
    let epochs: std::collections::HashSet<&str> = acked
        .iter()
        .map(|a| a.epoch.as_str())
        .filter(|e| *e != old_epoch)
        .collect();
    assert_eq!(epochs.len(), 1, "one new epoch: {epochs:?}");
    let fresh = *epochs.iter().next().expect("the new epoch");
    let in_fresh: HashMap<u64, u64> = acked
        .iter()
        .filter(|a| a.epoch == fresh)
        .map(|a| (a.seq, a.n))
        .collect();
    let head = *in_fresh.keys().max().expect("acks in the new epoch");
    let history: HashMap<u64, u64> = stream_of(&cl.set, new, "alerts").into_iter().collect();
    for (seq, n) in &in_fresh {
        assert_eq!(
            history.get(seq),
            Some(n),
            "new-epoch seq {seq} not in history"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for (who, c) in ["subscriber on a", "subscriber on b"]
        .into_iter()
        .zip(subscribers)
    {
        let frames = read_until(c, deadline, who, |f| {
            f["type"] == "subscribed" && f["epoch"] == fresh
        })
        .await;
        let told = frames.last().expect("subscribed");
        assert_eq!(told["recovered"].as_bool(), Some(false), "{who}: {told}");
        let base = told["seq"].as_u64().expect("seq");
        let rest = if base >= head {
            Vec::new()
        } else {
            read_to_seq(c, "alerts", head, deadline, who).await
        };
        let got = events(&rest, "alerts");
        let seqs: Vec<u64> = got.iter().map(|e| e.0).filter(|s| *s > base).collect();
        assert_consecutive(&seqs, base + 1, head.max(base), who);
        for (seq, data) in &got {
            if let Some(n) = in_fresh.get(seq) {
                assert_eq!(data["n"].as_u64(), Some(*n), "{who}: data at seq {seq}");
            }
        }
    }
    eprintln!(
        "manual failover: the room moved to a new epoch (an event the old primary took after \
         the promotion was lost); subscribers told recovered:false"
    );
}

/// The failover fence (docs/CLUSTER.md, "The failover fence"), set up by hand
/// on one Redis as a promotion leaves it: a room last written under another
/// primary (its meta `rid`), and a node with a fresh heartbeat that has not
/// checked in at this primary. The room takes no publish (503, no seq used)
/// until that node checks in; then it takes the next seq, in its epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_written_under_another_primary_waits_for_every_node_to_catch_up() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    let info = redis.cmd(&["INFO", "replication"]);
    let replid = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("master_replid:"))
        .expect("master_replid")
        .to_string();
    let meta = "rthub:room:{alerts}:meta";
    redis.cmd(&[
        "HSET",
        meta,
        "epoch",
        "e-old",
        "seq",
        "7",
        "rid",
        "other-primary",
    ]);
    let time = redis.cmd(&["TIME"]);
    let secs: u64 = time
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("TIME");
    let now_ms = (secs * 1000).to_string();
    redis.cmd(&["HSET", "rthub:beats", "ghost", &now_ms]);

    let mut cl = Cluster {
        redis,
        hubs: Vec::new(),
        ids: Vec::new(),
    };
    let hub = cl.spawn_hub("a", &[]);
    cl.hubs.push(hub);
    cl.ids.push("a".into());
    cl.wait_ready(0, Duration::from_secs(10)).await;
    let url = cl.http(0, "/api/rooms/alerts/events");
    let client = http();

    let (status, body) = post_event(&client, &url, "alert_raised", &json!({"n": 1})).await;
    assert_eq!(status, 503, "held by the fence: {body}");
    assert!(body.to_string().contains("caught up"), "says why: {body}");
    assert_eq!(cl.redis.cmd(&["HGET", meta, "seq"]), "7", "no seq used");
    let caught_up = format!("rthub:caughtup:{replid}");
    assert_eq!(
        cl.redis.cmd(&["SISMEMBER", &caught_up, "a"]),
        "1",
        "node a checked in after its catch-up"
    );

    cl.redis.cmd(&["SADD", &caught_up, "ghost"]);
    let (status, body) = post_event(&client, &url, "alert_raised", &json!({"n": 2})).await;
    assert_eq!(status, 200, "the fence cleared: {body}");
    assert_eq!(
        (body["epoch"].as_str(), body["seq"].as_u64()),
        (Some("e-old"), Some(8))
    );
    assert_eq!(cl.redis.cmd(&["HGET", meta, "rid"]), replid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_down_means_503_never_an_unreplicated_ack() {
    let _serial = SERIAL.lock().await;
    let mut cl =
        SentinelCluster::start(&["a"], 1, 5000, &[("HUB_CLUSTER__MIN_REPLICAS_ACKED", "1")]).await;
    let url = cl.http(0, "/api/rooms/alerts/events");
    let client = http();
    let (status, body) = post_keyed(&client, &url, 1).await;
    assert_eq!(status, 200, "{body}");

    let primary = cl.set.primary_port().expect("primary");
    let replica = (0..cl.set.servers.len())
        .find(|i| cl.set.servers[*i].port() != primary)
        .expect("replica");
    cl.set.servers[replica].kill();
    let asked = Instant::now();
    let (status, body) = post_keyed(&client, &url, 2).await;
    let took = asked.elapsed();
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("unavailable")),
        "with the replica down: {body}"
    );
    assert!(
        body["message"].as_str().unwrap_or("").contains("replicas"),
        "{body}"
    );
    eprintln!("replica down: 503 after {took:?}: {}", body["message"]);
    assert!(took < Duration::from_secs(3), "{took:?}");

    cl.set.servers[replica].restart();
    let back = Instant::now();
    let (status, body) = loop {
        let answer = post_keyed(&client, &url, 2).await;
        if answer.0 == 200 || back.elapsed() > Duration::from_secs(10) {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "replica back: publishes acknowledged after {:?}",
        back.elapsed()
    );
    assert_eq!(status, 200, "after the replica is back: {body}");
    // Refused by the script (the primary saw its replica go: nothing was
    // written) or by WAIT (written, not replicated in time): either way the
    // retry lands at seq 2, once.
    assert_eq!(body["seq"].as_u64(), Some(2), "{body}");
    let (status, body) = post_keyed(&client, &url, 3).await;
    assert_eq!((status, body["seq"].as_u64()), (200, Some(3)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_restored_from_an_old_snapshot_means_a_new_epoch() {
    let _serial = SERIAL.lock().await;
    // down-after 5 s: the restart below is quicker, so no failover happens.
    let mut cl = SentinelCluster::start(&["a", "b"], 1, 5000, &[]).await;
    let primary = cl.set.primary_port().expect("primary");
    let p = cl.set.server(primary);
    let (mut s, _, _) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    let (mut t, _, _) = subscribed_at(&cl.ws(1, "/ws/alerts")).await;
    let client = http();
    let mut old_epoch = String::new();
    let snapshot = cl.set.servers[p].dir().join("old.rdb");
    for n in 1..=10u64 {
        if n == 6 {
            assert_eq!(cl.set.servers[p].cmd(&["SAVE"]), "OK");
            std::fs::copy(cl.set.servers[p].dir().join("dump.rdb"), &snapshot)
                .expect("keep the snapshot");
        }
        let (status, body) = post_keyed(
            &client,
            &cl.http((n % 2) as usize, "/api/rooms/alerts/events"),
            n,
        )
        .await;
        assert_eq!((status, body["seq"].as_u64()), (200, Some(n)), "{body}");
        old_epoch = body["epoch"].as_str().expect("epoch").to_string();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    for (who, c) in [("s", &mut s), ("t", &mut t)] {
        let frames = read_to_seq(c, "alerts", 10, deadline, who).await;
        let seqs: Vec<u64> = events(&frames, "alerts").iter().map(|e| e.0).collect();
        assert_consecutive(&seqs, 1, 10, who);
    }

    // The primary comes back from the snapshot taken at seq 5.
    cl.set.servers[p].kill();
    std::fs::copy(&snapshot, cl.set.servers[p].dir().join("dump.rdb")).expect("restore");
    cl.set.servers[p].restart();
    assert_eq!(
        cl.set.primary_port(),
        Some(primary),
        "no failover: the same primary, behind"
    );
    let mut new_epoch = String::new();
    let mut published = HashMap::new();
    for n in 11..=14u64 {
        let url = cl.http((n % 2) as usize, "/api/rooms/alerts/events");
        let give_up = Instant::now() + Duration::from_secs(10);
        let (status, body) = loop {
            let answer = post_keyed(&client, &url, n).await;
            if answer.0 == 200 || Instant::now() > give_up {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status, 200, "{body}");
        let epoch = body["epoch"].as_str().expect("epoch").to_string();
        assert_ne!(
            epoch, old_epoch,
            "seq {} would reuse a seq already delivered in the old epoch",
            body["seq"]
        );
        if !new_epoch.is_empty() {
            assert_eq!(epoch, new_epoch, "one new epoch");
        }
        new_epoch = epoch;
        published.insert(body["seq"].as_u64().expect("seq"), json!({"n": n}));
    }
    let head = *published.keys().max().expect("acks");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for (who, c) in [("subscriber on a", &mut s), ("subscriber on b", &mut t)] {
        let frames = read_to_seq(c, "alerts", head, deadline, who).await;
        let at = told_new_epoch(&frames, "alerts", &new_epoch, who);
        let live: Vec<(u64, Value)> = events(&frames[at + 1..], "alerts")
            .into_iter()
            .filter(|e| e.0 > frames[at]["seq"].as_u64().unwrap_or(0))
            .collect();
        assert_data_matches(&live, &published, who);
    }
}

/// The cost of `WAIT`: sequential publish round trips (HTTP 200 answered) on
/// a node with `min_replicas_acked = 1` and on one with 0, same Redis, same
/// machine. A measurement for docs/CLUSTER.md, not a pass/fail test: run with
/// `cargo test --test cluster_sentinel -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn publish_round_trip_with_and_without_wait() {
    let _serial = SERIAL.lock().await;
    let mut cl = SentinelCluster::start(&["wait1"], 1, 5000, &[]).await;
    cl.add_hub("wait0", &[("HUB_CLUSTER__MIN_REPLICAS_ACKED", "0")]);
    cl.wait_ready(1).await;
    let client = http();
    for round in 0..2u64 {
        for (i, name) in [(0usize, "WAIT 1"), (1, "no WAIT")] {
            let url = cl.http(i, "/api/rooms/alerts/events");
            let mut took = Vec::new();
            for n in 0..500u64 {
                let asked = Instant::now();
                let key = (round * 10 + i as u64) * 1000 + n;
                let (status, body) = post_keyed(&client, &url, key).await;
                assert_eq!(status, 200, "{body}");
                took.push(asked.elapsed());
            }
            took.sort();
            if round == 1 {
                eprintln!(
                    "{name}: 500 sequential publishes: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
                    took[250], took[450], took[495], took[499]
                );
            }
        }
    }
}
