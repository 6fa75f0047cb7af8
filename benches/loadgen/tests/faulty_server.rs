//! Proves the harness's delivery accounting exact against a deliberately
//! faulty hub.
//!
//! The server below speaks just enough of the contract for `fanout`: `welcome`
//! and `subscribed` on `/ws/{room}` and on `/sse?rooms={room}` (an event
//! stream, chunked and split like the hub's: `id:`/`data: ` prefix, frame and
//! blank line in separate chunks, with `:` keep-alives in between), `POST /api/rooms/{room}/events` answering
//! the seq it assigned, and `GET /socket-status`. Its fan-out breaks the
//! contract in a known pattern, per subscriber, for seq `n`:
//!
//! | rule | effect per subscriber |
//! |---|---|
//! | `n % 10 == 3` | never sent: lost |
//! | `n % 10 == 5` | sent twice: one duplicate |
//! | `n % 10 == 7` | held back and sent right after `n + 1`: one out-of-order |
//! | subscriber 0, `n == 1` | never sent: one more lost |
//! | subscriber 1, after the last seq | a seq nobody published: one unexpected |
//!
//! With 20 publishes (seqs 1–20) and 5 subscribers that is exactly
//! 2 × 5 + 1 = 11 lost, 2 × 5 = 10 duplicates, 2 × 5 = 10 out of order and
//! 1 unexpected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hub_bench::endpoint::Endpoint;
use hub_bench::scenario::fanout::{self, FanoutParams};
use hub_bench::transport::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const SUBSCRIBERS: usize = 5;
const EVENTS: u64 = 20;
const BOGUS_SEQ: u64 = 999;

/// One connected subscriber of the fake hub.
struct Subscriber {
    index: usize,
    tx: mpsc::UnboundedSender<String>,
    held: Option<String>,
}

/// The fake hub's state: the room's head and its subscribers.
#[derive(Default)]
struct Hub {
    faulty: bool,
    seq: u64,
    next_index: usize,
    subscribers: Vec<Subscriber>,
}

type Shared = Arc<Mutex<Hub>>;

fn lock(hub: &Shared) -> std::sync::MutexGuard<'_, Hub> {
    hub.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the fake hub on a free loopback port; returns its URL.
async fn start_server(faulty: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hub: Shared = Arc::new(Mutex::new(Hub {
        faulty,
        ..Hub::default()
    }));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(stream, hub.clone()));
        }
    });
    format!("http://{addr}")
}

/// A parsed HTTP request head.
struct Head {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

/// Reads one request head; `None` at end of stream. `buf` keeps what follows it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Head> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let mut lines = text.split("\r\n");
            let mut first = lines.next()?.split(' ');
            let method = first.next()?.to_owned();
            let path = first.next()?.to_owned();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            return Some(Head {
                method,
                path,
                headers,
            });
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve_connection(mut stream: TcpStream, hub: Shared) {
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut stream, &mut buf).await {
        if let Some(room) = head.path.strip_prefix("/sse?rooms=") {
            serve_stream(stream, room.to_owned(), hub).await;
            return;
        }
        if let (Some(room), Some(key)) = (
            head.path.strip_prefix("/ws/"),
            head.headers.get("sec-websocket-key"),
        ) {
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            let ws = WebSocketStream::from_partially_read(stream, buf, Role::Server, None).await;
            serve_socket(ws, room.to_owned(), hub).await;
            return;
        }
        let length: usize = head
            .headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let (status, answer) = route(&head, &body, &hub);
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn route(head: &Head, body: &[u8], hub: &Shared) -> (&'static str, String) {
    let publish_room = head
        .path
        .strip_prefix("/api/rooms/")
        .and_then(|rest| rest.strip_suffix("/events"));
    match (head.method.as_str(), publish_room) {
        ("POST", Some(room)) => {
            let Ok(event) = serde_json::from_slice::<serde_json::Value>(body) else {
                return ("400 Bad Request", r#"{"error":"bad_request"}"#.to_owned());
            };
            let seq = publish(hub, room, &event["data"]);
            (
                "200 OK",
                format!(
                    r#"{{"room":"{room}","epoch":"e1","seq":{seq},"delivered":{SUBSCRIBERS}}}"#
                ),
            )
        }
        ("GET", None) if head.path == "/socket-status" => {
            let total = lock(hub).subscribers.len();
            (
                "200 OK",
                format!(r#"{{"active":true,"total_sockets":{total}}}"#),
            )
        }
        _ => ("404 Not Found", r#"{"error":"not_found"}"#.to_owned()),
    }
}

/// Assigns the next seq and fans the event out, faultily if so configured.
fn publish(hub: &Shared, room: &str, data: &serde_json::Value) -> u64 {
    let mut hub = lock(hub);
    hub.seq += 1;
    let seq = hub.seq;
    let frame = |seq: u64| {
        format!(
            r#"{{"type":"bench","room":"{room}","seq":{seq},"ts":"2026-01-01T00:00:00.000Z","data":{data}}}"#
        )
    };
    let faulty = hub.faulty;
    for sub in &mut hub.subscribers {
        let send = |text: String| {
            let _ = sub.tx.send(text);
        };
        if !faulty {
            send(frame(seq));
            continue;
        }
        match seq % 10 {
            _ if sub.index == 0 && seq == 1 => {}
            3 => {}
            5 => {
                send(frame(seq));
                send(frame(seq));
            }
            7 => sub.held = Some(frame(seq)),
            8 => {
                send(frame(seq));
                if let Some(held) = sub.held.take() {
                    send(held);
                }
            }
            _ => send(frame(seq)),
        }
        if sub.index == 1 && seq == EVENTS {
            send(frame(BOGUS_SEQ));
        }
    }
    seq
}

/// Registers a subscriber of `room`, queueing its `welcome` and `subscribed`.
fn register(hub: &Shared, room: &str) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    {
        let mut hub = lock(hub);
        let index = hub.next_index;
        hub.next_index += 1;
        let head = hub.seq;
        let _ = tx.send(
            r#"{"type":"welcome","session":"s","node":"faulty","protocol":1,"heartbeat_ms":15000}"#
                .to_owned(),
        );
        let _ = tx.send(format!(
            r#"{{"type":"subscribed","room":"{room}","epoch":"e1","seq":{head},"recovered":false}}"#
        ));
        hub.subscribers.push(Subscriber {
            index,
            tx,
            held: None,
        });
    }
    rx
}

/// One SSE stream: every frame as `[id: N\n]data: ` + frame + `\n\n`, each
/// part its own chunk, a `:` keep-alive after every third message.
async fn serve_stream(mut stream: TcpStream, room: String, hub: Shared) {
    let mut rx = register(&hub, &room);
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\
                content-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";
    let chunk = |part: &str| format!("{:X}\r\n{part}\r\n", part.len());
    if stream
        .write_all(format!("{head}{}", chunk("retry: 2000\n\n")).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut sent = 0u64;
    while let Some(frame) = rx.recv().await {
        let seq = serde_json::from_str::<serde_json::Value>(&frame)
            .ok()
            .and_then(|v| v["seq"].as_u64());
        let prefix = match seq {
            Some(seq) if !frame.contains(r#""type":"subscribed""#) => {
                format!("id: v1;{room}/e1/{seq}\ndata: ")
            }
            _ => "data: ".to_owned(),
        };
        sent += 1;
        let mut out = chunk(&prefix) + &chunk(&frame) + &chunk("\n\n");
        if sent.is_multiple_of(3) {
            out.push_str(&chunk(":\n\n"));
        }
        if stream.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn serve_socket(mut ws: WebSocketStream<TcpStream>, room: String, hub: Shared) {
    let mut rx = register(&hub, &room);
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(text) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn params() -> FanoutParams {
    let mut p = FanoutParams::new("bench", SUBSCRIBERS, Some(200.0), 0.1);
    p.publishers = 4;
    p.drain_idle_ms = 300;
    p.drain_max_ms = 5_000;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_server_counts_are_exact() {
    let url = start_server(true).await;
    let endpoint = Endpoint::new(&url, None).expect("endpoint");
    let r = fanout::run(&endpoint, &params()).await.expect("fanout run");

    let subs = SUBSCRIBERS as u64;
    assert_eq!(r.subscribers_connected, SUBSCRIBERS);
    assert_eq!(r.published, EVENTS);
    assert_eq!(r.publish_errors, 0);
    assert_eq!(r.counts.expected, subs * EVENTS);
    assert_eq!(r.counts.lost, 2 * subs + 1, "{r:?}");
    assert_eq!(r.counts.duplicates, 2 * subs, "{r:?}");
    assert_eq!(r.counts.out_of_order, 2 * subs, "{r:?}");
    assert_eq!(r.counts.unexpected, 1, "{r:?}");
    assert_eq!(r.counts.delivered, subs * EVENTS - (2 * subs + 1));
    // One latency sample per first arrival of a seq, the unexpected one included.
    assert_eq!(r.latency.count, r.counts.delivered + r.counts.unexpected);
    assert!(r.closed_early.is_empty(), "{:?}", r.closed_early);
}

/// The same faulty fan-out read over SSE: the stream reader hands every
/// event's data to the same accounting, so the counts are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_server_counts_are_exact_over_sse() {
    let url = start_server(true).await;
    let endpoint = Endpoint::new(&url, None).expect("endpoint");
    let mut p = params();
    p.transport = Transport::Sse;
    let r = fanout::run(&endpoint, &p).await.expect("fanout run");

    let subs = SUBSCRIBERS as u64;
    assert_eq!(r.subscribers_connected, SUBSCRIBERS, "{r:?}");
    assert_eq!(r.published, EVENTS);
    assert_eq!(r.counts.expected, subs * EVENTS);
    assert_eq!(r.counts.lost, 2 * subs + 1, "{r:?}");
    assert_eq!(r.counts.duplicates, 2 * subs, "{r:?}");
    assert_eq!(r.counts.out_of_order, 2 * subs, "{r:?}");
    assert_eq!(r.counts.unexpected, 1, "{r:?}");
    assert_eq!(r.latency.count, r.counts.delivered + r.counts.unexpected);
    assert_eq!(r.bad_frames, 0);
    assert!(r.closed_early.is_empty(), "{:?}", r.closed_early);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_server_counts_nothing_wrong() {
    let url = start_server(false).await;
    let endpoint = Endpoint::new(&url, None).expect("endpoint");
    let r = fanout::run(&endpoint, &params()).await.expect("fanout run");

    assert_eq!(r.counts.expected, SUBSCRIBERS as u64 * EVENTS);
    assert_eq!(r.counts.delivered, r.counts.expected);
    assert_eq!(
        (
            r.counts.lost,
            r.counts.duplicates,
            r.counts.out_of_order,
            r.counts.unexpected
        ),
        (0, 0, 0, 0)
    );
}

/// The multi-node fan-out (as `cluster` runs it) against two "nodes" that are
/// the same server: subscribers and publishes are split between them, every
/// event names its node, and the counts are as exact as with one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_split_the_load_and_count_exactly() {
    for faulty in [false, true] {
        let url = start_server(faulty).await;
        let node = Endpoint::new(&url, None).expect("endpoint");
        let r = fanout::run_multi(&[node.clone(), node], None, &params())
            .await
            .expect("fanout run");

        let subs = SUBSCRIBERS as u64;
        assert_eq!(r.subscribers_per_node, Some(vec![3, 2]));
        assert_eq!(r.published_per_node, Some(vec![EVENTS / 2, EVENTS / 2]));
        assert_eq!(r.counts.expected, subs * EVENTS);
        let (same, cross) = (
            r.latency_same_node.expect("same-node latency"),
            r.latency_cross_node.expect("cross-node latency"),
        );
        assert_eq!(same.count + cross.count, r.latency.count, "{r:?}");
        assert!(same.count > 0 && cross.count > 0, "{r:?}");
        if faulty {
            assert_eq!(r.counts.lost, 2 * subs + 1, "{r:?}");
            assert_eq!(r.counts.duplicates, 2 * subs, "{r:?}");
            assert_eq!(r.counts.out_of_order, 2 * subs, "{r:?}");
            // The invented seq carries the data of a real event, so it has an origin too.
            assert_eq!(r.counts.unexpected, 1, "{r:?}");
        } else {
            assert_eq!(r.latency.count, subs * EVENTS);
            assert_eq!(
                (
                    r.counts.lost,
                    r.counts.duplicates,
                    r.counts.out_of_order,
                    r.counts.unexpected
                ),
                (0, 0, 0, 0)
            );
        }
    }
}

/// The same faulty run through the command line: one JSON line with the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_prints_the_exact_counts() {
    let url = start_server(true).await;
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hub-bench"))
            .args([
                "fanout",
                "--url",
                &url,
                "--subs",
                "5",
                "--rate",
                "200",
                "--duration-s",
                "0.1",
            ])
            .output(),
    )
    .await
    .expect("hub-bench finished in time")
    .expect("hub-bench ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    let report: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON line");
    assert_eq!(report["scenario"], "fanout");
    assert_eq!(report["results"]["lost"], 11);
    assert_eq!(report["results"]["duplicates"], 10);
    assert_eq!(report["results"]["out_of_order"], 10);
    assert_eq!(report["results"]["unexpected"], 1);
    assert_eq!(report["target_met"], false);
}
