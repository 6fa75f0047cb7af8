//! Why a call to Redis (or to a Sentinel about Redis) did not work: the one
//! error type of cluster mode, turned into the hub's `unavailable` in one
//! place ([`From<ClusterError> for HubError`](ClusterError)).

use std::time::Duration;

use crate::error::HubError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// Redis answered with an error, or the connection failed.
    #[error("{0}")]
    Redis(String),
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// An answer of a shape this version does not know (a script or a Redis
    /// of another version).
    #[error("unexpected {0} answer")]
    Unexpected(&'static str),
    /// The primary changed under a step that needs it to stay the same (the
    /// step's result could hand out or miss events; see `fence`).
    #[error("the primary changed {0}")]
    PrimaryChanged(&'static str),
    #[error("{0} connection closed")]
    Closed(&'static str),
    /// After a failover, publishing waits until this node's subscription has
    /// caught up at the new primary.
    #[error("waiting for the subscription to catch up at the primary")]
    NotCaughtUp,
    /// Fewer replicas than `min_replicas_acked` held a publish in time.
    #[error("{acked} of {wanted} replicas acknowledged within {} ms", .within.as_millis())]
    Unreplicated {
        acked: i64,
        wanted: u32,
        within: Duration,
    },
    /// No Sentinel named a primary that answered as one.
    #[error("no primary for {master:?} from {tried} sentinel(s): {reasons}")]
    NoPrimary {
        master: String,
        tried: usize,
        /// What each Sentinel said, `; `-joined.
        reasons: String,
    },
    /// What one Sentinel said instead of naming a usable primary.
    #[error("{0}")]
    Sentinel(String),
    /// The configured address cannot be turned into a client.
    #[error("bad redis address: {0}")]
    Address(String),
    /// A message of ours that would not encode (cannot happen with the types
    /// sent; kept an error rather than a panic).
    #[error("encoding: {0}")]
    Encode(String),
}

impl ClusterError {
    /// The instance answered as a replica (`READONLY`) or as a primary that
    /// lost its replicas' quorum (`MASTERDOWN`): it is no longer the primary.
    pub fn demoted(&self) -> bool {
        matches!(self, ClusterError::Redis(m) if m.contains("READONLY") || m.contains("MASTERDOWN"))
    }
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        ClusterError::Redis(e.to_string())
    }
}

impl From<serde_json::Error> for ClusterError {
    fn from(e: serde_json::Error) -> Self {
        ClusterError::Encode(e.to_string())
    }
}

impl From<ClusterError> for HubError {
    fn from(e: ClusterError) -> Self {
        HubError::Unavailable(format!("cluster store unavailable: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_demoted_primary_is_told_by_its_answer() {
        let readonly: ClusterError =
            ClusterError::Redis("READONLY: You can't write against a read only replica.".into());
        assert!(readonly.demoted());
        assert!(!ClusterError::Redis("connection refused".into()).demoted());
        assert!(!ClusterError::Timeout(Duration::from_millis(5)).demoted());
        assert_eq!(
            HubError::from(ClusterError::Timeout(Duration::from_millis(250))).to_string(),
            HubError::Unavailable("cluster store unavailable: no answer within 250 ms".into())
                .to_string()
        );
    }
}
