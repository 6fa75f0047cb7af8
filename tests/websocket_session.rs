//! WebSocket sessions over real TCP: welcome, commands and their replies, error
//! frames for bad input (connection kept), close codes, heartbeats.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn welcome_comes_first_with_session_node_and_heartbeat() {
    let hub = start(|_| {});
    for path in ["/ws", "/ws/connect", "/ws/alerts"] {
        let (_c, w) = Client::connect_welcomed(&hub.ws(path)).await;
        assert!(w["session"].as_str().is_some_and(|s| !s.is_empty()), "{w}");
        assert!(w["node"].as_str().is_some_and(|s| !s.is_empty()), "{w}");
        assert_eq!(w["protocol"], 1);
        assert_eq!(w["heartbeat_ms"], 1000);
    }
}

#[tokio::test]
async fn room_socket_is_subscribed_on_connect_and_gets_events() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    let sub = c.recv().await;
    assert_eq!(sub["type"], "subscribed");
    assert_eq!(sub["room"], "alerts");
    assert_eq!(sub["seq"], 0);
    assert_eq!(sub["recovered"], false);
    assert!(sub["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    let ack = publish(&hub, "alerts", "alert_raised", json!({"level": "high"})).await;
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["delivered"], 1);
    let ev = c.recv().await;
    assert_eq!(ev["type"], "alert_raised");
    assert_eq!(ev["room"], "alerts");
    assert_eq!(ev["seq"], 1);
    assert_eq!(ev["data"], json!({"level": "high"}));
    let ts = ev["ts"].as_str().expect("ts");
    assert!(ts.ends_with('Z') && ts.len() == 24, "RFC 3339 UTC ms: {ts}");
}

#[tokio::test]
async fn subscribe_unsubscribe_and_ping_echo_the_ref() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    c.send(json!({"op": "subscribe", "room": "hotspots", "ref": "a1"}))
        .await;
    let sub = c.recv().await;
    assert_eq!(
        (sub["type"].as_str(), sub["ref"].as_str()),
        (Some("subscribed"), Some("a1"))
    );
    publish(&hub, "hotspots", "hotspot_detected", json!(1)).await;
    assert_eq!(c.recv().await["seq"], 1);
    c.send(json!({"op": "unsubscribe", "room": "hotspots", "ref": 7}))
        .await;
    let un = c.recv().await;
    assert_eq!(
        un,
        json!({"type": "unsubscribed", "room": "hotspots", "ref": 7})
    );
    // No more events from that room: the next frame is the pong.
    publish(&hub, "hotspots", "hotspot_detected", json!(2)).await;
    c.send(json!({"op": "ping", "ref": 8})).await;
    assert_eq!(c.recv().await, json!({"type": "pong", "ref": 8}));
    c.send(json!({"op": "ping"})).await;
    assert_eq!(c.recv().await, json!({"type": "pong"}));
}

/// Sends `frame`, expects an error with `code`, then proves the connection works.
async fn expect_error(c: &mut Client, frame: Message, code: &str) -> serde_json::Value {
    c.send_raw(frame).await;
    let err = c.recv().await;
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["code"], code, "{err}");
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    c.send(json!({"op": "ping", "ref": "alive"})).await;
    assert_eq!(c.recv().await["ref"], "alive", "connection still healthy");
    err
}

#[tokio::test]
async fn bad_input_gets_error_frames_and_the_connection_stays() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    expect_error(&mut c, Message::text("{not json"), "bad_request").await;
    expect_error(&mut c, Message::text("[1,2,3]"), "bad_request").await;
    expect_error(&mut c, Message::binary(vec![1u8, 2, 3]), "bad_request").await;
    let err = expect_error(
        &mut c,
        Message::text(r#"{"op":"dance","ref":3}"#),
        "bad_request",
    )
    .await;
    assert_eq!(err["ref"], 3, "ref echoed even on a bad command");
    expect_error(
        &mut c,
        Message::text(r#"{"op":"subscribe"}"#),
        "bad_request",
    )
    .await;
    expect_error(
        &mut c,
        Message::text(r#"{"op":"subscribe","room":5}"#),
        "bad_request",
    )
    .await;
    expect_error(
        &mut c,
        Message::text(r#"{"op":"subscribe","room":"nope"}"#),
        "unknown_room",
    )
    .await;
    expect_error(
        &mut c,
        Message::text(r#"{"op":"subscribe","room":"Bad Name!"}"#),
        "unknown_room",
    )
    .await;
    expect_error(
        &mut c,
        Message::text(r#"{"op":"unsubscribe","room":"alerts"}"#),
        "bad_request",
    )
    .await;
    expect_error(
        &mut c,
        Message::text(r#"{"op":"publish","room":"alerts","type":"x","data":1}"#),
        "publish_disabled",
    )
    .await;
    expect_error(
        &mut c,
        Message::text(r#"{"op":"publish","room":"alerts","type":"x"}"#),
        "bad_request",
    )
    .await;
    expect_error(
        &mut c,
        Message::text(r#"{"op":"publish","room":"$status","type":"x","data":1}"#),
        "forbidden",
    )
    .await;
    c.subscribe("alerts").await;
    expect_error(
        &mut c,
        Message::text(r#"{"op":"subscribe","room":"alerts"}"#),
        "bad_request",
    )
    .await;
}

#[tokio::test]
async fn client_publish_where_the_room_allows_it() {
    let hub = start(|c| {
        c.rooms.declare.push(realtime_hub::config::RoomDecl {
            client_publish: Some(true),
            ..realtime_hub::config::RoomDecl::named("chat")
        });
    });
    let (mut a, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (mut b, _) = Client::connect_welcomed(&hub.ws("/ws/chat")).await;
    b.recv().await; // subscribed
    a.subscribe("chat").await;
    a.send(
        json!({"op": "publish", "room": "chat", "type": "said", "data": {"t": "hi"}, "ref": "p1"}),
    )
    .await;
    // The publisher sees its own event (in order) and the ack.
    let (ack, before) = a.recv_until(|v| v["type"] == "published").await;
    assert_eq!(
        ack,
        json!({"type": "published", "room": "chat", "seq": 1, "ref": "p1"})
    );
    assert_eq!(seqs(&before, "chat"), [1]);
    let ev = b.recv().await;
    assert_eq!(
        (ev["type"].as_str(), ev["seq"].as_u64()),
        (Some("said"), Some(1))
    );
    assert_eq!(ev["data"], json!({"t": "hi"}));
    // Reserved types are refused from clients too.
    a.send(json!({"op": "publish", "room": "chat", "type": "welcome", "data": 1, "ref": 2}))
        .await;
    let err = a.recv().await;
    assert_eq!(
        (err["code"].as_str(), err["ref"].as_u64()),
        (Some("bad_request"), Some(2))
    );
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let hub = start(|c| c.websocket.max_frame_bytes = 1024);
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    c.send_raw(Message::text("x".repeat(4096))).await;
    c.expect_close(1009).await;
    // The server is unharmed.
    let (mut d, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    d.send(json!({"op": "ping"})).await;
    assert_eq!(d.recv().await["type"], "pong");
}

#[tokio::test]
async fn oversized_fragmented_message_closes_with_1009() {
    let hub = start(|c| c.websocket.max_frame_bytes = 1024);
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let part = vec![b'x'; 800];
    c.send_raw(Message::Frame(Frame::message(
        part.clone(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await;
    c.send_raw(Message::Frame(Frame::message(
        part,
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    c.expect_close(1009).await;
}

#[tokio::test]
async fn fragmented_command_is_reassembled() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let text = br#"{"op":"ping","ref":"frag"}"#;
    let (a, b) = text.split_at(10);
    c.send_raw(Message::Frame(Frame::message(
        a.to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await;
    c.send_raw(Message::Frame(Frame::message(
        b.to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    assert_eq!(c.recv().await, json!({"type": "pong", "ref": "frag"}));
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    c.send_raw(Message::Frame(Frame::message(
        vec![b'{', 0xff, 0xfe, b'}'],
        OpCode::Data(Data::Text),
        true,
    )))
    .await;
    c.expect_close(1007).await;
}

#[tokio::test]
async fn continuation_without_start_closes_with_1002() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    c.send_raw(Message::Frame(Frame::message(
        b"orphan".to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    c.expect_close(1002).await;
}

#[tokio::test]
async fn server_pings_and_a_silent_client_is_closed() {
    use futures_util::StreamExt;
    let hub = start(|c| {
        c.websocket.heartbeat_interval_s = 1;
        c.websocket.client_timeout_s = 2;
    });
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    // A protocol ping arrives within two heartbeats (tungstenite answers it).
    let ping = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(Ok(Message::Ping(_))) = c.ws.next().await {
                return;
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "server sent no ping");

    // A raw TCP client that upgrades and then says nothing is closed after the
    // timeout, with a close 1000 frame.
    let mut raw = RawSocket::connect(&hub.addr.to_string(), "/ws").await;
    let started = std::time::Instant::now();
    let (end, _) = raw.end().await;
    let elapsed = started.elapsed();
    assert_eq!(end, RawEnd::Close(1000), "silent client closed with 1000");
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(8),
        "closed after {elapsed:?}"
    );
}

#[tokio::test]
async fn client_close_is_answered_and_the_session_unregistered() {
    let hub = start(|_| {});
    let (c, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    wait_status(&hub, |s| {
        s["total_sockets"] == 1 && s["rooms"]["alerts"] == 1
    })
    .await;
    c.close().await;
    wait_status(&hub, |s| {
        s["total_sockets"] == 0 && s["rooms"]["alerts"] == 0
    })
    .await;
}

#[tokio::test]
async fn protocol_ping_gets_a_pong() {
    use futures_util::StreamExt;
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    c.send_raw(Message::Ping(b"hello"[..].into())).await;
    let pong = tokio::time::timeout(WAIT, async {
        loop {
            match c.ws.next().await {
                Some(Ok(Message::Pong(p))) => return p,
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("pong in time");
    assert_eq!(&pong[..], b"hello");
}

#[tokio::test]
async fn refs_come_back_exactly_as_written_and_duplicate_keys_are_named() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    for written in ["1e2", "18446744073709551616", "-0.50", r#""caf\u00e9""#] {
        c.send_raw(Message::text(format!(r#"{{"op":"ping","ref":{written}}}"#)))
            .await;
        assert_eq!(
            c.recv_text().await,
            format!(r#"{{"type":"pong","ref":{written}}}"#)
        );
    }
    c.send_raw(Message::text(
        r#"{"op":"subscribe","room":"alerts","room":"hotspots","ref":"d"}"#,
    ))
    .await;
    let err = c.recv().await;
    assert_eq!(err["code"], "bad_request", "{err}");
    let message = err["message"].as_str().unwrap_or_default();
    assert!(message.contains("duplicate field `room`"), "{message}");
}

/// RFC 6455 section 7.1.1: after the closing handshake the server closes the
/// TCP connection first, and clients wait for it. It used to come only after
/// actix's one-second linger (src/socket_end.rs).
#[tokio::test]
async fn a_client_close_handshake_ends_the_tcp_connection_at_once() {
    let hub = start(|_| {});
    for path in ["/ws", "/ws/alerts", "/ws/connect"] {
        let mut raw = RawSocket::connect(&hub.addr.to_string(), path).await;
        assert!(raw.write(&client_frame(0x88, &1000u16.to_be_bytes())).await);
        let (end, _) = raw.end().await;
        assert_eq!(end, RawEnd::Close(1000), "{path}");
        assert!(
            raw.eof_within(Duration::from_millis(300)).await,
            "{path}: no FIN within 300 ms of the close handshake"
        );
    }
}
