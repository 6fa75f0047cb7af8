//! What the registry does with each message, one `Handles` impl per message.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::Context;

use super::handle::Handles;
use super::messages::*;
use super::{RegistryActor, SessionEntry, Status};
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
        self.sessions.insert(
            msg.id,
            SessionEntry {
                kind: msg.kind,
                user,
                remote: msg.remote,
                connected_at: chrono::Utc::now(),
                queue: msg.queue,
                stats: msg.stats,
                rooms: HashSet::new(),
                status: false,
            },
        );
        self.session_count.send_replace(self.sessions.len());
    }
}

impl Handles<Unregister> for RegistryActor {
    fn on(&mut self, msg: Unregister, _: &mut Ctx) {
        self.remove_session(msg.id);
    }
}

impl Handles<Subscribe> for RegistryActor {
    fn on(&mut self, msg: Subscribe, _: &mut Ctx) {
        if let Err(err) = self.subscribe(&msg) {
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
    fn on(&mut self, msg: Publish, _: &mut Ctx) {
        match self.accept(&msg) {
            Ok((room, event, ack)) => {
                let seq = ack.seq;
                // Answer first: the publisher's task is woken before the
                // subscribers' writers, and never waits for the fan-out.
                if let Some(reply) = msg.reply {
                    let _ = reply.send(Ok(ack));
                }
                self.deliver(&room, &event);
                metrics::publish_enqueued(msg.received);
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
            self.deliver(&room, &event);
            metrics::publish_enqueued(received);
        }
    }
}

impl Handles<PublishUser> for RegistryActor {
    fn on(&mut self, msg: PublishUser, _: &mut Ctx) -> usize {
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

impl Handles<GetStatus> for RegistryActor {
    fn on(&mut self, _: GetStatus, _: &mut Ctx) -> Status {
        self.status()
    }
}

impl Handles<ListSockets> for RegistryActor {
    fn on(&mut self, msg: ListSockets, _: &mut Ctx) -> Vec<SocketInfo> {
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
                    remote: e.remote.to_string(),
                    connected_at: e
                        .connected_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    last_seen: e.stats.last_seen(),
                    msgs_in: e.stats.msgs_in.load(Ordering::Relaxed),
                    msgs_out: e.stats.msgs_out.load(Ordering::Relaxed),
                    queued: e.queue.depth().frames,
                };
                (*id, info)
            })
            .collect();
        list.sort_by_key(|(id, _)| *id);
        list.into_iter().map(|(_, info)| info).collect()
    }
}

impl Handles<ListRooms> for RegistryActor {
    fn on(&mut self, _: ListRooms, _: &mut Ctx) -> Vec<RoomInfo> {
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
        rooms
    }
}

impl Handles<GetHistory> for RegistryActor {
    fn on(&mut self, msg: GetHistory, _: &mut Ctx) -> Result<HistoryPage, HubError> {
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

impl Handles<Disconnect> for RegistryActor {
    fn on(&mut self, msg: Disconnect, _: &mut Ctx) -> Result<(), HubError> {
        let entry = SessionId::parse(&msg.id)
            .and_then(|id| self.sessions.get(&id))
            .ok_or(HubError::UnknownSession(msg.id))?;
        entry.queue.close(CloseCode::AdminDisconnect, true);
        Ok(())
    }
}

impl Handles<Drain> for RegistryActor {
    fn on(&mut self, _: Drain, _: &mut Ctx) -> usize {
        self.draining.store(true, Ordering::Relaxed);
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
