//! The `/socket-status` body, and the counts that decide when `$status`
//! subscribers get a new `status_update`.

use std::collections::BTreeMap;

use serde::Serialize;

/// The counts part of the status: what changes trigger a `status_update`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
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
}
