//! Security rules (contract sections 6–8): JWT on connect (every refusal case,
//! `nbf`, `aud`, `iss`, `crit`), room and publish claims, expiry, private reads
//! (`auth.public_reads = false`), user targeting, rate limits, TLS, and secrets
//! kept out of logs. Origin, connection limits, frame size and body size
//! are in `admission.rs`, `websocket_session.rs` and `http_api.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = JWT_SECRET;

fn jwt_hub() -> realtime_hub::SpawnedHub {
    start(|c| {
        c.auth.jwt_secret = SECRET.into();
        c.rooms.declare.push(realtime_hub::config::RoomDecl {
            client_publish: Some(true),
            ..realtime_hub::config::RoomDecl::named("chat")
        });
    })
}

/// `alg: none`, hand-made: header and payload, no signature.
fn alg_none(claims: &Value) -> String {
    use base64_url as b64;
    format!(
        "{}.{}.",
        b64::encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64::encode(claims.to_string().as_bytes())
    )
}

/// Minimal unpadded base64url for the hand-made token.
mod base64_url {
    pub fn encode(input: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

#[tokio::test]
async fn upgrades_without_a_valid_token_get_401() {
    let hub = jwt_hub();
    let claims = json!({"sub": "u1", "exp": unix_now() + 3600});
    let expired = hs256(json!({"sub": "u1", "exp": unix_now() - 30}));
    let no_sub = hs256(json!({"exp": unix_now() + 3600}));
    let no_exp = hs256(json!({"sub": "u1"}));
    let wrong_secret = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"another-secret-entirely-000"),
    )
    .expect("sign");
    let wrong_alg = encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    let cases = [
        ("missing", hub.ws("/ws")),
        ("garbage", hub.ws("/ws?token=not.a.jwt")),
        ("expired", hub.ws(&format!("/ws?token={expired}"))),
        ("no sub", hub.ws(&format!("/ws?token={no_sub}"))),
        ("no exp", hub.ws(&format!("/ws?token={no_exp}"))),
        ("wrong secret", hub.ws(&format!("/ws?token={wrong_secret}"))),
        ("wrong alg HS512", hub.ws(&format!("/ws?token={wrong_alg}"))),
        (
            "alg none",
            hub.ws(&format!("/ws?token={}", alg_none(&claims))),
        ),
        ("room socket, missing", hub.ws("/ws/alerts")),
    ];
    for (name, url) in cases {
        let (status, body) = refused(&url).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{name}: {body}"
        );
    }
    // Accepted from the query and from the Authorization header.
    let good = token_for("u1", json!({}));
    let (_c, w) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={good}"))).await;
    assert_eq!(w["type"], "welcome");
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = hub.ws("/ws").into_client_request().expect("req");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {good}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("bearer header accepted");
    let first = ws.next().await.expect("frame").expect("ok");
    assert!(first.to_text().expect("text").contains("welcome"));
}

#[tokio::test]
async fn nbf_audience_issuer_and_crit_are_checked() {
    let hub = start(|c| {
        c.auth.jwt_secret = SECRET.into();
        c.auth.jwt_audience = "hub-clients".into();
        c.auth.jwt_issuer = "https://id.example".into();
    });
    let base = |extra: Value| {
        let mut claims = json!({"sub": "u1", "exp": unix_now() + 3600,
            "aud": "hub-clients", "iss": "https://id.example"});
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        claims
    };
    let without = |key: &str| {
        let mut claims = base(json!({}));
        claims.as_object_mut().expect("object").remove(key);
        hs256(claims)
    };
    let mut crit = Header::new(Algorithm::HS256);
    crit.crit = Some(vec!["exp".into()]);
    let with_crit = encode(
        &crit,
        &base(json!({})),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    let cases = [
        (
            "nbf in the future",
            hs256(base(json!({"nbf": unix_now() + 600}))),
        ),
        (
            "other audience",
            hs256(base(json!({"aud": "someone-else"}))),
        ),
        ("no audience", without("aud")),
        (
            "other issuer",
            hs256(base(json!({"iss": "https://evil.example"}))),
        ),
        ("no issuer", without("iss")),
        ("crit header", with_crit),
    ];
    for (name, token) in cases {
        let (status, body) = refused(&hub.ws(&format!("/ws?token={token}"))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{name}: {body}"
        );
    }
    let accepted = [
        ("all claims", hs256(base(json!({})))),
        ("nbf passed", hs256(base(json!({"nbf": unix_now() - 5})))),
        (
            "audience in a list",
            hs256(base(json!({"aud": ["other", "hub-clients"]}))),
        ),
    ];
    for (name, token) in accepted {
        let (_c, w) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={token}"))).await;
        assert_eq!(w["type"], "welcome", "{name}");
    }
    // Without jwt_audience configured, an `aud` is not a reason to refuse.
    let plain = jwt_hub();
    let token = token_for("u1", json!({"aud": "anyone"}));
    let (_c, w) = Client::connect_welcomed(&plain.ws(&format!("/ws?token={token}"))).await;
    assert_eq!(w["type"], "welcome");
}

#[tokio::test]
async fn private_reads_need_a_key_or_a_token_for_the_room() {
    let key = "reader-api-key-123";
    let hub = start(|c| {
        c.auth.jwt_secret = SECRET.into();
        c.auth.api_keys = vec![key.into()];
        c.auth.public_reads = false;
    });
    let (status, _) = post_with_key(&hub, key, "alerts").await;
    assert_eq!(status, 200);
    let alerts_only = token_for("reader", json!({"rooms": ["alerts"]}));
    let expired = hs256(json!({"sub": "reader", "exp": unix_now() - 30}));
    let history = |room: &str| hub.http(&format!("/api/rooms/{room}/history"));
    let read = |url: String, bearer: Option<String>| async move {
        let mut req = http().get(url);
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        let r = req.send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.expect("json"))
    };
    // Nothing presented, a wrong key, an expired token: 401.
    for bearer in [None, Some("wrong-key-0000".into()), Some(expired.clone())] {
        let (status, v) = read(history("alerts"), bearer.clone()).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (401, Some("unauthorized")),
            "{bearer:?}: {v}"
        );
        let (status, _) = read(hub.http("/api/rooms"), bearer.clone()).await;
        assert_eq!(status, 401, "{bearer:?}");
    }
    // The API key reads everything.
    let (status, v) = read(history("hotspots"), Some(key.into())).await;
    assert_eq!(status, 200, "{v}");
    let (_, rooms) = read(hub.http("/api/rooms"), Some(key.into())).await;
    assert_eq!(rooms.as_array().map(Vec::len), Some(3), "{rooms}");
    // A token reads the rooms its claim allows, from ?token= or Bearer.
    let (status, v) = read(format!("{}?token={alerts_only}", history("alerts")), None).await;
    assert_eq!((status, v["seq"].as_u64()), (200, Some(1)), "{v}");
    let (status, v) = read(history("alerts"), Some(alerts_only.clone())).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = read(history("hotspots"), Some(alerts_only.clone())).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (status, rooms) = read(hub.http("/api/rooms"), Some(alerts_only)).await;
    assert_eq!(status, 200);
    let names: Vec<_> = rooms
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["room"].as_str())
        .collect();
    assert_eq!(names, ["alerts"], "filtered to the token's rooms");
    // Counts stay public.
    let (status, _) = get(&hub.http("/socket-status")).await;
    assert_eq!(status, 200);

    // Without keys, loopback reads, under the write API's Origin and Host rules.
    let local = start(|c| c.auth.public_reads = false);
    let url = local.http("/api/rooms/alerts/history");
    assert_eq!(get(&url).await.0, 200);
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("host", "attacker.example"),
    ] {
        let r = http()
            .get(&url)
            .header(name, value)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 403, "{name}: {value}");
    }
}

async fn post_with_key(hub: &realtime_hub::SpawnedHub, key: &str, room: &str) -> (u16, Value) {
    let r = http()
        .post(hub.http(&format!("/api/rooms/{room}/events")))
        .header("authorization", format!("Bearer {key}"))
        .json(&json!({"type": "alert_raised", "data": 1}))
        .send()
        .await
        .expect("publish");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

#[tokio::test]
async fn key_file_tokens_are_pinned_to_their_algorithm() {
    let key = rcgen::KeyPair::generate().expect("EC P-256 key");
    let dir = std::env::temp_dir().join(format!("hub-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let public = dir.join("public.pem");
    std::fs::write(&public, key.public_key_pem()).expect("write key");
    let hub = start(|c| c.auth.jwt_public_key_file = public.to_string_lossy().into());
    let claims = json!({"sub": "u1", "exp": unix_now() + 3600});
    let es256 = encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).expect("private key"),
    )
    .expect("sign");
    let (_c, w) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={es256}"))).await;
    assert_eq!(w["type"], "welcome");
    // Algorithm confusion: HS256 "signed" with the public key as the secret.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.public_key_pem().as_bytes()),
    )
    .expect("sign");
    let (status, _) = refused(&hub.ws(&format!("/ws?token={confused}"))).await;
    assert_eq!(status, 401);
    let (status, _) = refused(&hub.ws(&format!("/ws?token={}", alg_none(&claims)))).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn room_claims_are_enforced_on_connect_and_subscribe() {
    let hub = jwt_hub();
    let token = token_for("u1", json!({"rooms": ["alerts", "team-1:*"]}));
    let (status, body) = refused(&hub.ws(&format!("/ws/hotspots?token={token}"))).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    let (mut c, _) = Client::connect_welcomed(&hub.ws(&format!("/ws/alerts?token={token}"))).await;
    assert_eq!(c.recv().await["type"], "subscribed");
    c.send(json!({"op": "subscribe", "room": "hotspots", "ref": 1}))
        .await;
    let err = c.recv().await;
    assert_eq!(
        (err["code"].as_str(), err["ref"].as_u64()),
        (Some("forbidden"), Some(1))
    );
    // The status room is public counts and open to every token.
    c.subscribe("$status").await;
}

#[tokio::test]
async fn publish_claim_is_required_for_client_publish() {
    let hub = jwt_hub();
    let reader = token_for("reader", json!({}));
    let writer = token_for("writer", json!({"publish": ["chat"]}));
    let (mut r, _) = Client::connect_welcomed(&hub.ws(&format!("/ws/chat?token={reader}"))).await;
    r.recv().await;
    r.send(json!({"op": "publish", "room": "chat", "type": "said", "data": 1, "ref": "x"}))
        .await;
    let err = r.recv().await;
    assert_eq!(
        (err["code"].as_str(), err["ref"].as_str()),
        (Some("forbidden"), Some("x"))
    );
    let (mut w, _) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={writer}"))).await;
    w.send(json!({"op": "publish", "room": "chat", "type": "said", "data": 2, "ref": "y"}))
        .await;
    assert_eq!(
        w.recv().await,
        json!({"type": "published", "room": "chat", "seq": 1, "ref": "y"})
    );
    assert_eq!(r.recv().await["data"], 2);
}

#[tokio::test]
async fn session_closes_with_4001_at_token_expiry() {
    let hub = jwt_hub();
    let token = hs256(json!({"sub": "u1", "exp": unix_now() + 2}));
    let (mut c, _) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={token}"))).await;
    let started = std::time::Instant::now();
    c.expect_close(4001).await;
    assert!(
        started.elapsed() <= Duration::from_secs(4),
        "closed late: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn user_messages_reach_every_session_of_the_user() {
    let hub = jwt_hub();
    let alice = token_for("alice", json!({}));
    let bob = token_for("bob", json!({}));
    let (mut a1, _) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={alice}"))).await;
    let (mut a2, _) = Client::connect_welcomed(&hub.ws(&format!("/ws/alerts?token={alice}"))).await;
    a2.recv().await;
    let (mut b, _) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={bob}"))).await;
    wait_status(&hub, |s| s["total_sockets"] == 3).await;
    let (status, body) = post(
        &hub.http("/api/users/alice/events"),
        &json!({"type": "note", "data": {"hi": 1}}),
    )
    .await;
    assert_eq!((status, body["delivered"].as_u64()), (200, Some(2)));
    for c in [&mut a1, &mut a2] {
        let m = c.recv().await;
        assert_eq!(
            (m["type"].as_str(), m["user"].as_str()),
            (Some("note"), Some("alice"))
        );
        assert_eq!(m["data"], json!({"hi": 1}));
        assert!(m.get("seq").is_none() && m.get("room").is_none(), "{m}");
    }
    b.send(json!({"op": "ping"})).await;
    assert_eq!(b.recv().await["type"], "pong", "bob got nothing of alice's");
}

#[tokio::test]
async fn command_floods_are_rate_limited_then_closed_with_1008() {
    let hub = start(|c| {
        c.websocket.rate_per_s = 5;
        c.websocket.rate_burst = 5;
    });
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    for i in 0..5 {
        c.send(json!({"op": "ping", "ref": i})).await;
    }
    for i in 0..5 {
        assert_eq!(c.recv().await["ref"], i, "the burst passes");
    }
    c.send(json!({"op": "ping", "ref": "over"})).await;
    let err = c.recv().await;
    assert_eq!(err["code"], "rate_limited", "{err}");
    // Keep flooding: the session is closed for policy.
    for _ in 0..20 {
        if c.ws.send(Message::text(r#"{"op":"ping"}"#)).await.is_err() {
            break;
        }
    }
    let (ended, _) = c.until_closed().await;
    assert_eq!(ended, Ended::Close(1008, "policy violation".into()));
}

#[tokio::test]
async fn wss_and_https_round_trip_with_a_generated_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let dir = std::env::temp_dir().join(format!("hub-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("key");
    let hub = start(|c| {
        c.server.tls_cert = cert_path.to_string_lossy().into();
        c.server.tls_key = key_path.to_string_lossy().into();
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = |connector: tokio_rustls::TlsConnector| async move {
        let tcp = tokio::net::TcpStream::connect(hub.addr).await.expect("tcp");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        connector.connect(name, tcp).await.expect("TLS handshake")
    };

    let stream = tls(connector.clone()).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws/alerts", stream)
        .await
        .expect("wss upgrade");
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");

    // Publish over https with a hand-written HTTP/1.1 request.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut https = tls(connector).await;
    let body = json!({"type": "alert_raised", "data": {"over": "tls"}}).to_string();
    let request = format!(
        "POST /api/rooms/alerts/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    https.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    let _ = tokio::time::timeout(WAIT, https.read_to_string(&mut response)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let ev = next_json(&mut ws).await;
    assert_eq!(
        (ev["seq"].as_u64(), ev["data"]["over"].as_str()),
        (Some(1), Some("tls"))
    );
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("json"),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn tokens_and_api_keys_never_reach_the_log() {
    let api_key = "api-key-SHOULD-NOT-BE-LOGGED-42";
    let hub = ChildHub::spawn(&[
        ("RUST_LOG", "debug"),
        ("HUB_AUTH__JWT_SECRET", SECRET),
        ("HUB_AUTH__API_KEYS", api_key),
    ]);
    let token = token_for("logged-user", json!({}));
    let (mut c, _) =
        Client::connect_welcomed(&hub.ws(&format!("/ws/alerts?token={token}&since=0"))).await;
    c.recv().await;
    let bad = format!("{token}x");
    let (status, _) = refused(&hub.ws(&format!("/ws?token={bad}"))).await;
    assert_eq!(status, 401);
    let r = http()
        .post(hub.http("/api/rooms/alerts/events"))
        .header("authorization", format!("Bearer {api_key}"))
        .json(&json!({"type": "t", "data": 1}))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status().as_u16(), 200);
    let r = http()
        .post(hub.http("/api/rooms/alerts/events"))
        .header("authorization", "Bearer wrong-key-also-secret-1")
        .json(&json!({}))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status().as_u16(), 401);
    c.recv().await;
    drop(c);
    hub.wait_status(|s| s["total_sockets"] == 0).await;

    let log = hub.log.lock().expect("log").join("\n");
    assert!(
        log.contains("token=REDACTED"),
        "the access log ran and redacted: {log:.2000}"
    );
    let signature = token.rsplit('.').next().expect("signature");
    for secret in [
        token.as_str(),
        signature,
        api_key,
        "wrong-key-also-secret-1",
        SECRET,
    ] {
        assert!(
            !log.contains(secret),
            "log contains a secret ({secret:.12}...)"
        );
    }
}
