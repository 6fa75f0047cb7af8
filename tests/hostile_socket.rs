//! Hostile sockets over real TCP: frames and messages that declare or grow
//! past the limits, floods of frames that carry nothing, a frame trickled to
//! stay alive, and a stalled reader's kernel send buffer. Memory is measured
//! on a child hub process.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Bytes each attacking socket streams after its header.
const STREAMED: usize = 4 << 20;

/// RSS growth allowed across 20 attacks, one after another.
const MAX_GROWTH_KIB: u64 = 2048;

/// One attack on a fresh socket: `opening` frames, then `chunk` streamed up
/// to [`STREAMED`] bytes; how the hub ended the socket.
async fn attack(hub: &ChildHub, opening: &[u8], chunk: &[u8]) -> RawEnd {
    let mut raw = RawSocket::connect(&hub.addr, "/ws").await;
    assert!(raw.write(opening).await, "hub takes the opening frames");
    raw.flood(chunk, STREAMED).await.1
}

/// Runs `attack` once to warm the hub up (worker threads and allocator arenas
/// take their first-use memory), then 20 times, one socket after another;
/// returns the hub's largest RSS growth in KiB, checked after every socket.
async fn rss_growth_over_20(hub: &ChildHub, opening: &[u8], chunk: &[u8], code: u16) -> u64 {
    assert_eq!(attack(hub, opening, chunk).await, RawEnd::Close(code));
    let before = hub.rss_kib();
    let mut worst = 0;
    for _ in 0..20 {
        assert_eq!(attack(hub, opening, chunk).await, RawEnd::Close(code));
        worst = worst.max(hub.rss_kib().saturating_sub(before));
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_declaring_8_gib_is_closed_1009_from_its_header() {
    let hub = ChildHub::spawn(&[]);
    let header = frame_header(0x81, 1 << 33);
    let zeros = vec![0u8; 64 * 1024];
    let grown = rss_growth_over_20(&hub, &header, &zeros, 1009).await;
    eprintln!("8 GiB header + 4 MiB of zeros, 20 sockets in turn: RSS +{grown} KiB");
    assert!(
        grown < MAX_GROWTH_KIB,
        "RSS grew {grown} KiB over 20 sockets streaming {} MiB each",
        STREAMED >> 20
    );

    // 20 at once: each costs actix-http's connection buffers (its read buffer
    // fills to 128 KiB while the peer floods), not what it declared or sent.
    let before = hub.rss_kib();
    let attacks = (0..20).map(|_| attack(&hub, &header, &zeros));
    let ends = futures_util::future::join_all(attacks).await;
    assert!(ends.iter().all(|e| *e == RawEnd::Close(1009)), "{ends:?}");
    let grown = hub.rss_kib().saturating_sub(before);
    eprintln!("the same, 20 sockets at once: RSS +{grown} KiB");
    assert!(
        grown < 20 * 512,
        "RSS grew {grown} KiB for 20 concurrent sockets ({} MiB streamed)",
        (20 * STREAMED) >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_message_that_never_ends_is_closed() {
    let hub = ChildHub::spawn(&[]);
    // Bytes: continuations of 60,000 bytes after a first fragment; the second
    // continuation would pass max_frame_bytes (65,536) and is refused from
    // its header.
    let first = client_frame(0x01, &[b'x'; 1000]);
    let continuation = client_frame(0x00, &[b'y'; 60_000]);
    let grown = rss_growth_over_20(&hub, &first, &continuation, 1009).await;
    eprintln!("endless 60 kB continuations, 20 sockets in turn: RSS +{grown} KiB");
    assert!(grown < MAX_GROWTH_KIB, "RSS grew {grown} KiB");

    // Count: empty continuations cost no bytes; the 65th frame of one message
    // passes max_fragments (64).
    let first = client_frame(0x01, b"");
    let empties: Vec<u8> = (0..4096).flat_map(|_| client_frame(0x00, b"")).collect();
    let grown = rss_growth_over_20(&hub, &first, &empties, 1008).await;
    eprintln!("endless empty continuations, 20 sockets in turn: RSS +{grown} KiB");
    assert!(grown < MAX_GROWTH_KIB, "RSS grew {grown} KiB");
}

#[tokio::test]
async fn floods_of_empty_frames_and_pings_are_closed_1008() {
    let hub = start(|_| {});
    let addr = hub.addr.to_string();

    // Whole messages of 64 empty fragments each stay under max_fragments,
    // but every message takes a rate-limit token.
    let mut message = client_frame(0x01, b"");
    (0..62).for_each(|_| message.extend(client_frame(0x00, b"")));
    message.extend(client_frame(0x80, b""));
    let mut raw = RawSocket::connect(&addr, "/ws").await;
    let (_, end) = raw.flood(&message, message.len() * 2000).await;
    assert_eq!(end, RawEnd::Close(1008), "fragmented-message flood");

    // Pings: each takes a token; past the bucket they get no pong, and
    // rate_burst refusals close the socket.
    let pings: Vec<u8> = (0..10_000).flat_map(|_| client_frame(0x89, b"")).collect();
    let mut raw = RawSocket::connect(&addr, "/ws").await;
    assert!(raw.write(&pings).await);
    let (end, before) = raw.end().await;
    assert_eq!(end, RawEnd::Close(1008), "ping flood");
    let pongs = before.iter().filter(|op| **op == 0x0a).count();
    assert!(
        pongs < 300,
        "{pongs} pongs for 10,000 pings; rate_burst is 200"
    );

    // The hub is unharmed.
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    c.send(json!({"op": "ping", "ref": 1})).await;
    assert_eq!(c.recv().await["type"], "pong");
}

#[tokio::test]
async fn a_frame_in_progress_does_not_keep_a_silent_socket_alive() {
    let hub = start(|c| {
        c.websocket.heartbeat_interval_s = 1;
        c.websocket.client_timeout_s = 2;
    });
    // From before the upgrade: the hub counts silence from the socket's
    // start, so timing from after it made a loaded machine fail this at 1.998 s.
    let started = Instant::now();
    let mut raw = RawSocket::connect(&hub.addr.to_string(), "/ws").await;
    // A 60,000-byte frame, one byte every 50 ms: bytes keep coming, no frame
    // ever completes (it would take 50 minutes).
    assert!(raw.write(&frame_header(0x81, 60_000)).await);
    let (_, end) = raw.trickle(b"x", 59_999, Duration::from_millis(50)).await;
    let elapsed = started.elapsed();
    assert_eq!(end, RawEnd::Close(1000));
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(4500),
        "closed after {elapsed:?}; client_timeout is 2 s, heartbeat 1 s"
    );
}

/// Bytes of event frames a stalled client could read, once it reads again,
/// after the hub closed it as a slow consumer; and the close code it found.
async fn pinned_by_a_stalled_reader(send_buffer: usize) -> (usize, u16) {
    let hub = start(|c| {
        c.websocket.outbound_queue = 16;
        c.websocket.write_timeout_s = 5;
        c.websocket.socket_send_buffer = send_buffer;
    });
    let mut stalled = Client::connect_stalled(hub.addr, &hub.ws("/ws/alerts"), 4096).await;
    wait_status(&hub, |s| s["rooms"]["alerts"] == 1).await;
    let payload = "x".repeat(16 * 1024);
    let mut dropped = false;
    for _ in 0..2000 {
        let ack = publish(&hub, "alerts", "alert_raised", json!(payload)).await;
        if ack["delivered"] == 0 {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the stalled session was never dropped");
    let (mut bytes, mut code) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, stalled.ws.next()).await {
        match msg {
            Message::Text(t) => bytes += t.len(),
            Message::Close(frame) => {
                code = frame.map_or(1005, |f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    (bytes, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_socket_send_buffer_bounds_what_a_stalled_reader_pins() {
    let (default_bytes, default_code) = pinned_by_a_stalled_reader(0).await;
    let (small_bytes, small_code) = pinned_by_a_stalled_reader(8192).await;
    eprintln!(
        "bytes a stalled reader could still read: OS default send buffer {default_bytes}, \
         socket_send_buffer = 8192: {small_bytes}"
    );
    assert_eq!((default_code, small_code), (4008, 4008));
    assert!(
        small_bytes * 3 < default_bytes,
        "a small send buffer should pin far less: {small_bytes} vs {default_bytes}"
    );
}
