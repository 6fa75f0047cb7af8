//! The failover fence: a seq is never given out twice when the primary
//! changes (a Sentinel failover, or a Redis restarted from an older snapshot).
//!
//! Writes the old primary took after the new one was promoted are lost, yet
//! some node may have delivered or acknowledged their seqs. Each node's
//! catch-up at the new primary tells the read script the highest seq it saw
//! per room, and the script gives a room that is behind it a new epoch. That
//! is only safe if no node publishes into the room before every node that may
//! have seen more has caught up. So:
//!
//! 1. A node remembers, per room, the highest seq it *acknowledged*
//!    ([`AckedHeads`]) beside the one it delivered; its catch-up passes the
//!    larger as "seen".
//! 2. Having caught up every room at a primary, a node checks in
//!    ([`check_in`]) in that primary's caught-up set, named by its
//!    replication id (which a promotion or an empty restart changes).
//! 3. Each publish records that id in the room's meta (`rid`). A room last
//!    written under another id takes publishes only once every node with a
//!    heartbeat in the last [`grace`] has checked in here ([`Fence`]); until
//!    then the publish is refused (503, nothing written, no seq used). Rooms
//!    written since the fence cleared, and new rooms, are not held.
//! 4. A pipeline that ends after this node gave its primary up is not
//!    acknowledged (503): its seqs may be given out again at the new one, and
//!    the catch-up there may already have read what this node acknowledged.
//!
//! A node that died within the grace before a failover holds rooms written
//! before the failover for up to the grace (its beat ages out); what it
//! acknowledged in its last moments is not known to anyone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::Value;

use super::deadline::{within, Timeouts};
use super::keys::Keys;
use super::{scripts, ClusterError};

/// How long a caught-up set is kept after its last check-in.
const CAUGHT_UP_TTL: Duration = Duration::from_secs(24 * 3600);
/// Acknowledgements of rooms this node no longer mirrors are forgotten after
/// this long (bounding the map); a failover later than that finds their
/// writes replicated long ago.
const FORGET_UNTRACKED: Duration = Duration::from_secs(60);

/// How long a node that stopped beating is still waited for: ten heartbeats,
/// at least 10 s (a node learns of a failover within one `+switch-master`,
/// or at its next command to the demoted primary).
pub fn grace(t: &Timeouts) -> Duration {
    (t.heartbeat * 10).max(Duration::from_secs(10))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The highest seq this node acknowledged per room, in the epoch it
/// acknowledged it in. Shared by the publish lanes and the subscriber.
#[derive(Default)]
pub struct AckedHeads(Mutex<HashMap<Arc<str>, Head>>);

struct Head {
    epoch: String,
    seq: u64,
    at: Instant,
}

impl AckedHeads {
    /// Records `published` (room, epoch, seq) as acknowledged if `same_primary`
    /// still holds, checked under the lock the catch-up reads through: a
    /// catch-up that began after the primary was given up finds every seq
    /// acknowledged at the old one. `false`: nothing may be acknowledged.
    pub fn record_if<'a>(
        &self,
        same_primary: impl FnOnce() -> bool,
        published: impl Iterator<Item = (&'a Arc<str>, &'a str, u64)>,
    ) -> bool {
        let mut heads = self.0.lock();
        if !same_primary() {
            return false;
        }
        for (room, epoch, seq) in published {
            Self::record(&mut heads, room, epoch, seq);
        }
        true
    }

    fn record(heads: &mut HashMap<Arc<str>, Head>, room: &Arc<str>, epoch: &str, seq: u64) {
        let now = Instant::now();
        match heads.get_mut(room) {
            Some(h) if h.epoch == epoch => {
                h.seq = h.seq.max(seq);
                h.at = now;
            }
            _ => {
                heads.insert(
                    room.clone(),
                    Head {
                        epoch: epoch.to_string(),
                        seq,
                        at: now,
                    },
                );
            }
        }
    }

    /// What this node saw of `room` in `epoch`: `delivered`, or a higher seq
    /// it acknowledged.
    pub fn seen(&self, room: &str, epoch: &str, delivered: u64) -> u64 {
        match self.0.lock().get(room) {
            Some(h) if h.epoch == epoch => h.seq.max(delivered),
            _ => delivered,
        }
    }

    /// The heads of rooms `tracked` says this node does not mirror, dropping
    /// those older than [`FORGET_UNTRACKED`].
    pub fn untracked(&self, tracked: impl Fn(&str) -> bool) -> Vec<(Arc<str>, String, u64)> {
        let mut heads = self.0.lock();
        heads.retain(|room, h| tracked(room) || h.at.elapsed() < FORGET_UNTRACKED);
        heads
            .iter()
            .filter(|(room, _)| !tracked(room))
            .map(|(room, h)| (room.clone(), h.epoch.clone(), h.seq))
            .collect()
    }
}

/// This node has caught up every room at the primary `replid`.
pub async fn check_in(
    c: &mut MultiplexedConnection,
    keys: &Keys,
    node: &str,
    replid: &str,
    t: Timeouts,
) -> Result<(), ClusterError> {
    if replid.is_empty() {
        return Ok(());
    }
    let done: i64 = within(
        t.command,
        redis::cmd("EVAL")
            .arg(scripts::CHECK_IN)
            .arg(1)
            .arg(keys.caught_up(replid))
            .arg(replid)
            .arg(node)
            .arg(millis(CAUGHT_UP_TTL))
            .query_async(c),
    )
    .await?;
    if done == 1 {
        Ok(())
    } else {
        Err(ClusterError::PrimaryChanged("during the catch-up"))
    }
}

/// A publish lane's view of the fence at its primary.
#[derive(Default)]
pub struct Fence {
    /// The replication id at which every live node has checked in: it stays
    /// cleared (a check-in is never taken back).
    cleared: Option<Arc<str>>,
    /// The nodes last found missing, to log a change once.
    missing: Vec<String>,
}

impl Fence {
    /// Whether the fence is cleared at `replid`; asks Redis until it is.
    pub async fn cleared(
        &mut self,
        c: &mut MultiplexedConnection,
        keys: &Keys,
        replid: &Arc<str>,
        t: Timeouts,
    ) -> Result<bool, ClusterError> {
        if replid.is_empty() || self.cleared.as_ref() == Some(replid) {
            return Ok(true);
        }
        let v: Value = within(
            t.command,
            redis::cmd("EVAL")
                .arg(scripts::FENCE)
                .arg(2)
                .arg(keys.beats())
                .arg(keys.caught_up(replid))
                .arg(&**replid)
                .arg(millis(grace(&t)))
                .query_async(c),
        )
        .await?;
        match scripts::decode_fence(&v) {
            None => Err(ClusterError::Unexpected("fence")),
            Some(None) => Err(ClusterError::PrimaryChanged("before the fence check")),
            Some(Some(missing)) if missing.is_empty() => {
                if !self.missing.is_empty() {
                    log::info!("cluster: every node caught up at the new primary");
                }
                self.cleared = Some(replid.clone());
                self.missing.clear();
                Ok(true)
            }
            Some(Some(missing)) => {
                if missing != self.missing {
                    log::warn!(
                        "cluster: the primary changed; publishes into rooms written before wait for node(s) {} to catch up at it",
                        missing.join(", ")
                    );
                    self.missing = missing;
                }
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catch_up_sees_the_highest_acknowledged_seq_of_its_epoch() {
        let heads = AckedHeads::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let published = [(&a, "e1", 5), (&a, "e1", 3), (&b, "e1", 2)];
        assert!(heads.record_if(|| true, published.into_iter()));
        assert_eq!(heads.seen("a", "e1", 4), 5, "acknowledged beyond delivered");
        assert_eq!(heads.seen("a", "e1", 9), 9, "delivered beyond acknowledged");
        assert_eq!(heads.seen("a", "e2", 1), 1, "another epoch says nothing");
        assert_eq!(heads.seen("c", "e1", 0), 0);
        assert!(!heads.record_if(|| false, [(&a, "e1", 8)].into_iter()));
        assert_eq!(
            heads.seen("a", "e1", 0),
            5,
            "a refused pipeline records nothing"
        );
        assert!(heads.record_if(|| true, [(&a, "e2", 1)].into_iter()));
        assert_eq!(heads.seen("a", "e1", 0), 0, "a new epoch replaces the old");
        let untracked = heads.untracked(|r| r == "a");
        assert_eq!(untracked, [(b.clone(), "e1".to_string(), 2)]);
    }
}
