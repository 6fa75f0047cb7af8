//! Cluster mode (contract section 9, docs/PROTOCOL.md section 10): several
//! `realtime-hub` processes sharing one private Redis (tests/common/redis.rs).
//! One order per room across nodes under load (with late joiners), resume on
//! any node (also a restarted one) and the HTTP fallback from Redis,
//! cluster-wide `/socket-status` and `$status` (a SIGKILLed node leaves within
//! its TTL, a stopped one at once), user messages and admin disconnects across
//! nodes, socket publishes (the `published` reply after the event), a node
//! whose pub/sub connection drops filling the gap from the Redis stream, and
//! one that missed more than its history resyncing its subscribers.
//!
//! The tests of one binary run one at a time (`SERIAL`): each starts its own
//! Redis and hubs, and the machine they run on may have two cores.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::*;
use common::*;
use serde_json::{json, Value};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_per_room_across_three_nodes_under_load() {
    let _serial = SERIAL.lock().await;
    const TASKS: u64 = 25;
    const PER_TASK: u64 = 200; // 25 tasks x 20/s x 10 s = 500 events/s, 5000 events
    const TOTAL: u64 = TASKS * PER_TASK;
    let cl = Cluster::start(&["a", "b", "c"], false, &[]).await;

    let mut followers = Vec::new();
    let mut sub_epochs = Vec::new();
    for i in [0, 1] {
        let (c, _, sub) = subscribed_at(&cl.ws(i, "/ws/hotspots")).await;
        assert_eq!(
            (sub["seq"].as_u64(), sub["recovered"].as_bool()),
            (Some(0), Some(false)),
            "fresh room on a fresh Redis: {sub}"
        );
        sub_epochs.push(sub["epoch"].as_str().expect("epoch").to_string());
        followers.push(c);
    }
    // Follow concurrently with the publishing, so nobody is a slow consumer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let followers: Vec<_> = followers
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let who = format!("subscriber on node {}", ["a", "b"][i]);
                read_to_seq(&mut c, "hotspots", TOTAL, deadline, &who).await
            })
        })
        .collect();

    let urls: Arc<Vec<String>> = Arc::new(
        (0..3)
            .map(|i| cl.http(i, "/api/rooms/hotspots/events"))
            .collect(),
    );
    // Late joiners, while the load runs: a fresh subscribe on c (a node
    // that mirrors nothing yet), then a resume on b from 50 events back.
    let late = {
        let (fresh_url, resume_url) = (cl.ws(2, "/ws/hotspots"), cl.ws(1, "/ws/hotspots"));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (mut c, _, sub) = subscribed_at(&fresh_url).await;
            let (head, epoch) = (
                sub["seq"].as_u64().expect("seq"),
                sub["epoch"].as_str().expect("epoch").to_string(),
            );
            assert!(head > 50, "the late subscribe comes mid-stream: {sub}");
            let since = head - 50;
            let (mut r, _, rsub) =
                subscribed_at(&format!("{resume_url}?since={since}&epoch={epoch}")).await;
            assert_eq!(rsub["recovered"], true, "mid-stream resume on b: {rsub}");
            let fresh = tokio::spawn(async move {
                read_to_seq(
                    &mut c,
                    "hotspots",
                    TOTAL,
                    deadline,
                    "late fresh subscriber on c",
                )
                .await
            });
            let resumed =
                read_to_seq(&mut r, "hotspots", TOTAL, deadline, "late resume on b").await;
            (head, fresh.await.expect("late fresh"), since, resumed)
        })
    };
    let client = http();
    let started = Instant::now();
    let mut publishers = Vec::new();
    for t in 0..TASKS {
        let (urls, client) = (urls.clone(), client.clone());
        publishers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut acks = Vec::new();
            for k in 0..PER_TASK {
                tick.tick().await;
                let n = k * TASKS + t; // round robin over the nodes by n
                let data = json!({"n": n, "task": t});
                let (status, ack) =
                    post_event(&client, &urls[(n % 3) as usize], "hotspot_detected", &data).await;
                assert_eq!(status, 200, "publish #{n} on node {}: {ack}", n % 3);
                acks.push(Accepted {
                    seq: ack["seq"].as_u64().expect("seq"),
                    epoch: ack["epoch"].as_str().expect("epoch").to_string(),
                    data,
                });
            }
            acks
        }));
    }
    let mut accepted = Vec::new();
    for p in publishers {
        accepted.extend(p.await.expect("publisher"));
    }
    let publishing = started.elapsed();

    // Every publish got its own seq: together exactly 1..=TOTAL, one epoch.
    let mut acked: Vec<u64> = accepted.iter().map(|a| a.seq).collect();
    acked.sort_unstable();
    assert_consecutive(&acked, 1, TOTAL, "acknowledged seqs");
    let epoch = accepted[0].epoch.clone();
    assert!(
        accepted.iter().all(|a| a.epoch == epoch),
        "all acks in one epoch"
    );
    for e in &sub_epochs {
        assert_eq!(
            e, &epoch,
            "the epoch announced at subscribe is the one used"
        );
    }
    let published: HashMap<u64, Value> = accepted.into_iter().map(|a| (a.seq, a.data)).collect();

    let mut seen = Vec::new();
    for (i, f) in followers.into_iter().enumerate() {
        let frames = f.await.expect("follower");
        let evs = events(&frames, "hotspots");
        let who = format!("subscriber on node {}", ["a", "b"][i]);
        let s: Vec<u64> = evs.iter().map(|e| e.0).collect();
        assert_consecutive(&s, 1, TOTAL, &who);
        assert_data_matches(&evs, &published, &who);
        seen.push(evs);
    }
    assert_eq!(seen[0], seen[1], "both subscribers saw the same events");
    let (head, fresh, since, resumed) = late.await.expect("late joiners");
    // A fresh subscribe: the snapshot (20 events) then live, with no gap.
    let evs = events(&fresh, "hotspots");
    let s: Vec<u64> = evs.iter().map(|e| e.0).collect();
    assert_consecutive(&s, head - 19, TOTAL, "late fresh subscriber on c");
    assert_data_matches(&evs, &published, "late fresh subscriber on c");
    let evs = events(&resumed, "hotspots");
    let s: Vec<u64> = evs.iter().map(|e| e.0).collect();
    assert_consecutive(&s, since + 1, TOTAL, "late resume on b");
    assert_data_matches(&evs, &published, "late resume on b");
    eprintln!(
        "published {TOTAL} events in {publishing:?}; delivered to both in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_on_another_node_gets_exactly_what_was_missed() {
    let _serial = SERIAL.lock().await;
    let mut cl = Cluster::start(&["a", "b", "c"], false, &[]).await;
    let mut published = HashMap::new();

    let (mut x, _, sub) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    assert_eq!(sub["seq"], 0);
    let mut epoch = String::new();
    for n in 0..5u64 {
        let a = publish_on(&cl, (n % 2) as usize, "alerts", json!({"n": n})).await;
        assert_eq!(a.seq, n + 1, "seqs start at 1 and grow by one across nodes");
        epoch = a.epoch;
        published.insert(a.seq, a.data);
    }
    assert_eq!(sub["epoch"].as_str(), Some(&epoch[..]), "subscribed epoch");
    let deadline = tokio::time::Instant::now() + WAIT;
    let frames = read_to_seq(&mut x, "alerts", 5, deadline, "first subscriber").await;
    let evs = events(&frames, "alerts");
    assert_eq!(evs.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_data_matches(&evs, &published, "first subscriber");
    x.close().await;

    // Missed while away: 6..=12, published through both nodes.
    for n in 5..12u64 {
        let a = publish_on(&cl, (n % 2) as usize, "alerts", json!({"n": n})).await;
        assert_eq!((a.seq, &a.epoch), (n + 1, &epoch));
        published.insert(a.seq, a.data);
    }

    // Resume on node b with the query parameters.
    let (mut y, w, sub) =
        subscribed_at(&cl.ws(1, &format!("/ws/alerts?since=5&epoch={epoch}"))).await;
    assert_eq!(w["node"], "b", "the welcome names the node: {w}");
    assert_eq!(
        (
            sub["recovered"].as_bool(),
            sub["seq"].as_u64(),
            sub["epoch"].as_str()
        ),
        (Some(true), Some(12), Some(&epoch[..])),
        "{sub}"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let frames = read_to_seq(&mut y, "alerts", 12, deadline, "resumed on b").await;
    let evs = events(&frames, "alerts");
    assert_consecutive(
        &evs.iter().map(|e| e.0).collect::<Vec<_>>(),
        6,
        12,
        "replay on b",
    );
    assert_data_matches(&evs, &published, "replay on b");
    // Then live: a publish on a reaches the resumed socket on b next.
    let a = publish_on(&cl, 0, "alerts", json!({"n": 12})).await;
    assert_eq!(a.seq, 13);
    published.insert(a.seq, a.data);
    let next = y.recv().await;
    assert_eq!(
        (next["room"].as_str(), next["seq"].as_u64()),
        (Some("alerts"), Some(13)),
        "{next}"
    );
    assert_eq!(next["data"], json!({"n": 12}));

    // Resume with the subscribe command, back on node a.
    let (mut z, _) = Client::connect_welcomed(&cl.ws(0, "/ws")).await;
    z.send(json!({"op": "subscribe", "room": "alerts", "since": 10, "epoch": epoch, "ref": "z1"}))
        .await;
    assert_recovered(&z.recv().await, 13, Some("z1"));
    let deadline = tokio::time::Instant::now() + WAIT;
    let frames = read_to_seq(&mut z, "alerts", 13, deadline, "resumed on a").await;
    assert_eq!(seqs(&frames, "alerts"), [11, 12, 13]);

    // The HTTP fallback on c, which never had a subscriber: from Redis.
    let (status, page) = get(&cl.http(2, "/api/rooms/alerts/history?since=5")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["epoch"].as_str(), page["seq"].as_u64()),
        (Some(&epoch[..]), Some(13)),
        "{page}"
    );
    let evs = events(page["events"].as_array().expect("events"), "alerts");
    assert_consecutive(
        &evs.iter().map(|e| e.0).collect::<Vec<_>>(),
        6,
        13,
        "history on c",
    );
    assert_data_matches(&evs, &published, "history on c");
    let (_, rooms) = get(&cl.http(2, "/api/rooms")).await;
    let alerts = rooms
        .as_array()
        .and_then(|a| a.iter().find(|r| r["room"] == "alerts"))
        .unwrap_or_else(|| panic!("alerts in /api/rooms on c: {rooms}"));
    assert_eq!(
        (alerts["epoch"].as_str(), alerts["seq"].as_u64()),
        (Some(&epoch[..]), Some(13)),
        "{alerts}"
    );

    // A wrong epoch is not recovered, on any node.
    let (_w, _, sub) = subscribed_at(&cl.ws(1, "/ws/alerts?since=5&epoch=not-the-epoch")).await;
    assert_eq!(sub["recovered"], false, "{sub}");
    assert_eq!(sub["epoch"].as_str(), Some(&epoch[..]));

    // A node's own restart changes no epoch: c, killed and started again,
    // resumes exactly.
    cl.hubs[2].proc.kill().expect("SIGKILL c");
    let _ = cl.hubs[2].proc.wait();
    cl.hubs[2] = cl.spawn_hub("c", &[]);
    cl.wait_ready(2, Duration::from_secs(10)).await;
    let (mut c, _, sub) =
        subscribed_at(&cl.ws(2, &format!("/ws/alerts?since=11&epoch={epoch}"))).await;
    assert_eq!(
        (sub["recovered"].as_bool(), sub["seq"].as_u64()),
        (Some(true), Some(13)),
        "resume on a restarted node: {sub}"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let frames = read_to_seq(&mut c, "alerts", 13, deadline, "resumed on new c").await;
    assert_eq!(seqs(&frames, "alerts"), [12, 13]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_status_is_cluster_wide_and_dead_or_stopped_nodes_leave_it() {
    let _serial = SERIAL.lock().await;
    let mut cl = Cluster::start(&["a", "b", "c"], false, &[]).await;

    // a: two alerts sockets; b: one connect socket in hotspots, one alerts;
    // c: one hotspots socket.
    let (_a1, _, _) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    let (_a2, _, _) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    let (mut b1, _) = Client::connect_welcomed(&cl.ws(1, "/ws")).await;
    b1.subscribe("hotspots").await;
    let (_b2, _, _) = subscribed_at(&cl.ws(1, "/ws/alerts")).await;
    let (_c1, _, _) = subscribed_at(&cl.ws(2, "/ws/hotspots")).await;

    let expected = |s: &Value| {
        s["total_sockets"] == 5
            && s["sockets_by_type"]["alerts"] == 3
            && s["sockets_by_type"]["connect"] == 1
            && s["sockets_by_type"]["hotspots"] == 1
            && s["rooms"]["alerts"] == 3
            && s["rooms"]["hotspots"] == 2
            && node_ids(s) == ["a", "b", "c"]
            && s["nodes"]["a"]["total_sockets"] == 2
            && s["nodes"]["a"]["sockets_by_type"]["alerts"] == 2
            && s["nodes"]["a"]["rooms"]["alerts"] == 2
            && s["nodes"]["b"]["total_sockets"] == 2
            && s["nodes"]["b"]["sockets_by_type"]["connect"] == 1
            && s["nodes"]["b"]["rooms"]["hotspots"] == 1
            && s["nodes"]["b"]["rooms"]["alerts"] == 1
            && s["nodes"]["c"]["total_sockets"] == 1
            && s["nodes"]["c"]["rooms"]["hotspots"] == 1
            && sums_match(s)
    };
    for i in 0..3 {
        let (_, s) = poll_http(&cl.http(i, "/socket-status"), WAIT, |_, s| expected(s)).await;
        assert!(
            expected(&s),
            "node {}: cluster-wide status never matched; last: {s}",
            cl.ids[i]
        );
        assert_eq!(
            s["node"],
            cl.ids[i].as_str(),
            "`node` is the answering node"
        );
        for id in ["a", "b", "c"] {
            let n = &s["nodes"][id];
            assert!(
                n["sockets_by_type"].is_object() && n["rooms"].is_object(),
                "nodes.{id} has the top level's shapes: {n}"
            );
        }
    }

    // /api/rooms counts every node's subscribers too.
    for i in 0..3 {
        let (status, rooms) = get(&cl.http(i, "/api/rooms")).await;
        assert_eq!(status, 200, "{rooms}");
        let count = |name: &str| {
            rooms
                .as_array()
                .and_then(|list| list.iter().find(|r| r["room"] == name))
                .map(|r| r["subscribers"].clone())
        };
        assert_eq!(
            (count("alerts"), count("hotspots")),
            (Some(json!(3)), Some(json!(2))),
            "node {}: {rooms}",
            cl.ids[i]
        );
    }

    // Each node reports its Redis links as up.
    for i in 0..3 {
        let up = metric_sum(&cl.http(i, "/metrics"), "hub_cluster_redis_up").await;
        assert_eq!(up, 1.0, "node {}: hub_cluster_redis_up", cl.ids[i]);
    }

    // The admin socket list is cluster-wide too, each socket naming its node.
    let (status, list) = get(&cl.http(2, "/socket-status/sockets")).await;
    assert_eq!(status, 200, "{list}");
    let nodes_of = |list: &Value| -> Vec<String> {
        list.as_array()
            .map(|l| {
                l.iter()
                    .map(|s| s["node"].as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(nodes_of(&list), ["a", "a", "b", "b", "c"], "{list}");
    let (_, alerts) = get(&cl.http(0, "/socket-status/sockets?type=alerts")).await;
    assert_eq!(nodes_of(&alerts), ["a", "a", "b"], "{alerts}");
    assert!(
        alerts.as_array().is_some_and(|l| l
            .iter()
            .all(|s| s["type"] == "alerts" && s["rooms"] == json!(["alerts"]))),
        "{alerts}"
    );

    // `delivered` counts the publishing node's own subscribers only.
    for (i, want) in [(0, 2), (1, 1), (2, 0)] {
        let (status, ack) = post(
            &cl.http(i, "/api/rooms/alerts/events"),
            &json!({"type": "alert_raised", "data": i}),
        )
        .await;
        assert_eq!(status, 200, "{ack}");
        assert_eq!(ack["delivered"], want, "publish on {}: {ack}", cl.ids[i]);
    }

    // SIGKILL c: no goodbye, only its record's TTL (3 heartbeats) removes it.
    let killed = Instant::now();
    cl.hubs[2].proc.kill().expect("SIGKILL c");
    let _ = cl.hubs[2].proc.wait();
    let bound = NODE_HEARTBEAT * 3 + NODE_HEARTBEAT * 2 + Duration::from_millis(300);
    let gone = |s: &Value| {
        node_ids(s) == ["a", "b"]
            && s["total_sockets"] == 4
            && s["rooms"]["hotspots"] == 1
            && s["sockets_by_type"]["hotspots"] == 0
            && sums_match(s)
    };
    for i in 0..2 {
        let left = bound.saturating_sub(killed.elapsed());
        let (_, s) = poll_http(&cl.http(i, "/socket-status"), left, |_, s| gone(s)).await;
        assert!(
            gone(&s),
            "node {}: c still counted {:?} after the SIGKILL (bound {bound:?}); last: {s}",
            cl.ids[i],
            killed.elapsed()
        );
    }
    eprintln!("c left the status after {:?}", killed.elapsed());

    // SIGTERM b: a stopping node removes its own record, so it leaves a's
    // status at once, not after its TTL.
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &cl.hubs[1].proc.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        if let Some(status) = cl.hubs[1].proc.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0), "b drains and exits 0");
            break;
        }
        assert!(Instant::now() < deadline, "b did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let exited = Instant::now();
    let bound = NODE_HEARTBEAT * 2 + Duration::from_millis(300);
    let alone = |s: &Value| {
        node_ids(s) == ["a"]
            && s["total_sockets"] == 2
            && s["rooms"]["hotspots"] == 0
            && sums_match(s)
    };
    let (_, s) = poll_http(&cl.http(0, "/socket-status"), bound, |_, s| alone(s)).await;
    assert!(
        alone(&s),
        "b still counted {:?} after it exited (bound {bound:?}, its TTL is {:?}): {s}",
        exited.elapsed(),
        NODE_HEARTBEAT * 3
    );
    eprintln!("b left the status {:?} after its exit", exited.elapsed());
}

const SECRET: &str = JWT_SECRET;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_messages_and_admin_disconnects_cross_nodes() {
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(&["a", "b"], false, &[("HUB_AUTH__JWT_SECRET", SECRET)]).await;
    let (alice, bob) = (token_for("alice", json!({})), token_for("bob", json!({})));

    let url = cl.ws(0, &format!("/ws?token={alice}"));
    let (mut alice_a, wa) = Client::connect_welcomed(&url).await;
    let url = cl.ws(1, &format!("/ws/alerts?token={alice}"));
    let (mut alice_b, wb, _) = subscribed_at(&url).await;
    let (mut bob_b, bob_welcome) =
        Client::connect_welcomed(&cl.ws(1, &format!("/ws?token={bob}"))).await;
    let bob_id = bob_welcome["session"]
        .as_str()
        .expect("session")
        .to_string();
    let ids = [&wa["session"], &wb["session"], &bob_welcome["session"]];
    assert!(
        ids[0] != ids[1] && ids[0] != ids[2] && ids[1] != ids[2],
        "session ids are unique across nodes: {ids:?}"
    );
    // Both nodes know all three sockets before anything is sent to a user.
    for i in 0..2 {
        let (_, s) = poll_http(&cl.http(i, "/socket-status"), WAIT, |_, s| {
            s["total_sockets"] == 3
        })
        .await;
        assert_eq!(s["total_sockets"], 3, "node {}: {s}", cl.ids[i]);
    }

    // Sent on a, delivered on a and b, counted across nodes.
    let (status, body) = post(
        &cl.http(0, "/api/users/alice/events"),
        &json!({"type": "note", "data": {"hi": 1}}),
    )
    .await;
    assert_eq!(
        (status, body["delivered"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    for (who, c) in [("alice on a", &mut alice_a), ("alice on b", &mut alice_b)] {
        let m = c.recv().await;
        assert_eq!(
            (m["type"].as_str(), m["user"].as_str()),
            (Some("note"), Some("alice")),
            "{who}: {m}"
        );
        assert_eq!(m["data"], json!({"hi": 1}), "{who}");
        assert!(
            m.get("seq").is_none() && m.get("room").is_none(),
            "{who}: {m}"
        );
    }
    // Sent on a to bob, who is only on b.
    let (status, body) = post(
        &cl.http(0, "/api/users/bob/events"),
        &json!({"type": "note", "data": "for bob"}),
    )
    .await;
    assert_eq!(
        (status, body["delivered"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let m = bob_b.recv().await;
    assert_eq!(
        (m["user"].as_str(), &m["data"]),
        (Some("bob"), &json!("for bob")),
        "{m}"
    );
    // Nobody else got anything: the next frame on each is its pong.
    for (who, c) in [
        ("alice on a", &mut alice_a),
        ("alice on b", &mut alice_b),
        ("bob", &mut bob_b),
    ] {
        let extra = ping_pong(c, "after-notes").await;
        assert!(extra.is_empty(), "{who} got more: {extra:?}");
    }
    // A user with no session anywhere.
    let (status, body) = post(
        &cl.http(1, "/api/users/carol/events"),
        &json!({"type": "note", "data": 1}),
    )
    .await;
    assert_eq!(
        (status, body["delivered"].as_u64()),
        (200, Some(0)),
        "{body}"
    );

    // Admin disconnect on a of bob's session on b.
    let url = cl.http(0, &format!("/api/sockets/{bob_id}/disconnect"));
    let (status, body) = post(&url, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    bob_b.expect_close(4009).await;
    // Once it is gone, the same id is unknown everywhere (bounded poll: the
    // session's end reaches the other node asynchronously).
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = post(&url, &json!({})).await;
        if status == 404 {
            assert_eq!(body["error"], "unknown_session", "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed session is still disconnectable: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..2 {
        let (status, body) = post(&cl.http(i, "/api/sockets/nope-0/disconnect"), &json!({})).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("unknown_session")),
            "{body}"
        );
    }
    // Alice was not touched.
    for c in [&mut alice_a, &mut alice_b] {
        assert!(ping_pong(c, "still-here").await.is_empty());
    }
}

/// The ids of the pub/sub clients Redis has now.
fn pubsub_ids(redis: &RedisServer) -> Vec<String> {
    redis
        .cmd(&["CLIENT", "LIST", "TYPE", "pubsub"])
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("id=")))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_pubsub_connection_drops_fills_the_gap_from_the_stream() {
    let _serial = SERIAL.lock().await;
    const TASKS: u64 = 4;
    let cl = Cluster::start(&["a", "b"], false, &[]).await;
    let mut followers = Vec::new();
    for i in [0, 1] {
        let (c, _, sub) = subscribed_at(&cl.ws(i, "/ws/hotspots")).await;
        assert_eq!(sub["seq"], 0);
        followers.push(c);
    }

    // Publishers through both nodes (each ~50/s) until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let urls: Arc<Vec<String>> = Arc::new(
        (0..2)
            .map(|i| cl.http(i, "/api/rooms/hotspots/events"))
            .collect(),
    );
    let client = http();
    let mut publishers = Vec::new();
    for t in 0..TASKS {
        let (urls, client, stop, count) =
            (urls.clone(), client.clone(), stop.clone(), count.clone());
        publishers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut acks = Vec::new();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let n = k * TASKS + t;
                let data = json!({"n": n});
                let (status, ack) =
                    post_event(&client, &urls[(n % 2) as usize], "hotspot_detected", &data).await;
                assert_eq!(status, 200, "publish #{n}: {ack}");
                acks.push((ack["seq"].as_u64().expect("seq"), data));
                count.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
            acks
        }));
    }
    let wait_count = |at_least: u64| {
        let count = count.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while count.load(Ordering::Relaxed) < at_least {
                assert!(
                    Instant::now() < deadline,
                    "publishing stalled at {at_least}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };

    // Twice: kill every pub/sub connection while publishing goes on, and
    // check that both nodes subscribe again by themselves.
    for round in 1..=2u64 {
        wait_count(round * 100).await;
        if round == 2 {
            // A storm first: every reconnect killed again for 400 ms, so the
            // nodes back off while events keep being published.
            let storm = Instant::now();
            while storm.elapsed() < Duration::from_millis(400) {
                cl.redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while pubsub_ids(&cl.redis).len() < 2 {
                assert!(Instant::now() < deadline, "no resubscribe after the storm");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let before = pubsub_ids(&cl.redis);
        let killed = cl.redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        let killed: u64 = killed
            .parse()
            .unwrap_or_else(|_| panic!("CLIENT KILL answered {killed:?}"));
        assert!(
            killed >= 2,
            "round {round}: each node has a pub/sub connection; killed {killed}"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = pubsub_ids(&cl.redis);
            if now.iter().filter(|id| !before.contains(id)).count() >= 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the nodes did not subscribe again: before {before:?}, now {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let after = count.load(Ordering::Relaxed);
    wait_count(after + 100).await;
    stop.store(true, Ordering::Relaxed);
    let mut published = HashMap::new();
    for p in publishers {
        for (seq, data) in p.await.expect("publisher") {
            assert!(
                published.insert(seq, data).is_none(),
                "seq {seq} acked twice"
            );
        }
    }
    let head = published.len() as u64;
    let mut acked: Vec<u64> = published.keys().copied().collect();
    acked.sort_unstable();
    assert_consecutive(&acked, 1, head, "acknowledged seqs");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut filled = 0.0;
    for (i, mut c) in followers.into_iter().enumerate() {
        let who = format!("subscriber on node {}", cl.ids[i]);
        let frames = read_to_seq(&mut c, "hotspots", head, deadline, &who).await;
        let evs = events(&frames, "hotspots");
        assert_consecutive(&evs.iter().map(|e| e.0).collect::<Vec<_>>(), 1, head, &who);
        assert_data_matches(&evs, &published, &who);
        let node_filled = metric_sum(
            &cl.http(i, "/metrics"),
            "hub_cluster_gap_filled_events_total",
        )
        .await;
        let resyncs = metric_sum(&cl.http(i, "/metrics"), "hub_cluster_resyncs_total").await;
        eprintln!(
            "node {}: {node_filled} events filled from the stream, {resyncs} resyncs",
            cl.ids[i]
        );
        filled += node_filled;
    }
    eprintln!("{head} events published");
    assert!(
        filled > 0.0,
        "the test made no gap: no node filled events from the stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_publishes_take_cluster_seqs_and_the_reply_follows_the_event() {
    let _serial = SERIAL.lock().await;
    const EACH: u64 = 10;
    const TOTAL: u64 = 3 * EACH; // a's socket, b's socket, HTTP
    let cl = Cluster::start(&["a", "b"], false, &[("HUB_ROOMS__CLIENT_PUBLISH", "true")]).await;
    let mut sockets = Vec::new();
    for i in 0..2 {
        let (c, _, sub) = subscribed_at(&cl.ws(i, "/ws/alerts")).await;
        assert_eq!(sub["seq"], 0);
        sockets.push(c);
    }
    // Both sockets publish at once while HTTP publishes go to both nodes.
    for k in 0..EACH {
        for (i, c) in sockets.iter_mut().enumerate() {
            let from = &cl.ids[i];
            c.send(json!({"op": "publish", "room": "alerts", "type": "chat",
                          "data": {"from": from, "k": k}, "ref": format!("{from}{k}")}))
                .await;
        }
    }
    let mut published = HashMap::new();
    for k in 0..EACH {
        let a = publish_on(
            &cl,
            (k % 2) as usize,
            "alerts",
            json!({"from": "http", "k": k}),
        )
        .await;
        published.insert(a.seq, a.data);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut replies = Vec::new();
    for (i, c) in sockets.iter_mut().enumerate() {
        let who = format!("publisher on {}", cl.ids[i]);
        let mut frames: Vec<Value> = Vec::new();
        loop {
            let answered = frames
                .iter()
                .filter(|f| f["type"] == "published" || f["type"] == "error")
                .count() as u64;
            if answered == EACH && events(&frames, "alerts").last().map(|e| e.0) == Some(TOTAL) {
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = c.recv_within(left).await.unwrap_or_else(|| {
                panic!(
                    "{who}: timed out; {answered} replies; frames: {}",
                    brief(&frames)
                )
            });
            frames.push(f);
        }
        for (at, f) in frames.iter().enumerate() {
            if f["type"] == "error" {
                panic!("{who}: publish refused: {f}");
            }
            if f["type"] != "published" {
                continue;
            }
            let seq = f["seq"].as_u64().expect("published seq");
            let r = f["ref"].as_str().expect("ref echoed");
            assert!(
                r.starts_with(&cl.ids[i][..]),
                "{who}: a reply to another's command: {f}"
            );
            let k: u64 = r[cl.ids[i].len()..].parse().expect("own ref");
            // The event itself came first, on this socket, with this data.
            let event = frames[..at]
                .iter()
                .find(|e| e["room"] == "alerts" && e["type"] == "chat" && e["seq"] == seq)
                .unwrap_or_else(|| {
                    panic!(
                        "{who}: `published` {f} before its event: {}",
                        brief(&frames)
                    )
                });
            let data = json!({"from": cl.ids[i], "k": k});
            assert_eq!(event["data"], data, "{who}: seq {seq}");
            replies.push((seq, data));
        }
        let evs = events(&frames, "alerts");
        assert_consecutive(&evs.iter().map(|e| e.0).collect::<Vec<_>>(), 1, TOTAL, &who);
    }
    for (seq, data) in replies {
        assert!(
            published.insert(seq, data).is_none(),
            "seq {seq} given twice"
        );
    }
    let mut all: Vec<u64> = published.keys().copied().collect();
    all.sort_unstable();
    assert_consecutive(&all, 1, TOTAL, "seqs of socket and HTTP publishes together");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_room_follows_counts_on_other_nodes() {
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(&["a", "b"], false, &[]).await;
    let (mut dash, _, _) = subscribed_at(&cl.ws(0, "/ws/$status")).await;
    let first = dash.recv().await;
    assert_eq!(first["type"], "status_update", "{first}");
    // A socket on the other node shows up on a's dashboard, with no polling.
    let (_other, _, _) = subscribed_at(&cl.ws(1, "/ws/alerts")).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let frames = read_until(
        &mut dash,
        deadline,
        "status_update counting b's socket",
        |f| {
            f["type"] == "status_update"
                && f["data"]["total_sockets"] == 2
                && f["data"]["nodes"]["b"]["total_sockets"] == 1
        },
    )
    .await;
    let last = &frames[frames.len() - 1]["data"];
    assert_eq!(last["rooms"]["alerts"], 1, "{last}");
    assert!(sums_match(last), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_more_than_its_history_resyncs_its_subscribers() {
    let _serial = SERIAL.lock().await;
    const HISTORY: u64 = 10;
    let cl = Cluster::start(&["a", "b"], false, &[("HUB_ROOMS__HISTORY", "10")]).await;
    let (mut s, _, sub) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    assert_eq!(sub["seq"], 0);
    let mut published = HashMap::new();
    let mut epoch = String::new();
    for n in 0..3u64 {
        let a = publish_on(&cl, 1, "alerts", json!({"n": n})).await;
        epoch = a.epoch;
        published.insert(a.seq, a.data);
    }
    // Cut a's subscription and, before it can be back (its first reconnect
    // waits 50 ms), publish far more than its history through b, in batches.
    let mut n = 3u64;
    for _ in 0..3 {
        cl.redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        let batch: Vec<Value> = (0..3 * HISTORY)
            .map(|k| json!({"room": "alerts", "type": "burst", "data": {"n": n + k}}))
            .collect();
        let (status, results) = post(&cl.http(1, "/api/events"), &json!(batch)).await;
        assert_eq!(status, 200, "{results}");
        for (item, r) in batch.iter().zip(results.as_array().expect("results")) {
            assert_eq!(r["epoch"].as_str(), Some(&epoch[..]), "{r}");
            published.insert(r["seq"].as_u64().expect("seq"), item["data"].clone());
        }
        n += 3 * HISTORY;
    }
    // Then, once both nodes listen again, a few live ones.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pubsub_ids(&cl.redis).len() < 2 {
        assert!(Instant::now() < deadline, "no resubscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for k in 0..3u64 {
        let a = publish_on(&cl, (k % 2) as usize, "alerts", json!({"n": n + k})).await;
        published.insert(a.seq, a.data);
    }
    let head = published.len() as u64;
    let mut acked: Vec<u64> = published.keys().copied().collect();
    acked.sort_unstable();
    assert_consecutive(&acked, 1, head, "acknowledged seqs");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let frames = read_to_seq(&mut s, "alerts", head, deadline, "subscriber on a").await;
    let subs: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f["type"] == "subscribed")
        .map(|(i, _)| i)
        .collect();
    assert!(
        !subs.is_empty(),
        "a missed more than its history: its subscriber must be told (subscribed, \
         recovered:false), got {}",
        brief(&frames)
    );
    let before = events(&frames[..subs[0]], "alerts");
    let got: Vec<u64> = before.iter().map(|e| e.0).collect();
    assert_consecutive(&got, 1, got.len() as u64, "before the resync");
    for (k, &at) in subs.iter().enumerate() {
        let sub = &frames[at];
        assert_eq!(
            (
                sub["room"].as_str(),
                sub["epoch"].as_str(),
                sub["recovered"].as_bool()
            ),
            (Some("alerts"), Some(&epoch[..]), Some(false)),
            "same epoch (a gap, not lost history): {sub}"
        );
        assert!(sub.get("ref").is_none(), "unsolicited: {sub}");
        let h = sub["seq"].as_u64().expect("seq");
        let end = subs.get(k + 1).copied().unwrap_or(frames.len());
        let run = events(&frames[at + 1..end], "alerts");
        let seqs: Vec<u64> = run.iter().map(|e| e.0).collect();
        let from = h.saturating_sub(HISTORY - 1).max(1);
        let to = if end == frames.len() {
            head
        } else {
            from + seqs.len() as u64 - 1
        };
        assert_consecutive(&seqs, from, to, "after a resync: snapshot then live");
        assert_data_matches(&run, &published, "after a resync");
    }
    eprintln!(
        "a delivered 1..={:?}, then {} resync(s)",
        got.last(),
        subs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_one_node_id_refuse_to_be_ready() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    let envs = cluster_envs(&redis.url(), "twin");
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let first = ChildHub::spawn(&envs);
    let second = ChildHub::spawn(&envs);
    // Each overwrites the other's record every heartbeat, so each soon reads
    // the other's instance under its own id and says so in /readyz.
    for hub in [&first, &second] {
        let (status, body) = poll_http(
            &hub.http("/readyz"),
            Duration::from_secs(5),
            |status, body| {
                status == 503
                    && body["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("also used by another process"))
            },
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("also used by another process")),
            "{body}"
        );
    }
    // A lone node with that id is ready again once the twin is gone.
    drop(second);
    let (status, body) = poll_http(
        &first.http("/readyz"),
        Duration::from_secs(5),
        |status, _| status == 200,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_retried_on_another_node_lands_once() {
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(&["a", "b"], false, &[]).await;
    let (mut sub, _, _) = subscribed_at(&cl.ws(0, "/ws/alerts")).await;
    let keyed = |i: usize, key: &'static str, data: Value| {
        let url = cl.http(i, "/api/rooms/alerts/events");
        async move { post_event_keyed(&http(), &url, "alert_raised", &data, Some(key)).await }
    };
    let (status, first) = keyed(0, "job-7", json!({"try": 1})).await;
    assert_eq!(status, 200, "{first}");
    // The publisher lost its answer and retries through the other node.
    let (status, again) = keyed(1, "job-7", json!({"try": 2})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["seq"], &again["epoch"], &again["duplicate"]),
        (&first["seq"], &first["epoch"], &json!(true)),
        "{again}"
    );
    let (_, next) = keyed(1, "job-8", json!({"try": 3})).await;
    assert_eq!(next["seq"], 2, "{next}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let frames = read_to_seq(&mut sub, "alerts", 2, deadline, "subscriber on a").await;
    assert_eq!(
        events(&frames, "alerts"),
        [(1, json!({"try": 1})), (2, json!({"try": 3}))]
    );
}
