//! The `/socket-status` body, and the counts that decide when `$status`
//! subscribers get a new `status_update`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The counts part of the status: what changes trigger a `status_update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusCounts {
    /// False while draining.
    pub active: bool,
    /// Sockets on this node.
    pub total_sockets: usize,
    /// Sockets per type (`connect`, room names of `/ws/{room}`).
    pub sockets_by_type: BTreeMap<String, usize>,
    /// Subscribers per room.
    pub rooms: BTreeMap<String, usize>,
}

impl StatusCounts {
    /// Adds another node's counts to these (cluster-wide totals).
    pub fn add(&mut self, other: &StatusCounts) {
        self.total_sockets += other.total_sockets;
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
