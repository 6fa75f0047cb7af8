//! Fitting the hub inside the process's file-descriptor limit, so that at the
//! limit it refuses upgrades with 503 `over_capacity` and keeps answering
//! `/healthz` and `/socket-status`, instead of failing `accept()` with EMFILE.
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard one (as servers are
//! expected to), then: sessions get the limit minus a reserve for HTTP requests,
//! handshakes in flight and the process's own fds; every accepted connection
//! together stays a few fds under the limit (actix's per-worker cap).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Fds kept for the process itself (listeners, epoll, eventfds, logs).
const PROCESS_FDS: u64 = 32;
/// The smallest reserve for non-session connections.
const MIN_RESERVE: u64 = 64;

/// How many connections the hub may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft fd limit in force (None: unlimited).
    pub limit: Option<u64>,
    /// WebSocket sessions: `websocket.max_connections`, capped by the limit.
    pub max_sessions: usize,
    /// Accepted connections per HTTP worker (None: actix's default).
    pub max_accepted_per_worker: Option<usize>,
}

/// Raises the soft limit to the hard one where allowed; returns the soft limit.
fn raise_soft_limit() -> Option<u64> {
    let now = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (now.current, now.maximum) {
        if soft < hard
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            )
            .is_ok()
        {
            return Some(hard);
        }
    }
    now.current
}

/// The budget for a process whose soft fd limit is `limit`.
pub fn budget(limit: Option<u64>, configured_max: usize, workers: usize) -> FdBudget {
    let Some(limit) = limit else {
        return FdBudget {
            limit,
            max_sessions: configured_max,
            max_accepted_per_worker: None,
        };
    };
    let reserve = MIN_RESERVE.max(limit / 16);
    let sessions = limit.saturating_sub(reserve + PROCESS_FDS).max(1);
    let accepted = limit.saturating_sub(PROCESS_FDS).max(1) / workers.max(1) as u64;
    FdBudget {
        limit: Some(limit),
        max_sessions: configured_max.min(sessions as usize),
        max_accepted_per_worker: Some(accepted.max(1) as usize),
    }
}

/// Raises the soft limit and plans the budget for this process.
pub fn plan(configured_max: usize, workers: usize) -> FdBudget {
    let plan = budget(raise_soft_limit(), configured_max, workers);
    if plan.max_sessions < configured_max {
        // Loud only when an operator asked for more than the limit allows.
        let level = if configured_max == crate::config::WebSocketConfig::default().max_connections {
            log::Level::Info
        } else {
            log::Level::Warn
        };
        log::log!(
            level,
            "RLIMIT_NOFILE is {}: websocket.max_connections capped at {} (raise `ulimit -n` for more)",
            plan.limit.unwrap_or(0),
            plan.max_sessions
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_leave_a_reserve_and_accepts_stay_under_the_limit() {
        let b = budget(Some(20_000), 100_000, 2);
        assert_eq!(b.max_sessions, 20_000 - 1_250 - 32);
        assert_eq!(b.max_accepted_per_worker, Some((20_000 - 32) / 2));
        let small = budget(Some(256), 100_000, 2);
        assert_eq!(small.max_sessions, 256 - 64 - 32);
        assert!(small.max_accepted_per_worker.is_some_and(|n| n * 2 < 256));
        assert_eq!(
            budget(Some(20_000), 500, 2).max_sessions,
            500,
            "config wins when lower"
        );
        assert_eq!(budget(None, 7, 2).max_sessions, 7);
    }
}
