//! Presence (contract section 13): the `presence` command, `GET
//! /api/rooms/{room}/presence`, and the join/leave frames every subscriber of
//! a presence room gets. Membership itself is [`crate::presence::Presence`],
//! kept in the room and changed where sessions join and leave it.

use std::sync::Arc;

use actix::{Context, Message};
use bytestring::ByteString;

use super::handle::Handles;
use super::RegistryActor;
use crate::error::HubError;
use crate::ids::SessionId;
use crate::presence::{Change, Transition};
use crate::protocol::frame_type;
use crate::protocol::{encode, PresenceFrame, Ref};

/// `presence` from a session subscribed to `room`; the answer goes to its queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AskPresence {
    /// The session.
    pub id: SessionId,
    pub room: String,
    /// Echoed in the answer.
    pub reference: Option<Ref>,
}

/// Changes to a presence room's members in the order the cluster's nodes
/// made them (the Redis engine's, every node's own included).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PresenceChanged {
    pub room: Arc<str>,
    /// The changes, in order.
    pub changes: Vec<Change>,
}

/// `GET /api/rooms/{room}/presence`: the encoded body.
#[derive(Message)]
#[rtype(result = "Result<ByteString, HubError>")]
pub struct GetPresence {
    pub room: String,
}

impl Handles<AskPresence> for RegistryActor {
    fn on(&mut self, msg: AskPresence, _: &mut Context<RegistryActor>) {
        let subscribed = self
            .sessions
            .get(&msg.id)
            .is_some_and(|e| e.rooms.contains(msg.room.as_str()));
        let answer = match self.rooms.get_mut(msg.room.as_str()) {
            _ if !subscribed => Err(HubError::Forbidden(format!(
                "subscribe to {} to see who else is in it",
                msg.room
            ))),
            Some(room) => match room.presence.as_mut() {
                Some(p) => Ok(p.answer(&msg.room, msg.reference.as_ref())),
                None => Err(not_a_presence_room(&msg.room)),
            },
            None => Err(HubError::Internal(format!("room {} is not open", msg.room))),
        };
        match answer {
            Ok(frame) => self.reply(msg.id, frame),
            Err(err) => self.reply_error(msg.id, &err, msg.reference.as_ref()),
        }
    }
}

impl Handles<GetPresence> for RegistryActor {
    fn on(
        &mut self,
        msg: GetPresence,
        _: &mut Context<RegistryActor>,
    ) -> Result<ByteString, HubError> {
        let settings = self
            .config
            .room_settings(&msg.room)
            .ok_or_else(|| HubError::UnknownRoom(msg.room.clone()))?;
        if !settings.presence {
            return Err(not_a_presence_room(&msg.room));
        }
        match self
            .rooms
            .get_mut(msg.room.as_str())
            .and_then(|r| r.presence.as_mut())
        {
            Some(p) => Ok(p.body(&msg.room)),
            // Not held on this node: nobody is subscribed.
            None => Ok(crate::presence::Presence::default().body(&msg.room)),
        }
    }
}

fn not_a_presence_room(room: &str) -> HubError {
    HubError::BadRequest(format!("room {room} does not track presence"))
}

impl RegistryActor {
    /// One of this node's sessions joined or left presence room `room`: the
    /// engine orders the change, which is counted now (one node) or when it
    /// comes back as [`PresenceChanged`] (cluster), the same way.
    pub(super) fn presence_changed(&mut self, room: &Arc<str>, change: Change) {
        if let Some(change) = self.engine.presence(room, change) {
            self.count_presence(room, &[change]);
        }
    }

    /// Counts changes to `room`'s members and tells every subscriber here of
    /// each user's first join and last leave.
    fn count_presence(&mut self, room: &str, changes: &[Change]) {
        let Some(r) = self.rooms.get_mut(room) else {
            return; // not mirrored here (any more): nobody to tell
        };
        let Some(p) = r.presence.as_mut() else {
            return;
        };
        let transitions: Vec<Transition> = changes.iter().filter_map(|c| p.count(c)).collect();
        let gauge = r.metrics.presence_users.clone();
        for t in transitions {
            let (kind, user) = match &t {
                Transition::Joined(user) => {
                    gauge.increment(1.0);
                    (frame_type::PRESENCE_JOIN, user)
                }
                Transition::Left(user) => {
                    gauge.decrement(1.0);
                    (frame_type::PRESENCE_LEAVE, user)
                }
            };
            let frame = encode(&PresenceFrame { kind, room, user });
            self.fan_out(room, &frame);
        }
    }
}

impl Handles<PresenceChanged> for RegistryActor {
    fn on(&mut self, msg: PresenceChanged, _: &mut Context<RegistryActor>) {
        self.count_presence(&msg.room, &msg.changes);
    }
}
