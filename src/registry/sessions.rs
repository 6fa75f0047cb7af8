//! Sessions joining and leaving the registry: a session registers when it
//! starts and unregisters when it stops; leaving is O(its rooms), never a scan
//! of every room.

use std::collections::HashSet;
use std::sync::Arc;

use actix::{Context, Message};

use super::handle::Handles;
use super::{RegistryActor, SessionEntry};
use crate::ids::SessionId;
use crate::outbound::OutboundQueue;
use crate::session_stats::SessionStats;

type Ctx = Context<RegistryActor>;

/// A session joined: the registry starts routing to its queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    /// The session.
    pub id: SessionId,
    /// Socket type: `connect` or the room of `/ws/{room}`.
    pub kind: Arc<str>,
    /// The token's `sub`, for user-targeted messages.
    pub user: Option<String>,
    /// Peer address, for the admin API (shared with the session).
    pub remote: Arc<str>,
    /// Where its frames go.
    pub queue: OutboundQueue,
    /// Its counters.
    pub stats: Arc<SessionStats>,
}

/// A session ended: forget it everywhere.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    /// The session.
    pub id: SessionId,
}

impl Handles<Register> for RegistryActor {
    fn on(&mut self, msg: Register, _: &mut Ctx) {
        let user: Option<Arc<str>> = msg.user.map(Arc::from);
        if let Some(u) = &user {
            self.users.entry(u.clone()).or_default().insert(msg.id);
        }
        *self.by_type.entry(msg.kind.clone()).or_insert(0) += 1;
        crate::metrics::connections(self.type_label(&msg.kind)).increment(1.0);
        let ip = msg
            .remote
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.ip().to_canonical());
        self.sessions.insert(
            msg.id,
            SessionEntry {
                kind: msg.kind,
                user,
                ip,
                remote: msg.remote,
                connected_at: chrono::Utc::now(),
                queue: msg.queue,
                stats: msg.stats,
                rooms: HashSet::new(),
                status: false,
                allowed: None,
            },
        );
        self.session_count.send_replace(self.sessions.len());
        self.changes += 1;
    }
}

impl Handles<Unregister> for RegistryActor {
    fn on(&mut self, msg: Unregister, _: &mut Ctx) {
        let Some(entry) = self.sessions.remove(&msg.id) else {
            return;
        };
        for room in &entry.rooms {
            self.leave_room(msg.id, room, entry.ip);
        }
        if entry.status {
            self.status_subscribers.remove(&msg.id);
        }
        if let Some(user) = &entry.user {
            if let Some(set) = self.users.get_mut(user) {
                set.remove(&msg.id);
                if set.is_empty() {
                    self.users.remove(user);
                }
            }
        }
        crate::metrics::connections(self.type_label(&entry.kind)).decrement(1.0);
        if let Some(n) = self.by_type.get_mut(&entry.kind) {
            *n -= 1;
            if *n == 0 {
                self.by_type.remove(&entry.kind);
            }
        }
        self.session_count.send_replace(self.sessions.len());
        self.changes += 1;
    }
}

impl RegistryActor {
    /// The metric label of a socket type: dynamic rooms share one label.
    fn type_label<'a>(&self, kind: &'a str) -> &'a str {
        if kind == "connect"
            || kind == crate::protocol::STATUS_ROOM
            || self.ws_endpoints.contains_key(kind)
        {
            kind
        } else {
            crate::metrics::DYNAMIC
        }
    }
}
