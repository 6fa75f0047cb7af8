//! Presence across nodes (contract section 13) on a real redis-server: a user
//! connected to two nodes leaves only when both of its sessions are gone
//! (close, unsubscribe and a disconnect asked of another node all count), the
//! users of a SIGKILLed node leave within three heartbeats, every subscriber
//! on every node sees one user's joins and leaves in the same order, and the
//! presence answers of every node agree.
//!
//! The tests of one binary run one at a time (`SERIAL`): each starts its own
//! Redis and hubs.

mod common;

use std::time::{Duration, Instant};

use common::presence::{ask_keeping, change, session_at};
use common::redis::*;
use common::*;
use serde_json::{json, Value};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every room tracks presence; tokens are checked.
const PRESENCE: &[(&str, &str)] = &[
    ("HUB_AUTH__JWT_SECRET", JWT_SECRET),
    ("HUB_ROOMS__PRESENCE", "true"),
];

fn is_presence_change(f: &Value) -> bool {
    f["type"] == "presence_join" || f["type"] == "presence_leave"
}

/// Reads `c` until `want` arrives; the presence changes read, `want` last.
async fn changes_until(c: &mut Client, want: &Value, who: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let frames = read_until(c, deadline, &format!("{who} waiting for {want}"), |f| {
        f == want
    })
    .await;
    frames.into_iter().filter(is_presence_change).collect()
}

/// Polls every node's `GET /api/rooms/alerts/presence` until each answers
/// `users` and `anonymous`.
async fn every_node_agrees(cl: &Cluster, nodes: &[usize], users: &Value, anonymous: u64) {
    for &i in nodes {
        let want = json!({"room": "alerts", "users": users, "anonymous": anonymous});
        let (status, body) = poll_http(&cl.http(i, "/api/rooms/alerts/presence"), WAIT, |s, b| {
            s == 200 && *b == want
        })
        .await;
        assert_eq!(
            (status, &body),
            (200, &want),
            "node {} disagrees",
            cl.ids[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_nodes_leaves_only_when_both_sessions_are_gone() {
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(&["a", "b", "c"], false, PRESENCE).await;
    let mut watchers = Vec::new();
    for (i, user) in ["w-a", "w-b", "w-c"].into_iter().enumerate() {
        let (mut w, _) = session_at(&cl.ws(i, "/ws"), user).await;
        w.subscribe("alerts").await;
        watchers.push(w);
    }
    let desk = json!([
        {"user": "w-a", "sessions": 1},
        {"user": "w-b", "sessions": 1},
        {"user": "w-c", "sessions": 1},
    ]);
    every_node_agrees(&cl, &[0, 1, 2], &desk, 0).await;

    // ann on a and on b, bob on c. (Sessions without a token need a hub
    // without auth: tests/presence.rs counts them.)
    let (mut ann_a, _) = session_at(&cl.ws(0, "/ws"), "ann").await;
    let (mut ann_b, ann_b_id) = session_at(&cl.ws(1, "/ws"), "ann").await;
    let (mut bob, _) = session_at(&cl.ws(2, "/ws"), "bob").await;
    for c in [&mut ann_a, &mut ann_b, &mut bob] {
        c.subscribe("alerts").await;
    }
    let everyone = json!([
        {"user": "ann", "sessions": 2},
        {"user": "bob", "sessions": 1},
        {"user": "w-a", "sessions": 1},
        {"user": "w-b", "sessions": 1},
        {"user": "w-c", "sessions": 1},
    ]);
    every_node_agrees(&cl, &[0, 1, 2], &everyone, 0).await;
    for i in 0..3 {
        let users = metric_sum(&cl.http(i, "/metrics"), "hub_presence_users").await;
        assert_eq!(users, 5.0, "hub_presence_users on {}", cl.ids[i]);
    }
    let mut seen: Vec<Vec<Value>> = Vec::new();
    for (i, w) in watchers.iter_mut().enumerate() {
        let (answer, before) = ask_keeping(w, "alerts", 1).await;
        seen.push(before.into_iter().filter(is_presence_change).collect());
        assert_eq!(
            (&answer["users"], &answer["anonymous"]),
            (&everyone, &json!(0)),
            "the presence command on node {}: {answer}",
            cl.ids[i]
        );
    }

    // ann's session on a closes: she is still on b. Then bob unsubscribes
    // (written after ann's close by a node that saw it, so counted after it
    // everywhere): every watcher sees bob leave, and no ann leave before.
    ann_a.close().await;
    let ann_on_b = json!([
        {"user": "ann", "sessions": 1},
        {"user": "bob", "sessions": 1},
        {"user": "w-a", "sessions": 1},
        {"user": "w-b", "sessions": 1},
        {"user": "w-c", "sessions": 1},
    ]);
    every_node_agrees(&cl, &[0, 1, 2], &ann_on_b, 0).await;
    bob.send(json!({"op": "unsubscribe", "room": "alerts"}))
        .await;
    for (i, w) in watchers.iter_mut().enumerate() {
        let who = format!("watcher on {}", cl.ids[i]);
        let more = changes_until(w, &change("presence_leave", "alerts", "bob"), &who).await;
        seen[i].extend(more);
    }

    // ann's session on b is disconnected through node a's API: she leaves.
    let (status, body) = post(
        &cl.http(0, &format!("/api/sockets/{ann_b_id}/disconnect")),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    ann_b.expect_close(4009).await;
    for (i, w) in watchers.iter_mut().enumerate() {
        let who = format!("watcher on {}", cl.ids[i]);
        let more = changes_until(w, &change("presence_leave", "alerts", "ann"), &who).await;
        seen[i].extend(more);
    }

    // Every watcher saw ann and bob join once and leave once, and all saw the
    // same changes in the same order (those of the watchers themselves
    // differ by when each subscribed, so they are left out).
    let about = |frames: &[Value]| -> Vec<Value> {
        frames
            .iter()
            .filter(|f| f["user"] == "ann" || f["user"] == "bob")
            .cloned()
            .collect()
    };
    let first = about(&seen[0]);
    for kind in ["presence_join", "presence_leave"] {
        for user in ["ann", "bob"] {
            let n = first
                .iter()
                .filter(|f| **f == change(kind, "alerts", user))
                .count();
            assert_eq!(n, 1, "{kind} of {user} once: {first:?}");
        }
    }
    let leave_bob = first
        .iter()
        .position(|f| *f == change("presence_leave", "alerts", "bob"));
    let leave_ann = first
        .iter()
        .position(|f| *f == change("presence_leave", "alerts", "ann"));
    assert!(leave_bob < leave_ann, "ann left only after bob: {first:?}");
    for (i, frames) in seen.iter().enumerate().skip(1) {
        assert_eq!(about(frames), first, "watcher on {} vs a", cl.ids[i]);
    }
    every_node_agrees(&cl, &[0, 1, 2], &desk, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_leave_within_three_heartbeats() {
    let _serial = SERIAL.lock().await;
    let mut cl = Cluster::start(&["a", "b", "c"], false, PRESENCE).await;
    let (mut w_a, _) = session_at(&cl.ws(0, "/ws"), "w-a").await;
    let (mut w_b, _) = session_at(&cl.ws(1, "/ws"), "w-b").await;
    w_a.subscribe("alerts").await;
    w_b.subscribe("alerts").await;
    // kim only on c; lee on b and c.
    let mut held = Vec::new();
    for (i, user) in [(2, "kim"), (1, "lee"), (2, "lee")] {
        let (mut c, _) = session_at(&cl.ws(i, "/ws"), user).await;
        c.subscribe("alerts").await;
        held.push(c);
    }
    let before = json!([
        {"user": "kim", "sessions": 1},
        {"user": "lee", "sessions": 2},
        {"user": "w-a", "sessions": 1},
        {"user": "w-b", "sessions": 1},
    ]);
    every_node_agrees(&cl, &[0, 1, 2], &before, 0).await;

    let killed = Instant::now();
    cl.hubs[2].proc.kill().expect("SIGKILL c");
    let _ = cl.hubs[2].proc.wait();
    let bound = NODE_HEARTBEAT * 3 + Duration::from_millis(300);
    for (w, who) in [(&mut w_a, "watcher on a"), (&mut w_b, "watcher on b")] {
        let frames = changes_until(w, &change("presence_leave", "alerts", "kim"), who).await;
        let took = killed.elapsed();
        eprintln!("{who}: kim left {took:?} after the SIGKILL of c");
        assert!(
            took <= bound,
            "{who}: kim left {took:?} after the SIGKILL (bound {bound:?}, heartbeat {NODE_HEARTBEAT:?})"
        );
        assert!(
            !frames.contains(&change("presence_leave", "alerts", "lee")),
            "{who}: lee is still on b: {frames:?}"
        );
    }
    let after = json!([
        {"user": "lee", "sessions": 1},
        {"user": "w-a", "sessions": 1},
        {"user": "w-b", "sessions": 1},
    ]);
    every_node_agrees(&cl, &[0, 1], &after, 0).await;
    drop(held);
}
