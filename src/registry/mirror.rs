//! The registry's side of cluster mode: rooms mirrored from Redis, who waits
//! for a mirror to be read or to catch up, the in-order hand-over of their
//! events, and `published` replies held until their event is delivered here.
//!
//! Only used with the Redis broker; on a single node the registry owns its
//! rooms outright and none of this runs.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{GetHistory, HistoryPage, Publish, RegistryActor, Subscribe};
use crate::cluster::{Broker, PublishItem, RedisBroker};
use crate::error::HubError;
use crate::outbound::Outbound;
use crate::protocol::{self, encode, is_system_room, timestamp_now, Subscribed};
use crate::room::Event;

/// Someone waiting for a cluster room to be read from Redis.
pub(super) enum Waiting {
    /// A `subscribe`.
    Subscribe(Subscribe),
    /// An HTTP history read.
    History(GetHistory, oneshot::Sender<Result<HistoryPage, HubError>>),
    /// Nobody (the room is mirrored ahead of use).
    Nothing,
}

impl RegistryActor {
    /// In a cluster: true when `name` is not mirrored yet, in which case `who`
    /// waits while the room is read from Redis.
    pub(super) fn wait_for_room(
        &mut self,
        name: &str,
        who: Waiting,
    ) -> Result<Option<Waiting>, HubError> {
        let Broker::Redis(broker) = &self.broker else {
            return Ok(Some(who));
        };
        if self.rooms.contains_key(name) {
            return Ok(Some(who));
        }
        let settings = self
            .config
            .room_settings(name)
            .ok_or_else(|| HubError::UnknownRoom(name.to_string()))?;
        if let Some(list) = self.waiting.get_mut(name) {
            list.push(who);
            return Ok(None);
        }
        let room: Arc<str> = Arc::from(name);
        broker.track(room.clone(), &settings, !self.is_declared(name))?;
        self.waiting.insert(room, vec![who]);
        Ok(None)
    }
    /// In a cluster: a resume in the mirror's epoch but past its head means the
    /// client saw events (on another node) that this node's mirror has not
    /// received yet. The subscribe waits for the broker to catch the mirror up
    /// from Redis, instead of wrongly answering `recovered:false`.
    pub(super) fn mirror_trails(&mut self, msg: &Subscribe) -> bool {
        let Broker::Redis(broker) = &self.broker else {
            return false;
        };
        let (Some(since), Some(epoch)) = (msg.since, msg.epoch.as_deref()) else {
            return false;
        };
        let Some(room) = self.rooms.get(msg.room.as_str()) else {
            return false;
        };
        if &*room.epoch != epoch || since <= room.seq {
            return false;
        }
        let name = room.name.clone();
        if let Some(list) = self.waiting.get_mut(&name) {
            list.push(Waiting::Subscribe(msg.clone()));
            return true;
        }
        if broker.catch_up(name.clone()).is_err() {
            return false;
        }
        self.waiting
            .insert(name, vec![Waiting::Subscribe(msg.clone())]);
        true
    }
    /// Serves whoever waited for `room` (now mirrored, or failed with `err`).
    pub(super) fn release_waiting(&mut self, room: &str, err: Option<&HubError>) {
        let Some(list) = self.waiting.remove(room) else {
            return;
        };
        for who in list {
            match (who, err) {
                (Waiting::Subscribe(s), None) => {
                    if let Err(e) = self.subscribe(&s, false) {
                        self.reply_error(s.id, &e, s.reference.as_ref());
                    }
                }
                (Waiting::Subscribe(s), Some(e)) => self.reply_error(s.id, e, s.reference.as_ref()),
                (Waiting::History(h, tx), None) => {
                    let _ = tx.send(self.history_page(&h));
                }
                (Waiting::History(_, tx), Some(e)) => {
                    let _ = tx.send(Err(HubError::Unavailable(e.to_string())));
                }
                (Waiting::Nothing, _) => {}
            }
        }
    }
    /// A cluster room's events, handed over in seq order by the broker; false
    /// if one does not follow the mirror's head (the mirror needs a resync).
    pub(super) fn apply_events(&mut self, name: &str, events: Vec<Event>) -> bool {
        for event in events {
            let Some(room) = self.rooms.get_mut(name) else {
                return true;
            };
            if event.seq <= room.seq {
                continue;
            }
            if !room.apply(event.clone()) {
                return false;
            }
            self.deliver(name, &event);
            self.release_replies(name, Some(event.seq));
        }
        true
    }
    /// Queues the `published` replies of `room` up to `seq` (all of them with
    /// `None`: the room was resynced or dropped, there is nothing to wait for).
    pub(super) fn release_replies(&mut self, room: &str, seq: Option<u64>) {
        let Some(list) = self.replies_after.get_mut(room) else {
            return;
        };
        let mut ready = Vec::new();
        list.retain(|(s, id, frame)| {
            if seq.is_some_and(|head| *s > head) {
                return true;
            }
            ready.push((*id, frame.clone()));
            false
        });
        if list.is_empty() {
            self.replies_after.remove(room);
        }
        for (id, frame) in ready {
            self.reply(id, frame);
        }
    }
    /// After a resync that lost events: every subscriber of the room starts
    /// over, as after a failed resume (`subscribed`, `recovered:false`, snapshot).
    pub(super) fn resubscribe_all(&mut self, name: &str) {
        self.release_replies(name, None);
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        let (_, snapshot) = room.replay(None, None);
        let subscribed = encode(&Subscribed {
            kind: "subscribed",
            room: &room.name,
            epoch: &room.epoch,
            seq: room.seq,
            recovered: false,
            reference: None,
        });
        let mut gone = Vec::new();
        for (id, queue) in room.subscribers() {
            let mut batch = Vec::with_capacity(snapshot.len() + 1);
            batch.push(subscribed.clone());
            batch.extend(snapshot.iter().cloned());
            if queue.push(Outbound::Batch(batch)).is_err() {
                gone.push(id);
            }
        }
        let room_name = room.name.clone();
        for id in gone {
            let ip = self.sessions.get_mut(&id).and_then(|e| {
                e.rooms.remove(&room_name);
                e.ip
            });
            self.leave_room(id, &room_name, ip);
        }
    }
    /// Checks a publish and prepares it for Redis, which assigns its seq (cluster).
    pub(super) fn prepare(
        &self,
        msg: &Publish,
        broker: &RedisBroker,
    ) -> Result<PublishItem, HubError> {
        if is_system_room(&msg.room) {
            return Err(HubError::Forbidden(format!(
                "{} is written by the hub only",
                msg.room
            )));
        }
        protocol::check_event_type(&msg.kind).map_err(HubError::BadRequest)?;
        let settings = self
            .config
            .room_settings(&msg.room)
            .ok_or_else(|| HubError::UnknownRoom(msg.room.clone()))?;
        if msg.origin.is_some() && !settings.client_publish {
            return Err(HubError::PublishDisabled(msg.room.clone()));
        }
        let ts = timestamp_now();
        Ok(PublishItem {
            room: Arc::from(msg.room.as_str()),
            parts: protocol::EventFrameParts::new(&msg.kind, &msg.room, &ts, &msg.data),
            history: settings.history,
            ttl_ms: broker.ttl_ms(!self.is_declared(&msg.room)),
            delivered: self
                .rooms
                .get(msg.room.as_str())
                .map_or(0, |r| r.subscriber_count()),
            received: msg.received,
            idempotency: msg
                .idempotency_key
                .clone()
                .filter(|_| self.config.rooms.idempotency_ttl_s > 0)
                .map(|k| (k, self.config.rooms.idempotency_ttl_s.saturating_mul(1000))),
        })
    }
}
