//! Presence (contract section 13): who is subscribed to a room, by user (the
//! token's `sub`), with each user's session count and a count of sessions
//! without a token. A room declared `presence = true` holds one [`Presence`];
//! the registry tells it of every session joining and leaving, has the
//! engine order the change (at once on one node; through Redis in a cluster,
//! so every node counts every node's changes in one order), counts it, and
//! fans out the `presence_join` / `presence_leave` that counting returns
//! (first session in, last out).
//!
//! Joins and leaves are O(1) in the room's size (two hash maps). The answer to
//! `presence` is encoded once per change and shared by every asker until the
//! next change, so a room of 10,000 users is not listed again per request.

use std::collections::HashMap;
use std::sync::Arc;

use bytestring::ByteString;
use serde::Serialize;

use crate::ids::SessionId;
use crate::protocol::frame_type;
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
    /// The presence room asked about.
    pub room: String,
    /// The users, by name.
    pub users: Vec<Member>,
    /// Subscribed sessions without a token.
    pub anonymous: usize,
}

/// One session more (`delta` 1) or less (-1) of `user` (`None`: without a
/// token) in a room; a cluster's snapshot difference may count several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The session's user.
    pub user: Option<Arc<str>>,
    /// Sessions added (negative: removed).
    pub delta: i64,
}

/// What a counted [`Change`] means to the room's subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The user's first session: `presence_join`.
    Joined(Arc<str>),
    /// The user's last session left: `presence_leave`.
    Left(Arc<str>),
}

/// A room's members; see the module docs. Two halves, because in a cluster
/// they differ: which of *this node's* sessions are in the room (to know whose
/// session is leaving), and the counts of every session in the room, changed
/// only by [`Presence::count`] — at once on one node, in the order every node
/// sees through Redis in a cluster.
#[derive(Debug, Default)]
pub struct Presence {
    /// This node's subscribed sessions and their users (`None`: anonymous).
    sessions: HashMap<SessionId, Option<Arc<str>>>,
    /// Sessions per user, everywhere.
    users: HashMap<Arc<str>, usize>,
    anonymous: usize,
    /// The encoded body, until the next change.
    body: Option<ByteString>,
}

impl Presence {
    /// Session `id` of `user` subscribed here: the change to count, unless it
    /// is counted already.
    pub fn add_session(&mut self, id: SessionId, user: Option<Arc<str>>) -> Option<Change> {
        if self.sessions.contains_key(&id) {
            return None;
        }
        self.sessions.insert(id, user.clone());
        Some(Change { user, delta: 1 })
    }

    /// Session `id` left: the change to count, if it was here.
    pub fn remove_session(&mut self, id: SessionId) -> Option<Change> {
        let user = self.sessions.remove(&id)?;
        Some(Change { user, delta: -1 })
    }

    /// Counts `change`: a join when it is the user's first session, a leave
    /// when it took the last one. O(1) in the room's size.
    pub fn count(&mut self, change: &Change) -> Option<Transition> {
        if change.delta == 0 {
            return None;
        }
        self.body = None;
        let Some(user) = &change.user else {
            self.anonymous = add(self.anonymous, change.delta);
            return None;
        };
        let before = self.users.get(user).copied().unwrap_or(0);
        let after = add(before, change.delta);
        if after == 0 {
            self.users.remove(user);
        } else {
            self.users.insert(user.clone(), after);
        }
        match (before, after) {
            (0, 1..) => Some(Transition::Joined(user.clone())),
            (1.., 0) => Some(Transition::Left(user.clone())),
            _ => None,
        }
    }

    /// Users present.
    pub fn users(&self) -> usize {
        self.users.len()
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
        frame.push_str(r#"{"type":""#);
        frame.push_str(frame_type::PRESENCE);
        frame.push_str(r#"","#);
        frame.push_str(fields);
        if let Some(r) = reference {
            frame.push_str(r#","ref":"#);
            frame.push_str(r.get());
        }
        frame.push('}');
        frame.into()
    }
}

/// `n + delta`, never below zero (a late leave of a node already counted out).
fn add(n: usize, delta: i64) -> usize {
    let delta_abs = usize::try_from(delta.unsigned_abs()).unwrap_or(usize::MAX);
    if delta < 0 {
        n.saturating_sub(delta_abs)
    } else {
        n.saturating_add(delta_abs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Option<Arc<str>> {
        Some(Arc::from(name))
    }

    /// A session joining or leaving on one node: counted at once.
    fn join(p: &mut Presence, id: SessionId, u: Option<Arc<str>>) -> Option<Transition> {
        let change = p.add_session(id, u)?;
        p.count(&change)
    }

    fn leave(p: &mut Presence, id: SessionId) -> Option<Transition> {
        let change = p.remove_session(id)?;
        p.count(&change)
    }

    fn joined(name: &str) -> Option<Transition> {
        Some(Transition::Joined(Arc::from(name)))
    }

    fn left(name: &str) -> Option<Transition> {
        Some(Transition::Left(Arc::from(name)))
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
        assert_eq!(join(&mut p, a1, user("ann")), joined("ann"));
        assert_eq!(join(&mut p, a2, user("ann")), None, "second session of ann");
        assert_eq!(
            join(&mut p, a2, user("ann")),
            None,
            "a repeated join counts once"
        );
        assert_eq!(join(&mut p, b, user("bob")), joined("bob"));
        assert_eq!(join(&mut p, anon, None), None);
        let body: serde_json::Value = serde_json::from_str(&p.body("r")).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"room": "r", "users": [{"user": "ann", "sessions": 2}, {"user": "bob", "sessions": 1}], "anonymous": 1})
        );
        assert_eq!(leave(&mut p, a1), None, "ann still has a session");
        assert_eq!(leave(&mut p, a2), left("ann"));
        assert_eq!(leave(&mut p, a2), None, "a repeated leave counts once");
        assert_eq!(leave(&mut p, anon), None);
        let frame: serde_json::Value = serde_json::from_str(&p.answer("r", None)).expect("json");
        assert_eq!(
            frame,
            serde_json::json!({"type": "presence", "room": "r", "users": [{"user": "bob", "sessions": 1}], "anonymous": 0})
        );
    }

    #[test]
    fn counts_from_other_nodes_move_the_same_totals() {
        let mut p = Presence::default();
        let here = SessionId::next();
        let ann = |delta| Change {
            user: user("ann"),
            delta,
        };
        // ann on another node (two sessions, counted as one snapshot change).
        assert_eq!(p.count(&ann(2)), joined("ann"));
        // ann here too: no second join.
        assert_eq!(join(&mut p, here, user("ann")), None);
        // The other node dies: its two sessions go, this one stays.
        assert_eq!(p.count(&ann(-2)), None);
        assert_eq!(leave(&mut p, here), left("ann"));
        // A late leave of a node counted out already never goes below zero.
        assert_eq!(p.count(&ann(-1)), None);
        assert_eq!(
            p.count(&Change {
                user: None,
                delta: -1
            }),
            None
        );
        let body: serde_json::Value = serde_json::from_str(&p.body("r")).expect("json");
        assert_eq!(body["users"], serde_json::json!([]));
        assert_eq!(body["anonymous"], 0);
    }
}
