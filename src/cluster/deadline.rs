//! Running one Redis call under a hard deadline, so no caller ever waits on
//! Redis longer than `cluster.command_timeout_ms` (or `connect_timeout_ms` to
//! open a connection).

use std::future::Future;
use std::time::Duration;

use redis::RedisResult;

use super::ClusterError;
use crate::config::ClusterConfig;

/// The timeouts of [`ClusterConfig`], as durations.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Opening a connection.
    pub connect: Duration,
    /// One command or pipeline.
    pub command: Duration,
    /// Longest pause between reconnect attempts.
    pub reconnect_max: Duration,
    /// Node record refresh.
    pub heartbeat: Duration,
}

impl Timeouts {
    /// From the config.
    pub fn new(c: &ClusterConfig) -> Self {
        Timeouts {
            connect: Duration::from_millis(c.connect_timeout_ms),
            command: Duration::from_millis(c.command_timeout_ms),
            reconnect_max: Duration::from_millis(c.reconnect_max_ms),
            heartbeat: Duration::from_millis(c.heartbeat_ms),
        }
    }
}

/// Runs `fut` for at most `limit`; a timeout is an error like any other.
pub async fn within<T>(
    limit: Duration,
    fut: impl Future<Output = RedisResult<T>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ClusterError::Timeout(limit)),
    }
}
