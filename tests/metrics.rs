//! `/metrics` (contract section 6, issue "Operations"): the exposition parses as
//! Prometheus text, and its counters and gauges move as a client connects,
//! publishes, misbehaves and leaves.

mod common;

use common::*;
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::json;

async fn scrape(hub: &realtime_hub::SpawnedHub) -> Scrape {
    let r = http()
        .get(hub.http("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status().as_u16(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/plain"), "content type {ct}");
    let body = r.text().await.expect("body");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text")
}

/// The value of `name` with every label in `labels`, 0 when absent.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|m| m.metric == name)
        .filter(|m| labels.iter().all(|(k, v)| m.labels.get(k) == Some(*v)))
        .map(|m| match &m.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            Sample::Summary(_) => f64::NAN,
        })
        .sum()
}

// The recorder is process-wide (as in the hub binary: one hub per process), so
// the checks run one after another in a single test rather than as parallel
// tests whose hubs would move the same gauges.
#[tokio::test]
async fn metrics_move_with_traffic_and_dynamic_rooms_share_a_label() {
    connections_publishes_errors_and_disconnects().await;
    dynamic_rooms_share_one_label().await;
}

async fn connections_publishes_errors_and_disconnects() {
    let hub = start(|_| {});
    let before = scrape(&hub).await;
    assert_eq!(value(&before, "hub_rooms", &[]), 3.0);
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "hub_registry_mailbox_depth",
    ] {
        assert!(
            before.samples.iter().any(|m| m.metric == name),
            "{name} is exported"
        );
    }
    assert!(value(&before, "process_resident_memory_bytes", &[]) > 0.0);
    let published0 = value(&before, "hub_events_published_total", &[("room", "alerts")]);
    let delivered0 = value(&before, "hub_deliveries_total", &[("room", "alerts")]);
    let normal0 = value(&before, "hub_disconnects_total", &[("reason", "normal")]);
    let admin0 = value(&before, "hub_disconnects_total", &[("reason", "admin")]);
    let bad0 = value(
        &before,
        "hub_error_frames_total",
        &[("code", "bad_request")],
    );
    let enqueued0 = value(&before, "hub_publish_enqueue_seconds", &[]);

    let (mut a, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    a.recv().await;
    let (mut b, wb) = Client::connect_welcomed(&hub.ws("/ws")).await;
    wait_status(&hub, |s| s["total_sockets"] == 2).await;
    let s = scrape(&hub).await;
    assert_eq!(value(&s, "hub_connections", &[("type", "alerts")]), 1.0);
    assert_eq!(value(&s, "hub_connections", &[("type", "connect")]), 1.0);
    assert_eq!(
        value(&s, "hub_room_subscribers", &[("room", "alerts")]),
        1.0
    );

    publish(&hub, "alerts", "alert_raised", json!(1)).await;
    publish(&hub, "alerts", "alert_raised", json!(2)).await;
    a.recv().await;
    a.recv().await;
    b.send_raw(tokio_tungstenite::tungstenite::Message::text("{nope"))
        .await;
    assert_eq!(b.recv().await["code"], "bad_request");

    let s = scrape(&hub).await;
    assert_eq!(
        value(&s, "hub_events_published_total", &[("room", "alerts")]) - published0,
        2.0
    );
    assert_eq!(
        value(&s, "hub_deliveries_total", &[("room", "alerts")]) - delivered0,
        2.0
    );
    assert_eq!(
        value(&s, "hub_error_frames_total", &[("code", "bad_request")]) - bad0,
        1.0
    );
    assert!(
        value(&s, "hub_publish_enqueue_seconds", &[]) >= enqueued0 + 2.0,
        "histogram counted both publishes"
    );

    a.close().await;
    let id = wb["session"].as_str().expect("id").to_string();
    let (status, _) = post(
        &hub.http(&format!("/api/sockets/{id}/disconnect")),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    b.expect_close(4009).await;
    wait_status(&hub, |s| s["total_sockets"] == 0).await;
    let after = scrape(&hub).await;
    assert_eq!(value(&after, "hub_connections", &[("type", "alerts")]), 0.0);
    assert_eq!(
        value(&after, "hub_connections", &[("type", "connect")]),
        0.0
    );
    assert_eq!(
        value(&after, "hub_room_subscribers", &[("room", "alerts")]),
        0.0
    );
    assert_eq!(
        value(&after, "hub_disconnects_total", &[("reason", "normal")]) - normal0,
        1.0
    );
    assert_eq!(
        value(&after, "hub_disconnects_total", &[("reason", "admin")]) - admin0,
        1.0
    );
}

async fn dynamic_rooms_share_one_label() {
    let hub = start(|c| c.rooms.allow_dynamic = true);
    for room in ["dyn-a", "dyn-b", "dyn-c"] {
        publish(&hub, room, "t", json!(null)).await;
    }
    let s = scrape(&hub).await;
    assert!(value(&s, "hub_events_published_total", &[("room", "_dynamic")]) >= 3.0);
    assert!(
        !s.samples
            .iter()
            .any(|m| m.labels.get("room") == Some("dyn-a")),
        "no per-name series for dynamic rooms"
    );
}
