//! Connection churn leaks nothing: after 10,000 connect / subscribe / close
//! cycles the registry's session count, the room's subscriber count and the
//! hub's RSS are back where they started.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;

/// `n` cycles, `parallel` at a time: connect to `/ws/alerts` (subscribed on
/// connect), read `welcome` and `subscribed`, then leave — half with a close
/// frame, half by dropping the TCP connection.
async fn churn(hub: &ChildHub, n: u64, parallel: u64) {
    let next = Arc::new(AtomicU64::new(0));
    let url = hub.ws("/ws/alerts");
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (next, url) = (next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let (mut c, _) = Client::connect_welcomed(&url).await;
                assert_eq!(c.recv().await["type"], "subscribed");
                if i % 2 == 0 {
                    c.close().await;
                } else {
                    drop(c);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("churn task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_cycles_leave_no_sessions_subscribers_or_memory_behind() {
    let hub = ChildHub::spawn(&[("HUB_SERVER__WORKERS", "2")]);
    // Warm up allocator arenas and buffers, then take the baseline.
    churn(&hub, 1000, 16).await;
    let start = hub
        .wait_status(|s| s["total_sockets"] == 0 && s["rooms"]["alerts"] == 0)
        .await;
    let rss_start = hub.rss_kib();

    let t = std::time::Instant::now();
    churn(&hub, 10_000, 16).await;
    let elapsed = t.elapsed();

    let end = hub
        .wait_status(|s| s["total_sockets"] == 0 && s["rooms"]["alerts"] == 0)
        .await;
    assert_eq!(end["sockets_by_type"], start["sockets_by_type"]);
    assert_eq!(end["rooms"], start["rooms"]);
    let (_, sockets) = get(&hub.http("/socket-status/sockets")).await;
    assert_eq!(
        sockets,
        serde_json::json!([]),
        "no session left in the socket table"
    );
    let rss_end = hub.rss_kib();
    eprintln!(
        "10000 cycles in {:.1} s ({:.0}/s); RSS {rss_start} -> {rss_end} KiB",
        elapsed.as_secs_f64(),
        10_000.0 / elapsed.as_secs_f64()
    );
    assert!(
        rss_end <= rss_start + 1024,
        "RSS grew from {rss_start} KiB to {rss_end} KiB over 10,000 cycles"
    );
}
