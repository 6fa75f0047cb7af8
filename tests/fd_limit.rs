//! Behaviour at the fd limit (issue "Performance"): a hub started under a low
//! RLIMIT_NOFILE caps its sessions below it, refuses further upgrades with 503
//! `over_capacity`, keeps answering `/healthz` and `/socket-status`, and never
//! lets `accept()` fail.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_fd_limit_upgrades_get_503_and_status_keeps_answering() {
    let hub = ChildHub::spawn_with_nofile(&[("HUB_SERVER__WORKERS", "2")], Some(256));
    // 256 fds: sessions get 256 - 64 (reserve) - 32 (process) = 160.
    let mut clients = Vec::new();
    let refusal = loop {
        assert!(clients.len() <= 400, "never refused");
        match tokio_tungstenite::connect_async(hub.ws("/ws")).await {
            Ok((ws, _)) => clients.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => break resp,
            Err(e) => panic!(
                "refused without an HTTP answer after {}: {e}",
                clients.len()
            ),
        }
    };
    assert_eq!(refusal.status().as_u16(), 503);
    let body: serde_json::Value =
        serde_json::from_slice(refusal.body().as_deref().unwrap_or_default()).expect("json");
    assert_eq!(body["error"], "over_capacity");
    assert_eq!(clients.len(), 160, "sessions capped by the fd budget");

    for _ in 0..20 {
        let (status, _) = get(&hub.http("/healthz")).await;
        assert_eq!(status, 200, "/healthz at the limit");
        let (status, s) = get(&hub.http("/socket-status")).await;
        assert_eq!(status, 200, "/socket-status at the limit");
        assert_eq!(s["total_sockets"], 160);
    }
    // More refused upgrades in a burst still get answers, not accept failures.
    for _ in 0..50 {
        let (status, _) = refused(&hub.ws("/ws")).await;
        assert_eq!(status, 503);
    }

    clients.truncate(100);
    hub.wait_status(|s| s["total_sockets"] == 100).await;
    let (ws, _) = tokio_tungstenite::connect_async(hub.ws("/ws"))
        .await
        .expect("room again");
    drop(ws);

    let log = hub.log.lock().expect("log").join("\n");
    assert!(
        !log.to_lowercase().contains("too many open files"),
        "accept failed: {log:.3000}"
    );
    assert!(log.contains("capped at 160"), "the cap is logged");
}
