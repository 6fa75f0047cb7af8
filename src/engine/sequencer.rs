//! Room order for the engines that assign seqs in this process (memory and
//! durable): each room's epoch and head, the idempotency keys of recent
//! publishes, and the live keys of keyed rooms. Redis does the same in its
//! publish script.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CommittedEvent, PublishItem};
use crate::engine::PublishAck;
use crate::error::HubError;
use crate::event::Event;
use crate::idempotency::{Landed, RecentKeys};
use crate::ids::new_epoch;
use crate::keyed::{KeyUndo, LiveKeys};

/// A room's epoch and the last seq given out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The room's epoch.
    pub epoch: Arc<str>,
    /// The last seq given out; 0 for an empty room.
    pub head: u64,
}

/// What one item became.
#[derive(Debug)]
pub enum Assigned {
    /// A new event.
    Event(CommittedEvent, PublishAck),
    /// A retry of a publish with an idempotency key: the first one's ack,
    /// no event.
    Duplicate(PublishAck),
    /// Refused before a seq was given: a new state key past `max_keys`.
    Refused(HubError),
}

/// How to take back an assignment whose write failed.
#[derive(Debug, Default)]
pub struct Undo {
    /// Each touched room's order before (None: the room was new).
    orders: Vec<(Arc<str>, Option<Order>)>,
    /// Keys remembered by the assignment.
    keys: Vec<(Arc<str>, String)>,
    /// State keys it changed, in order.
    state: Vec<KeyUndo>,
}

/// Every room's order and the recent keys; see the module docs.
#[derive(Debug)]
pub struct Sequencer {
    rooms: HashMap<Arc<str>, Order>,
    keys: RecentKeys,
    /// Keyed rooms' live keys, for `max_keys`.
    state: LiveKeys,
}

impl Sequencer {
    /// Keys are remembered `key_ttl`, at most `keys_per_room` per room.
    pub fn new(key_ttl: Duration, keys_per_room: usize) -> Self {
        Sequencer {
            rooms: HashMap::new(),
            keys: RecentKeys::new(key_ttl, keys_per_room),
            state: LiveKeys::default(),
        }
    }

    /// The room's order, created with a fresh epoch if it has none.
    pub fn open(&mut self, room: &Arc<str>) -> Order {
        self.rooms
            .entry(room.clone())
            .or_insert_with(|| Order {
                epoch: Arc::from(new_epoch()),
                head: 0,
            })
            .clone()
    }

    /// The room's order, if it has one.
    pub fn get(&self, room: &str) -> Option<&Order> {
        self.rooms.get(room)
    }

    /// Sets a room's order (restored from a store).
    pub fn restore(&mut self, room: Arc<str>, order: Order) {
        self.rooms.insert(room, order);
    }

    /// Remembers a key restored from a store, until `expires`.
    pub fn restore_key(&mut self, room: Arc<str>, key: &str, landed: Landed, expires: Instant) {
        self.keys.insert_until(room, key, landed, expires);
    }

    /// Sets a keyed room's live keys (restored from a store with its state).
    pub fn restore_state(&mut self, room: Arc<str>, keys: impl IntoIterator<Item = Arc<str>>) {
        self.state.restore(room, keys);
    }

    /// Forgets a room and its keys.
    pub fn close(&mut self, room: &str) {
        self.rooms.remove(room);
        self.keys.forget_room(room);
        self.state.forget(room);
    }

    /// Whether keys are remembered at all.
    pub fn keys_enabled(&self) -> bool {
        self.keys.enabled()
    }

    pub fn key_ttl(&self) -> Duration {
        self.keys.ttl()
    }

    /// Gives each item the next seq of its room, in order, or the first
    /// publish's ack for a remembered key, or refuses a new state key past
    /// its room's `max_keys` (no seq used). `undo` takes it back.
    pub fn assign(&mut self, items: &[PublishItem]) -> (Vec<Assigned>, Undo) {
        let mut undo = Undo::default();
        let out = items
            .iter()
            .map(|item| {
                if !undo.orders.iter().any(|(r, _)| *r == item.room) {
                    undo.orders
                        .push((item.room.clone(), self.rooms.get(&item.room).cloned()));
                }
                let order = self.open(&item.room);
                if let Some(key) = &item.idempotency_key {
                    if let Some(first) = self.keys.get(&item.room, key) {
                        if first.epoch == order.epoch {
                            return Assigned::Duplicate(PublishAck {
                                room: item.room.to_string(),
                                epoch: order.epoch.to_string(),
                                seq: first.seq,
                                delivered: 0,
                                duplicate: true,
                            });
                        }
                    }
                }
                if let Some(write) = &item.state {
                    match self.state.admit(&item.room, write) {
                        Ok(change) => undo.state.push(change),
                        Err(err) => return Assigned::Refused(err),
                    }
                }
                let seq = order.head + 1;
                if let Some(o) = self.rooms.get_mut(&item.room) {
                    o.head = seq;
                }
                if let Some(key) = &item.idempotency_key {
                    let landed = Landed {
                        epoch: order.epoch.clone(),
                        seq,
                    };
                    self.keys.insert(item.room.clone(), key, landed);
                    undo.keys.push((item.room.clone(), key.clone()));
                }
                let event = Event {
                    seq,
                    frame: item.parts.with_seq(seq),
                    key: item.state.as_ref().map(|w| w.change.clone()),
                };
                let ack = PublishAck {
                    room: item.room.to_string(),
                    epoch: order.epoch.to_string(),
                    seq,
                    delivered: item.delivered,
                    duplicate: false,
                };
                Assigned::Event(
                    CommittedEvent {
                        room: item.room.clone(),
                        epoch: order.epoch,
                        event,
                    },
                    ack,
                )
            })
            .collect();
        (out, undo)
    }

    /// Takes back an assignment (its write failed): heads and keys are as
    /// they were, so the same seqs are given again.
    pub fn undo(&mut self, undo: Undo) {
        self.state.undo(undo.state.into_iter());
        for (room, key) in undo.keys {
            self.keys.remove(&room, &key);
        }
        for (room, before) in undo.orders {
            match before {
                Some(order) => {
                    self.rooms.insert(room, order);
                }
                None => {
                    self.rooms.remove(&room);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::EventFrameParts;
    use serde_json::value::RawValue;

    fn item(room: &str, key: Option<&str>) -> PublishItem {
        let data = RawValue::from_string("1".into()).expect("json");
        PublishItem {
            room: Arc::from(room),
            parts: EventFrameParts::new("t", room, "ts", &data),
            history: 10,
            dynamic: false,
            delivered: 0,
            received: Instant::now(),
            idempotency_key: key.map(str::to_string),
            state: None,
        }
    }

    fn keyed(room: &str, key: &str, delete: bool) -> PublishItem {
        PublishItem {
            state: Some(crate::keyed::StateWrite {
                change: crate::event::KeyChange {
                    key: Arc::from(key),
                    delete,
                },
                max_keys: 2,
            }),
            ..item(room, None)
        }
    }

    fn seqs(a: &[Assigned]) -> Vec<(u64, bool)> {
        a.iter()
            .map(|x| match x {
                Assigned::Event(_, ack) | Assigned::Duplicate(ack) => (ack.seq, ack.duplicate),
                Assigned::Refused(_) => (0, false),
            })
            .collect()
    }

    #[test]
    fn seqs_are_consecutive_per_room_and_keys_dedupe_within_a_batch() {
        let mut s = Sequencer::new(Duration::from_secs(60), 100);
        let (a, _) = s.assign(&[
            item("a", None),
            item("b", Some("k")),
            item("a", Some("k")),
            item("b", Some("k")),
        ]);
        assert_eq!(seqs(&a), [(1, false), (1, false), (2, false), (1, true)]);
    }

    #[test]
    fn undo_gives_the_same_seqs_again() {
        let mut s = Sequencer::new(Duration::from_secs(60), 100);
        let room: Arc<str> = Arc::from("a");
        s.open(&room);
        let (first, _) = s.assign(&[item("a", None)]);
        let (failed, undo) = s.assign(&[item("a", Some("k")), item("new", None)]);
        assert_eq!(seqs(&failed), [(2, false), (1, false)]);
        s.undo(undo);
        assert!(s.get("new").is_none());
        let (again, _) = s.assign(&[item("a", Some("k"))]);
        assert_eq!(seqs(&first), [(1, false)]);
        assert_eq!(
            seqs(&again),
            [(2, false)],
            "the key was forgotten with the write"
        );
    }

    #[test]
    fn a_new_key_past_max_keys_uses_no_seq_and_undo_restores_the_keys() {
        let mut s = Sequencer::new(Duration::from_secs(60), 100);
        let (a, _) = s.assign(&[
            keyed("r", "a", false),
            keyed("r", "b", false),
            keyed("r", "c", false),
            keyed("r", "a", false),
            keyed("r", "b", true),
            keyed("r", "c", false),
        ]);
        assert_eq!(
            seqs(&a),
            [
                (1, false),
                (2, false),
                (0, false),
                (3, false),
                (4, false),
                (5, false)
            ]
        );
        assert!(matches!(
            &a[2],
            Assigned::Refused(HubError::LimitExceeded(_))
        ));
        match &a[5] {
            Assigned::Event(e, _) => {
                assert_eq!(e.event.key.as_ref().map(|k| &*k.key), Some("c"));
            }
            other => panic!("{other:?}"),
        }
        // A failed write takes its key changes back with its seqs.
        let (failed, undo) = s.assign(&[keyed("r", "c", true), keyed("r", "d", false)]);
        assert_eq!(seqs(&failed), [(6, false), (7, false)]);
        s.undo(undo);
        let (again, _) = s.assign(&[keyed("r", "d", false)]);
        assert!(
            matches!(&again[0], Assigned::Refused(_)),
            "a and c are live again"
        );
    }
}
