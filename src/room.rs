//! One room: its order (`epoch`, `seq`), its bounded history and its subscribers.
//!
//! A room is owned by the registry and touched only from the registry's thread,
//! so appending an event, replaying history to a new subscriber and fanning out
//! are each atomic with respect to the others: that is the whole no-gap,
//! no-duplicate argument.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytestring::ByteString;
use serde_json::value::RawValue;

use crate::config::RoomSettings;
use crate::engine::RoomState;
use crate::event::Event;
use crate::ids::{new_epoch, SessionId};
use crate::keyed::KeyedState;
use crate::metrics::RoomMetrics;
use crate::outbound::{Outbound, OutboundQueue, PushError};
use crate::protocol::EventFrameParts;

/// What a subscriber gets before live events.
#[derive(Debug, PartialEq)]
pub struct Replay {
    /// Every event after the resume point follows.
    pub recovered: bool,
    /// A keyed room's state follows (this many frames) instead of a snapshot.
    pub state: Option<usize>,
    /// The frames, oldest first.
    pub frames: Vec<ByteString>,
}

/// The outcome of a fan-out.
#[derive(Debug, Default)]
pub struct FanOut {
    /// Sessions the event was queued for.
    pub delivered: usize,
    /// Sessions that could not take it (now closing); to be dropped from rooms.
    pub dropped: Vec<SessionId>,
}

/// A room and everything the hub knows about it.
#[derive(Debug)]
pub struct Room {
    /// The room's name, shared with the sessions' room sets.
    pub name: Arc<str>,
    /// Changes whenever history is lost: on a single node each time the room is
    /// created; in a cluster when Redis loses the room.
    pub epoch: Arc<str>,
    /// The last seq given out; 0 for an empty room.
    pub seq: u64,
    /// The last `settings.history` events, oldest first, at most
    /// `settings.history_bytes` of frames (the newest is always kept).
    history: VecDeque<Event>,
    /// Bytes of the frames in `history`.
    history_bytes: usize,
    /// A keyed room's state: the latest event of every key (None when the
    /// room is not keyed).
    state: Option<KeyedState>,
    /// History size, snapshot size, client publish, keyed.
    pub settings: RoomSettings,
    /// Created on demand (may be evicted when idle) rather than declared.
    pub dynamic: bool,
    /// Subscribers and the queues their events go to.
    subscribers: HashMap<SessionId, OutboundQueue>,
    /// A presence room's members (None for other rooms).
    pub presence: Option<crate::presence::Presence>,
    /// Its published / delivered / subscriber metrics.
    pub metrics: RoomMetrics,
}

impl Room {
    /// A new, empty room with a fresh epoch.
    pub fn new(name: &str, settings: RoomSettings, dynamic: bool) -> Self {
        Room {
            name: Arc::from(name),
            epoch: Arc::from(new_epoch()),
            seq: 0,
            history: VecDeque::new(),
            history_bytes: 0,
            state: settings.keyed.then(KeyedState::default),
            settings,
            dynamic,
            subscribers: HashMap::new(),
            presence: settings.presence.then(crate::presence::Presence::default),
            metrics: RoomMetrics::new(name, dynamic),
        }
    }

    /// A room mirroring an engine's copy: its epoch, head, last events and
    /// (keyed) state.
    pub fn mirror(name: &str, settings: RoomSettings, dynamic: bool, state: RoomState) -> Self {
        let mut room = Room::new(name, settings, dynamic);
        room.reset(state);
        room
    }

    /// Replaces order, history and state with the engine's (after a
    /// resync); the subscribers stay.
    pub fn reset(&mut self, copy: RoomState) {
        self.epoch = copy.epoch;
        self.seq = copy.seq;
        self.history.clear();
        self.history_bytes = 0;
        for event in copy.events {
            self.keep(event);
        }
        if self.state.is_some() {
            self.state = Some(KeyedState::from_events(copy.state));
        }
    }

    /// A keyed room's state: the latest frame of each live key, in seq
    /// order; `None` for a room that is not keyed.
    pub fn state_frames(&self) -> Option<Vec<ByteString>> {
        self.state.as_ref().map(KeyedState::frames)
    }

    /// A keyed room's state as events (`None` for a room that is not keyed).
    pub fn state_events(&self) -> Option<Vec<Event>> {
        self.state.as_ref().map(KeyedState::events)
    }

    /// Number of subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// Events held in history.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Whether `id` is subscribed.
    pub fn has_subscriber(&self, id: SessionId) -> bool {
        self.subscribers.contains_key(&id)
    }

    /// Gives the event the next seq, encodes it once and keeps it in history.
    pub fn append(&mut self, kind: &str, data: &RawValue, ts: &str) -> Event {
        let frame = EventFrameParts::new(kind, &self.name, ts, data).with_seq(self.seq + 1);
        let event = Event::plain(self.seq + 1, frame);
        self.push(event.clone());
        event
    }

    /// Takes an event whose seq was assigned elsewhere (Redis): it must be the
    /// next one. Answers false, changing nothing, for any other seq.
    pub fn apply(&mut self, event: Event) -> bool {
        if event.seq != self.seq + 1 {
            return false;
        }
        self.push(event);
        true
    }

    fn push(&mut self, event: Event) {
        self.seq = event.seq;
        self.metrics.published.increment(1);
        if let Some(state) = &mut self.state {
            state.apply(&event);
        }
        self.keep(event);
    }

    /// Adds an event to history, dropping the oldest past either bound.
    fn keep(&mut self, event: Event) {
        if self.settings.history == 0 {
            return;
        }
        self.history_bytes += event.frame.len();
        self.history.push_back(event);
        while self.history.len() > self.settings.history
            || (self.history_bytes > self.settings.history_bytes && self.history.len() > 1)
        {
            match self.history.pop_front() {
                Some(old) => self.history_bytes -= old.frame.len(),
                None => break,
            }
        }
    }

    /// Bytes of frames held in history.
    pub fn history_size(&self) -> usize {
        self.history_bytes
    }

    /// Queues `frame` for every subscriber, never waiting on any.
    pub fn fan_out(&self, frame: &ByteString) -> FanOut {
        let mut out = FanOut::default();
        for (id, queue) in &self.subscribers {
            match queue.push(Outbound::Frame(frame.clone())) {
                Ok(()) => out.delivered += 1,
                Err(PushError::SlowConsumer | PushError::Closed) => out.dropped.push(*id),
            }
        }
        self.metrics.delivered.increment(out.delivered as u64);
        out
    }

    /// What a subscriber gets before live events.
    ///
    /// A resume (`since` with this room's epoch, not beyond the head) replays
    /// every event after `since` when history still holds them; anything else
    /// gets `recovered: false` and, in a keyed room, the state, else the last
    /// `snapshot` events.
    pub fn replay(&self, since: Option<u64>, epoch: Option<&str>) -> Replay {
        if let (Some(since), Some(epoch)) = (since, epoch) {
            if epoch == &*self.epoch && since <= self.seq {
                let oldest = self.history.front().map_or(self.seq + 1, |e| e.seq);
                if since + 1 >= oldest {
                    return Replay {
                        recovered: true,
                        state: None,
                        frames: self.frames_after(since, usize::MAX),
                    };
                }
            }
        }
        if let Some(state) = &self.state {
            let frames = state.frames();
            return Replay {
                recovered: false,
                state: Some(frames.len()),
                frames,
            };
        }
        let skip = self.history.len().saturating_sub(self.settings.snapshot);
        let frames = self
            .history
            .iter()
            .skip(skip)
            .map(|e| e.frame.clone())
            .collect();
        Replay {
            recovered: false,
            state: None,
            frames,
        }
    }

    /// Up to `limit` history frames with seq greater than `since`, oldest first.
    pub fn frames_after(&self, since: u64, limit: usize) -> Vec<ByteString> {
        // History seqs are consecutive, so the start index is computed, not searched.
        let start = match self.history.front() {
            Some(first) if since >= first.seq => (since - first.seq + 1) as usize,
            _ => 0,
        };
        self.history
            .iter()
            .skip(start)
            .take(limit)
            .map(|e| e.frame.clone())
            .collect()
    }

    /// Adds a subscriber.
    pub fn subscribe(&mut self, id: SessionId, queue: OutboundQueue) {
        if self.subscribers.insert(id, queue).is_none() {
            self.metrics.subscribers.increment(1.0);
        }
    }

    /// Every subscriber and its queue.
    pub fn subscribers(&self) -> impl Iterator<Item = (SessionId, &OutboundQueue)> {
        self.subscribers.iter().map(|(id, q)| (*id, q))
    }

    /// Removes a subscriber; true if it was there.
    pub fn unsubscribe(&mut self, id: SessionId) -> bool {
        let was_in = self.subscribers.remove(&id).is_some();
        if was_in {
            self.metrics.subscribers.decrement(1.0);
        }
        was_in
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::KeyChange;

    fn room(history: usize, snapshot: usize) -> Room {
        Room::new(
            "r",
            RoomSettings {
                history,
                snapshot,
                client_publish: false,
                history_bytes: usize::MAX,
                keyed: false,
                max_keys: 10,
                presence: false,
            },
            false,
        )
    }

    fn data() -> Box<RawValue> {
        RawValue::from_string("{\"x\":1}".into()).expect("json")
    }

    fn seqs(frames: &[ByteString]) -> Vec<u64> {
        frames
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).expect("json");
                v["seq"].as_u64().expect("seq")
            })
            .collect()
    }

    #[test]
    fn history_is_bounded_and_seq_grows_by_one() {
        let mut r = room(3, 2);
        for _ in 0..5 {
            r.append("t", &data(), "ts");
        }
        assert_eq!(r.seq, 5);
        assert_eq!(r.history_len(), 3);
        assert_eq!(seqs(&r.frames_after(0, 10)), [3, 4, 5]);
        assert_eq!(seqs(&r.frames_after(3, 10)), [4, 5]);
        assert_eq!(seqs(&r.frames_after(4, 1)), [5]);
        assert!(r.frames_after(5, 10).is_empty());
    }

    #[test]
    fn replay_covers_resume_snapshot_and_lost_history() {
        let mut r = room(3, 2);
        let epoch = r.epoch.to_string();
        let replay = |r: &Room, since, ep| {
            let Replay {
                recovered,
                state,
                frames,
            } = r.replay(since, ep);
            assert_eq!(state, None, "not keyed");
            (recovered, frames)
        };
        assert_eq!(replay(&r, Some(0), Some(&epoch)), (true, vec![]));
        for _ in 0..5 {
            r.append("t", &data(), "ts");
        }
        let (ok, frames) = replay(&r, Some(2), Some(&epoch));
        assert!(ok);
        assert_eq!(seqs(&frames), [3, 4, 5]);
        let (ok, frames) = replay(&r, Some(5), Some(&epoch));
        assert!(ok && frames.is_empty());
        // Gap no longer in history.
        let (ok, frames) = replay(&r, Some(1), Some(&epoch));
        assert!(!ok);
        assert_eq!(seqs(&frames), [4, 5]);
        // Fresh, wrong epoch, since without epoch, since beyond head.
        for (since, ep) in [
            (None, None),
            (Some(3), Some("other")),
            (Some(3), None),
            (Some(9), Some(epoch.as_str())),
        ] {
            let (ok, frames) = replay(&r, since, ep);
            assert!(!ok, "{since:?} {ep:?}");
            assert_eq!(seqs(&frames), [4, 5]);
        }
    }

    #[test]
    fn a_mirror_takes_only_the_next_seq_and_resets() {
        let ev = |seq: u64| Event::plain(seq, format!("{{\"seq\":{seq}}}").into());
        let copy = |epoch: &str, seq: u64, events: Vec<Event>| RoomState {
            epoch: Arc::from(epoch),
            seq,
            events,
            state: Vec::new(),
        };
        let state = copy("e1", 7, vec![ev(6), ev(7)]);
        let mut r = Room::mirror("r", room(3, 2).settings, false, state);
        assert_eq!((&*r.epoch, r.seq, r.history_len()), ("e1", 7, 2));
        assert!(!r.apply(ev(7)), "duplicate");
        assert!(!r.apply(ev(9)), "gap");
        assert!(r.apply(ev(8)));
        assert!(r.apply(ev(9)));
        assert_eq!(seqs(&r.frames_after(0, 10)), [7, 8, 9]);
        r.reset(copy("e2", 1, vec![ev(1)]));
        assert_eq!((&*r.epoch, r.seq), ("e2", 1));
        assert_eq!(seqs(&r.frames_after(0, 10)), [1]);
    }

    #[test]
    fn history_is_bounded_by_bytes_and_keeps_the_newest() {
        let mut r = room(100, 100);
        r.settings.history_bytes = 200;
        let big = RawValue::from_string(format!("\"{}\"", "x".repeat(60))).expect("json");
        for _ in 0..10 {
            r.append("t", &big, "ts");
        }
        assert!(r.history_size() <= 200, "{} bytes held", r.history_size());
        assert!(r.history_len() >= 1 && r.history_len() < 10);
        assert_eq!(*seqs(&r.frames_after(0, 100)).last().expect("newest"), 10);
        // One event larger than the bound is still kept, alone.
        let huge = RawValue::from_string(format!("\"{}\"", "y".repeat(500))).expect("json");
        r.append("t", &huge, "ts");
        assert_eq!(r.history_len(), 1);
        assert_eq!(seqs(&r.frames_after(0, 100)), [11]);
        // A reset applies both bounds too.
        let frames: Vec<Event> = (1..=10)
            .map(|seq| {
                Event::plain(
                    seq,
                    format!("{{\"seq\":{seq},\"pad\":\"{}\"}}", "z".repeat(50)).into(),
                )
            })
            .collect();
        r.reset(RoomState {
            epoch: Arc::from("e2"),
            seq: 10,
            events: frames,
            state: Vec::new(),
        });
        assert!(r.history_size() <= 200);
        assert_eq!(*seqs(&r.frames_after(0, 100)).last().expect("newest"), 10);
    }

    #[test]
    fn a_keyed_room_replays_its_state_unless_a_resume_is_exact() {
        let settings = RoomSettings {
            keyed: true,
            ..room(3, 2).settings
        };
        let mut r = Room::new("r", settings, false);
        let keyed = |seq: u64, key: &str, delete: bool| Event {
            seq,
            frame: format!("{{\"seq\":{seq}}}").into(),
            key: Some(KeyChange {
                key: Arc::from(key),
                delete,
            }),
        };
        for e in [
            keyed(1, "a", false),
            keyed(2, "b", false),
            Event::plain(3, "{\"seq\":3}".into()),
            keyed(4, "a", false),
            keyed(5, "c", false),
            keyed(6, "b", true),
        ] {
            assert!(r.apply(e));
        }
        let epoch = r.epoch.to_string();
        let fresh = r.replay(None, None);
        assert_eq!((fresh.recovered, fresh.state), (false, Some(2)));
        assert_eq!(seqs(&fresh.frames), [4, 5]);
        let exact = r.replay(Some(4), Some(&epoch));
        assert_eq!((exact.recovered, exact.state), (true, None));
        assert_eq!(seqs(&exact.frames), [5, 6]);
        let lost = r.replay(Some(1), Some(&epoch));
        assert_eq!((lost.recovered, lost.state), (false, Some(2)));
        assert_eq!(r.state_frames().map(|f| seqs(&f)), Some(vec![4, 5]));
        // A reset takes the engine's state.
        r.reset(RoomState {
            epoch: Arc::from("e2"),
            seq: 9,
            events: Vec::new(),
            state: vec![keyed(8, "z", false)],
        });
        assert_eq!(r.state_frames().map(|f| seqs(&f)), Some(vec![8]));
        assert!(room(3, 2).state_frames().is_none());
    }

    #[test]
    fn fan_out_reports_full_queues() {
        let mut r = room(10, 0);
        let ok = OutboundQueue::new(10, usize::MAX);
        let full = OutboundQueue::new(1, usize::MAX);
        r.subscribe(SessionId(1), ok.clone());
        r.subscribe(SessionId(2), full.clone());
        let e1 = r.append("t", &data(), "ts");
        assert_eq!(r.fan_out(&e1.frame).delivered, 2);
        let e2 = r.append("t", &data(), "ts");
        let out = r.fan_out(&e2.frame);
        assert_eq!(out.delivered, 1);
        assert_eq!(out.dropped, [SessionId(2)]);
        assert_eq!(ok.depth().frames, 2);
    }
}
