//! Dynamic rooms nobody is subscribed to, oldest activity first: the eviction
//! order at `rooms.max_rooms`.
//!
//! Eviction used to scan every room for the least recently active idle one, so
//! at the room limit each new room cost O(rooms) — a few sockets creating rooms
//! at their rate limit kept the registry busy for seconds. This index makes
//! touching, leaving and evicting O(log rooms).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Idle dynamic rooms in the order they were last active.
#[derive(Debug, Default)]
pub struct IdleRooms {
    /// A tick per activity, so equal instants cannot collide.
    next_tick: u64,
    /// Room to its tick in `order`.
    tick_of: HashMap<Arc<str>, u64>,
    /// Tick to room, oldest first.
    order: BTreeMap<u64, Arc<str>>,
}

impl IdleRooms {
    /// Marks `room` idle and active just now (it lost its last subscriber, was
    /// created, or was published into while idle).
    pub fn touch(&mut self, room: &Arc<str>) {
        self.remove(room);
        let tick = self.next_tick;
        self.next_tick += 1;
        self.tick_of.insert(room.clone(), tick);
        self.order.insert(tick, room.clone());
    }

    /// `room` is no longer idle (subscribed) or no longer exists.
    pub fn remove(&mut self, room: &str) {
        if let Some(tick) = self.tick_of.remove(room) {
            self.order.remove(&tick);
        }
    }

    /// Whether `room` is idle and known here.
    pub fn contains(&self, room: &str) -> bool {
        self.tick_of.contains_key(room)
    }

    /// Takes the least recently active idle room out of the index.
    pub fn pop_oldest(&mut self) -> Option<Arc<str>> {
        let (_, room) = self.order.pop_first()?;
        self.tick_of.remove(&room);
        Some(room)
    }

    /// Idle rooms held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether there are none.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_activity_is_evicted_first_and_busy_rooms_never() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let mut idle = IdleRooms::default();
        idle.touch(&a);
        idle.touch(&b);
        idle.touch(&c);
        idle.touch(&a); // published into while idle: now the newest
        idle.remove(&b); // subscribed: not evictable
        assert_eq!(idle.len(), 2);
        assert!(!idle.contains("b"));
        assert_eq!(idle.pop_oldest().as_deref(), Some("c"));
        assert_eq!(idle.pop_oldest().as_deref(), Some("a"));
        assert_eq!(idle.pop_oldest(), None);
        assert!(idle.is_empty());
    }
}
