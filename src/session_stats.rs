//! Per-session counters shared by the session actor, its writer and the registry,
//! so `/socket-status/sockets` reads them without asking any session.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

/// Lock-free counters for one session.
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Frames received from the client.
    pub msgs_in: AtomicU64,
    /// Frames written to the client.
    pub msgs_out: AtomicU64,
    /// Unix milliseconds of the last frame from the client.
    pub last_seen_ms: AtomicI64,
    /// The client sent its close frame: the writer's close answers it, and
    /// the client sends nothing more, so the connection may end at once.
    pub peer_closed: AtomicBool,
}

impl SessionStats {
    /// Counters for a session that connected just now.
    pub fn new() -> Self {
        let stats = SessionStats::default();
        stats.touch();
        stats
    }

    /// Records a frame from the client.
    pub fn touch(&self) {
        self.last_seen_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// Last client frame as RFC 3339.
    pub fn last_seen(&self) -> String {
        let ms = self.last_seen_ms.load(Ordering::Relaxed);
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

/// One socket, for the admin API.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SocketInfo {
    /// Session id.
    pub id: String,
    /// Socket type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The token's `sub`.
    pub user: Option<String>,
    /// Subscribed rooms, sorted.
    pub rooms: Vec<String>,
    /// Peer address.
    pub remote: String,
    /// When it connected (RFC 3339).
    pub connected_at: String,
    /// Last frame from the client (RFC 3339).
    pub last_seen: String,
    /// Frames from the client.
    pub msgs_in: u64,
    /// Frames to the client.
    pub msgs_out: u64,
    /// Frames queued and not yet written (an extension).
    pub queued: usize,
    /// In a cluster: the node the socket is connected to (an extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}
