//! The Server-Sent Events transport (contract section 12), over real TCP with
//! the raw SSE client of `common::sse`: framing, the `id:` cursor and exact
//! resume across rooms, refusals, slow readers, drain, admin disconnect, token
//! expiry, and a reset-heavy chaos run.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::sse::{open_small_buffer, refused, stream, SseStream};
use common::*;
use realtime_hub::config::RoomDecl;
use serde_json::{json, Value};

const ROOMS3: &str = "/sse?rooms=alerts,hotspots,recommendations";

/// What a stream opens with: `welcome`, one `subscribed` per room by room,
/// and the other frames (replays) read on the way, in order.
struct Opened {
    welcome: Value,
    subscribed: BTreeMap<String, Value>,
    frames: Vec<Value>,
}

/// Reads `welcome` and frames until one `subscribed` per room came.
async fn opened(s: &mut SseStream, rooms: usize) -> Opened {
    let welcome = s.recv().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let mut subscribed = BTreeMap::new();
    let mut frames = Vec::new();
    while subscribed.len() < rooms {
        let f = s.recv().await;
        if f["type"] == "subscribed" {
            subscribed.insert(f["room"].as_str().expect("room").to_string(), f);
        } else {
            frames.push(f);
        }
    }
    Opened {
        welcome,
        subscribed,
        frames,
    }
}

/// [`opened`], for a stream with no replay to keep: (welcome, subscribed).
async fn welcomed(s: &mut SseStream, rooms: usize) -> (Value, BTreeMap<String, Value>) {
    let o = opened(s, rooms).await;
    (o.welcome, o.subscribed)
}

/// Publishes `n` events into each of `rooms` in one batch request per room.
async fn publish_many(hub: &realtime_hub::SpawnedHub, rooms: &[&str], n: usize) {
    for room in rooms {
        let batch: Vec<Value> = (0..n)
            .map(|i| json!({"room": room, "type": "tick", "data": {"i": i}}))
            .collect();
        let (status, body) = post(&hub.http("/api/events"), &json!(batch)).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// A query-string-safe form of a cursor.
fn escape(id: &str) -> String {
    id.replace('%', "%25")
        .replace(';', "%3B")
        .replace('/', "%2F")
}

#[tokio::test]
async fn frames_are_data_json_with_ids_on_events_and_keepalives() {
    let hub = start(|_| {});
    let mut s = stream(hub.addr, "/sse?rooms=alerts,$status", &[]).await;
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    assert_eq!(s.header("cache-control"), Some("no-cache"));
    assert_eq!(s.header("x-accel-buffering"), Some("no"));
    let first = s.message_within(WAIT).await.expect("retry first");
    let retry = first.retry.expect("the stream opens with retry:");
    assert!((2000..=2500).contains(&retry), "jittered retry {retry}");

    let (welcome, subscribed) = welcomed(&mut s, 2).await;
    assert_eq!(welcome["protocol"], 1);
    assert_eq!(subscribed["alerts"]["recovered"], false);
    let status = s.recv().await;
    assert_eq!(
        status["type"], "status_update",
        "$status sends its current state"
    );

    let ack = publish(&hub, "alerts", "alert_raised", json!({"level": 3})).await;
    let event = loop {
        let m = s.message_within(WAIT).await.expect("the event");
        let Some(data) = m.data else { continue };
        if data["type"] == "status_update" {
            assert!(m.id.is_none(), "$status has no seq, so no id");
            continue;
        }
        assert!(m.id.is_some(), "a room event carries an id: {data}");
        break data;
    };
    assert_eq!(event["room"], "alerts");
    assert_eq!(event["seq"], ack["seq"]);
    assert_eq!(event["data"], json!({"level": 3}));

    // A keep-alive comment on the heartbeat (1 s in tests).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = s.message_within(WAIT).await.expect("keep-alive");
        if m.data.is_none() && m.comments == [""] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no keep-alive");
    }

    let status = wait_status(&hub, |s| s["sockets_by_type"]["sse"] == 1).await;
    assert_eq!(status["ws_endpoints"]["sse"], "/sse");
    let (code, list) = get(&hub.http("/socket-status/sockets?type=sse")).await;
    assert_eq!(code, 200);
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], welcome["session"]);
}

#[tokio::test]
async fn last_event_id_resumes_every_room_exactly() {
    let hub = start(|_| {});
    let rooms = ["alerts", "hotspots", "recommendations"];
    let mut s = stream(hub.addr, ROOMS3, &[]).await;
    welcomed(&mut s, 3).await;
    publish_many(&hub, &rooms, 1).await;
    for _ in 0..3 {
        s.recv().await;
    }
    let id = s.last_id.clone().expect("an id after events");
    s.reset();

    publish_many(&hub, &rooms, 50).await;
    let mut s = stream(hub.addr, ROOMS3, &[("Last-Event-ID", &id)]).await;
    let Opened {
        subscribed,
        mut frames,
        ..
    } = opened(&mut s, 3).await;
    for room in rooms {
        assert_eq!(subscribed[room]["recovered"], true, "{room}");
        assert_eq!(subscribed[room]["seq"], 51);
    }
    while frames.len() < 150 {
        frames.push(s.recv().await);
    }
    for room in rooms {
        assert_eq!(seqs(&frames, room), (2..=51).collect::<Vec<_>>(), "{room}");
    }
    assert!(s
        .recv_within(Duration::from_millis(300))
        .await
        .is_none_or(|f| f.get("seq").is_none()));
    let id = s.last_id.clone().expect("id");
    s.reset();

    // The same cursor as a query parameter, nothing missed: nothing replayed.
    publish_many(&hub, &["hotspots"], 2).await;
    let path = format!("{ROOMS3}&last_event_id={}", escape(&id));
    let mut s = stream(hub.addr, &path, &[]).await;
    let Opened {
        subscribed,
        mut frames,
        ..
    } = opened(&mut s, 3).await;
    assert!(subscribed.values().all(|f| f["recovered"] == true));
    while frames.len() < 2 {
        frames.push(s.recv().await);
    }
    assert_eq!(seqs(&frames, "hotspots"), [52, 53]);
}

#[tokio::test]
async fn an_old_cursor_recovers_false_and_a_keyed_room_sends_its_state() {
    let hub = start(|c| {
        c.rooms.declare = vec![
            RoomDecl {
                history: Some(10),
                ..RoomDecl::named("alerts")
            },
            RoomDecl {
                history: Some(10),
                keyed: Some(true),
                ..RoomDecl::named("recommendations")
            },
        ];
    });
    let path = "/sse?rooms=alerts,recommendations";
    let mut s = stream(hub.addr, path, &[]).await;
    welcomed(&mut s, 2).await;
    publish(&hub, "alerts", "a", json!(1)).await;
    s.recv().await;
    let id = s.last_id.clone().expect("id");
    s.reset();
    for i in 0..30 {
        publish(&hub, "alerts", "a", json!(i)).await;
        let (status, body) = post(
            &hub.http("/api/rooms/recommendations/events"),
            &json!({"type": "rec", "key": format!("k{}", i % 3), "data": i}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut s = stream(hub.addr, path, &[("Last-Event-ID", &id)]).await;
    let Opened {
        subscribed,
        mut frames,
        ..
    } = opened(&mut s, 2).await;
    assert_eq!(subscribed["alerts"]["recovered"], false);
    assert_eq!(subscribed["recommendations"]["recovered"], false);
    assert_eq!(subscribed["recommendations"]["state"], 3);
    if !frames
        .iter()
        .any(|f| f["room"] == "recommendations" && f["seq"] == 30)
    {
        frames.extend(
            s.recv_until(WAIT, |f| f["room"] == "recommendations" && f["seq"] == 30)
                .await,
        );
    }
    let keys: Vec<&str> = frames
        .iter()
        .filter(|f| f["room"] == "recommendations")
        .filter_map(|f| f["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        ["k0", "k1", "k2"],
        "the state: the latest event per key"
    );

    // Resuming right after the state replays nothing: its id is at the head.
    let id = s.last_id.clone().expect("id");
    s.reset();
    let mut s = stream(hub.addr, path, &[("Last-Event-ID", &id)]).await;
    let (_, subscribed) = welcomed(&mut s, 2).await;
    assert_eq!(subscribed["recommendations"]["recovered"], true);
    assert_eq!(subscribed["alerts"]["recovered"], true);
    assert!(s.recv_within(Duration::from_millis(300)).await.is_none());
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

const SECRET: &str = "an-sse-test-secret-of-at-least-32-bytes";

fn token(claims: Value) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// A request to `/sse` that must be refused: path, headers, status, code.
type Refusal = (String, Vec<(&'static str, String)>, u16, &'static str);

#[tokio::test]
async fn refusals_are_json_before_the_stream() {
    let hub = start(|c| {
        c.auth.jwt_secret = SECRET.into();
        c.server.allowed_origins = vec!["https://dash.example".into()];
        c.websocket.max_connections = 1;
    });
    let a = hub.addr;
    let good = token(json!({"sub": "u", "exp": now() + 3600, "rooms": ["alerts"]}));
    let cases: Vec<Refusal> = vec![
        ("/sse".into(), vec![], 400, "bad_request"),
        ("/sse?rooms=alerts".into(), vec![], 401, "unauthorized"),
        (
            "/sse?rooms=alerts&token=garbage".into(),
            vec![],
            401,
            "unauthorized",
        ),
        (
            format!("/sse?rooms=alerts,hotspots&token={good}"),
            vec![],
            403,
            "forbidden",
        ),
        (
            "/sse?rooms=alerts".into(),
            vec![
                ("Authorization", format!("Bearer {good}")),
                ("Origin", "https://evil.example".into()),
            ],
            403,
            "forbidden_origin",
        ),
        (
            format!("/sse?rooms=nosuch&token={good}"),
            vec![],
            404,
            "unknown_room",
        ),
    ];
    for (path, headers, status, code) in &cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, body) = refused(a, path, &h).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (*status, Some(*code)),
            "{path}: {body}"
        );
    }
    // The token in Authorization is enough; then the one slot is taken.
    let auth = format!("Bearer {good}");
    let mut s = stream(a, "/sse?rooms=alerts", &[("Authorization", &auth)]).await;
    welcomed(&mut s, 1).await;
    let (got, body) = refused(a, &format!("/sse?rooms=alerts&token={good}"), &[]).await;
    assert_eq!((got, body["error"].as_str()), (503, Some("over_capacity")));
}

#[tokio::test]
async fn a_reader_that_stops_is_closed_and_resumes_losing_nothing() {
    let hub = start(|c| {
        c.rooms.history = 5000;
        c.rooms.history_bytes = 64 * 1024 * 1024;
        c.websocket.outbound_queue = 64;
        c.websocket.socket_send_buffer = 4096;
    });
    let mut s = open_small_buffer(hub.addr, "/sse?rooms=alerts", 4096).await;
    welcomed(&mut s, 1).await;
    wait_status(&hub, |s| s["sockets_by_type"]["sse"] == 1).await;
    publish(&hub, "alerts", "big", json!("first")).await;
    assert_eq!(s.recv().await["seq"], 1);
    // The reader stops; 2,000 events of 2 KiB keep coming.
    let pad = "x".repeat(2048);
    let mut published = 0;
    for _ in 0..20 {
        let batch: Vec<Value> = (0..100)
            .map(|_| json!({"room": "alerts", "type": "big", "data": pad}))
            .collect();
        let (status, _) = post(&hub.http("/api/events"), &json!(batch)).await;
        assert_eq!(status, 200);
        published += 100;
    }
    let published = published + 1;
    // The session is gone (queue bound, not the publisher, decided).
    wait_status(&hub, |s| s["sockets_by_type"]["sse"] == 0).await;
    let (_, metrics) = get(&hub.http("/metrics")).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hub_disconnects_total") && l.contains("slow_consumer")),
        "closed as a slow consumer"
    );
    // What reached the socket is read, then the stream ends.
    let got = s.until_end(Duration::from_secs(20)).await;
    let seen: Vec<u64> = got
        .iter()
        .filter_map(|m| m.data.as_ref())
        .filter(|f| f["type"] == "big")
        .map(|f| f["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seen.len() < published, "it was cut off");
    let last = seen.last().copied().unwrap_or(1);
    let id = s.last_id.clone().expect("some event got through");

    let mut s = stream(hub.addr, "/sse?rooms=alerts", &[("Last-Event-ID", &id)]).await;
    let (_, sub) = welcomed(&mut s, 1).await;
    assert_eq!(sub["alerts"]["recovered"], true);
    let frames = s
        .recv_until(Duration::from_secs(20), |f| f["seq"] == published as u64)
        .await;
    assert_eq!(
        seqs(&frames, "alerts"),
        (last + 1..=published as u64).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn drain_and_admin_disconnect_and_token_expiry_end_streams() {
    let hub = start(|c| c.auth.jwt_secret = SECRET.into());
    let long = token(json!({"sub": "u", "exp": now() + 3600}));
    let path = format!("/sse?rooms=alerts&token={long}");

    // Admin disconnect.
    let mut s = stream(hub.addr, &path, &[]).await;
    let (welcome, _) = welcomed(&mut s, 1).await;
    let id = welcome["session"].as_str().expect("session");
    let (status, _) = post(
        &hub.http(&format!("/api/sockets/{id}/disconnect")),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let end = s.until_end(WAIT).await;
    assert!(
        end.iter()
            .any(|m| m.comments.iter().any(|c| c.starts_with("closed 4009"))),
        "{end:?}"
    );

    // Token expiry.
    let short = token(json!({"sub": "u", "exp": now() + 2}));
    let mut s = stream(hub.addr, &format!("/sse?rooms=alerts&token={short}"), &[]).await;
    welcomed(&mut s, 1).await;
    let end = s.until_end(Duration::from_secs(6)).await;
    assert!(
        end.iter()
            .any(|m| m.comments.iter().any(|c| c.starts_with("closed 4001"))),
        "{end:?}"
    );

    // Drain: queued events first, then the end; new streams are refused.
    let mut s = stream(hub.addr, &path, &[]).await;
    welcomed(&mut s, 1).await;
    publish(&hub, "alerts", "a", json!("before drain")).await;
    hub.handle.begin_drain().await;
    let end = s.until_end(WAIT).await;
    let frames: Vec<Value> = end.iter().filter_map(|m| m.data.clone()).collect();
    assert_eq!(seqs(&frames, "alerts"), [1]);
    assert!(end
        .iter()
        .any(|m| m.comments.iter().any(|c| c.starts_with("closed 1001"))));
    let (status, body) = refused(hub.addr, &path, &[]).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")));
}

/// A small deterministic generator: the test needs spread, not quality.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_twenty_streams_reset_at_random_all_end_with_every_event() {
    const EVENTS: u64 = 5000;
    const CLIENTS: u64 = 20;
    let hub = start(|c| {
        c.rooms.history = 6000;
        c.rooms.history_bytes = 64 * 1024 * 1024;
    });
    let addr = hub.addr;
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let mut s = stream(addr, "/sse?rooms=alerts", &[]).await;
        welcomed(&mut s, 1).await;
        clients.push(tokio::spawn(async move {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((n + 1) * 7919));
            let mut got: Vec<u64> = Vec::new();
            let mut resets = 0;
            let mut last_id = String::new();
            let mut s = Some(s);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while got.last().copied() != Some(EVENTS) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "client {n}: {} events",
                    got.len()
                );
                let mut cur = match s.take() {
                    Some(cur) => cur,
                    None => {
                        // Resume from the last id held (none yet: from scratch).
                        let id = last_id.clone();
                        let headers: Vec<(&str, &str)> = if id.is_empty() {
                            vec![]
                        } else {
                            vec![("Last-Event-ID", id.as_str())]
                        };
                        let mut c = stream(addr, "/sse?rooms=alerts", &headers).await;
                        let (_, sub) = welcomed(&mut c, 1).await;
                        if !id.is_empty() {
                            assert_eq!(sub["alerts"]["recovered"], true, "client {n}");
                        }
                        c
                    }
                };
                let budget = 1 + rng.below(400);
                let mut taken = 0;
                while taken < budget && got.last().copied() != Some(EVENTS) {
                    let Some(f) = cur.recv_within(Duration::from_secs(30)).await else {
                        // The hub may end a stream itself (a reader behind the
                        // publisher is a slow consumer); it resumes the same way.
                        assert!(cur.ended(), "client {n}: stalled after {:?}", got.last());
                        break;
                    };
                    if let Some(seq) = f["seq"].as_u64() {
                        got.push(seq);
                        taken += 1;
                    }
                }
                last_id = cur.last_id.clone().unwrap_or_default();
                if got.last().copied() != Some(EVENTS) {
                    resets += 1;
                    cur.reset();
                }
            }
            (got, resets)
        }));
    }
    for _ in 0..(EVENTS / 100) {
        let batch: Vec<Value> = (0..100)
            .map(|i| json!({"room": "alerts", "type": "tick", "data": i}))
            .collect();
        let (status, body) = post(&hub.http("/api/events"), &json!(batch)).await;
        assert_eq!(status, 200, "{body}");
    }
    let mut total_resets = 0;
    for (n, c) in clients.into_iter().enumerate() {
        let (got, resets) = c.await.expect("client task");
        total_resets += resets;
        assert_eq!(
            got,
            (1..=EVENTS).collect::<Vec<_>>(),
            "client {n}: exactly 1..{EVENTS}"
        );
    }
    assert!(
        total_resets >= CLIENTS,
        "the streams were dropped ({total_resets})"
    );
}

#[tokio::test]
async fn a_stalled_stream_under_50_mib_keeps_the_hub_memory_bounded() {
    const QUEUE_BYTES: u64 = 4 * 1024 * 1024;
    const EVENTS: u64 = 3200; // x 16 KiB = 50 MiB
    let hub = ChildHub::spawn(&[
        ("HUB_WEBSOCKET__OUTBOUND_QUEUE", "256"),
        (
            "HUB_WEBSOCKET__OUTBOUND_QUEUE_BYTES",
            &QUEUE_BYTES.to_string(),
        ),
        ("HUB_WEBSOCKET__WRITE_TIMEOUT_S", "5"),
        ("HUB_ROOMS__HISTORY", "50"),
        ("HUB_SERVER__WORKERS", "2"),
    ]);
    let addr: std::net::SocketAddr = hub.addr.parse().expect("addr");
    let mut stalled = open_small_buffer(addr, "/sse?rooms=alerts", 4096).await;
    welcomed(&mut stalled, 1).await;
    hub.wait_status(|s| s["sockets_by_type"]["sse"] == 1).await;
    let client = http();
    let body = json!({"type": "big", "data": "y".repeat(16 * 1024)}).to_string();
    let url = hub.http("/api/rooms/alerts/events");
    // Warm the allocator and history before measuring.
    for _ in 0..50 {
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status(), 200);
    }
    let rss_before = hub.rss_kib();
    let mut peak = rss_before;
    for i in 0..EVENTS {
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status(), 200);
        if i % 50 == 0 {
            peak = peak.max(hub.rss_kib());
        }
    }
    peak = peak.max(hub.rss_kib());
    hub.wait_status(|s| s["sockets_by_type"]["sse"] == 0).await;
    let growth = peak.saturating_sub(rss_before) * 1024;
    assert!(
        growth < 2 * QUEUE_BYTES,
        "RSS grew {growth} bytes (bound: 2 x {QUEUE_BYTES}); before {rss_before} KiB, peak {peak} KiB"
    );
    eprintln!(
        "stalled SSE stream under 50 MiB: RSS +{} KiB",
        growth / 1024
    );
    drop(stalled);
}

/// Whether a process holds the hub side of the TCP connection between
/// `hub` and `client`: its line in /proc/net/tcp has a socket inode (an
/// orphaned socket, closed by the process but still sending, has 0).
fn hub_holds_connection(hub: std::net::SocketAddr, client: std::net::SocketAddr) -> bool {
    let port = |a: &str| {
        a.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.len() > 9
            && port(cols[1]) == Some(hub.port())
            && port(cols[2]) == Some(client.port())
            && cols[9] != "0"
    })
}

#[tokio::test]
async fn a_stalled_streams_connection_is_cut_once_its_session_ended() {
    // A reader that never reads again would otherwise hold its connection,
    // and what actix buffered for it, for as long as it stays connected.
    let hub = ChildHub::spawn(&[
        ("HUB_WEBSOCKET__OUTBOUND_QUEUE", "16"),
        ("HUB_WEBSOCKET__WRITE_TIMEOUT_S", "1"),
        ("HUB_WEBSOCKET__SOCKET_SEND_BUFFER", "4096"),
    ]);
    let addr: std::net::SocketAddr = hub.addr.parse().expect("addr");
    let mut stalled = open_small_buffer(addr, "/sse?rooms=alerts", 4096).await;
    welcomed(&mut stalled, 1).await;
    let local = stalled.tcp.local_addr().expect("local addr");
    assert!(hub_holds_connection(addr, local), "the stream is open");
    let body = json!({"type": "big", "data": "z".repeat(8 * 1024)}).to_string();
    let client = http();
    let url = hub.http("/api/rooms/alerts/events");
    for _ in 0..200 {
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status(), 200);
    }
    hub.wait_status(|s| s["sockets_by_type"]["sse"] == 0).await;
    let ended = Instant::now();
    // write_timeout (1 s) after the session ended, the hub lets go.
    let deadline = ended + Duration::from_secs(5);
    while hub_holds_connection(addr, local) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !hub_holds_connection(addr, local),
        "the hub still holds the stalled stream's connection {:?} after its session ended",
        ended.elapsed()
    );
    eprintln!(
        "stalled stream cut {:?} after its session ended",
        ended.elapsed()
    );
    drop(stalled);
}

#[tokio::test]
async fn a_reader_that_leaves_an_idle_stream_is_noticed_within_seconds() {
    // An SSE client only reads: with nothing to write but 15-second
    // keep-alives, its leaving used to be noticed at the second or third
    // failed write, 30-45 s later, holding its slot and its presence.
    let hub = ChildHub::spawn(&[("HUB_WEBSOCKET__HEARTBEAT_INTERVAL_S", "15")]);
    let addr: std::net::SocketAddr = hub.addr.parse().expect("addr");
    for _ in 0..3 {
        let mut s = stream(addr, "/sse?rooms=alerts", &[]).await;
        welcomed(&mut s, 1).await;
        hub.wait_status(|st| st["sockets_by_type"]["sse"] == 1)
            .await;
        let left = Instant::now();
        drop(s);
        hub.wait_status(|st| st["sockets_by_type"]["sse"] == 0)
            .await;
        let took = left.elapsed();
        eprintln!("a reader that left was noticed after {took:?}");
        assert!(took < Duration::from_secs(3), "noticed after {took:?}");
    }
}

#[tokio::test]
async fn openapi_documents_sse_as_an_event_stream() {
    let hub = start(|_| {});
    let (_, doc) = get(&hub.http("/openapi.json")).await;
    let op = &doc["paths"]["/sse"]["get"];
    assert!(
        op["responses"]["200"]["content"]["text/event-stream"].is_object(),
        "{op}"
    );
    for status in ["400", "401", "403", "404", "503"] {
        assert!(op["responses"][status].is_object(), "{status}: {op}");
    }
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in ["rooms", "last_event_id", "token", "Last-Event-ID"] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
}
