//! The `$status` system room: the current status right after `subscribed`, then
//! `status_update` only when a count changes, at most once a second.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn status_room_pushes_the_current_status_then_changes() {
    let hub = start(|_| {});
    let (mut dash, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let sub = dash.subscribe("$status").await;
    assert_eq!(sub["room"], "$status");
    let first = dash.recv().await;
    assert_eq!(first["type"], "status_update");
    assert_eq!(first["room"], "$status");
    assert!(
        first.get("seq").is_none(),
        "status updates have no seq: {first}"
    );
    let data = &first["data"];
    assert_eq!(data["total_sockets"], 1);
    assert_eq!(data["rooms"]["$status"], 1);
    for key in [
        "active",
        "sockets_by_type",
        "timestamp",
        "ws_endpoints",
        "node",
        "uptime_s",
    ] {
        assert!(data.get(key).is_some(), "status_update data lacks {key}");
    }

    let (_other, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    let update = dash
        .recv_within(Duration::from_secs(3))
        .await
        .expect("an update on connect");
    assert_eq!(update["type"], "status_update");
    assert_eq!(update["data"]["total_sockets"], 2);
    assert_eq!(update["data"]["rooms"]["alerts"], 1);
}

#[tokio::test]
async fn status_updates_are_coalesced_and_quiet_without_change() {
    let hub = start(|_| {});
    let (mut dash, _) = Client::connect_welcomed(&hub.ws("/ws/$status")).await;
    assert_eq!(dash.recv().await["type"], "subscribed");
    assert_eq!(dash.recv().await["type"], "status_update");

    // 20 connects over ~2 s: at most one update per second may come of them.
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(Client::connect_welcomed(&hub.ws("/ws")).await.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Updates until the one with the final counts (bounded: WAIT per update,
    // so a slow machine delays it but cannot make it look missing).
    let mut updates = Vec::new();
    loop {
        let u = dash
            .recv_within(WAIT)
            .await
            .expect("an update with the final counts");
        let done = u["data"]["total_sockets"] == 21;
        updates.push(u);
        if done {
            break;
        }
    }
    let window = started.elapsed().as_secs_f64();
    assert!(
        (updates.len() as f64) <= window.ceil() + 1.0,
        "{} updates in {window:.1} s: not coalesced",
        updates.len()
    );
    // Nothing changes any more: nothing more arrives.
    let extra = dash.recv_within(Duration::from_millis(1500)).await;
    assert!(extra.is_none(), "an update without a change: {extra:?}");
}

/// A dashboard that joins between two broadcasts must still get the next change
/// of its own view, even when the counts return to what was last broadcast.
#[tokio::test]
async fn a_late_subscriber_is_updated_when_its_view_changes() {
    let hub = start(|_| {});
    let (mut a, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    a.subscribe("$status").await;
    a.recv().await; // current status
    a.subscribe("alerts").await;
    let (seen, _) = a.recv_until(|v| v["data"]["rooms"]["alerts"] == 1).await;
    assert_eq!(seen["type"], "status_update");
    drop(a);
    wait_status(&hub, |s| s["total_sockets"] == 0).await;

    let (mut b, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    b.subscribe("$status").await;
    let first = b.recv().await;
    assert_eq!(first["data"]["rooms"]["alerts"], 0);
    b.subscribe("alerts").await;
    let update = b
        .recv_within(Duration::from_secs(3))
        .await
        .expect("an update for b's own subscription");
    assert_eq!(update["data"]["rooms"]["alerts"], 1, "{update}");
    // ... and then nothing more: the counts do not change again.
    assert!(b.recv_within(Duration::from_millis(1500)).await.is_none());
}
