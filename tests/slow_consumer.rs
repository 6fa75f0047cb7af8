//! Slow consumers (contract section 5): a session whose outbound queue passes
//! `outbound_queue` is closed with 4008 and leaves; everyone else is unaffected.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket client that upgrades over a socket with a tiny receive buffer and
/// then does not read, so the hub's writes back up quickly.
async fn stalled_client(hub: &realtime_hub::SpawnedHub, path: &str) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket.connect(hub.addr).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(
        hub.ws(path),
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await
    .expect("upgrade");
    Client { ws }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_is_closed_with_4008_and_others_get_everything() {
    let hub = start(|c| {
        c.websocket.outbound_queue = 16;
        c.websocket.write_timeout_s = 5;
    });
    let mut stalled = stalled_client(&hub, "/ws/alerts").await;
    let (mut healthy, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    healthy.recv().await; // subscribed
    wait_status(&hub, |s| s["rooms"]["alerts"] == 2).await;

    // 16 KiB events until the stalled session is dropped (bounded: 2,000 events).
    let payload = "x".repeat(16 * 1024);
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while let Some(v) = healthy.recv_within(Duration::from_secs(3)).await {
            seqs.push(v["seq"].as_u64().expect("seq"));
        }
        seqs
    });
    let mut published = 0u64;
    let mut dropped = false;
    while published < 2000 {
        let ack = publish(&hub, "alerts", "alert_raised", json!(payload)).await;
        published = ack["seq"].as_u64().expect("seq");
        if ack["delivered"] == 1 {
            dropped = true;
            break;
        }
    }
    assert!(
        dropped,
        "the stalled session was never dropped after {published} events"
    );
    wait_status(&hub, |s| {
        s["total_sockets"] == 1 && s["rooms"]["alerts"] == 1
    })
    .await;

    // The stalled client, reading at last, finds the 4008 close after what was buffered.
    let mut got_4008 = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, stalled.ws.next()).await {
        match msg {
            Ok(Message::Close(Some(f))) => {
                got_4008 = u16::from(f.code) == 4008;
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(got_4008, "stalled client did not receive close 4008");

    let seqs = reader.await.expect("reader");
    assert_eq!(
        seqs,
        (1..=published).collect::<Vec<_>>(),
        "healthy subscriber got every event in order"
    );
}
