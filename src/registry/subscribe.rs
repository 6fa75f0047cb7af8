//! Joining and leaving rooms (contract sections 4 and 5): `subscribe` answers
//! `subscribed` plus the replay and adds the subscriber in one registry turn,
//! so replay and live events meet with no gap and no duplicate. A room this
//! node does not mirror yet is opened from the engine first; whoever needs it
//! meanwhile waits here.

use std::net::IpAddr;
use std::sync::Arc;

use actix::{Context, Message};

use super::handle::Handles;

use super::{RegistryActor, Waiting};
use crate::auth::Claims;
use crate::error::HubError;
use crate::ids::SessionId;
use crate::outbound::Outbound;
use crate::protocol::frame_type;
use crate::protocol::{
    encode, is_system_room, ErrorCode, Ref, Revoked, RoomReply, Subscribed, STATUS_ROOM,
};
use crate::room::Room;

type Ctx = Context<RegistryActor>;

/// `subscribe` from a session; the reply goes to its queue.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Subscribe {
    /// The session.
    pub id: SessionId,
    /// Room (already checked against the session's claims).
    pub room: String,
    /// Resume point.
    pub since: Option<u64>,
    /// Epoch of the resume point.
    pub epoch: Option<String>,
    /// Echoed in the reply.
    pub reference: Option<Ref>,
}

/// `unsubscribe` from a session; the reply goes to its queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// The session.
    pub id: SessionId,
    pub room: String,
    /// Echoed in the reply.
    pub reference: Option<Ref>,
}

/// A session's token was refreshed (contract section 14): from now on it may
/// be only in the rooms `claims` allow. Rooms it is in that they do not are
/// left, each with `unsubscribed` and `reason: forbidden`; a subscribe still
/// waiting for its room is checked again when it is served.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reclaim {
    /// The session.
    pub id: SessionId,
    /// Its new claims.
    pub claims: Claims,
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

impl Handles<Reclaim> for RegistryActor {
    fn on(&mut self, msg: Reclaim, _: &mut Ctx) {
        let Some(entry) = self.sessions.get_mut(&msg.id) else {
            return;
        };
        let revoked: Vec<Arc<str>> = entry
            .rooms
            .iter()
            .filter(|room| !msg.claims.can_subscribe(room))
            .cloned()
            .collect();
        let ip = entry.ip;
        for room in &revoked {
            entry.rooms.remove(room);
        }
        entry.allowed = Some(Box::new(msg.claims));
        for room in revoked {
            if self.leave_room(msg.id, &room, ip) {
                let frame = encode(&Revoked {
                    kind: frame_type::UNSUBSCRIBED,
                    room: &room,
                    reason: ErrorCode::Forbidden,
                });
                self.reply(msg.id, frame);
            }
        }
    }
}

impl RegistryActor {
    /// `subscribe`; with `may_wait`, a room whose mirror trails the client's
    /// resume point is caught up from the engine first.
    pub(super) fn subscribe(&mut self, msg: &Subscribe, may_wait: bool) -> Result<(), HubError> {
        let entry = self
            .sessions
            .get(&msg.id)
            .ok_or_else(|| HubError::Internal("session not registered".into()))?;
        if msg.room == STATUS_ROOM {
            return self.subscribe_status(msg);
        }
        if is_system_room(&msg.room) {
            return Err(HubError::UnknownRoom(msg.room.clone()));
        }
        if entry
            .allowed
            .as_ref()
            .is_some_and(|claims| !claims.can_subscribe(&msg.room))
        {
            return Err(HubError::Forbidden(format!(
                "token does not allow subscribe to {}",
                msg.room
            )));
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
        let (queue, ip, user) = (entry.queue.clone(), entry.ip, entry.user.clone());
        self.check_ip_room_limit(ip, &msg.room)?;
        if self
            .wait_for_room(&msg.room, Waiting::Subscribe(msg.clone()))?
            .is_none()
        {
            return Ok(()); // answered once the room is opened
        }
        if may_wait && self.mirror_trails(msg)? {
            return Ok(()); // answered once the mirror has caught up
        }
        let room = self
            .rooms
            .get_mut(msg.room.as_str())
            .ok_or_else(|| HubError::Unavailable(format!("room {} is not open", msg.room)))?;
        let replay = room.replay(msg.since, msg.epoch.as_deref());
        let mut batch = Vec::with_capacity(replay.frames.len() + 1);
        batch.push(encode(&Subscribed {
            kind: frame_type::SUBSCRIBED,
            room: &room.name,
            epoch: &room.epoch,
            seq: room.seq,
            recovered: replay.recovered,
            state: replay.state,
            reference: msg.reference.as_ref(),
        }));
        batch.extend(replay.frames);
        if queue.push(Outbound::Batch(batch)).is_err() {
            return Ok(()); // the session is closing; nothing to join
        }
        room.subscribe(msg.id, queue);
        let joined = room
            .presence
            .as_mut()
            .and_then(|p| p.add_session(msg.id, user));
        let (name, dynamic) = (room.name.clone(), room.dynamic);
        if let Some(change) = joined {
            self.presence_changed(&name, change);
        }
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

    /// `subscribe` to `$status`: `subscribed`, then the current status.
    fn subscribe_status(&mut self, msg: &Subscribe) -> Result<(), HubError> {
        let Some(entry) = self.sessions.get_mut(&msg.id) else {
            return Err(HubError::Internal("session not registered".into()));
        };
        if entry.status {
            return Err(HubError::BadRequest(format!(
                "already subscribed to {STATUS_ROOM}"
            )));
        }
        entry.status = true;
        let queue = entry.queue.clone();
        let subscribed = encode(&Subscribed {
            kind: frame_type::SUBSCRIBED,
            room: STATUS_ROOM,
            epoch: "",
            seq: 0,
            recovered: false,
            state: None,
            reference: msg.reference.as_ref(),
        });
        // In first, so the status it is sent counts it.
        self.status_subscribers.insert(
            msg.id,
            super::StatusSubscriber {
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
        Ok(())
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
            kind: frame_type::UNSUBSCRIBED,
            room: &msg.room,
            reference: msg.reference.as_ref(),
        });
        self.reply(msg.id, frame);
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
    pub(super) fn leave_room(&mut self, id: SessionId, room: &str, ip: Option<IpAddr>) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        if !r.unsubscribe(id) {
            return false;
        }
        let left = r.presence.as_mut().and_then(|p| p.remove_session(id));
        if let Some(change) = left {
            let name = r.name.clone();
            self.presence_changed(&name, change);
        }
        let Some(r) = self.rooms.get_mut(room) else {
            return true;
        };
        self.changes += 1;
        if !r.dynamic {
            return true;
        }
        if r.subscriber_count() == 0 {
            self.idle.touch(&r.name);
        }
        if let Some(ip) = ip {
            if let Some(held) = self.ip_rooms.get_mut(&ip) {
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
        }
        true
    }

    /// The room's mirror, opened from the engine when this node has none:
    /// `Some(who)` back when it is there now, `None` when `who` waits for it.
    pub(super) fn wait_for_room(
        &mut self,
        name: &str,
        who: Waiting,
    ) -> Result<Option<Waiting>, HubError> {
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
        let dynamic = !self.is_declared(name);
        match self.engine.open(&room, &settings, dynamic)? {
            Some(state) => {
                let mirror = Room::mirror(name, settings, dynamic, state);
                if let Err(err) = self.insert_room(mirror) {
                    self.engine.close(&room, false);
                    return Err(err);
                }
                Ok(Some(who))
            }
            None => {
                self.waiting.insert(room, vec![who]);
                Ok(None)
            }
        }
    }

    /// A resume in the mirror's epoch but past its head: the client saw
    /// events (on another node) that this node's mirror has not received yet.
    /// The subscribe waits for the engine to catch the mirror up, instead of
    /// wrongly answering `recovered:false` with a head older than the one the
    /// client saw; when the engine cannot catch up now, the resume fails
    /// (`unavailable`) and the client tries again.
    fn mirror_trails(&mut self, msg: &Subscribe) -> Result<bool, HubError> {
        let (Some(since), Some(epoch)) = (msg.since, msg.epoch.as_deref()) else {
            return Ok(false);
        };
        let Some(room) = self.rooms.get(msg.room.as_str()) else {
            return Ok(false);
        };
        if &*room.epoch != epoch || since <= room.seq {
            return Ok(false);
        }
        let name = room.name.clone();
        if let Some(list) = self.waiting.get_mut(&name) {
            list.push(Waiting::Subscribe(msg.clone()));
            return Ok(true);
        }
        if !self.engine.catch_up(&name)? {
            return Ok(false);
        }
        self.waiting
            .insert(name, vec![Waiting::Subscribe(msg.clone())]);
        Ok(true)
    }

    /// Serves whoever waited for `room` (now open, or failed with `err`).
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
                (Waiting::Ahead, _) => {}
            }
        }
    }
}
