//! Whether this node can reach Redis, as `/readyz` reports it.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// The cluster links' state, written by the broker's tasks.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<Links>,
    /// Bumped each time the subscription drops: command connections opened
    /// before are presumed dead too (Redis restarted or unreachable) and are
    /// reopened before their next use instead of failing it.
    generation: AtomicU64,
}

#[derive(Debug, Default)]
struct Links {
    /// The pub/sub connection is subscribed and caught up.
    subscribed: bool,
    /// The last heartbeat write succeeded.
    heartbeat: bool,
    /// The last Redis error seen, for the 503 message.
    last_error: Option<String>,
}

impl Health {
    /// Ok when both links work; else why not.
    pub fn check(&self) -> Result<(), String> {
        let s = self.state.lock();
        if s.subscribed && s.heartbeat {
            return Ok(());
        }
        let link = if s.subscribed {
            "node heartbeat"
        } else {
            "event subscription"
        };
        Err(match &s.last_error {
            Some(e) => format!("redis unreachable ({link}): {e}"),
            None => format!("redis not connected yet ({link})"),
        })
    }

    fn publish_gauge(s: &Links) {
        let up = if s.subscribed && s.heartbeat {
            1.0
        } else {
            0.0
        };
        metrics::gauge!(crate::metrics::CLUSTER_REDIS_UP).set(up);
    }

    /// Whether the last heartbeat reached Redis (it may answer even while the
    /// subscription is being re-established).
    pub fn heartbeat_ok(&self) -> bool {
        self.state.lock().heartbeat
    }

    /// Whether the subscription is up and caught up.
    pub fn subscribed(&self) -> bool {
        self.state.lock().subscribed
    }

    /// Changes whenever the Redis link was lost.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The pub/sub link is up (true) or down, with the error.
    pub fn set_subscribed(&self, up: bool, error: Option<String>) {
        if !up {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        let mut s = self.state.lock();
        s.subscribed = up;
        if error.is_some() {
            s.last_error = error;
        }
        Self::publish_gauge(&s);
    }

    /// The heartbeat worked (true) or failed, with the error.
    pub fn set_heartbeat(&self, up: bool, error: Option<String>) {
        let mut s = self.state.lock();
        s.heartbeat = up;
        if error.is_some() {
            s.last_error = error;
        }
        Self::publish_gauge(&s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_both_links() {
        let h = Health::default();
        assert!(h.check().unwrap_err().contains("not connected yet"));
        h.set_subscribed(true, None);
        assert!(h.check().is_err());
        h.set_heartbeat(true, None);
        assert!(h.check().is_ok());
        h.set_subscribed(false, Some("connection refused".into()));
        let why = h.check().unwrap_err();
        assert!(why.contains("redis unreachable") && why.contains("connection refused"));
    }
}
