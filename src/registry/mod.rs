//! The `RegistryActor`: the one owner of the hub's state — the socket table,
//! the mirror of every room this node serves (order, recent history,
//! subscribers), the per-type counters — and the router of every room-scoped
//! event.
//!
//! It runs on its own arbiter (thread). Sessions and HTTP handlers talk to it
//! only by message; it talks to sessions only through their bounded outbound
//! queues, with a non-blocking push, so it never waits on a socket. Because one
//! actor applies committed events and subscribes one after another, a
//! subscriber's replay and its live events meet with no gap and no duplicate.
//!
//! What assigns seqs and keeps history is the [`Engine`] (memory, durable or
//! Redis), behind one seam: the registry never asks which one it has.
//!
//! The code is grouped by operation, each file with its messages, handlers
//! and logic: [`sessions`] (register/unregister), [`subscribe`] (join, leave,
//! rooms being opened), [`publish`] (check, engine, fan-out, answers),
//! [`history`], [`presence`], [`status`] (`/socket-status`, `$status`, `/api/rooms`),
//! [`admin`] (socket list, disconnect, drain, probe) and [`engine_events`]
//! (what engines report besides publish outcomes).

pub mod admin;
pub mod engine_events;
mod handle;
pub mod history;
mod idle;
pub mod presence;
pub mod publish;
pub mod sessions;
pub mod status;
pub mod subscribe;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context};
use bytestring::ByteString;
use tokio::sync::{oneshot, watch};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::HubError;
use crate::ids::SessionId;
use crate::outbound::{Outbound, OutboundQueue};
use crate::protocol::frame_type;
use crate::protocol::{encode, ErrorFrame, Ref};
use crate::room::Room;
use crate::session_stats::SessionStats;
use idle::IdleRooms;
use status::{RebuildBudget, StatusSnapshot, StatusSubscriber};

pub use admin::{
    Disconnect, Drain, ListSockets, Ping, RemoteDisconnect, RemoteListSockets, RemoteUserEvent,
};
pub use engine_events::{
    GetNodeRecord, NodesView, RoomCaughtUp, RoomEvents, RoomSynced, SyncFailed,
};
pub use handle::{Busy, Enqueued, Handles, RegistryHandle};
pub use history::{GetHistory, HistoryPage, Read};
pub use presence::{AskPresence, GetPresence, PresenceChanged};
pub use publish::{Publish, PublishBatch, PublishOrigin, PublishUser};
pub use sessions::{Register, Unregister};
pub use status::{GetStatus, ListRooms, NodeRecord, RoomInfo, Status, StatusCounts};
pub use subscribe::{Reclaim, Subscribe, Unsubscribe};

/// How often `$status` subscribers may get an update, at most.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// An answer the registry gives now, or later (after asking the engine or
/// the other nodes).
pub enum Answer<T> {
    /// Known at once.
    Now(Result<T, HubError>),
    /// Arrives on this channel.
    Later(tokio::sync::oneshot::Receiver<Result<T, HubError>>),
}

impl<T> Answer<T> {
    /// Waits for the answer.
    pub async fn get(self) -> Result<T, HubError> {
        match self {
            Answer::Now(r) => r,
            Answer::Later(rx) => rx
                .await
                .unwrap_or_else(|_| Err(HubError::Internal("answer dropped".into()))),
        }
    }
}

/// What the registry keeps per session.
struct SessionEntry {
    /// Socket type.
    kind: Arc<str>,
    /// The token's `sub`.
    user: Option<Arc<str>>,
    /// Peer address (shared with the session).
    remote: Arc<str>,
    /// The peer's IP, for the per-IP dynamic-room limit.
    ip: Option<IpAddr>,
    /// Connect time; formatted (RFC 3339) only when listed.
    connected_at: chrono::DateTime<chrono::Utc>,
    /// Where its frames go.
    queue: OutboundQueue,
    /// Its counters.
    stats: Arc<SessionStats>,
    /// Rooms it is in, so leaving is O(its rooms), never a scan of all rooms.
    rooms: HashSet<Arc<str>>,
    /// Whether it follows `$status`.
    status: bool,
    /// Set once a refreshed token narrowed what it may join: subscribes the
    /// session sent under its old claims are checked again here.
    allowed: Option<Box<crate::auth::Claims>>,
}

/// Someone waiting for a room to be opened (read from the engine).
enum Waiting {
    Subscribe(Subscribe),
    /// An HTTP history read.
    History(GetHistory, oneshot::Sender<Result<HistoryPage, HubError>>),
    /// Nobody (the room is opened ahead of use).
    Ahead,
}

/// The central actor; see the module docs.
pub struct RegistryActor {
    /// The validated configuration.
    config: Arc<Config>,
    node: String,
    /// Process start, for `uptime_s`.
    started: Instant,
    /// Set when draining: `active` turns false.
    draining: Arc<AtomicBool>,
    /// Every live session.
    sessions: HashMap<SessionId, SessionEntry>,
    /// Every room this node mirrors, declared and dynamic.
    rooms: HashMap<Arc<str>, Room>,
    /// User id to that user's sessions.
    users: HashMap<Arc<str>, HashSet<SessionId>>,
    /// Socket count per type, kept on register/unregister so status never scans.
    by_type: HashMap<Arc<str>, usize>,
    /// Sessions following `$status`.
    status_subscribers: HashMap<SessionId, StatusSubscriber>,
    /// Socket type to path, fixed at start.
    ws_endpoints: BTreeMap<String, String>,
    /// Live session count, watched by the drain.
    session_count: watch::Sender<usize>,
    /// What orders rooms and keeps their history.
    engine: Box<dyn Engine>,
    /// Rooms being opened from the engine, and who waits for them.
    waiting: HashMap<Arc<str>, Vec<Waiting>>,
    /// Other nodes' records and when each expires (cluster).
    cluster_nodes: BTreeMap<String, (NodeRecord, Instant)>,
    /// Socket publishers' `published` replies waiting for their event's seq
    /// to be delivered here, per room: `(seq, publisher, reply)`.
    replies_after: HashMap<Arc<str>, Vec<(u64, SessionId, ByteString)>>,
    /// Dynamic rooms without subscribers, in eviction order.
    idle: IdleRooms,
    /// Per client IP, the dynamic rooms its sessions are in and how many of its
    /// sessions are in each: `rooms.max_rooms_per_ip` bounds the map's size.
    ip_rooms: HashMap<IpAddr, HashMap<Arc<str>, u32>>,
    /// Bumped whenever a count in the status or the room list changes, so a
    /// cached answer knows it is out of date.
    changes: u64,
    /// The last status built, shared by `/socket-status` and `$status`.
    status_cache: Option<Arc<StatusSnapshot>>,
    /// The last `/api/rooms` body built: `(changes, built, body)`.
    rooms_cache: Option<(u64, Instant, actix_web::web::Bytes)>,
    /// How often each of the two may be rebuilt.
    rebuilds: (RebuildBudget, RebuildBudget),
}

impl RegistryActor {
    /// A registry over `engine`, and a watch on its session count.
    pub fn new(
        config: Arc<Config>,
        node: String,
        draining: Arc<AtomicBool>,
        engine: Box<dyn Engine>,
    ) -> (Self, watch::Receiver<usize>) {
        let mut ws_endpoints = BTreeMap::new();
        ws_endpoints.insert("connect".to_string(), "/ws".to_string());
        for decl in &config.rooms.declare {
            ws_endpoints.insert(decl.name.clone(), format!("/ws/{}", decl.name));
        }
        if config.websocket.echo_endpoint {
            ws_endpoints.insert("echo".to_string(), "/ws/_echo".to_string());
        }
        // Not a WebSocket, but the contract lists it with them (section 12).
        ws_endpoints.insert(crate::protocol::SSE_TYPE.to_string(), "/sse".to_string());
        let (session_count, watcher) = watch::channel(0);
        let registry = RegistryActor {
            config,
            node,
            started: Instant::now(),
            draining,
            sessions: HashMap::new(),
            rooms: HashMap::new(),
            users: HashMap::new(),
            by_type: HashMap::new(),
            status_subscribers: HashMap::new(),
            ws_endpoints,
            session_count,
            engine,
            waiting: HashMap::new(),
            cluster_nodes: BTreeMap::new(),
            replies_after: HashMap::new(),
            idle: IdleRooms::default(),
            ip_rooms: HashMap::new(),
            changes: 0,
            status_cache: None,
            rooms_cache: None,
            rebuilds: (RebuildBudget::default(), RebuildBudget::default()),
        };
        (registry, watcher)
    }

    fn is_declared(&self, name: &str) -> bool {
        self.config.rooms.declare.iter().any(|d| d.name == name)
    }

    /// Adds a room's mirror, first evicting an idle dynamic one at the room limit.
    fn insert_room(&mut self, room: Room) -> Result<(), HubError> {
        if self.rooms.len() >= self.config.rooms.max_rooms {
            self.evict_idle_room()?;
        }
        if room.dynamic && room.subscriber_count() == 0 {
            self.idle.touch(&room.name);
        }
        self.rooms.insert(room.name.clone(), room);
        self.changes += 1;
        metrics::gauge!(crate::metrics::ROOMS).set(self.rooms.len() as f64);
        Ok(())
    }

    /// Frees a slot by dropping the least recently active dynamic room that has
    /// no subscribers; the engine forgets it too (a re-created room gets a new
    /// epoch).
    fn evict_idle_room(&mut self) -> Result<(), HubError> {
        let victim = loop {
            let candidate = self.idle.pop_oldest().ok_or_else(|| {
                HubError::Unavailable(format!(
                    "room limit reached ({} rooms in use)",
                    self.config.rooms.max_rooms
                ))
            })?;
            // The index is kept on every join and leave; this check only
            // guards against a bug evicting a room someone is in.
            if self
                .rooms
                .get(&candidate)
                .is_some_and(|r| r.subscriber_count() == 0)
            {
                break candidate;
            }
        };
        if let Some(gone) = self.rooms.remove(&victim) {
            // Its members (other nodes' users) are no longer counted here.
            if let Some(p) = &gone.presence {
                gone.metrics.presence_users.decrement(p.users() as f64);
            }
        }
        self.changes += 1;
        self.release_replies(&victim, None);
        self.engine.close(&victim, true);
        metrics::gauge!(crate::metrics::ROOMS).set(self.rooms.len() as f64);
        Ok(())
    }

    fn reply(&self, id: SessionId, frame: ByteString) {
        if let Some(entry) = self.sessions.get(&id) {
            let _ = entry.queue.push(Outbound::Frame(frame));
        }
    }

    fn reply_error(&self, id: SessionId, err: &HubError, reference: Option<&Ref>) {
        crate::metrics::error_frame(err.code());
        let message = err.to_string();
        self.reply(
            id,
            encode(&ErrorFrame {
                kind: frame_type::ERROR,
                code: err.code(),
                message: &message,
                reference,
            }),
        );
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // What the engine kept (a durable store's rooms) is mirrored first.
        for (name, state) in self.engine.restored() {
            let Some(settings) = self.config.room_settings(&name) else {
                log::warn!("room {name} is in the store but no longer configured; left out");
                continue;
            };
            let dynamic = !self.is_declared(&name);
            if let Err(e) = self.insert_room(Room::mirror(&name, settings, dynamic, state)) {
                log::warn!("room {name} from the store not mirrored: {e}");
            }
        }
        // The declared rooms are opened from the start.
        let declared: Vec<String> = self
            .config
            .rooms
            .declare
            .iter()
            .map(|d| d.name.clone())
            .collect();
        for name in declared {
            if let Err(e) = self.wait_for_room(&name, Waiting::Ahead) {
                log::warn!("cannot open room {name}: {e}");
            }
        }
        metrics::gauge!(crate::metrics::ROOMS).set(self.rooms.len() as f64);
        ctx.run_interval(STATUS_INTERVAL, |act, _| act.push_status_if_changed());
    }
}
