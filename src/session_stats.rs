//! Per-session counters shared by the session actor, its writer and the registry,
//! so `/socket-status/sockets` reads them without asking any session.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

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
