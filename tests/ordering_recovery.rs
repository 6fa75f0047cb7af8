//! Order, history and recovery (contract section 5): snapshots, exact resumes,
//! lost history, and the race of publishes against subscribes.

mod common;

use common::*;
use serde_json::{json, Value};

async fn publish_n(hub: &realtime_hub::SpawnedHub, room: &str, n: usize) -> Value {
    let mut last = Value::Null;
    for i in 0..n {
        last = publish(hub, room, "hotspot_detected", json!({"i": i})).await;
    }
    last
}

/// Reads until the event with seq `head` arrives; returns the subscribed frame
/// and every event seq seen.
async fn read_to(c: &mut Client, room: &str, head: u64) -> (Value, Vec<u64>) {
    let (sub, _) = c.recv_until(|v| v["type"] == "subscribed").await;
    let mut seen = Vec::new();
    if sub["seq"].as_u64() == Some(head) && head == 0 {
        return (sub, seen);
    }
    loop {
        let v = c.recv().await;
        assert_eq!(v["room"], room, "{v}");
        let seq = v["seq"].as_u64().expect("event seq");
        seen.push(seq);
        if seq >= head {
            return (sub, seen);
        }
    }
}

fn consecutive(from: u64, to: u64) -> Vec<u64> {
    (from..=to).collect()
}

#[tokio::test]
async fn fresh_subscribe_gets_the_snapshot_then_live_events() {
    let hub = start(|c| {
        c.rooms.history = 50;
        c.rooms.snapshot = 5;
    });
    let ack = publish_n(&hub, "hotspots", 12).await;
    assert_eq!(ack["seq"], 12);
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    c.send(json!({"op": "subscribe", "room": "hotspots"})).await;
    let sub = c.recv().await;
    assert_eq!(sub["type"], "subscribed");
    assert_eq!(sub["seq"], 12);
    assert_eq!(sub["recovered"], false);
    assert_eq!(sub["epoch"], ack["epoch"]);
    // The publish goes out only once the subscription is in place (publishes
    // racing a subscribe are the race test's job), so it must arrive live.
    publish(&hub, "hotspots", "hotspot_detected", json!("live")).await;
    let mut seen = Vec::new();
    while seen.last() != Some(&13) {
        seen.push(c.recv().await["seq"].as_u64().expect("seq"));
    }
    assert_eq!(seen, consecutive(8, 13));
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed() {
    let hub = start(|c| c.rooms.snapshot = 3);
    let ack = publish_n(&hub, "alerts", 10).await;
    let epoch = ack["epoch"].as_str().expect("epoch").to_string();

    // On /ws/{room} with query parameters.
    let (mut a, _) =
        Client::connect_welcomed(&hub.ws(&format!("/ws/alerts?since=6&epoch={epoch}"))).await;
    let (sub, seen) = read_to(&mut a, "alerts", 10).await;
    assert_eq!(sub["recovered"], true);
    assert_eq!(seen, consecutive(7, 10));

    // On /ws with the subscribe command, at the head: nothing replayed.
    let (mut b, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    b.send(json!({"op": "subscribe", "room": "alerts", "since": 10, "epoch": epoch}))
        .await;
    let sub = b.recv().await;
    assert_eq!(
        (sub["type"].as_str(), sub["recovered"].as_bool()),
        (Some("subscribed"), Some(true))
    );
    publish(&hub, "alerts", "alert_raised", json!("next")).await;
    assert_eq!(b.recv().await["seq"], 11);
}

#[tokio::test]
async fn lost_history_wrong_epoch_or_odd_since_get_the_snapshot() {
    let hub = start(|c| {
        c.rooms.history = 10;
        c.rooms.snapshot = 4;
    });
    let ack = publish_n(&hub, "alerts", 30).await;
    let epoch = ack["epoch"].as_str().expect("epoch").to_string();
    for query in [
        format!("since=5&epoch={epoch}"), // no longer in history
        "since=25&epoch=not-the-epoch".to_string(),
        "since=25".to_string(),            // since without epoch
        format!("since=99&epoch={epoch}"), // beyond the head
    ] {
        let (mut c, _) = Client::connect_welcomed(&hub.ws(&format!("/ws/alerts?{query}"))).await;
        let (sub, seen) = read_to(&mut c, "alerts", 30).await;
        assert_eq!(sub["recovered"], false, "{query}");
        assert_eq!(seen, consecutive(27, 30), "{query}");
    }
    // The oldest event still held is enough for an exact resume.
    let (mut c, _) =
        Client::connect_welcomed(&hub.ws(&format!("/ws/alerts?since=20&epoch={epoch}"))).await;
    let (sub, seen) = read_to(&mut c, "alerts", 30).await;
    assert_eq!(sub["recovered"], true);
    assert_eq!(seen, consecutive(21, 30));
}

#[tokio::test]
async fn empty_room_subscribes_at_seq_zero_and_resumes_from_zero() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws/recommendations")).await;
    let sub = c.recv().await;
    assert_eq!(
        (sub["seq"].as_u64(), sub["recovered"].as_bool()),
        (Some(0), Some(false))
    );
    let epoch = sub["epoch"].as_str().expect("epoch").to_string();
    publish_n(&hub, "recommendations", 3).await;
    let (mut r, _) =
        Client::connect_welcomed(&hub.ws(&format!("/ws/recommendations?since=0&epoch={epoch}")))
            .await;
    let (sub, seen) = read_to(&mut r, "recommendations", 3).await;
    assert_eq!(sub["recovered"], true);
    assert_eq!(seen, [1, 2, 3]);
}

/// 200 publishes race 50 fresh subscribes and 50 resumes; every stream must be
/// gap-free and duplicate-free from its start to the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_racing_subscribes_leave_no_gap_and_no_duplicate() {
    const PRE: u64 = 30;
    const RACE: u64 = 200;
    const SNAPSHOT: u64 = 20;
    let hub = std::sync::Arc::new(start(|c| {
        c.rooms.history = 1000;
        c.rooms.snapshot = SNAPSHOT as usize;
    }));
    let ack = publish_n(&hub, "hotspots", PRE as usize).await;
    let epoch = ack["epoch"].as_str().expect("epoch").to_string();
    let head = PRE + RACE;

    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            for i in 0..RACE {
                publish(&hub, "hotspots", "hotspot_detected", json!({"race": i})).await;
            }
        })
    };

    let mut clients = Vec::new();
    for i in 0..100u64 {
        let hub = hub.clone();
        let epoch = epoch.clone();
        clients.push(tokio::spawn(async move {
            // Stagger joins across the publish run.
            tokio::time::sleep(std::time::Duration::from_millis(i * 3)).await;
            let resume = (i % 2 == 1).then_some(i % PRE);
            let mut c = match (resume, i % 4) {
                (Some(since), 1) => {
                    Client::connect_welcomed(&hub.ws(&format!(
                        "/ws/hotspots?since={since}&epoch={epoch}"
                    )))
                    .await
                    .0
                }
                (Some(since), _) => {
                    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
                    c.send(json!({"op": "subscribe", "room": "hotspots", "since": since, "epoch": epoch}))
                        .await;
                    c
                }
                (None, 0) => Client::connect_welcomed(&hub.ws("/ws/hotspots")).await.0,
                (None, _) => {
                    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
                    c.send(json!({"op": "subscribe", "room": "hotspots"})).await;
                    c
                }
            };
            let (sub, seen) = read_to(&mut c, "hotspots", head).await;
            (resume, sub, seen)
        }));
    }
    publisher.await.expect("publisher");
    let mut resumed = 0;
    for handle in clients {
        let (resume, sub, seen) = handle.await.expect("client");
        let at = sub["seq"].as_u64().expect("subscribed seq");
        let first = match resume {
            Some(since) => {
                assert_eq!(sub["recovered"], true, "resume inside history is exact");
                resumed += 1;
                since + 1
            }
            None => {
                assert_eq!(sub["recovered"], false);
                at.saturating_sub(SNAPSHOT) + 1
            }
        };
        assert_eq!(
            seen,
            consecutive(first, head),
            "stream of a subscriber that joined at seq {at} (resume {resume:?})"
        );
    }
    assert_eq!(resumed, 50);
}

/// History is bounded by bytes as well as by count (`rooms.history_bytes`):
/// large events cannot multiply `history` into gigabytes, and a resume from
/// beyond what the bytes kept is told `recovered:false`.
#[tokio::test]
async fn history_is_bounded_by_bytes_too() {
    let hub = start(|c| c.rooms.history_bytes = 64 * 1024);
    let pad = "x".repeat(10_000);
    for n in 1..=20 {
        publish(&hub, "alerts", "alert_raised", json!({"n": n, "pad": pad})).await;
    }
    let (status, page) = get(&hub.http("/api/rooms/alerts/history")).await;
    assert_eq!(status, 200);
    let events = page["events"].as_array().expect("events");
    let bytes: usize = events.iter().map(|e| e.to_string().len()).sum();
    assert!(bytes <= 64 * 1024, "history holds {bytes} bytes");
    assert!(
        events.len() >= 5 && events.len() < 20,
        "{} events",
        events.len()
    );
    assert_eq!(events.last().map(|e| e["seq"].clone()), Some(json!(20)));
    let oldest = events[0]["seq"].as_u64().expect("seq");

    let epoch = page["epoch"].as_str().expect("epoch");
    let (mut c, _) =
        Client::connect_welcomed(&hub.ws(&format!("/ws/alerts?since=1&epoch={epoch}"))).await;
    let (sub, _) = c.recv_until(|v| v["type"] == "subscribed").await;
    assert_eq!(sub["recovered"], false, "events 2..{oldest} are gone");
    let (mut c, _) = Client::connect_welcomed(
        &hub.ws(&format!("/ws/alerts?since={}&epoch={epoch}", oldest - 1)),
    )
    .await;
    let (sub, _) = c.recv_until(|v| v["type"] == "subscribed").await;
    assert_eq!(sub["recovered"], true);
}
