//! Graceful drain (contract section 8): in-process through the hub's handle, and
//! end to end with SIGTERM to the real binary.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test]
async fn drain_refuses_new_work_and_closes_sessions_with_1001() {
    let hub = start(|_| {});
    let (mut dash, _) = Client::connect_welcomed(&hub.ws("/ws/$status")).await;
    dash.recv().await; // subscribed
    dash.recv().await; // current status
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    c.recv().await; // subscribed
    publish(&hub, "alerts", "alert_raised", json!("before drain")).await;

    let told = hub.handle.begin_drain().await;
    assert_eq!(told, 2);
    // Queued events are delivered before the close.
    let frames = c.expect_close(1001).await;
    assert_eq!(seqs(&frames, "alerts"), [1]);
    let frames = dash.expect_close(1001).await;
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "status_update" && f["data"]["active"] == false),
        "dashboards learn active:false before the close: {frames:?}"
    );

    let (status, body) = get(&hub.http("/readyz")).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")));
    let (status, body) = refused(&hub.ws("/ws")).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")));
    let (_, s) = get(&hub.http("/socket-status")).await;
    assert_eq!(s["active"], false);
    let (status, _) = get(&hub.http("/healthz")).await;
    assert_eq!(status, 200, "the process is still healthy while draining");
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero_within_the_grace() {
    let mut child = ChildHub::spawn(&[("HUB_SERVER__SHUTDOWN_GRACE_S", "4")]);
    let base = format!("ws://{}", child.addr);
    let (mut a, _) = Client::connect_welcomed(&format!("{base}/ws/alerts")).await;
    a.recv().await;
    let (mut b, _) = Client::connect_welcomed(&format!("{base}/ws")).await;
    b.subscribe("hotspots").await;

    let started = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &child.proc.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    a.expect_close(1001).await;
    b.expect_close(1001).await;
    let status = loop {
        if let Some(status) = child.proc.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "hub did not exit within the grace"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(status.code(), Some(0), "graceful drain exits 0");
}

#[tokio::test]
async fn sigint_also_drains() {
    let mut child = ChildHub::spawn(&[]);
    let (mut a, _) = Client::connect_welcomed(&format!("ws://{}/ws", child.addr)).await;
    Command::new("kill")
        .args(["-INT", &child.proc.id().to_string()])
        .status()
        .expect("kill");
    a.expect_close(1001).await;
    let started = Instant::now();
    loop {
        if let Some(status) = child.proc.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(12), "no exit");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
