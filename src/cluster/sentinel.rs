//! Where the cluster's Redis is: one fixed URL (`cluster.redis_url`), or the
//! primary that Redis Sentinel names (`cluster.sentinels`).
//!
//! Every task asks the shared [`Endpoint`] for a client before it connects. In
//! Sentinel mode the endpoint asks each Sentinel in turn for the primary
//! (`SENTINEL get-master-addr-by-name`), checks that instance's `ROLE` really is
//! `master` (a Sentinel may not have noticed a failover yet), and keeps that
//! client until someone reports it [`lost`](Endpoint::lost): the subscription
//! dropping, a `READONLY` answer (the primary was demoted), or a `+switch-master`
//! announcement heard by [`watch`]. Losing it bumps [`Endpoint::changes`], which
//! makes every connection reopen at the new primary and the subscription
//! reconnect and catch up.
//!
//! The lookup is done here by hand (two commands), not with the redis crate's
//! `sentinel` feature: that one opens its connections without our connect and
//! command deadlines and has no way to hear `+switch-master`; see
//! docs/ARCHITECTURE.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};

use super::deadline::{within, Timeouts};
use super::ClusterError;
use crate::config::ClusterConfig;

/// The Sentinels and how to reach them and the data nodes.
#[derive(Debug, Clone)]
struct Sentinels {
    addrs: Vec<(String, u16)>,
    master: String,
    password: String,
    tls: bool,
}

impl Sentinels {
    /// A client for `host:port` with this deployment's password and TLS.
    fn client(&self, host: &str, port: u16) -> Result<Client, ClusterError> {
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_string(), port)
        };
        let mut redis = RedisConnectionInfo::default();
        if !self.password.is_empty() {
            redis = redis.set_password(&self.password);
        }
        let info = addr
            .into_connection_info()
            .map_err(|e| ClusterError::Address(e.to_string()))?
            .set_redis_settings(redis);
        Client::open(info).map_err(|e| ClusterError::Address(e.to_string()))
    }

    /// Asks one Sentinel for the primary, then asks that instance its role.
    async fn ask(
        &self,
        sentinel: &(String, u16),
        t: Timeouts,
    ) -> Result<(Client, String), ClusterError> {
        let s = self.client(&sentinel.0, sentinel.1)?;
        let mut c = within(t.connect, s.get_multiplexed_async_connection()).await?;
        let answer: Value = within(
            t.command,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master)
                .query_async(&mut c),
        )
        .await?;
        let (host, port) = decode_addr(&answer)
            .ok_or_else(|| ClusterError::Sentinel(format!("does not know {:?}", self.master)))?;
        let primary = self.client(&host, port)?;
        let mut p = within(t.connect, primary.get_multiplexed_async_connection())
            .await
            .map_err(|e| {
                ClusterError::Sentinel(format!("named {host}:{port}, unreachable: {e}"))
            })?;
        let role: Value = within(t.command, redis::cmd("ROLE").query_async(&mut p)).await?;
        match decode_role(&role).as_deref() {
            Some("master") => Ok((primary, format!("{host}:{port}"))),
            other => Err(ClusterError::Sentinel(format!(
                "named {host}:{port}, which is {}",
                other.unwrap_or("of unknown role")
            ))),
        }
    }
}

/// `[host, port]` from `get-master-addr-by-name` (nil when unknown).
fn decode_addr(v: &Value) -> Option<(String, u16)> {
    let Value::Array(items) = v else {
        return None;
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let host = text(items.first()?)?;
    let port = text(items.get(1)?)?.parse().ok()?;
    Some((host, port))
}

/// The first element of a `ROLE` answer: `master`, `slave` or `sentinel`.
fn decode_role(v: &Value) -> Option<String> {
    let Value::Array(items) = v else {
        return None;
    };
    match items.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

enum Source {
    Fixed(Client),
    Sentinel(Sentinels),
}

/// See the module docs. Shared by every task of the broker.
pub struct Endpoint {
    source: Source,
    timeouts: Timeouts,
    /// The primary in use and its `host:port`; `None` = look it up again.
    current: Mutex<Option<(Client, String)>>,
    /// One lookup at a time; the others wait for its result.
    resolving: tokio::sync::Mutex<()>,
    /// Bumped each time the primary in use is given up.
    changes: AtomicU64,
}

impl Endpoint {
    /// From the config: `redis_url`, or the Sentinels.
    pub fn new(c: &ClusterConfig) -> Result<Endpoint, ClusterError> {
        let timeouts = Timeouts::new(c);
        let source = if c.sentinels.is_empty() {
            Source::Fixed(
                Client::open(c.redis_url.as_str())
                    .map_err(|e| ClusterError::Address(e.to_string()))?,
            )
        } else {
            let addrs = c
                .sentinels
                .iter()
                .map(|a| {
                    crate::address::host_port(a).ok_or_else(|| ClusterError::Address(a.clone()))
                })
                .collect::<Result<_, _>>()?;
            Source::Sentinel(Sentinels {
                addrs,
                master: c.sentinel_master.clone(),
                password: c.sentinel_password.clone(),
                tls: c.sentinel_tls,
            })
        };
        Ok(Endpoint {
            source,
            timeouts,
            current: Mutex::new(None),
            resolving: tokio::sync::Mutex::new(()),
            changes: AtomicU64::new(0),
        })
    }

    /// Whether the primary comes from Sentinel (and may move).
    pub fn is_sentinel(&self) -> bool {
        matches!(self.source, Source::Sentinel(_))
    }

    /// Changes whenever the primary in use was given up.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// A client for the current primary, looked up first if needed.
    pub async fn client(&self) -> Result<Client, ClusterError> {
        let sentinels = match &self.source {
            Source::Fixed(c) => return Ok(c.clone()),
            Source::Sentinel(s) => s,
        };
        if let Some((c, _)) = &*self.current.lock() {
            return Ok(c.clone());
        }
        let _one = self.resolving.lock().await;
        if let Some((c, _)) = &*self.current.lock() {
            return Ok(c.clone());
        }
        let mut reasons = Vec::new();
        for s in &sentinels.addrs {
            match sentinels.ask(s, self.timeouts).await {
                Ok((client, addr)) => {
                    log::info!(
                        "cluster: sentinel {}:{} names {addr} the primary of {:?}",
                        s.0,
                        s.1,
                        sentinels.master
                    );
                    *self.current.lock() = Some((client.clone(), addr));
                    return Ok(client);
                }
                Err(e) => reasons.push(format!("{}:{} {e}", s.0, s.1)),
            }
        }
        Err(ClusterError::NoPrimary {
            master: sentinels.master.clone(),
            tried: sentinels.addrs.len(),
            reasons: reasons.join("; "),
        })
    }

    /// The primary in use failed or moved: the next [`client`](Self::client)
    /// looks it up again. A no-op for a fixed URL, and while none is in use.
    pub fn lost(&self, why: &str) {
        if !self.is_sentinel() {
            return;
        }
        if let Some((_, addr)) = self.current.lock().take() {
            log::warn!("cluster: giving up primary {addr}: {why}");
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Listens on the Sentinels (one at a time, the next when it fails) for
/// `+switch-master` of our primary and gives the old one up at once, rather
/// than when a command to it fails. Runs until the arbiter stops; a no-op for
/// a fixed URL.
pub async fn watch(endpoint: std::sync::Arc<Endpoint>) {
    let Source::Sentinel(sentinels) = &endpoint.source else {
        return;
    };
    let t = endpoint.timeouts;
    let mut next = 0usize;
    loop {
        let s = &sentinels.addrs[next % sentinels.addrs.len()];
        next = next.wrapping_add(1);
        if let Err(e) = listen(sentinels, s, &endpoint, t).await {
            log::debug!("cluster: sentinel {}:{} watch: {e}", s.0, s.1);
        }
        tokio::time::sleep(t.reconnect_max.min(Duration::from_millis(500))).await;
    }
}

async fn listen(
    sentinels: &Sentinels,
    s: &(String, u16),
    endpoint: &Endpoint,
    t: Timeouts,
) -> Result<(), ClusterError> {
    let client = sentinels.client(&s.0, s.1)?;
    let mut pubsub = within(t.connect, client.get_async_pubsub()).await?;
    within(t.command, pubsub.subscribe("+switch-master")).await?;
    let mut stream = pubsub.into_on_message();
    while let Some(msg) = stream.next().await {
        let payload: String = msg.get_payload().unwrap_or_default();
        // `NAME OLD_IP OLD_PORT NEW_IP NEW_PORT`
        let mut parts = payload.split_whitespace();
        if parts.next() == Some(sentinels.master.as_str()) {
            endpoint.lost(&format!(
                "sentinel {}:{} announced +switch-master {payload}",
                s.0, s.1
            ));
        }
    }
    Err(ClusterError::Closed("sentinel"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_answers_decode() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let addr = Value::Array(vec![bulk("10.0.0.2"), bulk("6380")]);
        assert_eq!(decode_addr(&addr), Some(("10.0.0.2".into(), 6380)));
        assert_eq!(decode_addr(&Value::Nil), None);
        let role = Value::Array(vec![bulk("slave"), bulk("10.0.0.2"), Value::Int(6380)]);
        assert_eq!(decode_role(&role).as_deref(), Some("slave"));
    }
}
