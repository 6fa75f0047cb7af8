//! Publishes already accepted under an `Idempotency-Key` (single node; in a
//! cluster Redis remembers them in the publish script).
//!
//! A publisher that did not get its answer (a timeout, a dropped connection)
//! retries with the same key and gets the first publish's seq instead of a
//! second event. Keys are remembered for `rooms.idempotency_ttl_s`.
//!
//! Memory is bounded twice, so that one writer cannot make another's retry
//! publish twice: each room keeps at most `rooms.idempotency_keys_per_room`
//! keys (its own oldest go first), and all rooms together at most
//! [`MAX_BYTES`], taken from the room holding the most keys — the flooding
//! room pays for its flood, a quiet room keeps its keys.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes all remembered keys may take, counted as key + room name + a fixed
/// overhead per entry.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// What an entry costs besides its key and room name (map and queue slots).
const ENTRY_OVERHEAD: usize = 96;

/// Where a keyed publish landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    /// The room's epoch then: a key of another epoch does not count.
    pub epoch: Arc<str>,
    /// The event's seq.
    pub seq: u64,
}

/// The remembered keys, by room and key, with their expiry order.
#[derive(Debug)]
pub struct RecentKeys {
    ttl: Duration,
    per_room_limit: usize,
    landed: HashMap<(Arc<str>, Box<str>), Landed>,
    /// Every key in expiry order (one TTL for all, so insertion order); an
    /// entry whose key already left through its room's limit is skipped.
    expiry: VecDeque<(Instant, Arc<str>, Box<str>)>,
    /// Each room's keys, oldest first: the truth for what is remembered.
    rooms: HashMap<Arc<str>, VecDeque<(Instant, Box<str>)>>,
    /// `(keys held, room)`, to find the room holding the most.
    sizes: BTreeSet<(usize, Arc<str>)>,
    bytes: usize,
}

impl RecentKeys {
    /// Keys live `ttl` (zero turns the cache off); a room keeps at most
    /// `per_room_limit`.
    pub fn new(ttl: Duration, per_room_limit: usize) -> Self {
        RecentKeys {
            ttl,
            per_room_limit: per_room_limit.max(1),
            landed: HashMap::new(),
            expiry: VecDeque::new(),
            rooms: HashMap::new(),
            sizes: BTreeSet::new(),
            bytes: 0,
        }
    }

    /// Whether keys are remembered at all.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// Where the publish with `key` in `room` landed, if it is remembered.
    pub fn get(&mut self, room: &str, key: &str) -> Option<&Landed> {
        self.get_at(Instant::now(), room, key)
    }

    fn get_at(&mut self, now: Instant, room: &str, key: &str) -> Option<&Landed> {
        self.expire(now);
        self.landed.get(&(Arc::from(room), Box::from(key)))
    }

    /// Remembers a publish.
    pub fn insert(&mut self, room: Arc<str>, key: &str, landed: Landed) {
        self.insert_at(Instant::now(), room, key, landed);
    }

    /// Remembers a publish until `expires` (a key restored from a store).
    /// Restored keys go in in expiry order, before any new one, so the expiry
    /// queue stays in order.
    pub fn insert_until(&mut self, room: Arc<str>, key: &str, landed: Landed, expires: Instant) {
        let now = Instant::now();
        if expires <= now {
            return;
        }
        let ttl = self.ttl;
        // Same bookkeeping as a fresh insert, with the remaining lifetime.
        self.ttl = expires - now;
        self.insert_at(now, room, key, landed);
        self.ttl = ttl;
    }

    /// The key lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Forgets one key (its publish was never written).
    pub fn remove(&mut self, room: &Arc<str>, key: &str) {
        let Some(queue) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(pos) = queue.iter().position(|(_, k)| &**k == key) else {
            return;
        };
        self.sizes.remove(&(queue.len(), room.clone()));
        queue.remove(pos);
        if queue.is_empty() {
            self.rooms.remove(room);
        } else {
            self.sizes.insert((queue.len(), room.clone()));
        }
        self.bytes -= Self::cost(room, key);
        self.landed.remove(&(room.clone(), Box::from(key)));
    }

    /// Forgets every key of `room` (the room is gone).
    pub fn forget_room(&mut self, room: &str) {
        let Some((room, queue)) = self.rooms.remove_entry(room) else {
            return;
        };
        self.sizes.remove(&(queue.len(), room.clone()));
        for (_, key) in queue {
            self.bytes -= Self::cost(&room, &key);
            self.landed.remove(&(room.clone(), key));
        }
    }

    fn insert_at(&mut self, now: Instant, room: Arc<str>, key: &str, landed: Landed) {
        if !self.enabled() {
            return;
        }
        self.expire(now);
        let key: Box<str> = Box::from(key);
        let id = (room.clone(), key.clone());
        if let Some(slot) = self.landed.get_mut(&id) {
            // Same key in a new epoch: the newer landing answers from now on.
            *slot = landed;
            return;
        }
        while self.rooms.get(&room).map_or(0, VecDeque::len) >= self.per_room_limit {
            self.drop_oldest_of(&room);
        }
        let cost = Self::cost(&room, &key);
        while self.bytes + cost > MAX_BYTES {
            let Some((_, largest)) = self.sizes.last().cloned() else {
                break;
            };
            self.drop_oldest_of(&largest);
        }
        let expires = now + self.ttl;
        self.landed.insert(id, landed);
        self.expiry.push_back((expires, room.clone(), key.clone()));
        let queue = self.rooms.entry(room.clone()).or_default();
        self.sizes.remove(&(queue.len(), room.clone()));
        queue.push_back((expires, key));
        self.sizes.insert((queue.len(), room));
        self.bytes += cost;
    }

    fn cost(room: &str, key: &str) -> usize {
        room.len() + key.len() + ENTRY_OVERHEAD
    }

    /// Forgets the oldest key of `room`.
    fn drop_oldest_of(&mut self, room: &Arc<str>) {
        let Some(queue) = self.rooms.get_mut(room) else {
            return;
        };
        self.sizes.remove(&(queue.len(), room.clone()));
        let Some((_, key)) = queue.pop_front() else {
            self.rooms.remove(room);
            return;
        };
        if queue.is_empty() {
            self.rooms.remove(room);
        } else {
            self.sizes.insert((queue.len(), room.clone()));
        }
        self.bytes -= Self::cost(room, &key);
        self.landed.remove(&(room.clone(), key));
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.expiry.front() {
            if *at > now {
                break;
            }
            let Some((at, room, key)) = self.expiry.pop_front() else {
                break;
            };
            // Still remembered only if it is its room's oldest with this expiry.
            let current = self
                .rooms
                .get(&room)
                .and_then(VecDeque::front)
                .is_some_and(|(t, k)| *t == at && *k == key);
            if current {
                self.drop_oldest_of(&room);
            }
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.landed.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.landed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landed(seq: u64) -> Landed {
        Landed {
            epoch: Arc::from("e"),
            seq,
        }
    }

    #[test]
    fn keys_are_per_room_and_expire() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(300);
        let mut k = RecentKeys::new(ttl, 100);
        k.insert_at(t0, Arc::from("a"), "k1", landed(1));
        k.insert_at(t0, Arc::from("b"), "k1", landed(2));
        assert_eq!(k.get_at(t0, "a", "k1"), Some(&landed(1)));
        assert_eq!(k.get_at(t0, "b", "k1"), Some(&landed(2)));
        assert_eq!(k.get_at(t0, "a", "k2"), None);
        let later = t0 + ttl - Duration::from_millis(1);
        assert_eq!(k.get_at(later, "a", "k1"), Some(&landed(1)));
        assert_eq!(k.get_at(t0 + ttl, "a", "k1"), None);
        assert!(k.is_empty());
        assert_eq!(k.bytes, 0);
    }

    #[test]
    fn a_flooding_room_forgets_its_own_keys_not_another_rooms() {
        let t0 = Instant::now();
        let mut k = RecentKeys::new(Duration::from_secs(300), 50);
        k.insert_at(t0, Arc::from("quiet"), "mine", landed(1));
        for i in 0..1000u64 {
            k.insert_at(t0, Arc::from("noisy"), &i.to_string(), landed(i));
        }
        assert_eq!(k.len(), 51);
        assert_eq!(k.get_at(t0, "quiet", "mine"), Some(&landed(1)));
        assert_eq!(k.get_at(t0, "noisy", "949"), None);
        assert_eq!(k.get_at(t0, "noisy", "950"), Some(&landed(950)));
    }

    #[test]
    fn the_byte_bound_takes_from_the_largest_room() {
        let t0 = Instant::now();
        let mut k = RecentKeys::new(Duration::from_secs(300), usize::MAX);
        let key = "k".repeat(100);
        let per = RecentKeys::cost("big", &key);
        k.insert_at(t0, Arc::from("small"), &key, landed(0));
        for i in 0..(MAX_BYTES / per + 10) as u64 {
            k.insert_at(t0, Arc::from("big"), &format!("{i}{key}"), landed(i));
        }
        assert!(k.bytes <= MAX_BYTES);
        assert_eq!(k.get_at(t0, "small", &key), Some(&landed(0)));
        assert_eq!(k.get_at(t0, "big", &format!("0{key}")), None);
    }

    #[test]
    fn expiry_after_a_limit_eviction_keeps_the_counts_exact() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut k = RecentKeys::new(ttl, 2);
        k.insert_at(t0, Arc::from("r"), "1", landed(1));
        k.insert_at(t0 + Duration::from_secs(1), Arc::from("r"), "2", landed(2));
        k.insert_at(t0 + Duration::from_secs(2), Arc::from("r"), "3", landed(3));
        assert_eq!(k.len(), 2);
        // "1" left by the limit; its expiry entry must not take "2" early.
        assert_eq!(k.get_at(t0 + ttl, "r", "2"), Some(&landed(2)));
        assert_eq!(k.get_at(t0 + ttl + Duration::from_secs(1), "r", "2"), None);
        assert_eq!(
            k.get_at(t0 + ttl + Duration::from_secs(1), "r", "3"),
            Some(&landed(3))
        );
        assert_eq!(k.get_at(t0 + ttl + Duration::from_secs(2), "r", "3"), None);
        assert!(k.is_empty() && k.sizes.is_empty() && k.rooms.is_empty());
    }

    #[test]
    fn removed_and_forgotten_keys_leave_exact_counts() {
        let t0 = Instant::now();
        let mut k = RecentKeys::new(Duration::from_secs(300), 10);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        for key in ["1", "2", "3"] {
            k.insert_at(t0, a.clone(), key, landed(1));
            k.insert_at(t0, b.clone(), key, landed(2));
        }
        k.remove(&a, "2");
        assert_eq!(k.get_at(t0, "a", "2"), None);
        assert_eq!(k.get_at(t0, "a", "3"), Some(&landed(1)));
        k.forget_room("b");
        assert_eq!(k.len(), 2);
        assert_eq!(k.bytes, 2 * RecentKeys::cost("a", "1"));
        assert_eq!(k.get_at(t0 + Duration::from_secs(300), "a", "1"), None);
        assert!(k.is_empty() && k.bytes == 0);
    }

    #[test]
    fn off_with_zero_ttl() {
        let mut k = RecentKeys::new(Duration::ZERO, 10);
        k.insert(Arc::from("a"), "k1", landed(1));
        assert_eq!(k.get("a", "k1"), None);
    }
}
