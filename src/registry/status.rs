//! The `/socket-status` body, and the counts that decide when `$status`
//! subscribers get a new `status_update`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

/// Dynamic rooms listed in a status by name (the busiest); the rest are
/// counted in `rooms_omitted`.
pub const MAX_LISTED_DYNAMIC: usize = 1000;

/// O(rooms) answers (the status, the room list) rebuilt at most this many
/// times a second each; readers in between share the last build.
pub const REBUILDS_PER_S: u32 = 20;

/// A cached answer older than this is rebuilt even if no count changed, so
/// `timestamp` and `uptime_s` keep moving.
pub const MAX_STALENESS: Duration = Duration::from_secs(1);

/// The status as last built: the HTTP body and the `$status` frame, each
/// encoded once and shared by every reader until the next build.
#[derive(Debug)]
pub struct StatusSnapshot {
    /// The registry's change counter when it was built.
    pub version: u64,
    /// When it was built.
    pub built: Instant,
    /// Fingerprint of its counts, compared with each `$status` subscriber's.
    pub fingerprint: u64,
    /// The `/socket-status` body.
    pub body: actix_web::web::Bytes,
    /// The `status_update` frame.
    pub frame: ByteString,
}

/// A budget of [`REBUILDS_PER_S`] rebuilds per one-second window.
#[derive(Debug)]
pub struct RebuildBudget {
    window: Instant,
    used: u32,
}

impl Default for RebuildBudget {
    fn default() -> Self {
        RebuildBudget {
            window: Instant::now(),
            used: 0,
        }
    }
}

impl RebuildBudget {
    /// Takes one rebuild if the current window has one left.
    pub fn take(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.used = 0;
        }
        if self.used >= REBUILDS_PER_S {
            return false;
        }
        self.used += 1;
        true
    }
}

/// The counts part of the status: what changes trigger a `status_update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusCounts {
    /// False while draining.
    pub active: bool,
    /// Sockets on this node.
    pub total_sockets: usize,
    /// Sockets per type (`connect`, room names of `/ws/{room}`).
    pub sockets_by_type: BTreeMap<String, usize>,
    /// Subscribers per room: declared rooms, `$status`, and the busiest
    /// [`MAX_LISTED_DYNAMIC`] dynamic rooms.
    pub rooms: BTreeMap<String, usize>,
    /// Dynamic rooms left out of `rooms` (an extension; absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rooms_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl StatusCounts {
    /// Adds another node's counts to these (cluster-wide totals).
    pub fn add(&mut self, other: &StatusCounts) {
        self.total_sockets += other.total_sockets;
        self.rooms_omitted += other.rooms_omitted;
        for (k, n) in &other.sockets_by_type {
            *self.sockets_by_type.entry(k.clone()).or_insert(0) += n;
        }
        for (k, n) in &other.rooms {
            *self.rooms.entry(k.clone()).or_insert(0) += n;
        }
    }

    /// A 64-bit fingerprint, so each `$status` subscriber's last view costs a
    /// word rather than a copy of the maps.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// `GET /socket-status` (contract section 6).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// The counts, flattened into the body.
    #[serde(flatten)]
    pub counts: StatusCounts,
    /// When the status was taken (RFC 3339).
    pub timestamp: String,
    /// Socket type to WebSocket path.
    pub ws_endpoints: BTreeMap<String, String>,
    /// This node's id.
    pub node: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// In a cluster: every live node's own counts, by node id (this one included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, NodeRecord>>,
}

/// One node's own counts, as it publishes them in a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeRecord {
    /// The node's counts.
    #[serde(flatten)]
    pub counts: StatusCounts,
    /// The node's uptime.
    pub uptime_s: u64,
    /// The node process's instance tag (the prefix of its session ids): two
    /// processes with the same node id are a misconfiguration, seen by this.
    #[serde(default)]
    pub instance: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rebuild_budget_refills_each_second() {
        let t0 = Instant::now();
        let mut b = RebuildBudget {
            window: t0,
            ..Default::default()
        };
        for _ in 0..REBUILDS_PER_S {
            assert!(b.take(t0));
        }
        assert!(!b.take(t0 + Duration::from_millis(999)));
        assert!(b.take(t0 + Duration::from_secs(1)));
    }
}
