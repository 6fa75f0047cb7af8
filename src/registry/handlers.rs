//! What the registry does with each message, one `Handles` impl per message.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::Context;

use super::handle::Handles;
use super::messages::*;
use super::{RegistryActor, SessionEntry};
use crate::cluster::{Broker, ControlOp, PublishAnswer, PublishJob};
use crate::error::HubError;
use crate::ids::SessionId;
use crate::metrics;
use crate::outbound::Outbound;
use crate::protocol::{encode, timestamp_now, CloseCode, Published, UserFrame, STATUS_ROOM};

type Ctx = Context<RegistryActor>;

impl Handles<Register> for RegistryActor {
    fn on(&mut self, msg: Register, _: &mut Ctx) {
        let user: Option<Arc<str>> = msg.user.map(Arc::from);
        if let Some(u) = &user {
            self.users.entry(u.clone()).or_default().insert(msg.id);
        }
        *self.by_type.entry(msg.kind.clone()).or_insert(0) += 1;
        metrics::connections(self.type_label(&msg.kind)).increment(1.0);
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
            },
        );
        self.session_count.send_replace(self.sessions.len());
        self.changes += 1;
    }
}

impl Handles<Unregister> for RegistryActor {
    fn on(&mut self, msg: Unregister, _: &mut Ctx) {
        self.remove_session(msg.id);
    }
}

impl Handles<Subscribe> for RegistryActor {
    fn on(&mut self, msg: Subscribe, _: &mut Ctx) {
        if let Err(err) = self.subscribe(&msg, true) {
            self.reply_error(msg.id, &err, msg.reference.as_ref());
        }
    }
}

impl Handles<Unsubscribe> for RegistryActor {
    fn on(&mut self, msg: Unsubscribe, _: &mut Ctx) {
        if let Err(err) = self.unsubscribe(&msg) {
            self.reply_error(msg.id, &err, msg.reference.as_ref());
        }
    }
}

impl Handles<Publish> for RegistryActor {
    fn on(&mut self, mut msg: Publish, _: &mut Ctx) {
        if let Broker::Redis(broker) = &self.broker {
            let answer = match (&msg.origin, msg.reply.take()) {
                (Some(origin), _) => match self.sessions.get(&origin.id) {
                    Some(e) => PublishAnswer::Socket {
                        session: origin.id,
                        queue: e.queue.clone(),
                        reference: origin.reference.clone(),
                    },
                    None => return, // the publisher is gone
                },
                (None, Some(reply)) => PublishAnswer::Http(reply),
                (None, None) => return,
            };
            match self.prepare(&msg, broker) {
                Ok(item) => broker.publish(PublishJob {
                    items: vec![item],
                    answer,
                }),
                Err(err) => match answer {
                    PublishAnswer::Http(reply) => {
                        let _ = reply.send(Err(err));
                    }
                    _ => {
                        if let Some(origin) = &msg.origin {
                            self.reply_error(origin.id, &err, origin.reference.as_ref());
                        }
                    }
                },
            }
            return;
        }
        match self.accept(&msg) {
            Ok((room, event, ack)) => {
                let seq = ack.seq;
                // Answer first: the publisher's task is woken before the
                // subscribers' writers, and never waits for the fan-out.
                if let Some(reply) = msg.reply {
                    let _ = reply.send(Ok(ack));
                }
                if let Some(event) = event {
                    self.deliver(&room, &event);
                    metrics::publish_enqueued(msg.received);
                }
                if let Some(origin) = msg.origin {
                    let frame = encode(&Published {
                        kind: "published",
                        room: &room,
                        seq,
                        reference: origin.reference.as_ref(),
                    });
                    self.reply(origin.id, frame);
                }
            }
            Err(err) => {
                if let Some(origin) = &msg.origin {
                    self.reply_error(origin.id, &err, origin.reference.as_ref());
                }
                if let Some(reply) = msg.reply {
                    let _ = reply.send(Err(err));
                }
            }
        }
    }
}

impl Handles<PublishBatch> for RegistryActor {
    fn on(&mut self, msg: PublishBatch, _: &mut Ctx) {
        if let Broker::Redis(broker) = &self.broker {
            let mut items = Vec::with_capacity(msg.items.len());
            let slots = msg
                .items
                .iter()
                .map(|item| match self.prepare(item, broker) {
                    Ok(prepared) => {
                        items.push(prepared);
                        None
                    }
                    Err(err) => Some(Err(err)),
                })
                .collect();
            broker.publish(PublishJob {
                items,
                answer: PublishAnswer::Batch {
                    slots,
                    reply: msg.reply,
                },
            });
            return;
        }
        let mut accepted = Vec::with_capacity(msg.items.len());
        let results = msg
            .items
            .iter()
            .map(|item| {
                self.accept(item).map(|(room, event, ack)| {
                    accepted.push((room, event, item.received));
                    ack
                })
            })
            .collect();
        let _ = msg.reply.send(results);
        for (room, event, received) in accepted {
            if let Some(event) = event {
                self.deliver(&room, &event);
                metrics::publish_enqueued(received);
            }
        }
    }
}

impl Handles<PublishUser> for RegistryActor {
    fn on(&mut self, msg: PublishUser, _: &mut Ctx) -> Answer<usize> {
        let ts = timestamp_now();
        let frame = encode(&UserFrame {
            kind: &msg.kind,
            user: &msg.user,
            ts: &ts,
            data: &msg.data,
        });
        match &self.broker {
            Broker::InProcess => Answer::Now(Ok(self.to_user(&msg.user, &frame))),
            Broker::Redis(broker) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                broker.scatter(
                    ControlOp::UserEvent {
                        user: msg.user,
                        frame: frame.to_string(),
                    },
                    crate::cluster::Gathered::Count(tx),
                );
                Answer::Later(rx)
            }
        }
    }
}

impl RegistryActor {
    /// Queues `frame` for every session of `user` here; how many took it.
    fn to_user(&self, user: &str, frame: &bytestring::ByteString) -> usize {
        let Some(ids) = self.users.get(user) else {
            return 0;
        };
        ids.iter()
            .filter_map(|id| self.sessions.get(id))
            .filter(|e| e.queue.push(Outbound::Frame(frame.clone())).is_ok())
            .count()
    }

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

impl Handles<GetNodeRecord> for RegistryActor {
    fn on(&mut self, _: GetNodeRecord, _: &mut Ctx) -> super::NodeRecord {
        self.node_record()
    }
}

impl Handles<NodesView> for RegistryActor {
    fn on(&mut self, msg: NodesView, _: &mut Ctx) {
        let now = std::time::Instant::now();
        self.cluster_nodes = msg
            .nodes
            .into_iter()
            .map(|(id, record, ttl)| (id, (record, now + ttl)))
            .collect();
        self.changes += 1;
    }
}

impl Handles<RoomSynced> for RegistryActor {
    fn on(&mut self, msg: RoomSynced, _: &mut Ctx) {
        let name = msg.room.clone();
        match self.rooms.get_mut(&*name) {
            Some(room) => {
                let same = !msg.reset && *room.epoch == *msg.epoch && msg.seq >= room.seq;
                if !(same && self.apply_events(&name, msg.events.clone())) {
                    if let Some(room) = self.rooms.get_mut(&*name) {
                        log::warn!(
                            "cluster: room {name} resynced (epoch {} seq {} -> epoch {} seq {}); its subscribers start over",
                            room.epoch, room.seq, msg.epoch, msg.seq
                        );
                        room.reset(&msg.epoch, msg.seq, msg.events);
                    }
                    self.resubscribe_all(&name);
                }
            }
            None => {
                let Some(settings) = self.config.room_settings(&name) else {
                    return;
                };
                let room = crate::room::Room::mirror(
                    &name,
                    settings,
                    !self.is_declared(&name),
                    &msg.epoch,
                    msg.seq,
                    msg.events,
                );
                if let Err(err) = self.insert_room(room) {
                    if let Broker::Redis(b) = &self.broker {
                        b.untrack(name.clone());
                    }
                    self.release_waiting(&name, Some(&err));
                    return;
                }
            }
        }
        self.release_waiting(&name, None);
    }
}

impl Handles<RoomEvents> for RegistryActor {
    fn on(&mut self, msg: RoomEvents, _: &mut Ctx) {
        let Some(room) = self.rooms.get(&*msg.room) else {
            return; // evicted meanwhile
        };
        if *room.epoch == *msg.epoch && self.apply_events(&msg.room, msg.events) {
            return;
        }
        // The broker hands over in order, so this is a bug somewhere; a resync
        // repairs it rather than delivering out of order.
        log::error!(
            "cluster: room {} got events that do not follow its head; resyncing",
            msg.room
        );
        if let (Broker::Redis(b), Some(settings)) =
            (&self.broker, self.config.room_settings(&msg.room))
        {
            let _ = b.track(msg.room.clone(), &settings, !self.is_declared(&msg.room));
        }
    }
}

impl Handles<SocketPublished> for RegistryActor {
    fn on(&mut self, msg: SocketPublished, _: &mut Ctx) {
        let waits = self
            .rooms
            .get(&*msg.room)
            .is_some_and(|r| *r.epoch == *msg.epoch && r.seq < msg.seq);
        if waits {
            self.replies_after
                .entry(msg.room)
                .or_default()
                .push((msg.seq, msg.session, msg.frame));
        } else {
            self.reply(msg.session, msg.frame);
        }
    }
}

impl Handles<RoomCaughtUp> for RegistryActor {
    fn on(&mut self, msg: RoomCaughtUp, _: &mut Ctx) {
        self.release_waiting(&msg.room, None);
    }
}

impl Handles<SyncFailed> for RegistryActor {
    fn on(&mut self, msg: SyncFailed, _: &mut Ctx) {
        let err = HubError::Unavailable(format!(
            "room {} cannot be read from the cluster store: {}",
            msg.room, msg.error
        ));
        self.release_waiting(&msg.room, Some(&err));
    }
}

impl Handles<GetStatus> for RegistryActor {
    fn on(&mut self, _: GetStatus, _: &mut Ctx) -> actix_web::web::Bytes {
        self.status_snapshot().body.clone()
    }
}

impl Handles<ListSockets> for RegistryActor {
    fn on(&mut self, msg: ListSockets, _: &mut Ctx) -> Answer<Vec<SocketInfo>> {
        match &self.broker {
            Broker::InProcess => Answer::Now(Ok(self.sockets_here(msg.kind.as_deref()))),
            Broker::Redis(broker) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                broker.scatter(
                    ControlOp::ListSockets { kind: msg.kind },
                    crate::cluster::Gathered::Sockets(tx),
                );
                Answer::Later(rx)
            }
        }
    }
}

impl Handles<RemoteListSockets> for RegistryActor {
    fn on(&mut self, msg: RemoteListSockets, _: &mut Ctx) -> Vec<SocketInfo> {
        self.sockets_here(msg.kind.as_deref())
    }
}

impl RegistryActor {
    /// This node's sockets (of type `kind`), oldest first; in a cluster each
    /// names this node.
    fn sockets_here(&self, kind: Option<&str>) -> Vec<SocketInfo> {
        let node = self.broker.redis().map(|_| self.node.clone());
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

impl Handles<ListRooms> for RegistryActor {
    fn on(&mut self, _: ListRooms, _: &mut Ctx) -> actix_web::web::Bytes {
        // O(rooms), like the status: cached, and rebuilt at most a few times a second.
        let now = std::time::Instant::now();
        if let Some((version, built, body)) = &self.rooms_cache {
            let current = *version == self.changes
                && now.duration_since(*built) < super::status::MAX_STALENESS;
            if current || !self.rebuilds.1.take(now) {
                return body.clone();
            }
        }
        let body: actix_web::web::Bytes = serde_json::to_vec(&self.room_list())
            .unwrap_or_default()
            .into();
        self.rooms_cache = Some((self.changes, now, body.clone()));
        body
    }
}

impl RegistryActor {
    /// Every room with its order and subscribers, sorted by name.
    fn room_list(&self) -> Vec<RoomInfo> {
        // In a cluster, subscribers are counted on every node, as in /socket-status.
        let counts = self.status().counts.rooms;
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .values()
            .map(|r| RoomInfo {
                room: r.name.to_string(),
                subscribers: counts
                    .get(&*r.name)
                    .copied()
                    .unwrap_or_else(|| r.subscriber_count()),
                epoch: r.epoch.to_string(),
                seq: r.seq,
                history: r.history_len(),
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        rooms
    }
}

impl Handles<GetHistory> for RegistryActor {
    fn on(&mut self, msg: GetHistory, _: &mut Ctx) -> Answer<HistoryPage> {
        if self.config.room_settings(&msg.room).is_none() {
            return Answer::Now(Err(HubError::UnknownRoom(msg.room)));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let room = msg.room.clone();
        match self.wait_for_room(&room, super::Waiting::History(msg, tx)) {
            Err(e) => Answer::Now(Err(e)),
            Ok(None) => Answer::Later(rx),
            Ok(Some(super::Waiting::History(msg, _))) => Answer::Now(self.history_page(&msg)),
            Ok(Some(_)) => Answer::Now(Err(HubError::Internal("history wait lost".into()))),
        }
    }
}

impl Handles<Disconnect> for RegistryActor {
    fn on(&mut self, msg: Disconnect, _: &mut Ctx) -> Answer<usize> {
        if self.disconnect_here(&msg.id) {
            return Answer::Now(Ok(1));
        }
        match &self.broker {
            Broker::InProcess => Answer::Now(Err(HubError::UnknownSession(msg.id))),
            Broker::Redis(broker) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                broker.scatter(
                    ControlOp::Disconnect { session: msg.id },
                    crate::cluster::Gathered::Count(tx),
                );
                Answer::Later(rx)
            }
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
