//! The HTTP API (contract section 6): status, publish single and batch, rooms,
//! history, admin, health, API keys, and errors for bad input.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn socket_status_has_the_contract_shape() {
    let hub = start(|_| {});
    let (_a, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    let (mut b, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    b.subscribe("hotspots").await;
    b.subscribe("alerts").await;
    let s = wait_status(&hub, |s| {
        s["total_sockets"] == 2 && s["rooms"]["alerts"] == 2
    })
    .await;
    assert_eq!(s["active"], true);
    assert_eq!(
        s["sockets_by_type"],
        json!({"connect": 1, "alerts": 1, "hotspots": 0, "recommendations": 0, "sse": 0})
    );
    assert_eq!(s["rooms"]["hotspots"], 1);
    assert_eq!(s["rooms"]["recommendations"], 0);
    assert_eq!(
        s["ws_endpoints"],
        json!({"connect": "/ws", "alerts": "/ws/alerts", "hotspots": "/ws/hotspots", "recommendations": "/ws/recommendations", "sse": "/sse"})
    );
    assert!(s["node"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(s["uptime_s"].is_u64());
    let ts = s["timestamp"].as_str().expect("timestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    let (status, slash) = get(&hub.http("/socket-status/")).await;
    assert_eq!(status, 200);
    assert_eq!(slash["total_sockets"], 2);
}

#[tokio::test]
async fn socket_list_shows_each_session() {
    let hub = start(|_| {});
    let (mut c, w) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    c.recv().await;
    c.send(json!({"op": "ping"})).await;
    c.recv().await;
    let (status, list) = get(&hub.http("/socket-status/sockets")).await;
    assert_eq!(status, 200);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1);
    let s = &list[0];
    assert_eq!(s["id"], w["session"]);
    assert_eq!(s["type"], "alerts");
    assert_eq!(s["rooms"], json!(["alerts"]));
    assert_eq!(s["msgs_in"], 1);
    assert!(s["msgs_out"].as_u64().is_some_and(|n| n >= 2), "{s}");
    assert!(s["remote"]
        .as_str()
        .is_some_and(|r| r.starts_with("127.0.0.1:")));
    for key in ["user", "connected_at", "last_seen"] {
        assert!(s.get(key).is_some(), "missing {key}");
    }
    let (_, filtered) = get(&hub.http("/socket-status/sockets?type=connect")).await;
    assert_eq!(filtered, json!([]));
}

#[tokio::test]
async fn publish_answers_room_epoch_seq_delivered() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws/hotspots")).await;
    let sub = c.recv().await;
    let ack = publish(&hub, "hotspots", "hotspot_detected", json!({"zone": 4})).await;
    assert_eq!(
        ack,
        json!({"room": "hotspots", "epoch": sub["epoch"], "seq": 1, "delivered": 1})
    );
    // A room with no subscribers still records the event.
    let ack = publish(&hub, "alerts", "alert_raised", json!(null)).await;
    assert_eq!(
        (ack["seq"].as_u64(), ack["delivered"].as_u64()),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn batch_publish_keeps_order_and_reports_each_item() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    c.recv().await;
    let (status, results) = post(
        &hub.http("/api/events"),
        &json!([
            {"room": "alerts", "type": "a", "data": 1},
            {"room": "nope", "type": "a", "data": 2},
            {"room": "alerts", "type": "welcome", "data": 3},
            {"room": "alerts", "type": "b", "data": 4}
        ]),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    let r = results.as_array().expect("array");
    assert_eq!(r.len(), 4);
    assert_eq!(
        (r[0]["seq"].as_u64(), r[0]["room"].as_str()),
        (Some(1), Some("alerts"))
    );
    assert_eq!(r[1]["error"], "unknown_room");
    assert_eq!(r[2]["error"], "bad_request");
    assert_eq!(r[3]["seq"], 2);
    assert_eq!(c.recv().await["data"], 1);
    assert_eq!(c.recv().await["data"], 4);
}

#[tokio::test]
async fn rooms_and_history_endpoints() {
    let hub = start(|c| c.rooms.history = 5);
    for i in 0..8 {
        publish(&hub, "alerts", "alert_raised", json!(i)).await;
    }
    let (status, rooms) = get(&hub.http("/api/rooms")).await;
    assert_eq!(status, 200);
    let alerts = rooms
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["room"] == "alerts")
        .expect("alerts listed")
        .clone();
    assert_eq!(
        (alerts["seq"].as_u64(), alerts["history"].as_u64()),
        (Some(8), Some(5))
    );
    assert_eq!(alerts["subscribers"], 0);

    let (status, h) = get(&hub.http("/api/rooms/alerts/history")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (h["room"].as_str(), h["seq"].as_u64()),
        (Some("alerts"), Some(8))
    );
    assert_eq!(h["epoch"], alerts["epoch"]);
    let seqs: Vec<u64> = h["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [4, 5, 6, 7, 8]);
    assert_eq!(h["events"][0]["type"], "alert_raised");
    assert_eq!(h["events"][0]["data"], 3);

    let (_, h) = get(&hub.http("/api/rooms/alerts/history?since=5&limit=2")).await;
    let seqs: Vec<u64> = h["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [6, 7]);

    let (status, err) = get(&hub.http("/api/rooms/nope/history")).await;
    assert_eq!((status, err["error"].as_str()), (404, Some("unknown_room")));
    let (status, err) = get(&hub.http("/api/rooms/alerts/history?since=abc")).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")));
}

#[tokio::test]
async fn bad_publish_input_gets_contract_errors_and_the_server_stays_healthy() {
    let hub = start(|c| c.server.max_body_bytes = 1024);
    let url = hub.http("/api/rooms/alerts/events");
    let cases: Vec<(String, String, u16, &str)> = vec![
        (url.clone(), "{oops".into(), 400, "bad_request"),
        (url.clone(), r#"{"data":1}"#.into(), 400, "bad_request"),
        (url.clone(), r#"{"type":"x"}"#.into(), 400, "bad_request"),
        (
            url.clone(),
            r#"{"type":"","data":1}"#.into(),
            400,
            "bad_request",
        ),
        (
            url.clone(),
            r#"{"type":"subscribed","data":1}"#.into(),
            400,
            "bad_request",
        ),
        (
            url.clone(),
            r#"{"type":7,"data":1}"#.into(),
            400,
            "bad_request",
        ),
        (
            hub.http("/api/rooms/nope/events"),
            r#"{"type":"x","data":1}"#.into(),
            404,
            "unknown_room",
        ),
        (
            hub.http("/api/rooms/$status/events"),
            r#"{"type":"x","data":1}"#.into(),
            403,
            "forbidden",
        ),
        (
            url.clone(),
            format!(r#"{{"type":"x","data":"{}"}}"#, "y".repeat(2000)),
            413,
            "too_large",
        ),
        (
            hub.http("/api/events"),
            r#"{"not":"an array"}"#.into(),
            400,
            "bad_request",
        ),
        (
            hub.http("/api/users/u1/events"),
            r#"{"type":"x"}"#.into(),
            400,
            "bad_request",
        ),
    ];
    for (target, body, want_status, want_code) in cases {
        let (status, err) = post_raw(&target, body.clone()).await;
        assert_eq!(status, want_status, "{target} {body:.60}: {err}");
        assert_eq!(err["error"], want_code, "{target} {body:.60}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, _) = get(&hub.http("/healthz")).await;
    assert_eq!(status, 200);
    let ack = publish(&hub, "alerts", "ok", json!(1)).await;
    assert_eq!(ack["seq"], 1, "no failed publish consumed a seq");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let hub = start(|_| {});
    let (status, body) = get(&hub.http("/nothing-here")).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, body) = post(&hub.http("/socket-status"), &json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn ws_upgrade_refusals_are_json() {
    let hub = start(|_| {});
    let (status, body) = refused(&hub.ws("/ws/nope")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_room"))
    );
    let (status, body) = get(&hub.http("/ws")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "plain GET on /ws"
    );
}

#[tokio::test]
async fn admin_disconnect_closes_with_4009() {
    let hub = start(|_| {});
    let (mut c, w) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let id = w["session"].as_str().expect("id");
    let (status, _) = post(
        &hub.http(&format!("/api/sockets/{id}/disconnect")),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    c.expect_close(4009).await;
    let (status, body) = post(
        &hub.http(&format!("/api/sockets/{id}/disconnect")),
        &json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_session"))
    );
    let (status, _) = post(&hub.http("/api/sockets/garbage/disconnect"), &json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let hub = start(|_| {});
    let a = http().get(hub.http("/healthz")).send().await.expect("GET");
    let b = http().get(hub.http("/nothing")).send().await.expect("GET");
    let id = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (ia, ib) = (id(&a).expect("id on 200"), id(&b).expect("id on 404"));
    assert_ne!(ia, ib, "ids differ");
    let c = http()
        .get(hub.http("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        id(&c).as_deref(),
        Some("trace-abc-123"),
        "a caller's id is kept"
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let hub = start(|_| {});
    let (status, body) = get(&hub.http("/healthz")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _) = get(&hub.http("/readyz")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn api_keys_guard_the_write_and_admin_api() {
    let key = "test-key-0123456789";
    let hub = start(|c| c.auth.api_keys = vec![key.to_string()]);
    let url = hub.http("/api/rooms/alerts/events");
    let body = json!({"type": "x", "data": 1}).to_string();
    for auth in [None, Some("Bearer wrong-key-000000"), Some("Basic abc")] {
        let mut req = http()
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.expect("POST");
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"], "unauthorized");
    }
    let r = http()
        .post(&url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    let r = http()
        .get(hub.http("/socket-status/sockets"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401, "admin list needs the key");
    // Read endpoints stay public.
    let (status, _) = get(&hub.http("/socket-status")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn user_messages_reach_nobody_without_authenticated_users() {
    let hub = start(|_| {});
    let (_c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (status, body) = post(
        &hub.http("/api/users/alice/events"),
        &json!({"type": "note", "data": {}}),
    )
    .await;
    assert_eq!((status, body["delivered"].as_u64()), (200, Some(0)));
}

#[tokio::test]
async fn dynamic_rooms_are_created_on_use_and_bounded() {
    let hub = start(|c| {
        c.rooms.allow_dynamic = true;
        c.rooms.max_rooms = 4; // three declared + one dynamic
    });
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws/team-1")).await;
    assert_eq!(c.recv().await["type"], "subscribed");
    // The only dynamic slot is taken by a room with a subscriber: no eviction.
    let (status, err) = post(
        &hub.http("/api/rooms/team-2/events"),
        &json!({"type": "x", "data": 1}),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (503, Some("unavailable")),
        "{err}"
    );
    c.close().await;
    wait_status(&hub, |s| s["total_sockets"] == 0).await;
    // Now the idle room is evicted to make space.
    let ack = publish(&hub, "team-2", "x", json!(1)).await;
    assert_eq!(ack["seq"], 1);
    let (status, _) = refused(&hub.ws("/ws/Not_Valid")).await;
    assert_eq!(status, 404);
}
