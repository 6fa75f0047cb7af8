//! The `RegistryActor`: the one owner of the hub's state — the socket table, the
//! rooms with their order and history, the per-type counters — and the router
//! of every room-scoped event.
//!
//! It runs on its own arbiter (thread). Sessions and HTTP handlers talk to it only
//! by message; it talks to sessions only through their bounded outbound queues,
//! with a non-blocking push, so it never waits on a socket. Because one actor
//! applies publishes and subscribes one after another, a subscriber's replay and
//! its live events meet with no gap and no duplicate.

mod handle;
mod handlers;
mod idle;
pub mod messages;
mod mirror;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context};
use bytestring::ByteString;
use tokio::sync::watch;

use crate::cluster::Broker;
use crate::config::Config;
use crate::error::HubError;
use crate::ids::SessionId;
use crate::outbound::{Outbound, OutboundQueue};
use crate::protocol::{
    self, encode, is_system_room, timestamp_now, ErrorFrame, Ref, RoomReply, StatusFrame,
    Subscribed, STATUS_ROOM, STATUS_UPDATE,
};
use crate::room::{Event, Room};
use crate::session_stats::SessionStats;
use idle::IdleRooms;
use mirror::Waiting;
use status::{RebuildBudget, StatusSnapshot};

pub use handle::{Busy, Enqueued, Handles, RegistryHandle};
pub use messages::*;
pub use status::{NodeRecord, Status, StatusCounts};

/// How often `$status` subscribers may get an update, at most.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

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
    /// Who orders rooms: this registry, or Redis.
    broker: Broker,
    /// Cluster rooms being read from Redis, and who waits for them.
    waiting: HashMap<Arc<str>, Vec<Waiting>>,
    /// Other nodes' records and when each expires.
    cluster_nodes: BTreeMap<String, (NodeRecord, Instant)>,
    /// Single node: keyed publishes already accepted.
    recent_keys: crate::idempotency::RecentKeys,
    /// Cluster: `published` replies waiting for their event's seq to be
    /// delivered here, per room: `(seq, publisher, reply)`.
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
    /// A registry with the declared rooms created, and a watch on its session count.
    pub fn new(
        config: Arc<Config>,
        node: String,
        draining: Arc<AtomicBool>,
        broker: Broker,
    ) -> (Self, watch::Receiver<usize>) {
        let mut rooms = HashMap::new();
        let mut ws_endpoints = BTreeMap::new();
        ws_endpoints.insert("connect".to_string(), "/ws".to_string());
        for decl in &config.rooms.declare {
            // In a cluster, declared rooms are mirrored once read from Redis.
            if let (Some(settings), Broker::InProcess) = (config.room_settings(&decl.name), &broker)
            {
                let room = Room::new(&decl.name, settings, false);
                rooms.insert(room.name.clone(), room);
            }
            ws_endpoints.insert(decl.name.clone(), format!("/ws/{}", decl.name));
        }
        if config.websocket.echo_endpoint {
            ws_endpoints.insert("echo".to_string(), "/ws/_echo".to_string());
        }
        let (session_count, watcher) = watch::channel(0);
        let recent_keys = crate::idempotency::RecentKeys::new(
            Duration::from_secs(config.rooms.idempotency_ttl_s),
            config.rooms.idempotency_keys_per_room,
        );
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
            broker,
            waiting: HashMap::new(),
            cluster_nodes: BTreeMap::new(),
            replies_after: HashMap::new(),
            recent_keys,
            idle: IdleRooms::default(),
            ip_rooms: HashMap::new(),
            changes: 0,
            status_cache: None,
            rooms_cache: None,
            rebuilds: (RebuildBudget::default(), RebuildBudget::default()),
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
            .config
            .rooms
            .declare
            .iter()
            .map(|d| (d.name.clone(), 0))
            .collect();
        // Dynamic rooms are listed busiest first up to a bound, so the body
        // (and every `$status` frame) stays small however many rooms exist.
        let mut dynamic = Vec::new();
        for r in self.rooms.values() {
            if r.dynamic {
                dynamic.push((r.subscriber_count(), &r.name));
            } else {
                rooms.insert(r.name.to_string(), r.subscriber_count());
            }
        }
        let listed = dynamic.len().min(status::MAX_LISTED_DYNAMIC);
        if listed < dynamic.len() {
            dynamic.select_nth_unstable_by(listed, |a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        }
        let rooms_omitted = dynamic.len() - listed;
        rooms.extend(
            dynamic
                .into_iter()
                .take(listed)
                .map(|(n, name)| (name.to_string(), n)),
        );
        rooms.insert(STATUS_ROOM.to_string(), self.status_subscribers.len());
        StatusCounts {
            active: !self.draining.load(Ordering::Relaxed),
            total_sockets: self.sessions.len(),
            sockets_by_type,
            rooms,
            rooms_omitted,
        }
    }

    /// The status; in a cluster, summed over every live node.
    fn status(&self) -> Status {
        let own = self.counts();
        let uptime_s = self.started.elapsed().as_secs();
        let (counts, nodes) = match &self.broker {
            Broker::InProcess => (own, None),
            Broker::Redis(_) => {
                let now = Instant::now();
                let mut total = own.clone();
                let mut nodes = BTreeMap::new();
                for (id, (record, expires)) in &self.cluster_nodes {
                    if *id != self.node && *expires > now {
                        total.add(&record.counts);
                        nodes.insert(id.clone(), record.clone());
                    }
                }
                nodes.insert(
                    self.node.clone(),
                    NodeRecord {
                        counts: own,
                        uptime_s,
                        instance: crate::ids::instance().to_string(),
                    },
                );
                (total, Some(nodes))
            }
        };
        Status {
            counts,
            timestamp: timestamp_now(),
            ws_endpoints: self.ws_endpoints.clone(),
            node: self.node.clone(),
            uptime_s,
            nodes,
        }
    }

    /// This node's own record, for the cluster heartbeat.
    fn node_record(&self) -> NodeRecord {
        NodeRecord {
            counts: self.counts(),
            uptime_s: self.started.elapsed().as_secs(),
            instance: crate::ids::instance().to_string(),
        }
    }

    /// The status body and `$status` frame: the cached ones while nothing
    /// changed (and for at most a second, so `timestamp` moves), rebuilt at most
    /// [`status::REBUILDS_PER_S`] times a second however many readers ask —
    /// building is O(rooms), so no client may make the registry do it per
    /// request.
    fn status_snapshot(&mut self) -> Arc<StatusSnapshot> {
        let now = Instant::now();
        if let Some(cached) = &self.status_cache {
            let current = cached.version == self.changes
                && now.duration_since(cached.built) < status::MAX_STALENESS;
            if current || !self.rebuilds.0.take(now) {
                return cached.clone();
            }
        }
        let status = self.status();
        let snapshot = Arc::new(StatusSnapshot {
            version: self.changes,
            built: now,
            fingerprint: status.counts.fingerprint(),
            body: serde_json::to_vec(&status).unwrap_or_default().into(),
            frame: encode(&StatusFrame {
                kind: STATUS_UPDATE,
                room: STATUS_ROOM,
                ts: &status.timestamp,
                data: &status,
            }),
        });
        self.status_cache = Some(snapshot.clone());
        snapshot
    }

    /// Pushes a `status_update` to each `$status` subscriber whose last view
    /// differs from the current counts (called at most once a second).
    fn push_status_if_changed(&mut self) {
        if self.status_subscribers.is_empty() {
            return;
        }
        let snapshot = self.status_snapshot();
        let now = snapshot.fingerprint;
        if self.status_subscribers.values().all(|s| s.seen == now) {
            return;
        }
        self.status_subscribers.retain(|_, s| {
            if s.seen == now {
                return true;
            }
            s.seen = now;
            s.queue
                .push(Outbound::Frame(snapshot.frame.clone()))
                .is_ok()
        });
    }

    /// The room, created on demand when the config allows it (single node).
    fn room_mut(&mut self, name: &str) -> Result<&mut Room, HubError> {
        if !self.rooms.contains_key(name) {
            let settings = self
                .config
                .room_settings(name)
                .ok_or_else(|| HubError::UnknownRoom(name.to_string()))?;
            let room = Room::new(name, settings, !self.is_declared(name));
            self.insert_room(room)?;
        }
        self.rooms
            .get_mut(name)
            .ok_or_else(|| HubError::Internal("room vanished".into()))
    }

    fn is_declared(&self, name: &str) -> bool {
        self.config.rooms.declare.iter().any(|d| d.name == name)
    }

    /// Adds a room, first evicting an idle dynamic one at the room limit.
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

    /// A history page from the room as this node holds it.
    fn history_page(&self, msg: &GetHistory) -> Result<HistoryPage, HubError> {
        if self.config.room_settings(&msg.room).is_none() {
            return Err(HubError::UnknownRoom(msg.room.clone()));
        }
        // A dynamic room nobody has used yet has an empty history: answer that
        // without creating it.
        let Some(room) = self.rooms.get(msg.room.as_str()) else {
            return Ok(HistoryPage {
                room: msg.room.clone(),
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

    /// Frees a slot by dropping the least recently active dynamic room that has
    /// no subscribers (its history goes, so a re-created room gets a new epoch).
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
        self.rooms.remove(&victim);
        self.changes += 1;
        self.release_replies(&victim, None);
        if let Broker::Redis(broker) = &self.broker {
            broker.untrack(victim);
        }
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
                kind: "error",
                code: err.code(),
                message: &message,
                reference,
            }),
        );
    }

    /// `subscribe`; with `may_wait`, a cluster room that is not mirrored yet,
    /// or whose mirror trails the client's resume point, is read from Redis first.
    fn subscribe(&mut self, msg: &Subscribe, may_wait: bool) -> Result<(), HubError> {
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
            // In first, so the status it is sent counts it.
            self.status_subscribers.insert(
                msg.id,
                StatusSubscriber {
                    queue: queue.clone(),
                    seen: 0,
                },
            );
            self.changes += 1;
            let snapshot = self.status_snapshot();
            if let Some(s) = self.status_subscribers.get_mut(&msg.id) {
                s.seen = snapshot.fingerprint;
            }
            let _ = queue.push(Outbound::Batch(vec![subscribed, snapshot.frame.clone()]));
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
        let per_session = self.config.websocket.max_rooms_per_session;
        if per_session > 0 && entry.rooms.len() >= per_session {
            return Err(HubError::LimitExceeded(format!(
                "a session may be in at most {per_session} rooms (websocket.max_rooms_per_session)"
            )));
        }
        let ip = entry.ip;
        self.check_ip_room_limit(ip, &msg.room)?;
        if may_wait {
            if self
                .wait_for_room(&msg.room, Waiting::Subscribe(msg.clone()))?
                .is_none()
            {
                return Ok(()); // answered once the room is read from Redis
            }
            if self.mirror_trails(msg) {
                return Ok(()); // answered once the mirror has caught up
            }
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
        let (name, dynamic) = (room.name.clone(), room.dynamic);
        self.idle.remove(&name);
        if let (true, Some(ip)) = (dynamic, ip) {
            *self
                .ip_rooms
                .entry(ip)
                .or_default()
                .entry(name.clone())
                .or_insert(0) += 1;
        }
        self.changes += 1;
        if let Some(e) = self.sessions.get_mut(&msg.id) {
            e.rooms.insert(name);
        }
        Ok(())
    }

    /// `rooms.max_rooms_per_ip`: the sessions of one client IP may together be
    /// in at most that many dynamic rooms, so a few sockets cannot hold every
    /// room slot and lock everyone else out of new rooms.
    fn check_ip_room_limit(&self, ip: Option<IpAddr>, room: &str) -> Result<(), HubError> {
        let limit = self.config.rooms.max_rooms_per_ip;
        let Some(ip) = ip else {
            return Ok(());
        };
        if limit == 0 || self.is_declared(room) {
            return Ok(());
        }
        match self.ip_rooms.get(&ip) {
            Some(held) if !held.contains_key(room) && held.len() >= limit => {
                Err(HubError::LimitExceeded(format!(
                    "the sessions of one address may be in at most {limit} dynamic rooms (rooms.max_rooms_per_ip)"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Takes `id` (whose address is `ip`) out of `room`, keeping the idle
    /// index and the per-IP counts; the session's own room set is the caller's.
    fn leave_room(&mut self, id: SessionId, room: &str, ip: Option<IpAddr>) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        if !r.unsubscribe(id) {
            return false;
        }
        self.changes += 1;
        if !r.dynamic {
            return true;
        }
        if r.subscriber_count() == 0 {
            self.idle.touch(&r.name);
        }
        if let Some(held) = ip.and_then(|ip| self.ip_rooms.get_mut(&ip).map(|h| (ip, h))) {
            let (ip, held) = held;
            if let Some(n) = held.get_mut(room) {
                *n -= 1;
                if *n == 0 {
                    held.remove(room);
                }
            }
            if held.is_empty() {
                self.ip_rooms.remove(&ip);
            }
        }
        true
    }

    fn unsubscribe(&mut self, msg: &Unsubscribe) -> Result<(), HubError> {
        let entry = self
            .sessions
            .get_mut(&msg.id)
            .ok_or_else(|| HubError::Internal("session not registered".into()))?;
        let was_in = if msg.room == STATUS_ROOM {
            let was = std::mem::replace(&mut entry.status, false)
                && self.status_subscribers.remove(&msg.id).is_some();
            self.changes += u64::from(was);
            was
        } else {
            let ip = entry.ip;
            entry.rooms.remove(msg.room.as_str()) && self.leave_room(msg.id, &msg.room, ip)
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

    /// Checks a publish and accepts it: the event gets the room's next seq
    /// and joins history. The fan-out is [`deliver`](Self::deliver), done after
    /// the publisher has its answer. A retry of a keyed publish gets the first
    /// one's ack and no event.
    fn accept(&mut self, msg: &Publish) -> Result<(Arc<str>, Option<Event>, PublishAck), HubError> {
        if is_system_room(&msg.room) {
            return Err(HubError::Forbidden(format!(
                "{} is written by the hub only",
                msg.room
            )));
        }
        protocol::check_event_type(&msg.kind).map_err(HubError::BadRequest)?;
        let room = self.room_mut(&msg.room)?;
        if msg.origin.is_some() && !room.settings.client_publish {
            return Err(HubError::PublishDisabled(msg.room.clone()));
        }
        let (name, epoch) = (room.name.clone(), room.epoch.clone());
        if let Some(key) = &msg.idempotency_key {
            if let Some(first) = self.recent_keys.get(&name, key) {
                if first.epoch == epoch {
                    let ack = PublishAck {
                        room: name.to_string(),
                        epoch: epoch.to_string(),
                        seq: first.seq,
                        delivered: 0,
                        duplicate: true,
                    };
                    return Ok((name, None, ack));
                }
            }
        }
        let room = self.room_mut(&msg.room)?;
        let ts = timestamp_now();
        let event = room.append(&msg.kind, &msg.data, &ts);
        if self.idle.contains(&name) {
            self.idle.touch(&name);
        }
        let room = self.room_mut(&msg.room)?;
        let ack = PublishAck {
            room: room.name.to_string(),
            epoch: room.epoch.to_string(),
            seq: event.seq,
            delivered: room.subscriber_count(),
            duplicate: false,
        };
        if let Some(key) = &msg.idempotency_key {
            let landed = crate::idempotency::Landed {
                epoch,
                seq: event.seq,
            };
            self.recent_keys.insert(name.clone(), key, landed);
        }
        Ok((name, Some(event), ack))
    }

    /// Queues an accepted event for every subscriber of its room; those that
    /// cannot take it are closing (4008) and leave the room now.
    fn deliver(&mut self, room: &str, event: &Event) {
        let Some(room) = self.rooms.get_mut(room) else {
            return;
        };
        let fan_out = room.fan_out(&event.frame);
        if fan_out.dropped.is_empty() {
            return;
        }
        let name = room.name.clone();
        for id in fan_out.dropped {
            let ip = self.sessions.get_mut(&id).and_then(|e| {
                e.rooms.remove(&name);
                e.ip
            });
            self.leave_room(id, &name, ip);
        }
    }

    /// The metric label of a socket type: dynamic rooms share one label.
    fn type_label<'a>(&self, kind: &'a str) -> &'a str {
        if kind == "connect" || kind == STATUS_ROOM || self.ws_endpoints.contains_key(kind) {
            kind
        } else {
            crate::metrics::DYNAMIC
        }
    }

    fn remove_session(&mut self, id: SessionId) {
        let Some(entry) = self.sessions.remove(&id) else {
            return;
        };
        for room in &entry.rooms {
            self.leave_room(id, room, entry.ip);
        }
        if entry.status {
            self.status_subscribers.remove(&id);
        }
        self.changes += 1;
        if let Some(user) = &entry.user {
            if let Some(set) = self.users.get_mut(user) {
                set.remove(&id);
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
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        metrics::gauge!(crate::metrics::ROOMS).set(self.rooms.len() as f64);
        // In a cluster, the declared rooms are mirrored from the start.
        let declared: Vec<String> = self
            .config
            .rooms
            .declare
            .iter()
            .map(|d| d.name.clone())
            .collect();
        for name in declared {
            if let Err(e) = self.wait_for_room(&name, Waiting::Nothing) {
                log::warn!("cluster: cannot mirror room {name}: {e}");
            }
        }
        // The mailbox keeps actix's bounded default for `send` (HTTP reads);
        // sessions `do_send` rate-limited commands, and publishes `do_send` with
        // a reply channel, so each HTTP request has at most one in flight.
        ctx.run_interval(STATUS_INTERVAL, |act, _| act.push_status_if_changed());
    }
}
