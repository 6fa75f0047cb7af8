//! Presence (contract section 13) over real TCP: who is subscribed to a
//! presence room, by user; `presence_join` / `presence_leave` once per user
//! (first session in, last out), whatever ends a session; the `presence`
//! command and the admin endpoint agree.

mod common;

use common::presence::{self, ask, session_at};
use common::*;
use realtime_hub::config::RoomDecl;
use serde_json::{json, Value};

fn presence_hub(auth: bool) -> realtime_hub::SpawnedHub {
    start(|c| {
        if auth {
            c.auth.jwt_secret = JWT_SECRET.into();
        }
        c.rooms.declare.push(RoomDecl {
            presence: Some(true),
            ..RoomDecl::named("ops")
        });
    })
}

async fn session(hub: &realtime_hub::SpawnedHub, sub: &str) -> (Client, String) {
    session_at(&hub.ws("/ws"), sub).await
}

fn change(kind: &str, user: &str) -> Value {
    presence::change(kind, "ops", user)
}

#[tokio::test]
async fn joins_and_leaves_fire_once_per_user_and_answers_are_exact() {
    let hub = presence_hub(true);
    let (mut watcher, _) = session(&hub, "watcher").await;
    watcher.subscribe("ops").await;
    assert_eq!(watcher.recv().await, change("presence_join", "watcher"));

    let (mut a1, _) = session(&hub, "ann").await;
    let (mut a2, _) = session(&hub, "ann").await;
    let (mut b, b_id) = session(&hub, "bob").await;
    a1.subscribe("ops").await;
    assert_eq!(watcher.recv().await, change("presence_join", "ann"));
    a2.subscribe("ops").await; // ann's second session: no event
    b.subscribe("ops").await;
    assert_eq!(
        watcher.recv().await,
        change("presence_join", "bob"),
        "one join per user, not per session"
    );

    let answer = ask(&mut watcher, "ops", 1).await;
    let expected_users = json!([
        {"user": "ann", "sessions": 2},
        {"user": "bob", "sessions": 1},
        {"user": "watcher", "sessions": 1},
    ]);
    assert_eq!(
        answer,
        json!({"type": "presence", "room": "ops", "users": expected_users, "anonymous": 0, "ref": 1})
    );
    let (status, body) = get(&hub.http("/api/rooms/ops/presence")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"room": "ops", "users": expected_users, "anonymous": 0})
    );

    // Unsubscribe of one of ann's two sessions: no event; closing the
    // other: ann leaves. An admin disconnect of bob: bob leaves.
    a1.send(json!({"op": "unsubscribe", "room": "ops"})).await;
    a1.recv_until(|f| f["type"] == "unsubscribed").await;
    a2.close().await;
    assert_eq!(watcher.recv().await, change("presence_leave", "ann"));
    let (status, _) = post(
        &hub.http(&format!("/api/sockets/{b_id}/disconnect")),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(watcher.recv().await, change("presence_leave", "bob"));
    let answer = ask(&mut watcher, "ops", 2).await;
    assert_eq!(
        answer["users"],
        json!([{"user": "watcher", "sessions": 1}]),
        "{answer}"
    );
}

#[tokio::test]
async fn presence_needs_a_subscription_and_a_presence_room() {
    let hub = presence_hub(true);
    let (mut c, _) = session(&hub, "ann").await;
    let err = ask(&mut c, "ops", 1).await;
    assert_eq!(
        (&err["type"], &err["code"]),
        (&json!("error"), &json!("forbidden")),
        "{err}"
    );
    c.subscribe("alerts").await;
    let err = ask(&mut c, "alerts", 2).await;
    assert_eq!(err["code"], "bad_request", "not a presence room: {err}");
    let (status, body) = get(&hub.http("/api/rooms/alerts/presence")).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("bad_request")),
        "{body}"
    );
    let (status, body) = get(&hub.http("/api/rooms/nowhere/presence")).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(&hub.http("/api/rooms/ops/presence")).await;
    assert_eq!(
        (status, body),
        (200, json!({"room": "ops", "users": [], "anonymous": 0}))
    );
}

#[tokio::test]
async fn sessions_without_a_token_count_as_anonymous_with_no_events() {
    let hub = presence_hub(false);
    let (mut a, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (mut b, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    a.subscribe("ops").await;
    b.subscribe("ops").await;
    let answer = ask(&mut a, "ops", 1).await;
    assert_eq!(
        answer,
        json!({"type": "presence", "room": "ops", "users": [], "anonymous": 2, "ref": 1}),
        "no join frames came before the answer"
    );
    b.close().await;
    // The close reaches the registry after the client sees it: await it.
    let (status, body) = poll_http(&hub.http("/api/rooms/ops/presence"), WAIT, |s, b| {
        s == 200 && b["anonymous"] == 1
    })
    .await;
    assert_eq!((status, &body["anonymous"]), (200, &json!(1)), "{body}");
}
