//! Publishes already accepted under an `Idempotency-Key` (single node; in a
//! cluster Redis remembers them in the publish script).
//!
//! A publisher that did not get its answer (a timeout, a dropped connection)
//! retries with the same key and gets the first publish's seq instead of a
//! second event. Keys are remembered for `rooms.idempotency_ttl_s`, and at most
//! [`MAX_KEYS`] of them at once, oldest forgotten first, so memory is bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys remembered at once, over all rooms (≈ 30 MB at the longest keys).
pub const MAX_KEYS: usize = 100_000;

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
    landed: HashMap<(Arc<str>, Box<str>), Landed>,
    order: VecDeque<(Instant, Arc<str>, Box<str>)>,
}

impl RecentKeys {
    /// Keys live `ttl`; zero turns the cache off.
    pub fn new(ttl: Duration) -> Self {
        RecentKeys {
            ttl,
            landed: HashMap::new(),
            order: VecDeque::new(),
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

    fn insert_at(&mut self, now: Instant, room: Arc<str>, key: &str, landed: Landed) {
        if !self.enabled() {
            return;
        }
        self.expire(now);
        while self.landed.len() >= MAX_KEYS {
            match self.order.pop_front() {
                Some((_, r, k)) => {
                    self.landed.remove(&(r, k));
                }
                None => break,
            }
        }
        let key: Box<str> = Box::from(key);
        if self
            .landed
            .insert((room.clone(), key.clone()), landed)
            .is_none()
        {
            self.order.push_back((now + self.ttl, room, key));
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.order.front() {
            if *at > now {
                break;
            }
            if let Some((_, r, k)) = self.order.pop_front() {
                self.landed.remove(&(r, k));
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
        let mut k = RecentKeys::new(ttl);
        k.insert_at(t0, Arc::from("a"), "k1", landed(1));
        k.insert_at(t0, Arc::from("b"), "k1", landed(2));
        assert_eq!(k.get_at(t0, "a", "k1"), Some(&landed(1)));
        assert_eq!(k.get_at(t0, "b", "k1"), Some(&landed(2)));
        assert_eq!(k.get_at(t0, "a", "k2"), None);
        let later = t0 + ttl - Duration::from_millis(1);
        assert_eq!(k.get_at(later, "a", "k1"), Some(&landed(1)));
        assert_eq!(k.get_at(t0 + ttl, "a", "k1"), None);
        assert!(k.is_empty());
    }

    #[test]
    fn the_oldest_key_goes_first_at_the_limit() {
        let t0 = Instant::now();
        let mut k = RecentKeys::new(Duration::from_secs(300));
        for i in 0..MAX_KEYS as u64 + 1 {
            k.insert_at(t0, Arc::from("r"), &i.to_string(), landed(i));
        }
        assert_eq!(k.len(), MAX_KEYS);
        assert_eq!(k.get_at(t0, "r", "0"), None);
        assert_eq!(k.get_at(t0, "r", "1"), Some(&landed(1)));
    }

    #[test]
    fn off_with_zero_ttl() {
        let mut k = RecentKeys::new(Duration::ZERO);
        k.insert(Arc::from("a"), "k1", landed(1));
        assert_eq!(k.get("a", "k1"), None);
    }
}
