//! Keyed rooms (contract section 11): publishes with `key`/`delete`, the state
//! a fresh subscriber gets (the latest event of every live key, then live
//! events with no gap), `max_keys`, the state endpoint, resume versus state
//! replay — on one node over real TCP, and on a two-node cluster sharing a
//! real `redis-server`.

mod common;

use std::collections::BTreeMap;

use common::redis::{Cluster, Nodes};
use common::*;
use realtime_hub::config::{Config, RoomDecl};
use serde_json::{json, Value};

/// A keyed room `recommendations` (history `history`, `max_keys`, socket
/// publish allowed) and a plain room `alerts`.
fn keyed_rooms(c: &mut Config, history: usize, max_keys: usize) {
    c.rooms.declare = vec![
        RoomDecl {
            history: Some(history),
            client_publish: Some(true),
            keyed: Some(true),
            max_keys: Some(max_keys),
            ..RoomDecl::named("recommendations")
        },
        RoomDecl {
            client_publish: Some(true),
            ..RoomDecl::named("alerts")
        },
    ];
}

/// One publish the hub acknowledged.
#[derive(Debug, Clone)]
struct Op {
    key: Option<String>,
    delete: bool,
    kind: String,
    data: Value,
}

/// What the publisher knows: every acknowledged publish by seq, so the state
/// at any seq can be computed.
#[derive(Debug, Default, Clone)]
struct Truth {
    ops: BTreeMap<u64, Op>,
}

/// Live keys: key -> (seq, type, data) of the key's latest event.
type Board = BTreeMap<String, (u64, String, Value)>;

impl Truth {
    /// The state after every publish up to `seq`.
    fn at(&self, seq: u64) -> Board {
        let mut board = Board::new();
        for (s, op) in self.ops.range(..=seq) {
            if let Some(key) = &op.key {
                if op.delete {
                    board.remove(key);
                } else {
                    board.insert(key.clone(), (*s, op.kind.clone(), op.data.clone()));
                }
            }
        }
        board
    }

    fn head(&self) -> u64 {
        self.ops.keys().next_back().copied().unwrap_or(0)
    }
}

/// Applies an event frame to a client's board, as a dashboard would.
fn apply(board: &mut Board, frame: &Value) {
    let Some(key) = frame["key"].as_str() else {
        return;
    };
    if frame["delete"] == true {
        board.remove(key);
    } else {
        let seq = frame["seq"].as_u64().expect("seq");
        let kind = frame["type"].as_str().expect("type").to_string();
        board.insert(key.to_string(), (seq, kind, frame["data"].clone()));
    }
}

/// The board a state (state frames or the state endpoint's events) spells,
/// checking it is one frame per key, in seq order, none past `head`.
fn board_of(state: &[Value], head: u64, who: &str) -> Board {
    let mut board = Board::new();
    let mut last = 0;
    for f in state {
        let seq = f["seq"].as_u64().unwrap_or_else(|| panic!("{who}: {f}"));
        assert!(
            seq > last && seq <= head,
            "{who}: seq {seq} after {last}, head {head}"
        );
        assert!(
            f.get("delete").is_none(),
            "{who}: a deleted key in the state: {f}"
        );
        let key = f["key"]
            .as_str()
            .unwrap_or_else(|| panic!("{who}: no key: {f}"));
        assert!(!board.contains_key(key), "{who}: key {key} twice");
        last = seq;
        apply(&mut board, f);
    }
    board
}

/// POSTs one keyed publish to `base` (`http://ADDR`): (status, body).
async fn put(
    base: &str,
    room: &str,
    kind: &str,
    key: Option<&str>,
    data: Option<Value>,
    delete: bool,
) -> (u16, Value) {
    let mut body = json!({"type": kind});
    if let Some(data) = data {
        body["data"] = data;
    }
    if let Some(key) = key {
        body["key"] = json!(key);
    }
    if delete {
        body["delete"] = json!(true);
    }
    post(&format!("{base}/api/rooms/{room}/events"), &body).await
}

/// A keyed publish into `room` at `base` that must be accepted: recorded in
/// `truth`, its seq returned.
async fn put_in(
    base: &str,
    room: &str,
    truth: &mut Truth,
    kind: &str,
    key: &str,
    data: Option<Value>,
    delete: bool,
) -> u64 {
    let (status, ack) = put(base, room, kind, Some(key), data.clone(), delete).await;
    assert_eq!(status, 200, "{kind} {key}: {ack}");
    let seq = ack["seq"].as_u64().expect("ack seq");
    let op = Op {
        key: Some(key.to_string()),
        delete,
        kind: kind.to_string(),
        data: data.unwrap_or(Value::Null),
    };
    assert!(truth.ops.insert(seq, op).is_none(), "seq {seq} acked twice");
    seq
}

/// [`put_in`] the room `recommendations`.
async fn put_ok(
    base: &str,
    truth: &mut Truth,
    kind: &str,
    key: &str,
    data: Option<Value>,
    delete: bool,
) -> u64 {
    put_in(base, "recommendations", truth, kind, key, data, delete).await
}

/// Subscribes `c` to `room` (resuming from `(epoch, since)` if given) and
/// reads `subscribed` and everything it announces: the state frames
/// (`"state":N`) or the missed events of an exact resume.
async fn join(c: &mut Client, room: &str, resume: Option<(&str, u64)>) -> (Value, Vec<Value>) {
    let mut cmd = json!({"op": "subscribe", "room": room});
    if let Some((epoch, since)) = resume {
        cmd["epoch"] = json!(epoch);
        cmd["since"] = json!(since);
    }
    c.send(cmd).await;
    let sub = c.recv().await;
    assert_eq!(sub["type"], "subscribed", "{sub}");
    let head = sub["seq"].as_u64().expect("head");
    let count = match (sub["recovered"].as_bool(), resume) {
        (Some(true), Some((_, since))) => {
            assert!(
                sub.get("state").is_none(),
                "an exact resume has no state: {sub}"
            );
            head - since
        }
        _ => sub["state"]
            .as_u64()
            .unwrap_or_else(|| panic!("no state: {sub}")),
    };
    let mut frames = Vec::new();
    for _ in 0..count {
        let f = c.recv().await;
        assert_eq!(f["room"], room, "{f}");
        frames.push(f);
    }
    (sub, frames)
}

/// Reads live events of `room` until seq `to`, asserting they are exactly
/// `from..=to`.
async fn live(c: &mut Client, room: &str, from: u64, to: u64, who: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut next = from;
    while next <= to {
        let f = c.recv().await;
        assert_eq!(f["room"], room, "{who}: {f}");
        assert_eq!(f["seq"].as_u64(), Some(next), "{who}: {f}");
        next += 1;
        frames.push(f);
    }
    frames
}

#[tokio::test]
async fn a_joining_dashboard_gets_every_open_recommendation_with_its_status() {
    let hub = start(|c| keyed_rooms(c, 20, 1000));
    let base = format!("http://{}", hub.addr);
    let mut truth = Truth::default();
    for i in 0..30 {
        let data = json!({"id": i, "status": "open"});
        put_ok(
            &base,
            &mut truth,
            "recommendation_created",
            &format!("rec-{i}"),
            Some(data),
            false,
        )
        .await;
    }
    for i in 0..10 {
        let data = json!({"id": i, "status": "approved"});
        put_ok(
            &base,
            &mut truth,
            "recommendation_updated",
            &format!("rec-{i}"),
            Some(data),
            false,
        )
        .await;
    }
    let head = truth.head();
    assert_eq!(head, 40);

    // More than the snapshot (20) and the history (20) hold: the state does.
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, state) = join(&mut c, "recommendations", None).await;
    assert_eq!(
        (&sub["seq"], &sub["recovered"], &sub["state"]),
        (&json!(40), &json!(false), &json!(30))
    );
    let board = board_of(&state, head, "fresh subscriber");
    assert_eq!(board, truth.at(head));
    let approved = board
        .values()
        .filter(|(_, _, d)| d["status"] == "approved")
        .count();
    assert_eq!(approved, 10, "the approvals are there, not the creations");
    // The first ten keys were updated last: they come last, in seq order.
    let order: Vec<u64> = state.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(order, (11..=40).collect::<Vec<_>>());

    // The state endpoint says the same at the same seq.
    let (status, page) = get(&hub.http("/api/rooms/recommendations/state")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (&page["room"], &page["seq"], &page["epoch"]),
        (&json!("recommendations"), &json!(40), &sub["epoch"])
    );
    let events = page["events"].as_array().expect("events");
    assert_eq!(
        events, &state,
        "the endpoint's events are the subscriber's frames"
    );

    // Then live, with no gap: the next event is HEAD+1, a delete included.
    let seq = put_ok(
        &base,
        &mut truth,
        "recommendation_rejected",
        "rec-12",
        None,
        true,
    )
    .await;
    assert_eq!(seq, 41);
    let mut board = board;
    for f in live(&mut c, "recommendations", 41, 41, "live").await {
        assert_eq!(
            (&f["key"], &f["delete"], &f["data"]),
            (&json!("rec-12"), &json!(true), &Value::Null)
        );
        apply(&mut board, &f);
    }
    assert_eq!(board, truth.at(41));
    assert_eq!(board.len(), 29);
}

#[tokio::test]
async fn a_hundred_keys_fifty_updates_twenty_deletes_leave_eighty_in_seq_order() {
    let hub = start(|c| keyed_rooms(c, 100, 1000));
    let base = format!("http://{}", hub.addr);
    let mut truth = Truth::default();
    for i in 0..100 {
        put_ok(
            &base,
            &mut truth,
            "created",
            &format!("k{i}"),
            Some(json!({"v": 0})),
            false,
        )
        .await;
    }
    for i in (0..100).step_by(2) {
        put_ok(
            &base,
            &mut truth,
            "updated",
            &format!("k{i}"),
            Some(json!({"v": 1})),
            false,
        )
        .await;
    }
    for i in (0..100).step_by(5) {
        put_ok(
            &base,
            &mut truth,
            "deleted",
            &format!("k{i}"),
            Some(json!("bye")),
            true,
        )
        .await;
    }
    // A plain event in between: history only.
    let (status, ack) = put(
        &base,
        "recommendations",
        "note",
        None,
        Some(json!(1)),
        false,
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    let plain = ack["seq"].as_u64().expect("seq");
    let op = Op {
        key: None,
        delete: false,
        kind: "note".into(),
        data: json!(1),
    };
    truth.ops.insert(plain, op);
    let head = truth.head();
    assert_eq!(head, 171);

    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, state) = join(&mut c, "recommendations", None).await;
    assert_eq!((&sub["seq"], &sub["state"]), (&json!(head), &json!(80)));
    assert_eq!(board_of(&state, head, "fresh"), truth.at(head));
    let seq = put_ok(&base, &mut truth, "created", "new", Some(json!(2)), false).await;
    assert_eq!(seq, head + 1);
    live(&mut c, "recommendations", head + 1, head + 1, "next").await;
}

#[tokio::test]
async fn a_new_key_past_max_keys_is_refused_with_409_and_uses_no_seq() {
    let hub = start(|c| keyed_rooms(c, 100, 3));
    let base = format!("http://{}", hub.addr);
    let mut truth = Truth::default();
    for k in ["a", "b", "c"] {
        put_ok(&base, &mut truth, "set", k, Some(json!(k)), false).await;
    }
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    join(&mut c, "recommendations", None).await;

    let (status, body) = put(
        &base,
        "recommendations",
        "set",
        Some("d"),
        Some(json!(1)),
        false,
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("limit_exceeded")),
        "{body}"
    );
    // Updates and deletes still pass, and the refusal used no seq.
    assert_eq!(
        put_ok(&base, &mut truth, "set", "a", Some(json!("a2")), false).await,
        4
    );
    assert_eq!(
        put_ok(&base, &mut truth, "del", "zz", None, true).await,
        5,
        "deleting an absent key is fine"
    );
    assert_eq!(put_ok(&base, &mut truth, "del", "b", None, true).await, 6);
    assert_eq!(
        put_ok(&base, &mut truth, "set", "d", Some(json!("d")), false).await,
        7,
        "room again"
    );
    let (status, body) = put(
        &base,
        "recommendations",
        "set",
        Some("e"),
        Some(json!(1)),
        false,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // The subscriber saw 4..=7 and nothing of the refusals.
    let mut board = truth.at(3);
    for f in live(&mut c, "recommendations", 4, 7, "subscriber").await {
        apply(&mut board, &f);
    }
    assert_eq!(board, truth.at(7));
    let (_, history) = get(&hub.http("/api/rooms/recommendations/history")).await;
    assert_eq!(history["seq"], 7, "nothing was stored: {history}");
    assert_eq!(history["events"].as_array().map(Vec::len), Some(7));

    // The socket and the batch say the same.
    c.send(json!({"op": "publish", "room": "recommendations", "type": "set", "key": "e", "data": 1, "ref": "over"}))
        .await;
    let err = c.recv().await;
    assert_eq!(
        (&err["type"], &err["code"], &err["ref"]),
        (&json!("error"), &json!("limit_exceeded"), &json!("over")),
        "{err}"
    );
    let (status, results) = post(
        &hub.http("/api/events"),
        &json!([
            {"room": "recommendations", "type": "set", "key": "e", "data": 1},
            {"room": "recommendations", "type": "set", "key": "a", "data": "a3"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(results[0]["error"], "limit_exceeded", "{results}");
    assert_eq!(results[1]["seq"], 8, "{results}");
}

#[tokio::test]
async fn a_key_for_a_room_that_is_not_keyed_and_malformed_keys_are_bad_requests() {
    let hub = start(|c| keyed_rooms(c, 100, 10));
    let base = format!("http://{}", hub.addr);
    let long = "k".repeat(257);
    for (room, key, data, delete, what) in [
        (
            "alerts",
            Some("k"),
            Some(json!(1)),
            false,
            "key on a plain room",
        ),
        ("alerts", Some("k"), None, true, "delete on a plain room"),
        (
            "recommendations",
            None,
            Some(json!(1)),
            true,
            "delete without key",
        ),
        (
            "recommendations",
            Some(""),
            Some(json!(1)),
            false,
            "empty key",
        ),
        (
            "recommendations",
            Some(long.as_str()),
            Some(json!(1)),
            false,
            "257-byte key",
        ),
        (
            "recommendations",
            Some("k"),
            None,
            false,
            "no data without delete",
        ),
    ] {
        let (status, body) = put(&base, room, "t", key, data, delete).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("bad_request")),
            "{what}: {body}"
        );
    }
    let (status, body) = put(
        &base,
        "recommendations",
        "t",
        Some("é".repeat(128).as_str()),
        Some(json!(1)),
        false,
    )
    .await;
    assert_eq!(status, 200, "256 bytes of key are fine: {body}");
    let (status, body) = get(&hub.http("/api/rooms/alerts/state")).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("bad_request")),
        "{body}"
    );
    let (status, _) = get(&hub.http("/api/rooms/nope/state")).await;
    assert_eq!(status, 404);

    // A plain room's subscribers get a snapshot, no state.
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let sub = c.subscribe("alerts").await;
    assert!(sub.get("state").is_none(), "{sub}");
    c.send(
        json!({"op": "publish", "room": "alerts", "type": "t", "data": 1, "key": "k", "ref": 1}),
    )
    .await;
    let err = c.recv().await;
    assert_eq!(
        (&err["code"], &err["ref"]),
        (&json!("bad_request"), &json!(1)),
        "{err}"
    );
    c.send(json!({"op": "publish", "room": "alerts", "type": "t", "data": 2, "ref": 2}))
        .await;
    let (published, _) = c.recv_until(|v| v["type"] == "published").await;
    assert_eq!(
        published["seq"], 1,
        "the refused publish used no seq: {published}"
    );
}

#[tokio::test]
async fn keys_published_over_batch_and_socket_build_the_same_state() {
    let hub = start(|c| keyed_rooms(c, 100, 10));
    let (status, results) = post(
        &hub.http("/api/events"),
        &json!([
            {"room": "recommendations", "type": "created", "key": "a", "data": {"s": "open"}},
            {"room": "recommendations", "type": "created", "key": "b", "data": {"s": "open"}},
            {"room": "alerts", "type": "raised", "key": "x", "data": 1},
            {"room": "alerts", "type": "raised", "data": 1},
            {"room": "recommendations", "type": "removed", "key": "a", "delete": true},
            {"room": "recommendations", "type": "created", "key": "c", "data": {"s": "open"}},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    let seqs: Vec<Value> = results
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["seq"].clone())
        .collect();
    assert_eq!(
        seqs,
        [
            json!(1),
            json!(2),
            Value::Null,
            json!(1),
            json!(3),
            json!(4)
        ],
        "{results}"
    );
    assert_eq!(results[2]["error"], "bad_request", "{results}");

    let (mut publisher, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, state) = join(&mut publisher, "recommendations", None).await;
    assert_eq!(sub["seq"], 4);
    let keys: Vec<&str> = state.iter().filter_map(|f| f["key"].as_str()).collect();
    assert_eq!(keys, ["b", "c"]);
    for (i, cmd) in [
        json!({"op": "publish", "room": "recommendations", "type": "approved", "key": "b", "data": {"s": "approved"}, "ref": 1}),
        json!({"op": "publish", "room": "recommendations", "type": "removed", "key": "c", "delete": true, "ref": 2}),
        json!({"op": "publish", "room": "recommendations", "type": "created", "key": "d", "data": {"s": "open"}, "ref": 3}),
    ]
    .into_iter()
    .enumerate()
    {
        publisher.send(cmd).await;
        let seq = 5 + i as u64;
        // Its own event first, then `published`.
        let event = publisher.recv().await;
        assert_eq!(event["seq"], seq, "{event}");
        let reply = publisher.recv().await;
        assert_eq!((&reply["type"], &reply["seq"]), (&json!("published"), &json!(seq)), "{reply}");
    }
    let (mut late, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, state) = join(&mut late, "recommendations", None).await;
    assert_eq!((&sub["seq"], &sub["state"]), (&json!(7), &json!(2)));
    let got: Vec<(Value, Value, Value)> = state
        .iter()
        .map(|f| (f["key"].clone(), f["seq"].clone(), f["data"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (json!("b"), json!(5), json!({"s": "approved"})),
            (json!("d"), json!(7), json!({"s": "open"})),
        ]
    );
}

#[tokio::test]
async fn a_resume_within_history_gets_the_events_otherwise_the_state() {
    let hub = start(|c| keyed_rooms(c, 10, 100));
    let base = format!("http://{}", hub.addr);
    let mut truth = Truth::default();
    for i in 0..5 {
        put_ok(
            &base,
            &mut truth,
            "created",
            &format!("k{i}"),
            Some(json!(i)),
            false,
        )
        .await;
    }
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, state) = join(&mut c, "recommendations", None).await;
    let epoch = sub["epoch"].as_str().expect("epoch").to_string();
    let mut board = board_of(&state, 5, "first join");
    c.close().await;

    // Within history: the missed events, recovered.
    put_ok(&base, &mut truth, "updated", "k1", Some(json!("u")), false).await;
    put_ok(&base, &mut truth, "deleted", "k2", None, true).await;
    put_ok(&base, &mut truth, "created", "k9", Some(json!(9)), false).await;
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, missed) = join(&mut c, "recommendations", Some((&epoch, 5))).await;
    assert_eq!(
        (&sub["recovered"], &sub["seq"]),
        (&json!(true), &json!(8)),
        "{sub}"
    );
    assert_consecutive(&seqs(&missed, "recommendations"), 6, 8, "resume");
    for f in &missed {
        apply(&mut board, f);
    }
    assert_eq!(board, truth.at(8));
    c.close().await;

    // Past history (10 events): the state instead, and the client replaces its board.
    for i in 0..12 {
        put_ok(
            &base,
            &mut truth,
            "updated",
            &format!("k{}", i % 4),
            Some(json!(i)),
            false,
        )
        .await;
    }
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, state) = join(&mut c, "recommendations", Some((&epoch, 8))).await;
    assert_eq!(
        (&sub["recovered"], &sub["seq"]),
        (&json!(false), &json!(20)),
        "{sub}"
    );
    let board = board_of(&state, 20, "past history");
    assert_eq!(board, truth.at(20));
    assert_eq!(sub["state"].as_u64(), Some(board.len() as u64));

    // Another epoch: the state too.
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, state) = join(&mut c, "recommendations", Some(("old-epoch", 19))).await;
    assert_eq!(sub["recovered"], false, "{sub}");
    assert_eq!(board_of(&state, 20, "old epoch"), truth.at(20));
}

/// Fresh subscribers and state reads racing a stream of creates, updates and
/// deletes: every subscriber's state-then-live, and every state read at its
/// seq, equals the publisher's truth.
#[tokio::test]
async fn state_and_subscribes_stay_consistent_while_publishing() {
    const OPS: u64 = 600;
    const SUBSCRIBERS: u64 = 20;
    let hub = start(|c| keyed_rooms(c, 30, 1000));
    let base = format!("http://{}", hub.addr);
    let (progress, watch) = tokio::sync::watch::channel(0u64);

    let publisher = {
        let base = base.clone();
        tokio::spawn(async move {
            let mut truth = Truth::default();
            let mut live = std::collections::BTreeSet::new();
            let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
            for n in 1..=OPS {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = format!("rec-{}", rng % 40);
                let delete = live.contains(&key) && rng % 10 < 3;
                let data = (!delete).then(
                    || json!({"n": n, "status": if rng.is_multiple_of(2) { "open" } else { "approved" }}),
                );
                put_ok(&base, &mut truth, "recommendation", &key, data, delete).await;
                if delete {
                    live.remove(&key);
                } else {
                    live.insert(key);
                }
                let _ = progress.send(n);
            }
            truth
        })
    };

    let reader = {
        let url = hub.http("/api/rooms/recommendations/state");
        let mut watch = watch.clone();
        tokio::spawn(async move {
            let mut pages = Vec::new();
            while *watch.borrow_and_update() < OPS && pages.len() < 300 {
                let (status, page) = get(&url).await;
                assert_eq!(status, 200, "{page}");
                pages.push(page);
            }
            pages
        })
    };

    let mut joiners = Vec::new();
    for i in 0..SUBSCRIBERS {
        let url = hub.ws("/ws");
        let mut watch = watch.clone();
        joiners.push(tokio::spawn(async move {
            let _ = watch.wait_for(|n| *n >= i * OPS / SUBSCRIBERS).await;
            let (mut c, _) = Client::connect_welcomed(&url).await;
            let (sub, state) = join(&mut c, "recommendations", None).await;
            let head = sub["seq"].as_u64().expect("head");
            let who = format!("subscriber {i} (joined at {head})");
            let mut board = board_of(&state, head, &who);
            let joined = board.clone();
            for f in live(&mut c, "recommendations", head + 1, OPS, &who).await {
                apply(&mut board, &f);
            }
            (head, joined, board)
        }));
    }

    let truth = publisher.await.expect("publisher");
    assert_eq!(truth.head(), OPS);
    let end = truth.at(OPS);
    for (i, j) in joiners.into_iter().enumerate() {
        let (head, joined, board) = j.await.expect("subscriber");
        assert_eq!(
            joined,
            truth.at(head),
            "subscriber {i}: the state at its subscribed.seq {head}"
        );
        assert_eq!(
            board, end,
            "subscriber {i}: state then live ends at the truth"
        );
    }
    let pages = reader.await.expect("reader");
    assert!(!pages.is_empty());
    for page in &pages {
        let seq = page["seq"].as_u64().expect("seq");
        let events = page["events"].as_array().expect("events");
        assert_eq!(
            board_of(events, seq, "state read"),
            truth.at(seq),
            "state read at seq {seq}"
        );
    }
}

/// Two nodes on one Redis: a room published on A is subscribed on B, whose
/// state (read from Redis, or kept from the events channel) is consistent
/// with its `subscribed.seq`; `max_keys` is Redis's to enforce.
#[tokio::test]
async fn cluster_a_subscribe_on_another_node_gets_the_state_at_its_seq() {
    let keyed = [
        ("HUB_ROOMS__ALLOW_DYNAMIC", "true"),
        ("HUB_ROOMS__KEYED", "true"),
        ("HUB_ROOMS__MAX_KEYS", "60"),
        // Less history than events: the state comes from its own hash.
        ("HUB_ROOMS__HISTORY", "10"),
    ];
    let mut cl = Cluster::start(&["a", "b"], false, &keyed).await;
    let a = format!("http://{}", cl.hubs[0].addr);
    let b = format!("http://{}", cl.hubs[1].addr);
    let room = "recs";
    let mut truth = Truth::default();
    // B follows the room from before the first publish: its mirror then
    // keeps the state from the events channel alone.
    let (mut early, _) = Client::connect_welcomed(&cl.ws(1, "/ws")).await;
    let (sub, state) = join(&mut early, room, None).await;
    assert_eq!((&sub["seq"], state.len()), (&json!(0), 0));
    for i in 0..60 {
        let data = Some(json!({"v": i}));
        put_in(
            &a,
            room,
            &mut truth,
            "created",
            &format!("k {i}"),
            data,
            false,
        )
        .await;
    }
    for i in 0..30 {
        let data = Some(json!({"v": "u"}));
        put_in(
            &a,
            room,
            &mut truth,
            "updated",
            &format!("k {i}"),
            data,
            false,
        )
        .await;
    }
    for i in 50..60 {
        put_in(
            &a,
            room,
            &mut truth,
            "deleted",
            &format!("k {i}"),
            None,
            true,
        )
        .await;
    }
    // 50 live keys: ten more fit, through the other node.
    for i in 0..10 {
        put_in(
            &b,
            room,
            &mut truth,
            "created",
            &format!("n{i}"),
            Some(json!(i)),
            false,
        )
        .await;
    }
    for node in [&a, &b] {
        let (status, body) = put(node, room, "created", Some("over"), Some(json!(1)), false).await;
        assert_eq!(
            (status, &body["error"]),
            (409, &json!("limit_exceeded")),
            "{body}"
        );
    }
    let head = truth.head();
    assert_eq!(head, 110, "the refusals used no seq");

    let mut board = Board::new();
    for f in live(&mut early, room, 1, head, "early subscriber on b").await {
        apply(&mut board, &f);
    }
    assert_eq!(board, truth.at(head));
    // A node started now reads the room, state and all, from Redis.
    let c = cl.spawn_hub("c", &keyed);
    cl.hubs.push(c);
    cl.ids.push("c".into());
    cl.wait_ready(2, std::time::Duration::from_secs(10)).await;
    for (i, node) in [(1, "b"), (0, "a"), (2, "c")] {
        let (mut c, _) = Client::connect_welcomed(&cl.ws(i, "/ws")).await;
        let (sub, state) = join(&mut c, room, None).await;
        assert_eq!(
            (&sub["seq"], &sub["state"]),
            (&json!(head), &json!(60)),
            "node {node}"
        );
        assert_eq!(board_of(&state, head, node), truth.at(head), "node {node}");
        let (_, page) = get(&cl.http(i, &format!("/api/rooms/{room}/state"))).await;
        let events = page["events"].as_array().expect("events");
        assert_eq!(events, &state, "node {node}: the endpoint says the same");
    }

    // Fresh subscribes on B and C racing publishes on A.
    const RACE: u64 = 80;
    let end = head + RACE;
    let (progress, watch) = tokio::sync::watch::channel(0u64);
    let mut joiners = Vec::new();
    for i in 0..8u64 {
        let url = cl.ws(1 + (i as usize % 2), "/ws");
        let mut watch = watch.clone();
        joiners.push(tokio::spawn(async move {
            let _ = watch.wait_for(|n| *n >= i * RACE / 8).await;
            let (mut c, _) = Client::connect_welcomed(&url).await;
            let (sub, state) = join(&mut c, "recs", None).await;
            let at = sub["seq"].as_u64().expect("seq");
            let who = format!("racing subscriber {i} (joined at {at})");
            let mut board = board_of(&state, at, &who);
            let joined = board.clone();
            for f in live(&mut c, "recs", at + 1, end, &who).await {
                apply(&mut board, &f);
            }
            (at, joined, board)
        }));
    }
    for n in 1..=RACE {
        let delete = n % 7 == 0;
        let data = (!delete).then(|| json!({"n": n}));
        let key = format!("k {}", n % 50);
        put_in(&a, room, &mut truth, "changed", &key, data, delete).await;
        let _ = progress.send(n);
    }
    assert_eq!(truth.head(), end);
    for j in joiners {
        let (at, joined, board) = j.await.expect("racing subscriber");
        assert_eq!(joined, truth.at(at), "state at subscribed.seq {at}");
        assert_eq!(board, truth.at(end));
    }
}

/// The three checks above on a single durable node after a SIGKILL and a
/// restart on the same store: a fresh subscriber's state, an exact resume
/// within history, and a state replay for a resume past it.
#[tokio::test]
async fn durable_after_a_sigkill_the_state_resume_and_replay_hold() {
    let dir = temp_dir("keyed-kill");
    let path = dir.display().to_string();
    let envs = [
        ("HUB_STORAGE__PATH", path.as_str()),
        ("HUB_ROOMS__DECLARE", "recommendations"),
        ("HUB_ROOMS__KEYED", "true"),
        ("HUB_ROOMS__HISTORY", "30"),
    ];
    let mut hub = ChildHub::spawn(&envs);
    let base = format!("http://{}", hub.addr);
    let mut truth = Truth::default();
    for i in 0..100 {
        let data = Some(json!({"v": 0}));
        put_ok(&base, &mut truth, "created", &format!("k{i}"), data, false).await;
    }
    for i in (0..100).step_by(2) {
        let data = Some(json!({"v": 1}));
        put_ok(&base, &mut truth, "updated", &format!("k{i}"), data, false).await;
    }
    for i in (0..100).step_by(5) {
        put_ok(&base, &mut truth, "deleted", &format!("k{i}"), None, true).await;
    }
    let head = truth.head();
    assert_eq!(head, 170);
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, _) = join(&mut c, "recommendations", None).await;
    let epoch = sub["epoch"].as_str().expect("epoch").to_string();
    drop(c);

    hub.proc.kill().expect("SIGKILL");
    let _ = hub.proc.wait();
    let hub = ChildHub::spawn(&envs);
    let base = format!("http://{}", hub.addr);

    // A fresh subscriber: the 80 live keys at HEAD, then HEAD+1 live.
    let (mut fresh, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, state) = join(&mut fresh, "recommendations", None).await;
    assert_eq!(
        (&sub["epoch"], &sub["seq"], &sub["state"]),
        (&json!(epoch), &json!(head), &json!(80)),
        "{sub}"
    );
    let mut board = board_of(&state, head, "fresh after restart");
    assert_eq!(board, truth.at(head));
    let next = put_ok(&base, &mut truth, "created", "new", Some(json!(2)), false).await;
    assert_eq!(next, head + 1, "no seq is given twice");
    for f in live(&mut fresh, "recommendations", next, next, "live").await {
        apply(&mut board, &f);
    }
    assert_eq!(board, truth.at(next));

    // Within history: exactly the missed events.
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, missed) = join(&mut c, "recommendations", Some((&epoch, head - 5))).await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_consecutive(&seqs(&missed, "recommendations"), head - 4, next, "resume");

    // Past history: the state, equal to the truth.
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (sub, state) = join(&mut c, "recommendations", Some((&epoch, 10))).await;
    assert_eq!(sub["recovered"], false, "{sub}");
    assert_eq!(board_of(&state, next, "past history"), truth.at(next));
}
