//! The command connection every lane and task uses: opened on first use at
//! the primary the endpoint names, dropped after any failure.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use super::deadline::{within, Timeouts};
use super::sentinel::Endpoint;
use super::{ClusterError, Health};

/// A command connection opened on first use and dropped after any failure, so
/// the next call opens a fresh one: every call either works or fails within
/// its deadline, and a Redis that comes back is picked up by the next call.
pub struct LazyConnection {
    endpoint: Arc<Endpoint>,
    timeouts: Timeouts,
    health: Arc<Health>,
    conn: Option<Open>,
}

struct Open {
    conn: MultiplexedConnection,
    /// The link generation and primary change it was opened in.
    generation: (u64, u64),
    /// Its primary's replication id, once asked.
    replid: Option<Arc<str>>,
}

impl LazyConnection {
    /// Not connected yet.
    pub fn new(endpoint: Arc<Endpoint>, timeouts: Timeouts, health: Arc<Health>) -> Self {
        LazyConnection {
            endpoint,
            timeouts,
            health,
            conn: None,
        }
    }

    /// The connection, opening it if needed.
    pub async fn get(&mut self) -> Result<MultiplexedConnection, ClusterError> {
        let generation = (self.health.generation(), self.endpoint.changes());
        match &self.conn {
            Some(open) if open.generation == generation => return Ok(open.conn.clone()),
            _ => self.conn = None,
        }
        let t = self.timeouts;
        // Twice the command timeout: a publish's `WAIT` may take one whole
        // command timeout after its scripts; callers keep their own deadlines.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(t.connect))
            .set_response_timeout(Some(t.command * 2));
        let client = self.endpoint.client().await?;
        let conn = within(
            t.connect,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await?;
        self.conn = Some(Open {
            conn: conn.clone(),
            generation,
            replid: None,
        });
        Ok(conn)
    }

    /// The connection and its primary's replication id (asked once per
    /// connection: a primary keeps its id while it stays primary).
    pub async fn get_at_primary(
        &mut self,
    ) -> Result<(MultiplexedConnection, Arc<str>), ClusterError> {
        let mut c = self.get().await?;
        if let Some(id) = self.conn.as_ref().and_then(|o| o.replid.clone()) {
            return Ok((c, id));
        }
        let id = match replication_id(&mut c, self.timeouts).await {
            Ok(id) => id,
            Err(e) => {
                self.failed(&e);
                return Err(e);
            }
        };
        if let Some(open) = &mut self.conn {
            open.replid = Some(id.clone());
        }
        Ok((c, id))
    }

    /// A call on the connection failed: the next call opens a new one (at a
    /// new primary, if the error says this one was demoted).
    pub fn failed(&mut self, error: &ClusterError) {
        self.conn = None;
        if error.demoted() {
            self.endpoint.lost(&error.to_string());
        }
    }

    /// The endpoint it connects through.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

/// The primary's replication id, from `INFO replication` ("" if it has none,
/// a Redis too old to say: no fence then).
async fn replication_id(
    c: &mut MultiplexedConnection,
    t: Timeouts,
) -> Result<Arc<str>, ClusterError> {
    let info: String = within(
        t.command,
        redis::cmd("INFO").arg("replication").query_async(c),
    )
    .await?;
    Ok(Arc::from(
        info.lines()
            .find_map(|l| l.trim().strip_prefix("master_replid:"))
            .unwrap_or(""),
    ))
}
