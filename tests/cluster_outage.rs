//! Cluster mode when Redis goes away (contract section 9, docs/PROTOCOL.md
//! section 10): publishes answer 503 (never accepted and then lost), `/readyz`
//! is 503, open sockets stay open, known rooms can still be subscribed to and
//! resumed, and the nodes reconnect by themselves. A Redis that comes back with
//! its data continues the same epoch with no gap; one that comes back empty
//! starts one new epoch, which subscribers are told about, never a silently
//! reused seq; a hung (SIGSTOPped) Redis times publishes out instead of
//! hanging them.
//!
//! Also checks the Redis harness itself. The tests of this binary run one at a
//! time (`SERIAL`).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::*;
use common::*;
use serde_json::{json, Value};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[test]
fn redis_harness_restarts_with_data_only_when_persistent() {
    let mut r = RedisServer::start_persistent();
    let port = r.port();
    assert_eq!(r.url(), format!("redis://127.0.0.1:{port}/"));
    assert_ne!(port, 6379, "never the shared Redis");
    assert_eq!(r.cmd(&["SET", "k", "v"]), "OK");
    r.kill();
    assert!(!r.answers(), "killed means gone");
    r.restart();
    assert_eq!(r.port(), port, "same port after a restart");
    assert_eq!(
        r.cmd(&["GET", "k"]),
        "v",
        "persistent data survives SIGKILL"
    );

    let mut e = RedisServer::start();
    assert_ne!(e.port(), port);
    assert_eq!(e.cmd(&["SET", "k", "v"]), "OK");
    e.kill();
    e.restart();
    assert_eq!(e.cmd(&["DBSIZE"]), "0", "a non-persistent restart is empty");
    drop(r);
    assert!(!RedisServer::start().cmd(&["PING"]).is_empty());
}

/// One publish attempt of the background publisher.
#[derive(Debug)]
struct Try {
    node: usize,
    sent: Instant,
    answered: Instant,
    status: u16,
    body: Value,
    data: Value,
}

/// Is this /readyz answer "not ready because of Redis"?
fn not_ready_for_redis(status: u16, body: &Value) -> bool {
    status == 503 && body.to_string().to_lowercase().contains("redis")
}

/// With Redis away (`how`: "down", "hung"): one publish on every node must be
/// refused with 503 `unavailable` within 3 s, and every node's `/readyz` must
/// turn 503 naming redis. Returns the refused payloads (`{tag: node index}`):
/// a hung Redis may still run them later.
async fn refused_on_every_node(cl: &Cluster, tag: &str, how: &str) -> Vec<Value> {
    let mut refused = Vec::new();
    for i in 0..cl.hubs.len() {
        let data = json!({ tag: i });
        let asked = Instant::now();
        let (status, body) = post_event(
            &http(),
            &cl.http(i, "/api/rooms/alerts/events"),
            "alert_raised",
            &data,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("unavailable")),
            "publish on node {} with Redis {how}: {body}",
            cl.ids[i]
        );
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "with Redis {how}, the 503 took {:?}",
            asked.elapsed()
        );
        refused.push(data);
    }
    for i in 0..cl.hubs.len() {
        let (status, body) = poll_http(&cl.http(i, "/readyz"), WAIT, not_ready_for_redis).await;
        assert!(
            not_ready_for_redis(status, &body),
            "node {}: /readyz with Redis {how} should be 503 naming redis: {status} {body}",
            cl.ids[i]
        );
    }
    refused
}

/// One subscriber's `alerts` stream across an outage that kept the epoch:
/// every seq of `from..=head` once and in order, each with the data published
/// at it or one of the `refused` payloads (a publish answered 503 that Redis
/// ran anyway; those seqs are returned), and no second `subscribed`.
fn check_same_epoch_stream(
    frames: &[Value],
    (from, head): (u64, u64),
    published: &HashMap<u64, Value>,
    refused: &[Value],
    who: &str,
) -> Vec<u64> {
    let evs = events(frames, "alerts");
    let got: Vec<u64> = evs.iter().map(|e| e.0).collect();
    assert_consecutive(&got, from, head, who);
    let mut ran_later = Vec::new();
    for (seq, data) in &evs {
        match published.get(seq) {
            Some(want) => assert_eq!(data, want, "{who}: data at seq {seq}"),
            None => {
                assert!(
                    refused.contains(data),
                    "{who}: seq {seq} carries {data}, which nobody published"
                );
                ran_later.push(*seq);
            }
        }
    }
    assert!(
        frames.iter().all(|f| f["type"] != "subscribed"),
        "{who}: no new subscribed frame, the epoch did not change: {}",
        brief(frames)
    );
    ran_later
}

/// After Redis came back, node `i`'s status lists both nodes again (their
/// records are written anew), with consistent sums.
async fn both_nodes_listed(cl: &Cluster, i: usize) {
    let ok = |s: &Value| node_ids(s) == ["a", "b"] && sums_match(s);
    let (_, s) = poll_http(&cl.http(i, "/socket-status"), WAIT, |_, s| ok(s)).await;
    assert!(ok(&s), "node {}: status after the restart: {s}", cl.ids[i]);
}

/// Publishers running in the background through every node of a cluster.
struct Background {
    stop: Arc<AtomicBool>,
    /// Every attempt so far.
    tries: Arc<Mutex<Vec<Try>>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Background {
    /// `tasks` publishers into `alerts`, each posting every `period` round
    /// robin over the cluster's nodes (event data `{"bg": n}`, n unique).
    fn start(cl: &Cluster, tasks: u64, period: Duration) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let tries = Arc::new(Mutex::new(Vec::new()));
        let urls = (0..cl.hubs.len())
            .map(|i| cl.http(i, "/api/rooms/alerts/events"))
            .collect();
        let handle = spawn_publisher(urls, tasks, period, stop.clone(), tries.clone());
        Background {
            stop,
            tries,
            handle,
        }
    }

    /// Stops the publishers and returns every attempt, in order.
    async fn finish(self) -> Vec<Try> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("background publishers");
        std::mem::take(&mut *self.tries.lock().expect("tries"))
    }
}

/// `tasks` publishers, each posting every `period` round robin over `urls`,
/// recording every attempt, until `stop`.
fn spawn_publisher(
    urls: Vec<String>,
    tasks: u64,
    period: Duration,
    stop: Arc<AtomicBool>,
    tries: Arc<Mutex<Vec<Try>>>,
) -> tokio::task::JoinHandle<()> {
    let urls = Arc::new(urls);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (urls, stop, tries) = (urls.clone(), stop.clone(), tries.clone());
            tokio::spawn(async move {
                let client = http();
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let n = k * tasks + t;
                    let node = (n % urls.len() as u64) as usize;
                    let data = json!({"bg": n});
                    let sent = Instant::now();
                    let (status, body) =
                        post_event(&client, &urls[node], "alert_raised", &data).await;
                    tries.lock().expect("tries").push(Try {
                        node,
                        sent,
                        answered: Instant::now(),
                        status,
                        body,
                        data,
                    });
                    k += 1;
                }
            })
        })
        .collect();
    tokio::spawn(async move {
        for h in handles {
            h.await.expect("publisher task");
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted_with_its_data_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut cl = Cluster::start(&["a", "b"], true, &[("HUB_ROOMS__CLIENT_PUBLISH", "true")]).await;
    let (mut s, _, sub) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    assert_eq!(sub["seq"], 0);
    let (mut t, t_welcome) = Client::connect_welcomed(&cl.ws(1, "/ws")).await;
    assert_eq!(t.subscribe("alerts").await["seq"], 0);
    let t_id = t_welcome["session"].as_str().expect("session").to_string();
    let (mut s_frames, mut t_frames) = (Vec::new(), Vec::new());

    let mut published: HashMap<u64, Value> = HashMap::new();
    let mut epoch = String::new();
    for n in 0..10u64 {
        let a = publish_on(&cl, (n % 2) as usize, "alerts", json!({"before": n})).await;
        assert_eq!(a.seq, n + 1);
        epoch = a.epoch;
        published.insert(a.seq, a.data);
    }

    // A publisher through both nodes, every 25 ms, through the whole outage.
    let bg = Background::start(&cl, 1, Duration::from_millis(25));
    let tries = bg.tries.clone();
    let successes_since = |since: Instant, node: usize| {
        tries
            .lock()
            .expect("tries")
            .iter()
            .filter(|t| t.status == 200 && t.node == node && t.sent >= since)
            .count()
    };
    let before_all = Instant::now() - Duration::from_secs(3600);
    let deadline = Instant::now() + Duration::from_secs(10);
    while successes_since(before_all, 0) + successes_since(before_all, 1) < 10 {
        assert!(
            Instant::now() < deadline,
            "background publishes never succeed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // ---- Redis dies.
    cl.redis.kill();
    let killed_at = Instant::now();
    let mut refused_data = refused_on_every_node(&cl, "explicit", "down").await;
    for i in 0..2 {
        let up = metric_sum(&cl.http(i, "/metrics"), "hub_cluster_redis_up").await;
        assert_eq!(
            up, 0.0,
            "node {}: hub_cluster_redis_up with Redis down",
            cl.ids[i]
        );
    }
    for i in 0..2 {
        let (status, _) = get(&cl.http(i, "/healthz")).await;
        assert_eq!(status, 200, "the process itself is healthy");
    }
    // Open sockets stay open and answer; a socket publish is refused, not
    // taken and lost.
    s.send(
        json!({"op": "publish", "room": "alerts", "type": "chat", "data": "lost?",
                  "ref": "ws-outage"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut got = read_until(&mut s, deadline, "reply to a socket publish", |f| {
        f["ref"] == "ws-outage"
    })
    .await;
    let reply = got.pop().expect("reply");
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{reply}"
    );
    s_frames.extend(got);
    refused_data.push(json!("lost?"));
    s_frames.extend(ping_pong(&mut s, "outage-s").await);
    t_frames.extend(ping_pong(&mut t, "outage-t").await);
    // A room the node knows can still be subscribed to, with its snapshot.
    let (mut n, _, sub_n) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    assert_eq!(sub_n["epoch"].as_str(), Some(&epoch[..]), "{sub_n}");
    let head_n = sub_n["seq"].as_u64().expect("seq");
    assert!(head_n >= 10, "{sub_n}");
    let mut n_frames = ping_pong(&mut n, "outage-n").await;
    let snap: Vec<u64> = seqs(&n_frames, "alerts");
    assert_consecutive(
        &snap,
        head_n.saturating_sub(20) + 1,
        head_n,
        "snapshot of a subscribe during the outage",
    );
    // So can a resume from the node's copy.
    let (mut r, _, rsub) =
        subscribed_at(&cl.ws(0, &format!("/ws/alerts?since=5&epoch={epoch}"))).await;
    assert_eq!(
        (rsub["recovered"].as_bool(), rsub["seq"].as_u64()),
        (Some(true), Some(head_n)),
        "resume during the outage: {rsub}"
    );
    let replay = ping_pong(&mut r, "outage-r").await;
    assert_consecutive(
        &seqs(&replay, "alerts"),
        6,
        head_n,
        "resume during the outage",
    );
    drop(r);
    // What needs the other nodes is refused, not half done.
    let (status, body) = post(
        &cl.http(0, "/api/users/someone/events"),
        &json!({"type": "note", "data": 1}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("unavailable")),
        "user message with Redis down: {body}"
    );
    let (status, body) = post(
        &cl.http(0, &format!("/api/sockets/{t_id}/disconnect")),
        &json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("unavailable")),
        "disconnect of a session on b, asked on a, with Redis down: {body}"
    );

    // Stay down a while: several reconnect attempts fail, publishes keep
    // being refused.
    let refusals = || {
        tries
            .lock()
            .expect("tries")
            .iter()
            .filter(|t| t.status != 200 && t.sent >= killed_at)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while killed_at.elapsed() < Duration::from_millis(1200) || refusals() < 10 {
        assert!(
            Instant::now() < deadline,
            "the background publisher stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // ---- Redis comes back with its data; nobody restarts the hubs.
    let restart_at = Instant::now();
    cl.redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while successes_since(restart_at, 0) < 5 || successes_since(restart_at, 1) < 5 {
        assert!(
            Instant::now() < deadline,
            "publishing did not resume within 15 s of the restart (a: {}, b: {})",
            successes_since(restart_at, 0),
            successes_since(restart_at, 1)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..2 {
        cl.wait_ready(i, Duration::from_secs(5)).await;
        both_nodes_listed(&cl, i).await;
    }
    let tries = bg.finish().await;

    let mut refused = 0;
    for tr in &tries {
        match tr.status {
            200 => {
                assert!(
                    tr.sent < killed_at || tr.answered > restart_at,
                    "accepted while Redis was down: {tr:?}"
                );
                assert_eq!(tr.body["epoch"].as_str(), Some(&epoch[..]), "{tr:?}");
                let seq = tr.body["seq"].as_u64().expect("seq");
                assert!(
                    published.insert(seq, tr.data.clone()).is_none(),
                    "seq {seq} acknowledged twice"
                );
            }
            503 => {
                assert_eq!(tr.body["error"], "unavailable", "{tr:?}");
                refused += 1;
                refused_data.push(tr.data.clone());
            }
            _ => panic!("a publish is answered 200 or 503, nothing else: {tr:?}"),
        }
    }
    assert!(refused > 0, "no background publish saw the outage");
    let head = *published.keys().max().expect("some");

    // Every subscriber that stayed ends with every seq once, in order: the
    // accepted ones with their data; any other seq can only be a refused
    // publish that Redis had committed when it died.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut extras = HashSet::new();
    for (who, c, frames, from) in [
        ("subscriber on a", &mut s, &mut s_frames, 1),
        ("subscriber on b", &mut t, &mut t_frames, 1),
        (
            "subscribed during the outage",
            &mut n,
            &mut n_frames,
            head_n.saturating_sub(20) + 1,
        ),
    ] {
        if seqs(frames, "alerts").last() != Some(&head) {
            frames.extend(read_to_seq(c, "alerts", head, deadline, who).await);
        }
        let ran_later =
            check_same_epoch_stream(frames, (from, head), &published, &refused_data, who);
        extras.extend(ran_later);
    }
    // Resume after the outage, on the other node.
    let (mut r, _, sub) =
        subscribed_at(&cl.ws(1, &format!("/ws/alerts?since=5&epoch={epoch}"))).await;
    assert_eq!(
        (sub["recovered"].as_bool(), sub["seq"].as_u64()),
        (Some(true), Some(head)),
        "{sub}"
    );
    let frames = read_to_seq(&mut r, "alerts", head, deadline, "resume after").await;
    assert_consecutive(&seqs(&frames, "alerts"), 6, head, "resume after the outage");
    eprintln!(
        "{} publishes tried, {refused} refused; head {head}; committed but refused: {extras:?}; \
         outage {:?}",
        tries.len(),
        restart_at - killed_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_back_empty_means_a_new_epoch() {
    let _serial = SERIAL.lock().await;
    let mut cl = Cluster::start(&["a", "b"], false, &[]).await;
    let (mut s, _, sub) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    assert_eq!(sub["seq"], 0);
    let (mut t, _) = Client::connect_welcomed(&cl.ws(1, "/ws")).await;
    t.subscribe("alerts").await;
    let mut old_epoch = String::new();
    for n in 0..5u64 {
        let a = publish_on(&cl, (n % 2) as usize, "alerts", json!({"old": n})).await;
        assert_eq!(a.seq, n + 1);
        old_epoch = a.epoch;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    for (who, c) in [("s", &mut s), ("t", &mut t)] {
        let frames = read_to_seq(c, "alerts", 5, deadline, who).await;
        assert_eq!(seqs(&frames, "alerts"), [1, 2, 3, 4, 5], "{who}");
    }

    // Redis restarts empty: the history is gone.
    cl.redis.kill();
    cl.redis.restart();
    // Only the room's keys are checked: the nodes' own records (heartbeats)
    // may already be back by now.
    assert_eq!(cl.redis.cmd(&["KEYS", "*:room:{alerts}:*"]), "");

    // Publishing resumes by itself, in a new epoch starting at 1.
    let url = cl.http(0, "/api/rooms/alerts/events");
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let (status, body) = post_event(&http(), &url, "alert_raised", &json!({"new": 0})).await;
        if status == 200 {
            break body;
        }
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("unavailable")),
            "{body}"
        );
        assert!(
            Instant::now() < deadline,
            "publishing never resumed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new_epoch = first["epoch"].as_str().expect("epoch").to_string();
    assert_ne!(
        new_epoch, old_epoch,
        "history was lost: the epoch must change"
    );
    assert_eq!(first["seq"], 1, "a new epoch starts at 1: {first}");
    let mut published = HashMap::from([(1u64, json!({"new": 0}))]);
    for n in 1..6u64 {
        let a = publish_on(&cl, ((n + 1) % 2) as usize, "alerts", json!({"new": n})).await;
        assert_eq!((a.seq, &a.epoch), (n + 1, &new_epoch));
        published.insert(a.seq, a.data);
    }

    // Each socket that stayed is told: a fresh subscribed (no ref) in the new
    // epoch, then the new epoch's events from 1, nothing of it before.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for (who, c) in [("subscriber on a", &mut s), ("subscriber on b", &mut t)] {
        let frames = read_to_seq(c, "alerts", 6, deadline, who).await;
        let at = frames
            .iter()
            .position(|f| f["type"] == "subscribed")
            .unwrap_or_else(|| panic!("{who}: no new subscribed frame: {}", brief(&frames)));
        assert!(
            events(&frames[..at], "alerts").is_empty(),
            "{who}: events before the new subscribed: {}",
            brief(&frames)
        );
        let sub = &frames[at];
        assert_eq!(sub["room"], "alerts", "{who}: {sub}");
        assert_eq!(sub["epoch"].as_str(), Some(&new_epoch[..]), "{who}: {sub}");
        assert_eq!(sub["recovered"], false, "{who}: {sub}");
        assert!(sub.get("ref").is_none(), "{who}: not a reply: {sub}");
        assert!(sub["seq"].as_u64().is_some_and(|h| h <= 6), "{who}: {sub}");
        let rest = &frames[at + 1..];
        assert!(
            rest.iter().all(|f| f["type"] != "subscribed"),
            "{who}: one new subscribed: {}",
            brief(&frames)
        );
        let evs = events(rest, "alerts");
        assert_consecutive(&evs.iter().map(|e| e.0).collect::<Vec<_>>(), 1, 6, who);
        assert_data_matches(&evs, &published, who);
    }

    // A resume with the old epoch is not recovered, on either node.
    for i in 0..2 {
        let (mut c, _, sub) =
            subscribed_at(&cl.ws(i, &format!("/ws/alerts?since=5&epoch={old_epoch}"))).await;
        assert_eq!(
            (
                sub["recovered"].as_bool(),
                sub["epoch"].as_str(),
                sub["seq"].as_u64()
            ),
            (Some(false), Some(&new_epoch[..]), Some(6)),
            "node {}: {sub}",
            cl.ids[i]
        );
        let frames = read_to_seq(&mut c, "alerts", 6, deadline, "old-epoch resume").await;
        assert_eq!(
            seqs(&frames, "alerts"),
            [1, 2, 3, 4, 5, 6],
            "the new snapshot"
        );
    }
    // One with the new epoch is.
    let (mut c, _, sub) =
        subscribed_at(&cl.ws(1, &format!("/ws/alerts?since=3&epoch={new_epoch}"))).await;
    assert_eq!(sub["recovered"], true, "{sub}");
    let frames = read_to_seq(&mut c, "alerts", 6, deadline, "new-epoch resume").await;
    assert_eq!(seqs(&frames, "alerts"), [4, 5, 6]);
    for i in 0..2 {
        cl.wait_ready(i, WAIT).await;
        both_nodes_listed(&cl, i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_times_publishes_out_and_then_recovers() {
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(&["a", "b"], false, &[]).await;
    let (mut s, _, _) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    let (mut t, _, _) = subscribed_at(&cl.ws(1, "/ws/alerts")).await;
    let mut published = HashMap::new();
    let mut epoch = String::new();
    for n in 0..5u64 {
        let a = publish_on(&cl, (n % 2) as usize, "alerts", json!({"before": n})).await;
        epoch = a.epoch;
        published.insert(a.seq, a.data);
    }

    // SIGSTOP: connections stay open, nothing is answered.
    cl.redis.pause();
    let mut refused = refused_on_every_node(&cl, "hung", "hung").await;
    let mut s_frames = ping_pong(&mut s, "hung-s").await;
    let mut t_frames = ping_pong(&mut t, "hung-t").await;

    // SIGCONT: publishing comes back by itself.
    cl.redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0u64;
    while published.len() < 10 {
        let data = json!({"after": n});
        let (status, body) = post_event(
            &http(),
            &cl.http((n % 2) as usize, "/api/rooms/alerts/events"),
            "alert_raised",
            &data,
        )
        .await;
        match status {
            200 => {
                assert_eq!(body["epoch"].as_str(), Some(&epoch[..]), "{body}");
                let seq = body["seq"].as_u64().expect("seq");
                assert!(published.insert(seq, data).is_none(), "seq {seq} twice");
            }
            503 => refused.push(data),
            _ => panic!("200 or 503: {status} {body}"),
        }
        assert!(
            Instant::now() < deadline,
            "publishing never came back: {body}"
        );
        n += 1;
    }
    for i in 0..2 {
        cl.wait_ready(i, WAIT).await;
    }
    let head = *published.keys().max().expect("some");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for (who, c, frames) in [("s", &mut s, &mut s_frames), ("t", &mut t, &mut t_frames)] {
        frames.extend(read_to_seq(c, "alerts", head, deadline, who).await);
        for seq in check_same_epoch_stream(frames, (1, head), &published, &refused, who) {
            eprintln!("{who}: seq {seq} is a refused publish that Redis ran later");
        }
    }
}

/// Polls `pred` every 10 ms until it holds, for at most 15 s.
async fn wait_for(what: &str, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pred() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_back_empty_under_concurrent_publishing_agrees_on_one_new_epoch() {
    let _serial = SERIAL.lock().await;
    let mut cl = Cluster::start(&["a", "b"], false, &[]).await;
    let (mut s, _, _) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    let (mut t, _, _) = subscribed_at(&cl.ws(1, "/ws/alerts")).await;
    // Two publishers, every 20 ms each, alternating over both nodes.
    let bg = Background::start(&cl, 2, Duration::from_millis(20));
    let tries = bg.tries.clone();
    let count = |pred: &dyn Fn(&Try) -> bool| {
        tries
            .lock()
            .expect("tries")
            .iter()
            .filter(|t| pred(t))
            .count()
    };
    wait_for("10 publishes", || count(&|t| t.status == 200) >= 10).await;
    cl.redis.kill();
    let killed_at = Instant::now();
    wait_for("6 refusals", || {
        count(&|t| t.sent >= killed_at && t.status != 200) >= 6
    })
    .await;
    let restart_at = Instant::now();
    cl.redis.restart();
    wait_for("10 publishes on each node after the restart", || {
        (0..2)
            .all(|node| count(&|t| t.status == 200 && t.node == node && t.sent >= restart_at) >= 10)
    })
    .await;
    let tries = bg.finish().await;

    let old_epoch = tries[0].body["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("the first publish succeeds: {:?}", tries[0]))
        .to_string();
    let mut by_epoch: HashMap<String, HashMap<u64, Value>> = HashMap::new();
    let mut refused = Vec::new();
    for tr in &tries {
        match tr.status {
            200 => {
                assert!(
                    tr.sent < killed_at || tr.answered > restart_at,
                    "accepted while Redis was down: {tr:?}"
                );
                let epoch = tr.body["epoch"].as_str().expect("epoch").to_string();
                if tr.sent > restart_at {
                    assert_ne!(epoch, old_epoch, "old epoch used after the restart: {tr:?}");
                }
                let seq = tr.body["seq"].as_u64().expect("seq");
                let seqs = by_epoch.entry(epoch).or_default();
                assert!(
                    seqs.insert(seq, tr.data.clone()).is_none(),
                    "seq {seq} acknowledged twice in one epoch: {tr:?}"
                );
            }
            503 => {
                assert_eq!(tr.body["error"], "unavailable", "{tr:?}");
                refused.push(tr.data.clone());
            }
            _ => panic!("a publish is answered 200 or 503, nothing else: {tr:?}"),
        }
    }
    let epochs: Vec<&String> = by_epoch.keys().collect();
    assert_eq!(
        epochs.len(),
        2,
        "both nodes agree on one new epoch: {epochs:?}"
    );
    let new_epoch = epochs
        .into_iter()
        .find(|e| **e != old_epoch)
        .expect("new")
        .clone();
    let old = &by_epoch[&old_epoch];
    let new = &by_epoch[&new_epoch];
    let mut acked: Vec<u64> = old.keys().copied().collect();
    acked.sort_unstable();
    assert_consecutive(&acked, 1, acked.len() as u64, "acks of the old epoch");
    let head = *new.keys().max().expect("new acks");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for (who, c) in [("subscriber on a", &mut s), ("subscriber on b", &mut t)] {
        let in_new = std::cell::Cell::new(false);
        let ne = new_epoch.clone();
        let frames = read_until(c, deadline, who, move |f| {
            if f["type"] == "subscribed" && f["epoch"] == ne.as_str() {
                in_new.set(true);
            }
            in_new.get()
                && f["type"] != "subscribed"
                && f["seq"].as_u64().is_some_and(|s| s >= head)
        })
        .await;
        let subs: Vec<usize> = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f["type"] == "subscribed")
            .map(|(i, _)| i)
            .collect();
        // The old epoch's events, in order, up to where it ended for this node.
        let before = events(&frames[..subs[0]], "alerts");
        let got: Vec<u64> = before.iter().map(|e| e.0).collect();
        assert_consecutive(&got, 1, got.len() as u64, who);
        assert_data_matches(&before, old, who);
        // Every new subscribed is the new epoch, unsolicited, followed by a
        // snapshot-then-live run of consecutive seqs.
        for (k, &at) in subs.iter().enumerate() {
            let sub = &frames[at];
            assert_eq!(sub["epoch"].as_str(), Some(&new_epoch[..]), "{who}: {sub}");
            assert_eq!(sub["recovered"], false, "{who}: {sub}");
            assert!(sub.get("ref").is_none(), "{who}: {sub}");
            let end = subs.get(k + 1).copied().unwrap_or(frames.len());
            let run = events(&frames[at + 1..end], "alerts");
            let h = sub["seq"].as_u64().expect("seq");
            let got: Vec<u64> = run.iter().map(|e| e.0).collect();
            let from = h.saturating_sub(19).max(1);
            if end == frames.len() {
                assert_consecutive(&got, from, head, who);
            } else if !got.is_empty() {
                assert_consecutive(&got, from, from + got.len() as u64 - 1, who);
            }
            for (seq, data) in &run {
                match new.get(seq) {
                    Some(want) => assert_eq!(data, want, "{who}: data at seq {seq}"),
                    None => assert!(
                        refused.contains(data),
                        "{who}: seq {seq} carries {data}, which nobody published"
                    ),
                }
            }
        }
        eprintln!(
            "{who}: old epoch up to {:?}, {} subscribed frame(s) in the new epoch",
            got.last(),
            subs.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restored_behind_what_was_delivered_means_a_new_epoch() {
    let _serial = SERIAL.lock().await;
    // No AOF: a restart loads the RDB snapshot taken below, if any.
    let mut cl = Cluster::start(&["a", "b"], false, &[]).await;
    let (mut s, _, _) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    let (mut t, _, _) = subscribed_at(&cl.ws(1, "/ws/alerts")).await;
    let mut old_epoch = String::new();
    for n in 0..10u64 {
        if n == 5 {
            assert_eq!(cl.redis.cmd(&["SAVE"]), "OK", "snapshot at seq 5");
        }
        let a = publish_on(&cl, (n % 2) as usize, "alerts", json!({"old": n})).await;
        assert_eq!(a.seq, n + 1);
        old_epoch = a.epoch;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    for (who, c) in [("s", &mut s), ("t", &mut t)] {
        let frames = read_to_seq(c, "alerts", 10, deadline, who).await;
        assert_consecutive(&seqs(&frames, "alerts"), 1, 10, who);
    }

    // Redis comes back from the snapshot: seq 5 of the same epoch, behind
    // the 10 every node delivered.
    cl.redis.kill();
    cl.redis.restart();
    assert_ne!(cl.redis.cmd(&["DBSIZE"]), "0", "the snapshot was loaded");
    for i in 0..2 {
        cl.wait_ready(i, Duration::from_secs(10)).await;
    }
    let mut published = HashMap::new();
    let mut new_epoch = String::new();
    for n in 0..4u64 {
        let a = publish_on(&cl, (n % 2) as usize, "alerts", json!({"new": n})).await;
        assert_ne!(
            a.epoch, old_epoch,
            "seq {} would reuse a seq already delivered in the old epoch",
            a.seq
        );
        if n > 0 {
            assert_eq!(a.epoch, new_epoch, "one new epoch");
        }
        new_epoch = a.epoch;
        published.insert(a.seq, a.data);
    }
    let head = *published.keys().max().expect("acks");
    let mut acked: Vec<u64> = published.keys().copied().collect();
    acked.sort_unstable();
    assert_consecutive(&acked, head - 3, head, "acks in the new epoch");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for (who, c) in [("subscriber on a", &mut s), ("subscriber on b", &mut t)] {
        let frames = read_to_seq(c, "alerts", head, deadline, who).await;
        let at = told_new_epoch(&frames, "alerts", &new_epoch, who);
        let sub = &frames[at];
        assert!(sub.get("ref").is_none(), "{who}: {sub}");
        let h = sub["seq"].as_u64().expect("seq");
        let run = events(&frames[at + 1..], "alerts");
        let got: Vec<u64> = run.iter().map(|e| e.0).collect();
        assert_consecutive(&got, h.saturating_sub(19).max(1), head, who);
        let live: Vec<(u64, Value)> = run.into_iter().filter(|e| e.0 > h).collect();
        assert_data_matches(&live, &published, who);
    }
    // The old epoch is not resumable any more.
    let (_c, _, sub) =
        subscribed_at(&cl.ws(1, &format!("/ws/alerts?since=7&epoch={old_epoch}"))).await;
    assert_eq!(
        (sub["recovered"].as_bool(), sub["epoch"].as_str()),
        (Some(false), Some(&new_epoch[..])),
        "{sub}"
    );
}

/// A client that saw seq N on another node resumes here while this node's
/// mirror is behind and Redis is away: the hub cannot read what it lacks, so
/// the resume fails with `unavailable` (the client tries again). Answering
/// from the mirror would say `recovered:false` with a head older than the one
/// the client already has, and its state would go back in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_past_the_mirror_with_redis_away_fails_rather_than_going_back() {
    let _serial = SERIAL.lock().await;
    let mut cl = Cluster::start(&["a"], true, &[]).await;
    let (mut s, _, _) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    let mut epoch = String::new();
    for n in 0..3u64 {
        epoch = publish_on(&cl, 0, "alerts", json!({ "n": n })).await.epoch;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    read_to_seq(&mut s, "alerts", 3, deadline, "mirror at 3").await;

    cl.redis.kill();
    let (status, body) = poll_http(&cl.http(0, "/readyz"), WAIT, not_ready_for_redis).await;
    assert!(not_ready_for_redis(status, &body), "{status} {body}");

    // Seq 4 was acknowledged somewhere this node has not heard from. Asked
    // again and again over 10 heartbeats: the answer holds both while the
    // node's heartbeat still reaches Redis and after it has failed too.
    let (mut c, _) = Client::connect_welcomed(&cl.ws(0, "/ws")).await;
    let outage_checked = Instant::now() + NODE_HEARTBEAT * 10;
    let mut asked = 0;
    while Instant::now() < outage_checked {
        asked += 1;
        let reference = format!("r{asked}");
        c.send(json!({"op": "subscribe", "room": "alerts", "since": 4, "epoch": epoch, "ref": reference}))
            .await;
        let answer = c.recv().await;
        assert_eq!(
            (
                answer["type"].as_str(),
                answer["code"].as_str(),
                answer["ref"].as_str()
            ),
            (Some("error"), Some("unavailable"), Some(&reference[..])),
            "resume {asked} past the mirror with Redis away: {answer}"
        );
        tokio::time::sleep(NODE_HEARTBEAT / 4).await;
    }
    // A resume the mirror can serve still is, from memory.
    c.send(
        json!({"op": "subscribe", "room": "alerts", "since": 1, "epoch": epoch, "ref": "resume"}),
    )
    .await;
    assert_recovered(&c.recv().await, 3, Some("resume"));

    // Redis back with its data: the same resume now waits for the mirror to
    // catch up, and is recovered.
    cl.redis.restart();
    cl.wait_ready(0, WAIT).await;
    let (mut d, _) = Client::connect_welcomed(&cl.ws(0, "/ws")).await;
    d.send(json!({"op": "subscribe", "room": "alerts", "since": 3, "epoch": epoch, "ref": "r3"}))
        .await;
    assert_recovered(&d.recv().await, 3, Some("r3"));
}
