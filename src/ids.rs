//! Identifiers: session ids and room epochs, unique per process start.
//!
//! Session ids are a counter (cheap map keys, no randomness needed) shown to
//! clients with a per-process tag, so ids from two nodes or two runs never collide.
//! Epochs carry the same tag, so a restarted node never reuses an epoch.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// This process's tag: tells two processes apart that were given the same
/// cluster `node_id` by mistake.
pub fn instance() -> &'static str {
    process_tag()
}

/// 8 hex digits that differ between process starts (time and pid mixed).
fn process_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut x = nanos ^ (u64::from(std::process::id()) << 32);
        // splitmix64 finaliser: spreads close start times over all 32 bits.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        format!("{:08x}", x as u32)
    })
}

/// A session's id: a process-wide counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    pub fn next() -> Self {
        SessionId(NEXT_SESSION.fetch_add(1, Ordering::Relaxed))
    }

    /// Parses the public form; `None` if it is malformed or from another process.
    pub fn parse(public: &str) -> Option<Self> {
        let (tag, n) = public.split_once('-')?;
        (tag == process_tag()).then_some(())?;
        n.parse().ok().map(SessionId)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", process_tag(), self.0)
    }
}

/// A fresh epoch for a room whose history starts now.
pub fn new_epoch() -> String {
    format!(
        "{}-{}",
        process_tag(),
        NEXT_EPOCH.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_and_reject_foreign_ones() {
        let id = SessionId::next();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
        assert_eq!(SessionId::parse("zzzzzzzz-1"), None);
        assert_eq!(SessionId::parse("nonsense"), None);
        assert_ne!(new_epoch(), new_epoch());
    }
}
