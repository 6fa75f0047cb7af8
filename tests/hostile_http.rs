//! Hostile HTTP input against the default (loopback-only) configuration: web
//! pages driving the write/admin API (CSRF, DNS rebinding), bodies that never
//! arrive, and malformed requests flooding the log. The real-browser version of
//! the CSRF attack is `examples/dashboard/e2e/hostile-page.e2e.test.ts`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EVIL: &str = "https://evil.example";

/// Every write/admin endpoint, as (method, path, JSON body).
fn write_endpoints() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/socket-status/sockets", None),
        (
            "POST",
            "/api/rooms/alerts/events",
            Some(json!({"type": "forged", "data": 1})),
        ),
        (
            "POST",
            "/api/events",
            Some(json!([{"room": "alerts", "type": "forged", "data": 1}])),
        ),
        (
            "POST",
            "/api/users/u1/events",
            Some(json!({"type": "forged", "data": 1})),
        ),
        ("POST", "/api/sockets/no-such-session/disconnect", None),
    ]
}

/// Sends one request with `headers`; returns the status, the
/// access-control-allow-origin header, and the JSON body.
async fn call(
    hub: &realtime_hub::SpawnedHub,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http().request(method, hub.http(path));
    if let Some(body) = body {
        req = req.json(body);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let acao = r
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().expect("ascii").to_string());
    let text = r.text().await.expect("body");
    (
        status,
        acao,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The head seq of `room`, from its history.
async fn head_seq(hub: &realtime_hub::SpawnedHub, room: &str) -> u64 {
    let (status, h) = get(&hub.http(&format!("/api/rooms/{room}/history"))).await;
    assert_eq!(status, 200, "{h}");
    h["seq"].as_u64().expect("seq")
}

#[tokio::test]
async fn foreign_origins_get_403_and_no_cors_on_write_and_admin_endpoints() {
    let hub = start(|_| {});
    // The reproduction: curl -H 'Origin: https://evil.example' .../socket-status/sockets
    for (method, path, body) in write_endpoints() {
        let (status, acao, v) = call(&hub, method, path, body.as_ref(), &[("origin", EVIL)]).await;
        assert_eq!((status, acao), (403, None), "{method} {path}: {v}");
        assert_eq!(v["error"], "forbidden_origin", "{method} {path}");
        // A browser's preflight gets no CORS grant either.
        let (_, acao, _) = call(
            &hub,
            "OPTIONS",
            path,
            None,
            &[
                ("origin", EVIL),
                ("access-control-request-method", method),
                ("access-control-request-headers", "content-type"),
            ],
        )
        .await;
        assert_eq!(acao, None, "preflight of {method} {path}");
    }
    assert_eq!(head_seq(&hub, "alerts").await, 0, "nothing was published");
    // `null` (sandboxed frames, file://) is an origin like any other.
    let (status, _, _) = call(
        &hub,
        "GET",
        "/socket-status/sockets",
        None,
        &[("origin", "null")],
    )
    .await;
    assert_eq!(status, 403);
    // Read endpoints keep the contract's cross-origin reads.
    for path in ["/socket-status", "/api/rooms", "/api/rooms/alerts/history"] {
        let (status, acao, _) = call(&hub, "GET", path, None, &[("origin", EVIL)]).await;
        assert_eq!((status, acao.as_deref()), (200, Some(EVIL)), "{path}");
    }
    // Scripts send no Origin and are unaffected.
    let (status, _, _) = call(&hub, "GET", "/socket-status/sockets", None, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn listed_origins_may_use_the_write_api_with_cors() {
    const DASH: &str = "https://dash.example";
    let hub = start(|c| c.server.allowed_origins = vec![DASH.into()]);
    let event = json!({"type": "alert_raised", "data": 1});
    let (status, acao, v) = call(
        &hub,
        "POST",
        "/api/rooms/alerts/events",
        Some(&event),
        &[("origin", DASH)],
    )
    .await;
    assert_eq!((status, acao.as_deref()), (200, Some(DASH)), "{v}");
    let (_, acao, _) = call(
        &hub,
        "OPTIONS",
        "/api/rooms/alerts/events",
        None,
        &[
            ("origin", DASH),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,authorization",
            ),
        ],
    )
    .await;
    assert_eq!(acao.as_deref(), Some(DASH), "preflight granted");
    let (status, acao, v) = call(
        &hub,
        "POST",
        "/api/rooms/alerts/events",
        Some(&event),
        &[("origin", EVIL)],
    )
    .await;
    assert_eq!((status, acao), (403, None));
    assert_eq!(v["error"], "forbidden_origin");
    assert_eq!(head_seq(&hub, "alerts").await, 1);
}

#[tokio::test]
async fn non_json_bodies_get_415_and_publish_nothing() {
    let hub = start(|_| {});
    let (mut sub, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    assert_eq!(sub.recv().await["type"], "subscribed");
    let body = json!({"type": "forged", "data": 1}).to_string();
    let batch = json!([{"room": "alerts", "type": "forged", "data": 1}]).to_string();
    for path in [
        "/api/rooms/alerts/events",
        "/api/events",
        "/api/users/u1/events",
    ] {
        let body = if path == "/api/events" { &batch } else { &body };
        for content_type in [
            Some("text/plain"),
            Some("text/plain;charset=UTF-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let mut req = http().post(hub.http(path)).body(body.clone());
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let r = req.send().await.expect("POST");
            let status = r.status().as_u16();
            let v: Value = r.json().await.expect("a JSON error body");
            assert_eq!(status, 415, "{path} {content_type:?}: {v}");
            assert_eq!(v["error"], "unsupported_media_type");
        }
    }
    // JSON with parameters is JSON.
    let r = http()
        .post(hub.http("/api/rooms/alerts/events"))
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({"type": "real", "data": 2}).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    let ev = sub.recv().await;
    assert_eq!(
        (ev["type"].as_str(), ev["seq"].as_u64()),
        (Some("real"), Some(1)),
        "{ev}"
    );
}

#[tokio::test]
async fn rebound_host_names_get_403_in_loopback_only_mode() {
    let hub = start(|c| c.server.public_hosts = vec!["hub.internal".into()]);
    let port = hub.addr.port();
    for (method, path, body) in write_endpoints() {
        for host in [
            "attacker.example",
            "attacker.example:80",
            "127.0.0.1.nip.io",
        ] {
            let (status, _, v) = call(&hub, method, path, body.as_ref(), &[("host", host)]).await;
            assert_eq!(status, 403, "{method} {path} Host {host}: {v}");
            assert_eq!(v["error"], "forbidden");
        }
    }
    assert_eq!(head_seq(&hub, "alerts").await, 0);
    let localhost = format!("localhost:{port}");
    let sub = format!("app.localhost:{port}");
    let v6 = format!("[::1]:{port}");
    let public = format!("hub.internal:{port}");
    for host in [localhost.as_str(), &sub, &v6, &public, "127.0.0.2"] {
        let (status, _, v) = call(
            &hub,
            "GET",
            "/socket-status/sockets",
            None,
            &[("host", host)],
        )
        .await;
        assert_eq!(status, 200, "Host {host}: {v}");
    }
    // With API keys the key is the guard, whatever the name.
    let key = "a-long-enough-key";
    let keyed = start(|c| c.auth.api_keys = vec![key.into()]);
    let bearer = format!("Bearer {key}");
    let (status, _, v) = call(
        &keyed,
        "GET",
        "/socket-status/sockets",
        None,
        &[("host", "hub.example.com"), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200, "{v}");
}

/// Reads what the server sends until it closes the connection, within `wait`;
/// `None` if it is still open then.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status and JSON body of a raw HTTP/1.1 response.
fn parse_response(raw: &str) -> (u16, Value) {
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response, got {raw:?}"));
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

const SLOW_HEAD: &str = "POST /api/rooms/alerts/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                         Content-Type: application/json\r\n";

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_is_freed() {
    let hub = start(|c| c.server.body_timeout_s = 1);
    // Declares 1 MB and sends a few bytes; many at once, each must be freed.
    let mut declared = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(hub.addr).await.expect("connect");
        let head = format!("{SLOW_HEAD}Content-Length: 1048000\r\n\r\n{{\"type\":");
        s.write_all(head.as_bytes()).await.expect("write");
        declared.push(s);
    }
    for mut s in declared {
        let raw = read_until_closed(&mut s, WAIT)
            .await
            .expect("the hub answers and closes within the wait");
        let (status, v) = parse_response(&raw);
        assert_eq!(status, 408, "{raw}");
        assert_eq!(v["error"], "request_timeout");
    }

    // Endless chunked encoding: the writer never stops, the hub still ends it.
    let mut s = TcpStream::connect(hub.addr).await.expect("connect");
    let head = format!("{SLOW_HEAD}Transfer-Encoding: chunked\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        while wr.write_all(b"1\r\n \r\n").await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent
    });
    let mut got = Vec::new();
    let outcome = tokio::time::timeout(WAIT, rd.read_to_end(&mut got)).await;
    assert!(
        outcome.is_ok(),
        "the connection is closed within the wait, not drained forever"
    );
    let raw = String::from_utf8_lossy(&got);
    let (status, v) = parse_response(&raw);
    assert_eq!(
        (status, v["error"].as_str()),
        (408, Some("request_timeout")),
        "{raw}"
    );
    let sent = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the writer sees the close")
        .expect("writer");
    assert!(sent > 10, "the chunks kept coming ({sent})");
    assert_eq!(head_seq(&hub, "alerts").await, 0, "nothing was published");
}

#[tokio::test]
async fn unread_chunked_bodies_do_not_pin_a_connection() {
    // A refused request's endless body is not drained: the hub answers and closes.
    let hub = start(|_| {});
    for (path, extra) in [
        (
            "/api/rooms/alerts/events",
            "Origin: https://evil.example\r\n",
        ),
        ("/no/such/route", ""),
    ] {
        let mut s = TcpStream::connect(hub.addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.expect("write");
        let (mut rd, mut wr) = s.into_split();
        let writer = tokio::spawn(async move {
            while wr.write_all(b"1\r\n \r\n").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut got = Vec::new();
        let outcome = tokio::time::timeout(WAIT, rd.read_to_end(&mut got)).await;
        assert!(outcome.is_ok(), "{path}: closed within the wait");
        let raw = String::from_utf8_lossy(&got);
        assert!(raw.starts_with("HTTP/1.1 4"), "{path}: {raw}");
        writer.abort();
    }
}

#[tokio::test]
async fn a_body_within_the_timeout_is_read_and_the_connection_kept() {
    let hub = start(|c| c.server.body_timeout_s = 2);
    let mut s = TcpStream::connect(hub.addr).await.expect("connect");
    let body = json!({"type": "slow", "data": 1}).to_string();
    let (first, rest) = body.split_at(5);
    let head = format!("{SLOW_HEAD}Content-Length: {}\r\n\r\n{first}", body.len());
    s.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(rest.as_bytes()).await.expect("write");
    // A second request on the same connection: keep-alive still works.
    let second =
        "GET /api/rooms/alerts/history HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    s.write_all(second.as_bytes()).await.expect("write");
    let raw = read_until_closed(&mut s, WAIT)
        .await
        .expect("both answered");
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
    assert!(raw.contains("\"seq\":1"), "{raw}");
}

#[tokio::test]
async fn malformed_requests_do_not_flood_the_log() {
    let hub = ChildHub::spawn(&[("RUST_LOG", "info")]);
    let lines = || hub.log.lock().expect("log").clone();
    let before = lines().len();
    let garbage: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\0\0\0\0\0\0\r\n\r\n",
    ];
    for i in 0..200 {
        let mut s = TcpStream::connect(&hub.addr).await.expect("connect");
        s.write_all(garbage[i % garbage.len()])
            .await
            .expect("write");
        let raw = read_until_closed(&mut s, WAIT)
            .await
            .expect("answered and closed");
        assert!(raw.starts_with("HTTP/1.1 400"), "{raw:?}");
    }
    // A line logged after all of them marks the end of what they logged.
    let (c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !lines()[before..]
        .iter()
        .any(|l| l.contains("connect session="))
    {
        assert!(tokio::time::Instant::now() < deadline, "no connect line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.close().await;
    let new = lines()[before..].to_vec();
    let dispatcher: Vec<_> = new.iter().filter(|l| l.contains("actix_http")).collect();
    assert!(
        !dispatcher.is_empty(),
        "malformed requests are still logged, once: {new:?}"
    );
    assert!(
        dispatcher.len() <= 2,
        "{} lines for 200 malformed requests, the first: {:?}",
        dispatcher.len(),
        &dispatcher[..3.min(dispatcher.len())]
    );
    assert!(new.len() < 10, "{new:?}");
    let (status, _) = get(&hub.http("/healthz")).await;
    assert_eq!(status, 200);
}
