//! The admin API's side of the registry (contract section 6): the socket
//! list, admin disconnects and the drain, each answered by every node in a
//! cluster; and the liveness probe.

use std::sync::atomic::Ordering;

use actix::{Context, Message};
use bytestring::ByteString;

use super::handle::Handles;
use super::{Answer, RegistryActor};
use crate::engine::{ControlOp, Gathered};
use crate::error::HubError;
use crate::ids::SessionId;
use crate::protocol::{CloseCode, STATUS_ROOM};
use crate::session_stats::SocketInfo;

type Ctx = Context<RegistryActor>;

/// The admin socket list (of every node, in a cluster).
#[derive(Message)]
#[rtype(result = "Answer<Vec<SocketInfo>>")]
pub struct ListSockets {
    /// Only sockets of this type.
    pub kind: Option<String>,
}

/// Close one session with 4009 (on whichever node it is); answers how many
/// sessions were closed (0 or 1).
#[derive(Message)]
#[rtype(result = "Answer<usize>")]
pub struct Disconnect {
    /// Public session id.
    pub id: String,
}

/// Close every session with 1001; answers how many were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Drain;

/// Liveness probe: answered when the registry's mailbox is moving.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ping;

/// Another node's user event, for this node's sessions.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct RemoteUserEvent {
    /// The user.
    pub user: String,
    /// The encoded frame.
    pub frame: ByteString,
}

/// This node's sockets, for another node's list.
#[derive(Message)]
#[rtype(result = "Vec<SocketInfo>")]
pub struct RemoteListSockets {
    /// Only sockets of this type.
    pub kind: Option<String>,
}

/// Close this session if it is here; true if it was.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct RemoteDisconnect {
    /// Public session id.
    pub session: String,
}

impl Handles<ListSockets> for RegistryActor {
    fn on(&mut self, msg: ListSockets, _: &mut Ctx) -> Answer<Vec<SocketInfo>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let op = ControlOp::ListSockets {
            kind: msg.kind.clone(),
        };
        match self.engine.ask_all(op, Gathered::Sockets(tx)) {
            Ok(()) => Answer::Later(rx),
            Err(_) => Answer::Now(Ok(self.sockets_here(msg.kind.as_deref()))),
        }
    }
}

impl Handles<Disconnect> for RegistryActor {
    fn on(&mut self, msg: Disconnect, _: &mut Ctx) -> Answer<usize> {
        if self.disconnect_here(&msg.id) {
            return Answer::Now(Ok(1));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let op = ControlOp::Disconnect {
            session: msg.id.clone(),
        };
        match self.engine.ask_all(op, Gathered::Count(tx)) {
            Ok(()) => Answer::Later(rx),
            Err(_) => Answer::Now(Err(HubError::UnknownSession(msg.id))),
        }
    }
}

impl Handles<Drain> for RegistryActor {
    fn on(&mut self, _: Drain, _: &mut Ctx) -> usize {
        self.draining.store(true, Ordering::Relaxed);
        self.changes += 1;
        // Dashboards learn `active: false` before their sockets close.
        self.push_status_if_changed();
        for entry in self.sessions.values() {
            entry.queue.close(CloseCode::Draining, true);
        }
        self.sessions.len()
    }
}

impl Handles<Ping> for RegistryActor {
    fn on(&mut self, _: Ping, _: &mut Ctx) {}
}

impl Handles<RemoteUserEvent> for RegistryActor {
    fn on(&mut self, msg: RemoteUserEvent, _: &mut Ctx) -> usize {
        self.to_user(&msg.user, &msg.frame)
    }
}

impl Handles<RemoteDisconnect> for RegistryActor {
    fn on(&mut self, msg: RemoteDisconnect, _: &mut Ctx) -> bool {
        self.disconnect_here(&msg.session)
    }
}

impl Handles<RemoteListSockets> for RegistryActor {
    fn on(&mut self, msg: RemoteListSockets, _: &mut Ctx) -> Vec<SocketInfo> {
        self.sockets_here(msg.kind.as_deref())
    }
}

impl RegistryActor {
    /// Closes a session of this node with 4009; false if it is not here.
    fn disconnect_here(&self, id: &str) -> bool {
        match SessionId::parse(id).and_then(|id| self.sessions.get(&id)) {
            Some(entry) => {
                entry.queue.close(CloseCode::AdminDisconnect, true);
                true
            }
            None => false,
        }
    }

    /// This node's sockets (of type `kind`), oldest first; in a cluster each
    /// names this node.
    fn sockets_here(&self, kind: Option<&str>) -> Vec<SocketInfo> {
        let node = self.engine.is_cluster().then(|| self.node.clone());
        let mut list: Vec<(SessionId, SocketInfo)> = self
            .sessions
            .iter()
            .filter(|(_, e)| kind.is_none_or(|k| &*e.kind == k))
            .map(|(id, e)| {
                let mut rooms: Vec<String> = e.rooms.iter().map(|r| r.to_string()).collect();
                if e.status {
                    rooms.push(STATUS_ROOM.to_string());
                }
                rooms.sort();
                let info = SocketInfo {
                    id: id.to_string(),
                    kind: e.kind.to_string(),
                    user: e.user.as_deref().map(str::to_string),
                    rooms,
                    remote: e.remote.to_string(),
                    connected_at: e
                        .connected_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    last_seen: e.stats.last_seen(),
                    msgs_in: e.stats.msgs_in.load(Ordering::Relaxed),
                    msgs_out: e.stats.msgs_out.load(Ordering::Relaxed),
                    queued: e.queue.depth().frames,
                    node: node.clone(),
                };
                (*id, info)
            })
            .collect();
        list.sort_by_key(|(id, _)| *id);
        list.into_iter().map(|(_, info)| info).collect()
    }
}
