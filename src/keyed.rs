//! Keyed rooms (contract section 11): besides its history, a keyed room keeps
//! its *state*, the latest event of every key. It is a small addition to each
//! owner of a room's order, kept here so every engine shares it:
//!
//! - [`KeyChange`] is what a keyed event does to the state; an [`Event`]
//!   carries it from the engine that committed it to the room mirrors.
//! - [`StateWrite`] is a checked keyed publish as an engine gets it: the
//!   change, and the room's `max_keys`.
//! - [`LiveKeys`] are the keys each room's state holds, for the engines that
//!   assign seqs in this process: a new key beyond `max_keys` is refused
//!   before a seq is given (Redis does the same in its publish script).
//! - [`KeyedState`] is a mirror's state: the frames of the live keys in seq
//!   order, shared with history (a reference count, not a copy), replayed to a
//!   fresh subscriber as one queue item.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytestring::ByteString;

use crate::error::HubError;
use crate::event::{Event, KeyChange};

/// A keyed publish, checked, for the engine.
#[derive(Debug, Clone)]
pub struct StateWrite {
    /// What it does to the state.
    pub change: KeyChange,
    /// The room's `max_keys`: a new key beyond it is refused.
    pub max_keys: usize,
}

/// The refusal of a new key in a full room (409 `limit_exceeded`).
pub fn over_max_keys(room: &str, max_keys: usize) -> HubError {
    HubError::LimitExceeded(format!(
        "room {room} holds max_keys ({max_keys}) keys: a new key is refused until one is deleted"
    ))
}

/// How to take back one [`LiveKeys::admit`].
#[derive(Debug)]
pub struct KeyUndo {
    room: Arc<str>,
    key: Arc<str>,
    /// Whether the key was live before.
    was_live: bool,
}

/// The live keys of every keyed room; see the module docs.
#[derive(Debug, Default)]
pub struct LiveKeys {
    rooms: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

impl LiveKeys {
    /// Applies `write` to `room`'s keys, or refuses a new key beyond
    /// `max_keys` (changing nothing). Updates and deletes always pass.
    pub fn admit(&mut self, room: &Arc<str>, write: &StateWrite) -> Result<KeyUndo, HubError> {
        let keys = self.rooms.entry(room.clone()).or_default();
        let key = &write.change.key;
        let was_live = keys.contains(key);
        if write.change.delete {
            keys.remove(key);
        } else if !was_live {
            if keys.len() >= write.max_keys {
                return Err(over_max_keys(room, write.max_keys));
            }
            keys.insert(key.clone());
        }
        Ok(KeyUndo {
            room: room.clone(),
            key: key.clone(),
            was_live,
        })
    }

    /// Takes back admissions, newest first.
    pub fn undo(&mut self, undos: impl DoubleEndedIterator<Item = KeyUndo>) {
        for u in undos.rev() {
            let keys = self.rooms.entry(u.room).or_default();
            if u.was_live {
                keys.insert(u.key);
            } else {
                keys.remove(&u.key);
            }
        }
    }

    /// Sets a room's live keys (restored from a store).
    pub fn restore(&mut self, room: Arc<str>, keys: impl IntoIterator<Item = Arc<str>>) {
        self.rooms.insert(room, keys.into_iter().collect());
    }

    /// Forgets a room.
    pub fn forget(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// How many keys `room` holds.
    pub fn count(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, HashSet::len)
    }
}

/// A mirror's state; see the module docs.
#[derive(Debug, Default)]
pub struct KeyedState {
    /// Each live key's latest seq.
    by_key: HashMap<Arc<str>, u64>,
    /// The live keys' latest events by seq: the replay order.
    by_seq: BTreeMap<u64, (Arc<str>, ByteString)>,
}

impl KeyedState {
    /// A state holding `events` (each a key's latest, as an engine read them).
    pub fn from_events(events: Vec<Event>) -> Self {
        let mut state = KeyedState::default();
        for event in events {
            state.apply(&event);
        }
        state
    }

    /// Applies a committed event; one without a key leaves the state alone.
    pub fn apply(&mut self, event: &Event) {
        let Some(change) = &event.key else {
            return;
        };
        if let Some(old) = self.by_key.remove(&change.key) {
            self.by_seq.remove(&old);
        }
        if !change.delete {
            self.by_key.insert(change.key.clone(), event.seq);
            self.by_seq
                .insert(event.seq, (change.key.clone(), event.frame.clone()));
        }
    }

    /// Live keys.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The live keys' latest frames, in seq order.
    pub fn frames(&self) -> Vec<ByteString> {
        self.by_seq.values().map(|(_, f)| f.clone()).collect()
    }

    /// The live keys' latest events, in seq order (what an engine would
    /// persist or hand to another mirror).
    pub fn events(&self) -> Vec<Event> {
        self.by_seq
            .iter()
            .map(|(seq, (key, frame))| Event {
                seq: *seq,
                frame: frame.clone(),
                key: Some(KeyChange {
                    key: key.clone(),
                    delete: false,
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, delete: bool, max_keys: usize) -> StateWrite {
        StateWrite {
            change: KeyChange {
                key: Arc::from(key),
                delete,
            },
            max_keys,
        }
    }

    fn event(seq: u64, key: &str, delete: bool) -> Event {
        Event {
            seq,
            frame: format!("{{\"seq\":{seq}}}").into(),
            key: Some(write(key, delete, 0).change),
        }
    }

    #[test]
    fn live_keys_refuse_only_a_new_key_past_the_limit_and_undo() {
        let room: Arc<str> = Arc::from("r");
        let mut live = LiveKeys::default();
        let a = live.admit(&room, &write("a", false, 2)).expect("first");
        live.admit(&room, &write("b", false, 2)).expect("second");
        let err = live.admit(&room, &write("c", false, 2)).expect_err("third");
        assert!(matches!(err, HubError::LimitExceeded(_)), "{err:?}");
        assert_eq!(live.count("r"), 2, "a refusal changes nothing");
        live.admit(&room, &write("a", false, 2))
            .expect("updates pass");
        live.admit(&room, &write("zz", true, 2))
            .expect("deletes pass");
        let del = live.admit(&room, &write("b", true, 2)).expect("delete");
        let c = live
            .admit(&room, &write("c", false, 2))
            .expect("room again");
        assert_eq!(live.count("r"), 2);
        live.undo([a, del, c].into_iter());
        assert_eq!(
            live.count("r"),
            1,
            "a was new, b was live, c was new: b is left"
        );
        live.admit(&room, &write("b", false, 1))
            .expect("b is live: an update");
    }

    #[test]
    fn the_state_keeps_the_latest_event_per_live_key_in_seq_order() {
        let mut state = KeyedState::default();
        for e in [
            event(1, "a", false),
            event(2, "b", false),
            event(3, "a", false),
            event(4, "c", false),
            event(5, "b", true),
            event(6, "gone", true),
        ] {
            state.apply(&e);
        }
        state.apply(&Event {
            seq: 7,
            frame: "{}".into(),
            key: None,
        });
        assert_eq!(state.len(), 2);
        assert_eq!(
            state.frames(),
            [
                ByteString::from("{\"seq\":3}"),
                ByteString::from("{\"seq\":4}")
            ]
        );
        let again = KeyedState::from_events(state.events());
        assert_eq!(again.frames(), state.frames());
        assert!(!again.is_empty());
    }
}
