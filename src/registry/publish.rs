//! Publishing: a room event from HTTP or a socket, checked once here, handed to
//! the engine, and — when the engine has committed it — applied to the room's
//! mirror, fanned out to its subscribers and answered. The same road for every
//! engine (contract sections 4–6, 10); user messages too.

use std::sync::Arc;
use std::time::Instant;

use actix::{Context, Message};
use bytestring::ByteString;

use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::handle::Handles;
use super::{Answer, RegistryActor};
use crate::engine::{
    Committed, CommittedEvent, ControlOp, Gathered, PublishAck, PublishAnswer, PublishItem,
    PublishJob, PublishReply,
};
use crate::error::HubError;
use crate::event::Event;
use crate::event::KeyChange;
use crate::ids::SessionId;
use crate::keyed::StateWrite;
use crate::outbound::Outbound;
use crate::protocol::frame_type;
use crate::protocol::{
    self, encode, is_system_room, timestamp_now, EventFrameParts, Ref, UserFrame,
};

type Ctx = Context<RegistryActor>;

/// Who published from a socket, so the reply reaches it.
#[derive(Debug, Clone)]
pub struct PublishOrigin {
    /// The publishing session.
    pub id: SessionId,
    /// Echoed in `published` or `error`.
    pub reference: Option<Ref>,
}

/// Publish an event into a room (HTTP or client publish).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub room: String,
    /// Event type (checked here).
    pub kind: String,
    /// The payload, checked as JSON and kept as its original bytes.
    pub data: Box<RawValue>,
    /// Set for client publish: the room must allow it, and the reply is queued.
    pub origin: Option<PublishOrigin>,
    /// Set for HTTP publish: where the answer goes.
    pub reply: Option<PublishReply>,
    /// When the publish entered the hub, for the enqueue-latency metric.
    pub received: Instant,
    /// The publisher's `Idempotency-Key` (checked by the caller): a retry with
    /// the same key gets the first publish's seq.
    pub idempotency_key: Option<String>,
    /// A keyed room's state key (checked here; contract section 11).
    pub key: Option<String>,
    /// The publish removes `key` from the room's state.
    pub delete: bool,
}

impl Publish {
    /// An HTTP publish and the receiver of its answer.
    pub fn http(
        room: String,
        kind: String,
        data: Box<RawValue>,
        idempotency_key: Option<String>,
    ) -> (Self, oneshot::Receiver<Result<PublishAck, HubError>>) {
        let (tx, rx) = oneshot::channel();
        let msg = Publish {
            room,
            kind,
            data,
            origin: None,
            reply: Some(tx),
            received: Instant::now(),
            idempotency_key,
            key: None,
            delete: false,
        };
        (msg, rx)
    }

    /// The same publish addressing a keyed room's state.
    pub fn with_key(mut self, key: Option<String>, delete: bool) -> Self {
        self.key = key;
        self.delete = delete;
        self
    }
}

/// Several publishes, in order, in one engine job; answered like [`Publish`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishBatch {
    /// The items (their own `reply` fields are not used).
    pub items: Vec<Publish>,
    /// One result per item, in order.
    pub reply: oneshot::Sender<Vec<Result<PublishAck, HubError>>>,
}

/// A message to every session of one user (on every node).
#[derive(Message)]
#[rtype(result = "Answer<usize>")]
pub struct PublishUser {
    /// The user (`sub`).
    pub user: String,
    /// Its event type (checked like a room event's).
    pub kind: String,
    /// The payload, kept as its original bytes.
    pub data: Box<RawValue>,
}

impl Handles<Publish> for RegistryActor {
    fn on(&mut self, mut msg: Publish, _: &mut Ctx) {
        let answer = match (&msg.origin, msg.reply.take()) {
            (Some(origin), _) => PublishAnswer::Socket {
                session: origin.id,
                reference: origin.reference.clone(),
            },
            (None, Some(reply)) => PublishAnswer::Http(reply),
            (None, None) => return,
        };
        match self.check(&msg) {
            Ok(item) => self.publish(PublishJob {
                items: vec![item],
                answer,
            }),
            Err(err) => self.answer(answer, vec![Err(err)]),
        }
    }
}

impl Handles<PublishBatch> for RegistryActor {
    fn on(&mut self, msg: PublishBatch, _: &mut Ctx) {
        let mut items = Vec::with_capacity(msg.items.len());
        let slots = msg
            .items
            .iter()
            .map(|p| match self.check(p) {
                Ok(item) => {
                    items.push(item);
                    None
                }
                Err(err) => Some(Err(err)),
            })
            .collect();
        self.publish(PublishJob {
            items,
            answer: PublishAnswer::Batch {
                slots,
                reply: msg.reply,
            },
        });
    }
}

impl Handles<Committed> for RegistryActor {
    fn on(&mut self, msg: Committed, _: &mut Ctx) {
        self.committed(msg);
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
        let (tx, rx) = oneshot::channel();
        let op = ControlOp::UserEvent {
            user: msg.user.clone(),
            frame: frame.to_string(),
        };
        match self.engine.ask_all(op, Gathered::Count(tx)) {
            Ok(()) => Answer::Later(rx),
            Err(_) => Answer::Now(Ok(self.to_user(&msg.user, &frame))),
        }
    }
}

impl RegistryActor {
    /// Every rule a publish must pass before it reaches the engine, in one
    /// place: the room may be published into, by this publisher, with this type.
    fn check(&mut self, msg: &Publish) -> Result<PublishItem, HubError> {
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
        protocol::check_state_key(msg.key.as_deref(), msg.delete).map_err(HubError::BadRequest)?;
        if msg.key.is_some() && !settings.keyed {
            return Err(HubError::BadRequest(format!(
                "room {} is not keyed: a publish into it takes no `key`",
                msg.room
            )));
        }
        // The room is opened here before the engine takes the event, so the
        // room limit refuses a publish rather than an event being committed
        // that this node could not mirror.
        self.wait_for_room(&msg.room, super::Waiting::Ahead)?;
        let room = self.rooms.get(msg.room.as_str());
        let ts = timestamp_now();
        let state = msg.key.as_deref().map(|key| StateWrite {
            change: KeyChange {
                key: Arc::from(key),
                delete: msg.delete,
            },
            max_keys: settings.max_keys,
        });
        let key = state.as_ref().map(|w| (&*w.change.key, w.change.delete));
        Ok(PublishItem {
            room: room.map_or_else(|| Arc::from(msg.room.as_str()), |r| r.name.clone()),
            parts: EventFrameParts::keyed(&msg.kind, &msg.room, &ts, key, &msg.data),
            history: settings.history,
            dynamic: !self.is_declared(&msg.room),
            delivered: room.map_or(0, |r| r.subscriber_count()),
            received: msg.received,
            idempotency_key: msg
                .idempotency_key
                .clone()
                .filter(|_| self.config.rooms.idempotency_ttl_s > 0),
            state,
        })
    }

    /// Hands a checked job to the engine; an outcome known at once is applied
    /// now, the others arrive as [`Committed`].
    fn publish(&mut self, job: PublishJob) {
        if job.items.is_empty() {
            return self.answer(job.answer, Vec::new());
        }
        if let Some(done) = self.engine.publish(job) {
            self.committed(done);
        }
    }

    /// The one place publishes are answered: the engine committed them, so
    /// their events join the mirrors and are fanned out, and their publishers
    /// learn the outcome.
    fn committed(&mut self, done: Committed) {
        let Committed {
            events,
            results,
            answer,
            received,
        } = done;
        // HTTP publishers are answered before the fan-out, so their task is
        // woken before the subscribers' writers and never waits for them.
        let rest = match answer {
            PublishAnswer::Http(reply) => {
                let _ = reply.send(first(results));
                None
            }
            other => Some((other, results)),
        };
        let delivered = !events.is_empty();
        for CommittedEvent { room, epoch, event } in events {
            self.apply_committed(room, &epoch, event);
        }
        if let Some((answer, results)) = rest {
            self.answer(answer, results);
        }
        if delivered {
            crate::metrics::publish_enqueued(received);
        }
    }

    /// Applies one committed event to its room's mirror (creating the mirror
    /// for a room first published into) and fans it out.
    fn apply_committed(&mut self, room: Arc<str>, epoch: &Arc<str>, event: Event) {
        if !self.rooms.contains_key(&room) {
            let Some(settings) = self.config.room_settings(&room) else {
                return;
            };
            if settings.keyed && event.seq > 1 {
                // Its state is the engine's to tell: the next subscribe or
                // publish opens the room from it.
                return;
            }
            let state = crate::engine::RoomState {
                epoch: epoch.clone(),
                seq: event.seq.saturating_sub(1),
                events: Vec::new(),
                state: Vec::new(),
            };
            let mirror =
                crate::room::Room::mirror(&room, settings, !self.is_declared(&room), state);
            if let Err(err) = self.insert_room(mirror) {
                // The engine has the event; this node cannot mirror the room
                // now. A later subscribe opens it from the engine.
                log::warn!("room {room}: not mirrored here: {err}");
                self.engine.close(&room, false);
                return;
            }
        }
        let follows = self.rooms.get(&*room).is_some_and(|r| r.epoch == *epoch);
        if !follows || !self.apply_events(&room, vec![event]) {
            self.out_of_order(&room);
        }
    }

    /// Answers publishers with their outcomes.
    fn answer(&mut self, answer: PublishAnswer, results: Vec<Result<PublishAck, HubError>>) {
        match answer {
            PublishAnswer::Http(reply) => {
                let _ = reply.send(first(results));
            }
            PublishAnswer::Socket { session, reference } => match first(results) {
                Ok(ack) => {
                    let frame = encode(&protocol::Published {
                        kind: frame_type::PUBLISHED,
                        room: &ack.room,
                        seq: ack.seq,
                        reference: reference.as_ref(),
                    });
                    self.reply_after(session, &ack, frame);
                }
                Err(err) => self.reply_error(session, &err, reference.as_ref()),
            },
            PublishAnswer::Batch { slots, reply } => {
                let mut results = results.into_iter();
                let filled = slots
                    .into_iter()
                    .map(|slot| slot.unwrap_or_else(|| results.next().unwrap_or_else(missing)))
                    .collect();
                let _ = reply.send(filled);
            }
        }
    }

    /// Queues a socket publisher's `published` once this node has delivered
    /// the event (at once unless another engine delivers it later), so the
    /// publisher sees its event before the reply.
    fn reply_after(&mut self, session: SessionId, ack: &PublishAck, frame: ByteString) {
        let waits = self
            .rooms
            .get(ack.room.as_str())
            .is_some_and(|r| *r.epoch == *ack.epoch && r.seq < ack.seq && !ack.duplicate);
        match self.rooms.get(ack.room.as_str()) {
            Some(room) if waits => {
                let name = room.name.clone();
                self.replies_after
                    .entry(name)
                    .or_default()
                    .push((ack.seq, session, frame));
            }
            _ => self.reply(session, frame),
        }
    }

    /// A room's next events in seq order: each joins the mirror and is fanned
    /// out; false if one does not follow the mirror's head (it needs a resync).
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
            if self.idle.contains(name) {
                let name = room.name.clone();
                self.idle.touch(&name);
            }
            self.deliver(name, &event);
            self.release_replies(name, Some(event.seq));
        }
        true
    }

    /// Queues an event for every subscriber of its room.
    fn deliver(&mut self, room: &str, event: &Event) {
        self.fan_out(room, &event.frame);
    }

    /// Queues `frame` for every subscriber of `room`; those that cannot take
    /// it are closing (4008) and leave the room now.
    pub(super) fn fan_out(&mut self, room: &str, frame: &ByteString) {
        let Some(room) = self.rooms.get_mut(room) else {
            return;
        };
        let fan_out = room.fan_out(frame);
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

    /// Queues `frame` for every session of `user` here; how many took it.
    pub(super) fn to_user(&self, user: &str, frame: &ByteString) -> usize {
        let Some(ids) = self.users.get(user) else {
            return 0;
        };
        ids.iter()
            .filter_map(|id| self.sessions.get(id))
            .filter(|e| e.queue.push(Outbound::Frame(frame.clone())).is_ok())
            .count()
    }
}

fn missing() -> Result<PublishAck, HubError> {
    Err(HubError::Internal("publish result missing".into()))
}

/// The outcome of a one-item job.
fn first(results: Vec<Result<PublishAck, HubError>>) -> Result<PublishAck, HubError> {
    results.into_iter().next().unwrap_or_else(missing)
}
