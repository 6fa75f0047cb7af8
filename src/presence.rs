//! Presence (contract section 13): who is subscribed to a room, by user (the
//! token's `sub`), with each user's session count and a count of sessions
//! without a token. A room declared `presence = true` holds one [`Presence`];
//! the registry asks it on every join and leave and fans out the
//! `presence_join` / `presence_leave` it returns (first session in, last out).
//!
//! Joins and leaves are O(1) in the room's size (two hash maps). The answer to
//! `presence` is encoded once per change and shared by every asker until the
//! next change, so a room of 10,000 users is not listed again per request.

use std::collections::HashMap;
use std::sync::Arc;

use bytestring::ByteString;
use serde::Serialize;

use crate::ids::SessionId;
use crate::protocol::{encode, Ref};

/// One user in a presence answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The token's `sub`.
    pub user: String,
    /// Sessions of that user subscribed to the room.
    pub sessions: usize,
}

/// The body of `GET /api/rooms/{room}/presence`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PresenceBody {
    /// Room.
    pub room: String,
    /// The users, by name.
    pub users: Vec<Member>,
    /// Subscribed sessions without a token.
    pub anonymous: usize,
}

/// A room's members; see the module docs.
#[derive(Debug, Default)]
pub struct Presence {
    /// Each subscribed session's user (`None`: anonymous), so a leave needs
    /// only the session.
    sessions: HashMap<SessionId, Option<Arc<str>>>,
    /// Sessions per user.
    users: HashMap<Arc<str>, usize>,
    anonymous: usize,
    /// The encoded body, until the next change.
    body: Option<ByteString>,
}

impl Presence {
    /// `id` (of `user`) joined: the user, if this is its first session here.
    pub fn join(&mut self, id: SessionId, user: Option<Arc<str>>) -> Option<Arc<str>> {
        if self.sessions.contains_key(&id) {
            return None;
        }
        self.body = None;
        self.sessions.insert(id, user.clone());
        let Some(user) = user else {
            self.anonymous += 1;
            return None;
        };
        let count = self.users.entry(user.clone()).or_insert(0);
        *count += 1;
        (*count == 1).then_some(user)
    }

    /// `id` left: its user, if that was the user's last session here.
    pub fn leave(&mut self, id: SessionId) -> Option<Arc<str>> {
        let user = self.sessions.remove(&id)?;
        self.body = None;
        let Some(user) = user else {
            self.anonymous = self.anonymous.saturating_sub(1);
            return None;
        };
        let count = self.users.get_mut(&user)?;
        *count -= 1;
        if *count > 0 {
            return None;
        }
        self.users.remove(&user);
        Some(user)
    }

    /// The body (`{"room","users","anonymous"}`), encoded once per change.
    pub fn body(&mut self, room: &str) -> ByteString {
        if let Some(body) = &self.body {
            return body.clone();
        }
        let mut users: Vec<Member> = self
            .users
            .iter()
            .map(|(user, &sessions)| Member {
                user: user.to_string(),
                sessions,
            })
            .collect();
        users.sort_by(|a, b| a.user.cmp(&b.user));
        let body = encode(&PresenceBody {
            room: room.to_string(),
            users,
            anonymous: self.anonymous,
        });
        self.body = Some(body.clone());
        body
    }

    /// The `presence` frame answering a command with `reference`: the shared
    /// body with the type and the ref around it.
    pub fn answer(&mut self, room: &str, reference: Option<&Ref>) -> ByteString {
        let body = self.body(room);
        // `body` is a JSON object: `{` + fields + `}`.
        let fields = body.get(1..body.len().saturating_sub(1)).unwrap_or("");
        let mut frame = String::with_capacity(body.len() + 48);
        frame.push_str(r#"{"type":"presence","#);
        frame.push_str(fields);
        if let Some(r) = reference {
            frame.push_str(r#","ref":"#);
            frame.push_str(r.get());
        }
        frame.push('}');
        frame.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Option<Arc<str>> {
        Some(Arc::from(name))
    }

    #[test]
    fn join_and_leave_fire_once_per_user_not_per_session() {
        let mut p = Presence::default();
        let (a1, a2, b, anon) = (
            SessionId::next(),
            SessionId::next(),
            SessionId::next(),
            SessionId::next(),
        );
        assert_eq!(p.join(a1, user("ann")).as_deref(), Some("ann"));
        assert_eq!(p.join(a2, user("ann")), None, "second session of ann");
        assert_eq!(p.join(a2, user("ann")), None, "a repeated join counts once");
        assert_eq!(p.join(b, user("bob")).as_deref(), Some("bob"));
        assert_eq!(p.join(anon, None), None);
        let body: serde_json::Value = serde_json::from_str(&p.body("r")).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"room": "r", "users": [{"user": "ann", "sessions": 2}, {"user": "bob", "sessions": 1}], "anonymous": 1})
        );
        assert_eq!(p.leave(a1), None, "ann still has a session");
        assert_eq!(p.leave(a2).as_deref(), Some("ann"));
        assert_eq!(p.leave(a2), None, "a repeated leave counts once");
        assert_eq!(p.leave(anon), None);
        let frame: serde_json::Value = serde_json::from_str(&p.answer("r", None)).expect("json");
        assert_eq!(
            frame,
            serde_json::json!({"type": "presence", "room": "r", "users": [{"user": "bob", "sessions": 1}], "anonymous": 0})
        );
    }
}
