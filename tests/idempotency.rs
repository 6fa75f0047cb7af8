//! Publishing with an `Idempotency-Key` (an extension, docs/PROTOCOL.md): a
//! publisher that retries after losing its answer gets the first publish's
//! seq, and subscribers see the event once.

mod common;

use common::*;
use serde_json::{json, Value};

async fn publish_keyed(hub: &realtime_hub::SpawnedHub, key: &str, data: Value) -> (u16, Value) {
    let url = hub.http("/api/rooms/alerts/events");
    post_event_keyed(&http(), &url, "alert_raised", &data, Some(key)).await
}

#[tokio::test]
async fn a_retried_publish_lands_once() {
    let hub = start(|_| {});
    let (mut sub, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    sub.recv_until(|f| f["type"] == "subscribed").await;

    let (status, first) = publish_keyed(&hub, "order-42", json!({"try": 1})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["seq"].as_u64(), first.get("duplicate")),
        (Some(1), None)
    );
    assert_eq!(first["delivered"], 1);

    // The retry (even with another body) is answered with the first seq.
    let (status, again) = publish_keyed(&hub, "order-42", json!({"try": 2})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["seq"], 1, "{again}");
    assert_eq!(again["epoch"], first["epoch"]);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["delivered"], 0);

    // Another key, or none, is another event.
    let (_, other) = publish_keyed(&hub, "order-43", json!({"try": 3})).await;
    assert_eq!(other["seq"], 2, "{other}");
    let plain = publish(&hub, "alerts", "alert_raised", json!({"try": 4})).await;
    assert_eq!(plain["seq"], 3, "{plain}");

    // A batch item carries its key in the body.
    let (status, batch) = post(
        &hub.http("/api/events"),
        &json!([
            {"room": "alerts", "type": "alert_raised", "data": {"try": 5}, "idempotency_key": "order-42"},
            {"room": "alerts", "type": "alert_raised", "data": {"try": 6}, "idempotency_key": "order-44"},
            {"room": "alerts", "type": "alert_raised", "data": {"try": 7}, "idempotency_key": "order-44"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    let seqs: Vec<_> = batch
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["seq"].clone())
        .collect();
    assert_eq!(seqs, [json!(1), json!(4), json!(4)], "{batch}");

    // The subscriber got each event once, in order; a marker published last
    // is the very next event, so no repeat slipped in after seq 4.
    let marker = publish(&hub, "alerts", "alert_raised", json!({"try": "marker"})).await;
    assert_eq!(marker["seq"], 5, "{marker}");
    let (last, before) = sub.recv_until(|f| f["seq"] == 5).await;
    let got: Vec<(u64, Value)> = before
        .iter()
        .chain(std::iter::once(&last))
        .filter(|f| f["type"] == "alert_raised")
        .map(|f| (f["seq"].as_u64().expect("seq"), f["data"]["try"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (1, json!(1)),
            (2, json!(3)),
            (3, json!(4)),
            (4, json!(6)),
            (5, json!("marker"))
        ]
    );
}

#[tokio::test]
async fn bad_keys_are_refused_and_ttl_zero_turns_keys_off() {
    let hub = start(|_| {});
    for bad in ["", "has space", &"k".repeat(129)] {
        let (status, body) = publish_keyed(&hub, bad, json!(1)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad:?}: {body}"
        );
    }
    let (status, body) = post(
        &hub.http("/api/events"),
        &json!([{"room": "alerts", "type": "t", "data": 1, "idempotency_key": "a b"}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["error"], "bad_request", "{body}");

    let off = start(|c| c.rooms.idempotency_ttl_s = 0);
    let (_, a) = publish_keyed(&off, "same", json!(1)).await;
    let (_, b) = publish_keyed(&off, "same", json!(2)).await;
    assert_eq!((a["seq"].as_u64(), b["seq"].as_u64()), (Some(1), Some(2)));
}

/// One writer flooding a room with keyed publishes forgets its own oldest
/// keys, never another room's: a retry there still lands once.
#[tokio::test]
async fn a_flood_of_keys_in_one_room_keeps_another_rooms_keys() {
    let hub = start(|c| c.rooms.idempotency_keys_per_room = 10);
    let (status, first) = publish_keyed(&hub, "mine", json!({"n": 0})).await;
    assert_eq!(status, 200, "{first}");
    for n in 0..50 {
        let res = http()
            .post(hub.http("/api/rooms/hotspots/events"))
            .header("Idempotency-Key", format!("flood-{n}"))
            .json(&json!({"type": "hotspot_detected", "data": {"n": n}}))
            .send()
            .await
            .expect("publish");
        assert_eq!(res.status().as_u16(), 200);
    }
    let (_, again) = publish_keyed(&hub, "mine", json!({"n": 1})).await;
    assert_eq!(
        (again["seq"].as_u64(), again["duplicate"].as_bool()),
        (first["seq"].as_u64(), Some(true)),
        "{again}"
    );
    // The flooding room kept only its newest 10 keys: its oldest retry is new.
    let res = http()
        .post(hub.http("/api/rooms/hotspots/events"))
        .header("Idempotency-Key", "flood-0")
        .json(&json!({"type": "hotspot_detected", "data": {"n": 0}}))
        .send()
        .await
        .expect("publish");
    let v: Value = res.json().await.expect("json");
    assert_eq!(
        (v["seq"].as_u64(), v.get("duplicate")),
        (Some(51), None),
        "{v}"
    );
}
