//! Presence (contract section 13) helpers shared by the single-node and
//! cluster presence tests.

use serde_json::{json, Value};

use super::{token_for, Client};

/// A socket at `ws_url` (`ws://ADDR/ws`) with a token for `sub`, welcomed: the
/// client and its session id.
pub async fn session_at(ws_url: &str, sub: &str) -> (Client, String) {
    let token = token_for(sub, json!({}));
    let (c, welcome) = Client::connect_welcomed(&format!("{ws_url}?token={token}")).await;
    let id = welcome["session"].as_str().expect("session id").to_string();
    (c, id)
}

/// The `presence` answer for `room` (other frames read meanwhile are dropped).
pub async fn ask(c: &mut Client, room: &str, reference: u64) -> Value {
    ask_keeping(c, room, reference).await.0
}

/// The `presence` answer for `room`, and the frames read before it.
pub async fn ask_keeping(c: &mut Client, room: &str, reference: u64) -> (Value, Vec<Value>) {
    c.send(json!({"op": "presence", "room": room, "ref": reference}))
        .await;
    c.recv_until(|f| f["ref"] == reference).await
}

/// A `presence_join` / `presence_leave` frame of `user` in `room`.
pub fn change(kind: &str, room: &str, user: &str) -> Value {
    json!({"type": kind, "room": room, "user": user})
}
