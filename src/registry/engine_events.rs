//! What an engine tells the registry besides publish outcomes: a room's state
//! read from it (`RoomSynced`, creating or resetting the mirror), the next
//! events of a mirrored room published elsewhere (`RoomEvents`), a catch-up
//! done or a read failed, and the other nodes' records.

use std::sync::Arc;

use actix::{Context, Message};

use super::handle::Handles;
use super::status::NodeRecord;
use super::RegistryActor;
use crate::engine::RoomState;
use crate::error::HubError;
use crate::event::Event;
use crate::outbound::Outbound;
use crate::protocol::frame_type;
use crate::protocol::{encode, Subscribed};
use crate::room::Room;

type Ctx = Context<RegistryActor>;

/// A room as the engine has it. Creates the mirror, or replaces it when
/// `reset` (history lost or too much missed): its subscribers then get
/// `subscribed` with `recovered:false` again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomSynced {
    pub room: Arc<str>,
    pub epoch: String,
    /// Its head seq.
    pub seq: u64,
    /// Its last events, oldest first.
    pub events: Vec<Event>,
    /// A keyed room's state at `seq` (empty for other rooms).
    pub state: Vec<Event>,
    /// The mirror is out of date and must be replaced.
    pub reset: bool,
}

/// The next events of a mirrored room, in seq order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomEvents {
    pub room: Arc<str>,
    /// Their epoch.
    pub epoch: String,
    /// The events, consecutive seqs.
    pub events: Vec<Event>,
}

/// A mirrored room has every event the engine had when asked (`RoomEvents`
/// before this one carried them); waiting resumes go on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomCaughtUp {
    pub room: Arc<str>,
}

/// A room could not be read; whoever waits for it gets `unavailable`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SyncFailed {
    pub room: Arc<str>,
    /// The Redis error, for the log and the waiters' 503.
    pub error: String,
}

/// Every live node's record and remaining lifetime (cluster).
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodesView {
    /// `(node id, record, time left before it expires)`.
    pub nodes: Vec<(String, NodeRecord, std::time::Duration)>,
}

/// This node's record, for its heartbeat (cluster).
#[derive(Message)]
#[rtype(result = "NodeRecord")]
pub struct GetNodeRecord;

impl Handles<RoomSynced> for RegistryActor {
    fn on(&mut self, msg: RoomSynced, _: &mut Ctx) {
        self.synced(msg);
    }
}

impl RegistryActor {
    fn synced(&mut self, msg: RoomSynced) {
        let name = msg.room.clone();
        match self.rooms.get_mut(&*name) {
            Some(room) => {
                let same = !msg.reset && *room.epoch == *msg.epoch && msg.seq >= room.seq;
                // The events read must take the mirror to the head read, or
                // it (and a keyed room's state) would trail what was read.
                let caught_up = same
                    && self.apply_events(&name, msg.events.clone())
                    && self.rooms.get(&*name).is_some_and(|r| r.seq == msg.seq);
                if !caught_up {
                    if let Some(room) = self.rooms.get_mut(&*name) {
                        log::warn!(
                            "room {name} resynced (epoch {} seq {} -> epoch {} seq {}); its subscribers start over",
                            room.epoch, room.seq, msg.epoch, msg.seq
                        );
                        room.reset(RoomState {
                            epoch: Arc::from(msg.epoch.as_str()),
                            seq: msg.seq,
                            events: msg.events,
                            state: msg.state,
                        });
                    }
                    self.resubscribe_all(&name);
                }
            }
            None => {
                let Some(settings) = self.config.room_settings(&name) else {
                    return;
                };
                let dynamic = !self.is_declared(&name);
                let state = RoomState {
                    epoch: Arc::from(msg.epoch.as_str()),
                    seq: msg.seq,
                    events: msg.events,
                    state: msg.state,
                };
                if let Err(err) = self.insert_room(Room::mirror(&name, settings, dynamic, state)) {
                    self.engine.close(&name, false);
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
        self.out_of_order(&msg.room);
    }
}

impl RegistryActor {
    /// An engine handed over events that do not follow the room's mirror
    /// (another epoch, or a gap). Engines hand over in order, so this is a bug
    /// somewhere; the room is read again and its subscribers start over
    /// rather than get events out of order or miss some unnoticed.
    pub(super) fn out_of_order(&mut self, room: &Arc<str>) {
        log::error!("room {room} got events that do not follow its head; resyncing");
        metrics::counter!(crate::metrics::OUT_OF_ORDER).increment(1);
        if let Some(settings) = self.config.room_settings(room) {
            let dynamic = !self.is_declared(room);
            // An engine that reads rooms later answers with `RoomSynced`.
            if let Ok(Some(state)) = self.engine.open(room, &settings, dynamic) {
                self.synced(RoomSynced {
                    room: room.clone(),
                    epoch: state.epoch.to_string(),
                    seq: state.seq,
                    events: state.events,
                    state: state.state,
                    reset: true,
                });
            }
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
            "room {} cannot be read from the store: {}",
            msg.room, msg.error
        ));
        self.release_waiting(&msg.room, Some(&err));
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

impl Handles<GetNodeRecord> for RegistryActor {
    fn on(&mut self, _: GetNodeRecord, _: &mut Ctx) -> NodeRecord {
        self.node_record()
    }
}

impl RegistryActor {
    /// After a resync that lost events: every subscriber of the room starts
    /// over, as after a failed resume (`subscribed`, `recovered:false`, the
    /// snapshot or, keyed, the state).
    pub(super) fn resubscribe_all(&mut self, name: &str) {
        self.release_replies(name, None);
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        let replay = room.replay(None, None);
        let snapshot = replay.frames;
        let subscribed = encode(&Subscribed {
            kind: frame_type::SUBSCRIBED,
            room: &room.name,
            epoch: &room.epoch,
            seq: room.seq,
            recovered: false,
            state: replay.state,
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
}
