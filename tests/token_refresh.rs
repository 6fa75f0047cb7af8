//! Token refresh without reconnecting (contract section 14): a `refresh` with
//! a valid token for the same `sub` moves the 4001 close to the new `exp` and
//! applies the new claims (rooms no longer allowed are left with `reason:
//! forbidden`); anything else is refused and the old claims and `exp` stay.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn jwt_hub() -> realtime_hub::SpawnedHub {
    start(|c| c.auth.jwt_secret = JWT_SECRET.into())
}

/// A token for `sub` that expires `secs` from now, with `extra` claims.
fn expiring(sub: &str, secs: u64, extra: Value) -> String {
    let mut claims = json!({"sub": sub, "exp": unix_now() + secs});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    hs256(claims)
}

async fn publish(hub: &realtime_hub::SpawnedHub, room: &str, n: u64) {
    let (status, body) = post(
        &hub.http(&format!("/api/rooms/{room}/events")),
        &json!({"type": "t", "data": {"n": n}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Frames until the one of `kind`, or the socket's end (panics).
async fn until_type(c: &mut Client, kind: &str) -> Value {
    c.recv_until(|f| f["type"] == kind).await.0
}

#[tokio::test]
async fn a_refresh_before_exp_keeps_the_socket_open_until_the_new_exp() {
    let hub = jwt_hub();
    let start = Instant::now();
    let token = expiring("u1", 2, json!({}));
    let (mut c, _) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={token}"))).await;
    c.subscribe("alerts").await;
    // `exp` is whole seconds: the old one is 1-2 s away, the new one 5-6 s.
    let exp = unix_now() + 6;
    let fresh = hs256(json!({"sub": "u1", "exp": exp}));
    c.send(json!({"op": "refresh", "token": fresh, "ref": "r1"}))
        .await;
    let refreshed = until_type(&mut c, "refreshed").await;
    assert_eq!(
        (&refreshed["exp"], &refreshed["ref"]),
        (&json!(exp), &json!("r1"))
    );

    // Past the first token's exp the socket is open and still in its room.
    while start.elapsed() < Duration::from_millis(3200) {
        if let Some(f) = c.recv_within(Duration::from_millis(200)).await {
            panic!("nothing expected before the old exp has passed: {f}");
        }
    }
    publish(&hub, "alerts", 1).await;
    let ev = c.recv().await;
    assert_eq!(
        (&ev["room"], &ev["data"]["n"]),
        (&json!("alerts"), &json!(1)),
        "{ev}"
    );

    // Then the new exp closes it.
    c.expect_close(4001).await;
    let closed_after = start.elapsed();
    assert!(
        closed_after >= Duration::from_secs(4),
        "closed before the new exp: {closed_after:?}"
    );
}

#[tokio::test]
async fn a_narrower_rooms_claim_leaves_the_rooms_it_no_longer_allows() {
    let hub = jwt_hub();
    let token = token_for("u1", json!({"rooms": ["alerts", "hotspots"]}));
    let (mut c, _) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={token}"))).await;
    c.subscribe("alerts").await;
    c.subscribe("hotspots").await;
    let narrower = token_for("u1", json!({"rooms": ["alerts"]}));
    c.send(json!({"op": "refresh", "token": narrower, "ref": 7}))
        .await;
    let mut frames = [c.recv().await, c.recv().await];
    frames.sort_by_key(|f| f["type"].as_str().map(str::to_string));
    assert_eq!(
        (&frames[0]["type"], &frames[0]["ref"]),
        (&json!("refreshed"), &json!(7))
    );
    assert_eq!(
        frames[1],
        json!({"type": "unsubscribed", "room": "hotspots", "reason": "forbidden"})
    );

    // hotspots is left, alerts is kept, and hotspots cannot be joined again.
    publish(&hub, "hotspots", 1).await;
    publish(&hub, "alerts", 2).await;
    let ev = c.recv().await;
    assert_eq!(
        (&ev["room"], &ev["data"]["n"]),
        (&json!("alerts"), &json!(2)),
        "{ev}"
    );
    c.send(json!({"op": "subscribe", "room": "hotspots", "ref": 8}))
        .await;
    let err = c.recv().await;
    assert_eq!(
        (&err["code"], &err["ref"]),
        (&json!("forbidden"), &json!(8)),
        "{err}"
    );
    let (status, list) = get(&hub.http("/api/rooms")).await;
    assert_eq!(status, 200);
    let hotspots = list
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["room"] == "hotspots"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(hotspots["subscribers"], 0, "{list}");
}

#[tokio::test]
async fn a_bad_token_or_another_sub_is_refused_and_the_old_exp_stays() {
    let hub = jwt_hub();
    let start = Instant::now();
    let token = expiring("u1", 2, json!({}));
    let (mut c, _) = Client::connect_welcomed(&hub.ws(&format!("/ws?token={token}"))).await;
    let refusals = [
        ("garbage", "not-a-jwt".to_string()),
        ("another sub", token_for("u2", json!({}))),
        (
            "expired",
            hs256(json!({"sub": "u1", "exp": unix_now() - 10})),
        ),
        (
            "another key",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &json!({"sub": "u1", "exp": unix_now() + 3600}),
                &jsonwebtoken::EncodingKey::from_secret(b"another-secret-that-is-32-bytes!"),
            )
            .expect("sign"),
        ),
    ];
    for (what, bad) in &refusals {
        c.send(json!({"op": "refresh", "token": bad, "ref": what}))
            .await;
        let err = c.recv().await;
        assert_eq!(
            (&err["type"], &err["code"], &err["ref"]),
            (&json!("error"), &json!("unauthorized"), &json!(what)),
            "{what}: {err}"
        );
    }
    c.send(json!({"op": "refresh", "ref": 1})).await;
    let err = c.recv().await;
    assert_eq!(err["code"], "bad_request", "no token: {err}");

    // The old exp still applies.
    c.expect_close(4001).await;
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "closed at the old exp, not later: {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn refresh_on_a_hub_without_auth_is_a_bad_request() {
    let hub = start(|_| {});
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    c.send(json!({"op": "refresh", "token": token_for("u1", json!({})), "ref": 1}))
        .await;
    let err = c.recv().await;
    assert_eq!(
        (&err["code"], &err["ref"]),
        (&json!("bad_request"), &json!(1)),
        "{err}"
    );
}
