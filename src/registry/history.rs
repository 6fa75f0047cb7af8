//! Reading a room over HTTP — its history (`GET /api/rooms/{room}/history`,
//! the fallback for clients that cannot resume over the socket) or a keyed
//! room's state (`GET /api/rooms/{room}/state`) — from the room's mirror,
//! opened from the engine first when this node has none. Either is read in
//! one registry turn, so it is consistent at the head it names.

use actix::{Context, Message};
use bytestring::ByteString;
use serde::Serialize;

use super::handle::Handles;
use super::Waiting;
use super::{Answer, RegistryActor};
use crate::error::HubError;

/// A page of a room's history, or its state.
#[derive(Message)]
#[rtype(result = "Answer<HistoryPage>")]
pub struct GetHistory {
    pub room: String,
    /// What to read.
    pub read: Read,
}

/// What [`GetHistory`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// History events.
    After {
        /// Events after this seq.
        since: u64,
        /// At most this many.
        limit: usize,
    },
    /// A keyed room's state: the latest event of each live key.
    State,
}

/// History (or state) events as their encoded frames.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub room: String,
    pub epoch: String,
    /// Head seq.
    pub seq: u64,
    /// Encoded event frames, oldest first.
    pub events: Vec<ByteString>,
}

impl HistoryPage {
    /// The JSON body, splicing the stored frames in without re-encoding them.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Head<'a> {
            room: &'a str,
            epoch: &'a str,
            seq: u64,
        }
        let head = serde_json::to_string(&Head {
            room: &self.room,
            epoch: &self.epoch,
            seq: self.seq,
        })
        .unwrap_or_else(|_| "{}".to_string());
        let events_len: usize = self.events.iter().map(|e| e.len() + 1).sum();
        let mut out = String::with_capacity(head.len() + events_len + 16);
        out.push_str(&head[..head.len() - 1]);
        out.push_str(",\"events\":[");
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(e);
        }
        out.push_str("]}");
        out
    }
}

impl Handles<GetHistory> for RegistryActor {
    fn on(&mut self, msg: GetHistory, _: &mut Context<RegistryActor>) -> Answer<HistoryPage> {
        let Some(settings) = self.config.room_settings(&msg.room) else {
            return Answer::Now(Err(HubError::UnknownRoom(msg.room)));
        };
        if msg.read == Read::State && !settings.keyed {
            return Answer::Now(Err(HubError::BadRequest(format!(
                "room {} is not keyed: it has no state",
                msg.room
            ))));
        }
        // A dynamic room this node does not hold is not created by a read:
        // alone, this node has no history of it (every room it holds is
        // mirrored); in a cluster, other nodes may, so it is opened.
        if !self.rooms.contains_key(msg.room.as_str())
            && !self.is_declared(&msg.room)
            && !self.engine.is_cluster()
        {
            return Answer::Now(Ok(HistoryPage {
                room: msg.room,
                epoch: String::new(),
                seq: 0,
                events: Vec::new(),
            }));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let room = msg.room.clone();
        match self.wait_for_room(&room, Waiting::History(msg, tx)) {
            Err(e) => Answer::Now(Err(e)),
            Ok(None) => Answer::Later(rx),
            Ok(Some(Waiting::History(msg, _))) => Answer::Now(self.history_page(&msg)),
            Ok(Some(_)) => Answer::Now(Err(HubError::Internal("history wait lost".into()))),
        }
    }
}

impl RegistryActor {
    /// A history page (or the state) from the room as this node mirrors it.
    pub(super) fn history_page(&self, msg: &GetHistory) -> Result<HistoryPage, HubError> {
        let room = self
            .rooms
            .get(msg.room.as_str())
            .ok_or_else(|| HubError::Unavailable(format!("room {} is not open", msg.room)))?;
        let events = match msg.read {
            Read::After { since, limit } => room.frames_after(since, limit),
            Read::State => room.state_frames().unwrap_or_default(),
        };
        Ok(HistoryPage {
            room: room.name.to_string(),
            epoch: room.epoch.to_string(),
            seq: room.seq,
            events,
        })
    }
}
