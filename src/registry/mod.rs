//! The `RegistryActor`: the one owner of the hub's state — the socket table, the
//! rooms with their order and history, the per-type counters — and the router
//! of every room-scoped event.
//!
//! It runs on its own arbiter (thread). Sessions and HTTP handlers talk to it only
//! by message; it talks to sessions only through their bounded outbound queues,
//! with a non-blocking push, so it never waits on a socket. Because one actor
//! applies publishes and subscribes one after another, a subscriber's replay and
//! its live events meet with no gap and no duplicate.

pub mod messages;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, MessageResult};
use bytestring::ByteString;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::HubError;
use crate::ids::SessionId;
use crate::outbound::{Outbound, OutboundQueue};
use crate::protocol::{
    self, encode, is_system_room, timestamp_now, CloseCode, ErrorFrame, Published, Ref, RoomReply,
    StatusFrame, Subscribed, UserFrame, STATUS_ROOM, STATUS_UPDATE,
};
use crate::room::Room;
use crate::session_stats::SessionStats;

pub use messages::*;
pub use status::{Status, StatusCounts};

/// How often `$status` subscribers may get an update, at most.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// What the registry keeps per session.
struct SessionEntry {
    /// Socket type.
    kind: Arc<str>,
    /// The token's `sub`.
    user: Option<Arc<str>>,
    /// Peer address.
    remote: String,
    /// Connect time, RFC 3339.
    connected_at: String,
    /// Where its frames go.
    queue: OutboundQueue,
    /// Its counters.
    stats: Arc<SessionStats>,
    /// Rooms it is in, so leaving is O(its rooms), never a scan of all rooms.
    rooms: HashSet<Arc<str>>,
    /// Whether it follows `$status`.
    status: bool,
}

/// A `$status` follower and the counts it last saw, so it gets an update
/// exactly when its own view is out of date — also if it joined between two
/// broadcasts.
struct StatusSubscriber {
    /// Where its updates go.
    queue: OutboundQueue,
    /// Fingerprint of the counts it last received.
    seen: u64,
}

/// The central actor; see the module docs.
pub struct RegistryActor {
    /// The validated configuration.
    config: Arc<Config>,
    /// This node's id.
    node: String,
    /// Process start, for `uptime_s`.
    started: Instant,
    /// Set when draining: `active` turns false.
    draining: Arc<AtomicBool>,
    /// Every live session.
    sessions: HashMap<SessionId, SessionEntry>,
    /// Every room, declared and dynamic.
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
}

impl RegistryActor {
    /// A registry with the declared rooms created, and a watch on its session count.
    pub fn new(
        config: Arc<Config>,
        node: String,
        draining: Arc<AtomicBool>,
    ) -> (Self, watch::Receiver<usize>) {
        let mut rooms = HashMap::new();
        let mut ws_endpoints = BTreeMap::new();
        ws_endpoints.insert("connect".to_string(), "/ws".to_string());
        for decl in &config.rooms.declare {
            if let Some(settings) = config.room_settings(&decl.name) {
                let room = Room::new(&decl.name, settings, false);
                rooms.insert(room.name.clone(), room);
                ws_endpoints.insert(decl.name.clone(), format!("/ws/{}", decl.name));
            }
        }
        if config.websocket.echo_endpoint {
            ws_endpoints.insert("echo".to_string(), "/ws/_echo".to_string());
        }
        let (session_count, watcher) = watch::channel(0);
        let registry = RegistryActor {
            config,
            node,
            started: Instant::now(),
            draining,
            sessions: HashMap::new(),
            rooms,
            users: HashMap::new(),
            by_type: HashMap::new(),
            status_subscribers: HashMap::new(),
            ws_endpoints,
            session_count,
        };
        (registry, watcher)
    }

    fn counts(&self) -> StatusCounts {
        let mut sockets_by_type: BTreeMap<String, usize> = self
            .ws_endpoints
            .keys()
            .filter(|k| k.as_str() != "echo")
            .map(|k| (k.clone(), 0))
            .collect();
        for (kind, n) in &self.by_type {
            sockets_by_type.insert(kind.to_string(), *n);
        }
        let mut rooms: BTreeMap<String, usize> = self
            .rooms
            .values()
            .map(|r| (r.name.to_string(), r.subscriber_count()))
            .collect();
        rooms.insert(STATUS_ROOM.to_string(), self.status_subscribers.len());
        StatusCounts {
            active: !self.draining.load(Ordering::Relaxed),
            total_sockets: self.sessions.len(),
            sockets_by_type,
            rooms,
        }
    }

    fn status(&self) -> Status {
        self.status_with(0)
    }

    /// The status as it will be once `joining` more `$status` subscribers are in.
    fn status_with(&self, joining: usize) -> Status {
        let mut counts = self.counts();
        if let Some(n) = counts.rooms.get_mut(STATUS_ROOM) {
            *n += joining;
        }
        Status {
            counts,
            timestamp: timestamp_now(),
            ws_endpoints: self.ws_endpoints.clone(),
            node: self.node.clone(),
            uptime_s: self.started.elapsed().as_secs(),
        }
    }

    fn status_frame(status: &Status) -> ByteString {
        encode(&StatusFrame {
            kind: STATUS_UPDATE,
            room: STATUS_ROOM,
            ts: &status.timestamp,
            data: status,
        })
    }

    /// Pushes a `status_update` to each `$status` subscriber whose last view
    /// differs from the current counts (called at most once a second).
    fn push_status_if_changed(&mut self) {
        if self.status_subscribers.is_empty() {
            return;
        }
        let status = self.status();
        let now = status.counts.fingerprint();
        if self.status_subscribers.values().all(|s| s.seen == now) {
            return;
        }
        let frame = Self::status_frame(&status);
        self.status_subscribers.retain(|_, s| {
            if s.seen == now {
                return true;
            }
            s.seen = now;
            s.queue.push(Outbound::Frame(frame.clone())).is_ok()
        });
    }

    /// The room, created on demand when the config allows it.
    fn room_mut(&mut self, name: &str) -> Result<&mut Room, HubError> {
        if !self.rooms.contains_key(name) {
            let settings = self
                .config
                .room_settings(name)
                .ok_or_else(|| HubError::UnknownRoom(name.to_string()))?;
            if self.rooms.len() >= self.config.rooms.max_rooms {
                self.evict_idle_room()?;
            }
            let room = Room::new(name, settings, true);
            self.rooms.insert(room.name.clone(), room);
        }
        self.rooms
            .get_mut(name)
            .ok_or_else(|| HubError::Internal("room vanished".into()))
    }

    /// Frees a slot by dropping the least recently active dynamic room that has
    /// no subscribers (its history goes, so a re-created room gets a new epoch).
    fn evict_idle_room(&mut self) -> Result<(), HubError> {
        let victim = self
            .rooms
            .values()
            .filter(|r| r.dynamic && r.subscriber_count() == 0)
            .min_by_key(|r| r.last_active)
            .map(|r| r.name.clone())
            .ok_or_else(|| {
                HubError::Unavailable(format!(
                    "room limit reached ({} rooms in use)",
                    self.config.rooms.max_rooms
                ))
            })?;
        self.rooms.remove(&victim);
        Ok(())
    }

    fn reply(&self, id: SessionId, frame: ByteString) {
        if let Some(entry) = self.sessions.get(&id) {
            let _ = entry.queue.push(Outbound::Frame(frame));
        }
    }

    fn reply_error(&self, id: SessionId, err: &HubError, reference: Option<&Ref>) {
        let message = err.to_string();
        self.reply(
            id,
            encode(&ErrorFrame {
                kind: "error",
                code: err.code(),
                message: &message,
                reference,
            }),
        );
    }

    fn subscribe(&mut self, msg: &Subscribe) -> Result<(), HubError> {
        let entry = self
            .sessions
            .get(&msg.id)
            .ok_or_else(|| HubError::Internal("session not registered".into()))?;
        let queue = entry.queue.clone();
        if msg.room == STATUS_ROOM {
            if entry.status {
                return Err(HubError::BadRequest(format!(
                    "already subscribed to {STATUS_ROOM}"
                )));
            }
            let subscribed = encode(&Subscribed {
                kind: "subscribed",
                room: STATUS_ROOM,
                epoch: "",
                seq: 0,
                recovered: false,
                reference: msg.reference.as_ref(),
            });
            if let Some(e) = self.sessions.get_mut(&msg.id) {
                e.status = true;
            }
            let status = self.status_with(1);
            self.status_subscribers.insert(
                msg.id,
                StatusSubscriber {
                    queue: queue.clone(),
                    seen: status.counts.fingerprint(),
                },
            );
            let frame = Self::status_frame(&status);
            let _ = queue.push(Outbound::Batch(vec![subscribed, frame]));
            return Ok(());
        }
        if is_system_room(&msg.room) {
            return Err(HubError::UnknownRoom(msg.room.clone()));
        }
        if entry.rooms.contains(msg.room.as_str()) {
            return Err(HubError::BadRequest(format!(
                "already subscribed to {}",
                msg.room
            )));
        }
        let room = self.room_mut(&msg.room)?;
        let (recovered, replay) = room.replay(msg.since, msg.epoch.as_deref());
        let mut batch = Vec::with_capacity(replay.len() + 1);
        batch.push(encode(&Subscribed {
            kind: "subscribed",
            room: &room.name,
            epoch: &room.epoch,
            seq: room.seq,
            recovered,
            reference: msg.reference.as_ref(),
        }));
        batch.extend(replay);
        if queue.push(Outbound::Batch(batch)).is_err() {
            return Ok(()); // the session is closing; nothing to join
        }
        room.subscribe(msg.id, queue);
        let name = room.name.clone();
        if let Some(e) = self.sessions.get_mut(&msg.id) {
            e.rooms.insert(name);
        }
        Ok(())
    }

    fn unsubscribe(&mut self, msg: &Unsubscribe) -> Result<(), HubError> {
        let entry = self
            .sessions
            .get_mut(&msg.id)
            .ok_or_else(|| HubError::Internal("session not registered".into()))?;
        let was_in = if msg.room == STATUS_ROOM {
            std::mem::replace(&mut entry.status, false)
                && self.status_subscribers.remove(&msg.id).is_some()
        } else {
            entry.rooms.remove(msg.room.as_str())
                && self
                    .rooms
                    .get_mut(msg.room.as_str())
                    .is_some_and(|r| r.unsubscribe(msg.id))
        };
        if !was_in {
            return Err(HubError::BadRequest(format!(
                "not subscribed to {}",
                msg.room
            )));
        }
        let frame = encode(&RoomReply {
            kind: "unsubscribed",
            room: &msg.room,
            reference: msg.reference.as_ref(),
        });
        self.reply(msg.id, frame);
        Ok(())
    }

    fn publish(&mut self, msg: Publish) -> Result<PublishAck, HubError> {
        if is_system_room(&msg.room) {
            return Err(HubError::Forbidden(format!(
                "{} is written by the hub only",
                msg.room
            )));
        }
        protocol::check_event_type(&msg.kind).map_err(HubError::BadRequest)?;
        let room = self.room_mut(&msg.room)?;
        if msg.origin.is_some() && !room.settings.client_publish {
            return Err(HubError::PublishDisabled(msg.room));
        }
        let ts = timestamp_now();
        let event = room.append(&msg.kind, &msg.data, &ts);
        let fan_out = room.fan_out(&event.frame);
        let ack = PublishAck {
            room: room.name.to_string(),
            epoch: room.epoch.to_string(),
            seq: event.seq,
            delivered: fan_out.delivered,
        };
        if !fan_out.dropped.is_empty() {
            let name = room.name.clone();
            for id in &fan_out.dropped {
                room.unsubscribe(*id);
            }
            for id in fan_out.dropped {
                if let Some(e) = self.sessions.get_mut(&id) {
                    e.rooms.remove(&name);
                }
            }
        }
        if let Some(origin) = msg.origin {
            let frame = encode(&Published {
                kind: "published",
                room: &ack.room,
                seq: ack.seq,
                reference: origin.reference.as_ref(),
            });
            self.reply(origin.id, frame);
        }
        Ok(ack)
    }

    fn publish_from(&mut self, msg: Publish) -> Result<PublishAck, HubError> {
        let origin = msg.origin.clone();
        let result = self.publish(msg);
        if let (Err(err), Some(origin)) = (&result, origin) {
            self.reply_error(origin.id, err, origin.reference.as_ref());
        }
        result
    }

    fn remove_session(&mut self, id: SessionId) {
        let Some(entry) = self.sessions.remove(&id) else {
            return;
        };
        for room in &entry.rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                r.unsubscribe(id);
            }
        }
        if entry.status {
            self.status_subscribers.remove(&id);
        }
        if let Some(user) = &entry.user {
            if let Some(set) = self.users.get_mut(user) {
                set.remove(&id);
                if set.is_empty() {
                    self.users.remove(user);
                }
            }
        }
        if let Some(n) = self.by_type.get_mut(&entry.kind) {
            *n -= 1;
            if *n == 0 {
                self.by_type.remove(&entry.kind);
            }
        }
        self.session_count.send_replace(self.sessions.len());
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The mailbox keeps actix's bounded default: HTTP publishers that `send`
        // wait when it is full (backpressure), sessions `do_send` rate-limited
        // commands and membership changes.
        ctx.run_interval(STATUS_INTERVAL, |act, _| act.push_status_if_changed());
    }
}

impl Handler<Register> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) {
        let user: Option<Arc<str>> = msg.user.map(Arc::from);
        if let Some(u) = &user {
            self.users.entry(u.clone()).or_default().insert(msg.id);
        }
        *self.by_type.entry(msg.kind.clone()).or_insert(0) += 1;
        self.sessions.insert(
            msg.id,
            SessionEntry {
                kind: msg.kind,
                user,
                remote: msg.remote,
                connected_at: timestamp_now(),
                queue: msg.queue,
                stats: msg.stats,
                rooms: HashSet::new(),
                status: false,
            },
        );
        self.session_count.send_replace(self.sessions.len());
    }
}

impl Handler<Unregister> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        self.remove_session(msg.id);
    }
}

impl Handler<Subscribe> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        if let Err(err) = self.subscribe(&msg) {
            self.reply_error(msg.id, &err, msg.reference.as_ref());
        }
    }
}

impl Handler<Unsubscribe> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        if let Err(err) = self.unsubscribe(&msg) {
            self.reply_error(msg.id, &err, msg.reference.as_ref());
        }
    }
}

impl Handler<Publish> for RegistryActor {
    type Result = Result<PublishAck, HubError>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        self.publish_from(msg)
    }
}

impl Handler<PublishBatch> for RegistryActor {
    type Result = MessageResult<PublishBatch>;

    fn handle(&mut self, msg: PublishBatch, _: &mut Context<Self>) -> Self::Result {
        MessageResult(msg.0.into_iter().map(|p| self.publish_from(p)).collect())
    }
}

impl Handler<PublishUser> for RegistryActor {
    type Result = usize;

    fn handle(&mut self, msg: PublishUser, _: &mut Context<Self>) -> usize {
        let Some(ids) = self.users.get(msg.user.as_str()) else {
            return 0;
        };
        let ts = timestamp_now();
        let frame = encode(&UserFrame {
            kind: &msg.kind,
            user: &msg.user,
            ts: &ts,
            data: &msg.data,
        });
        ids.iter()
            .filter_map(|id| self.sessions.get(id))
            .filter(|e| e.queue.push(Outbound::Frame(frame.clone())).is_ok())
            .count()
    }
}

impl Handler<GetStatus> for RegistryActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

impl Handler<ListSockets> for RegistryActor {
    type Result = MessageResult<ListSockets>;

    fn handle(&mut self, msg: ListSockets, _: &mut Context<Self>) -> Self::Result {
        let mut list: Vec<(SessionId, SocketInfo)> = self
            .sessions
            .iter()
            .filter(|(_, e)| msg.kind.as_deref().is_none_or(|k| &*e.kind == k))
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
                    remote: e.remote.clone(),
                    connected_at: e.connected_at.clone(),
                    last_seen: e.stats.last_seen(),
                    msgs_in: e.stats.msgs_in.load(Ordering::Relaxed),
                    msgs_out: e.stats.msgs_out.load(Ordering::Relaxed),
                    queued: e.queue.depth().frames,
                };
                (*id, info)
            })
            .collect();
        list.sort_by_key(|(id, _)| *id);
        MessageResult(list.into_iter().map(|(_, info)| info).collect())
    }
}

impl Handler<ListRooms> for RegistryActor {
    type Result = MessageResult<ListRooms>;

    fn handle(&mut self, _: ListRooms, _: &mut Context<Self>) -> Self::Result {
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .values()
            .map(|r| RoomInfo {
                room: r.name.to_string(),
                subscribers: r.subscriber_count(),
                epoch: r.epoch.to_string(),
                seq: r.seq,
                history: r.history_len(),
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        MessageResult(rooms)
    }
}

impl Handler<GetHistory> for RegistryActor {
    type Result = Result<HistoryPage, HubError>;

    fn handle(&mut self, msg: GetHistory, _: &mut Context<Self>) -> Self::Result {
        if self.config.room_settings(&msg.room).is_none() {
            return Err(HubError::UnknownRoom(msg.room));
        }
        // A dynamic room nobody has used yet has an empty history: answer that
        // without creating it.
        let Some(room) = self.rooms.get(msg.room.as_str()) else {
            return Ok(HistoryPage {
                room: msg.room,
                epoch: String::new(),
                seq: 0,
                events: Vec::new(),
            });
        };
        Ok(HistoryPage {
            room: room.name.to_string(),
            epoch: room.epoch.to_string(),
            seq: room.seq,
            events: room.frames_after(msg.since, msg.limit),
        })
    }
}

impl Handler<Disconnect> for RegistryActor {
    type Result = Result<(), HubError>;

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) -> Self::Result {
        let entry = SessionId::parse(&msg.id)
            .and_then(|id| self.sessions.get(&id))
            .ok_or(HubError::UnknownSession(msg.id))?;
        entry.queue.close(CloseCode::AdminDisconnect, true);
        Ok(())
    }
}

impl Handler<Drain> for RegistryActor {
    type Result = usize;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> usize {
        self.draining.store(true, Ordering::Relaxed);
        // Dashboards learn `active: false` before their sockets close.
        self.push_status_if_changed();
        for entry in self.sessions.values() {
            entry.queue.close(CloseCode::Draining, true);
        }
        self.sessions.len()
    }
}

impl Handler<Ping> for RegistryActor {
    type Result = ();

    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
}
