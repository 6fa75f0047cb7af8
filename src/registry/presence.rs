//! Presence (contract section 13): the `presence` command, `GET
//! /api/rooms/{room}/presence`, and the join/leave frames every subscriber of
//! a presence room gets. Membership itself is [`crate::presence::Presence`],
//! kept in the room and changed where sessions join and leave it.

use actix::{Context, Message};
use bytestring::ByteString;

use super::handle::Handles;
use super::RegistryActor;
use crate::error::HubError;
use crate::ids::SessionId;
use crate::protocol::{encode, PresenceChange, Ref};

/// `presence` from a session subscribed to `room`; the answer goes to its queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AskPresence {
    /// The session.
    pub id: SessionId,
    /// Room.
    pub room: String,
    /// Echoed in the answer.
    pub reference: Option<Ref>,
}

/// `GET /api/rooms/{room}/presence`: the encoded body.
#[derive(Message)]
#[rtype(result = "Result<ByteString, HubError>")]
pub struct GetPresence {
    /// Room.
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
    /// Tells every subscriber of `room` that `user` joined or left
    /// (`kind`: `presence_join` or `presence_leave`).
    pub(super) fn presence_change(&mut self, room: &str, kind: &'static str, user: &str) {
        let frame = encode(&PresenceChange { kind, room, user });
        self.fan_out(room, &frame);
    }
}
