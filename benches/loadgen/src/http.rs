//! The hub's HTTP API, as far as the harness uses it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::endpoint::Endpoint;
use crate::latency::SharedHistogram;

/// Per-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client for one hub.
#[derive(Debug, Clone)]
pub struct HubHttp {
    client: reqwest::Client,
    endpoint: Endpoint,
}

/// The part of a publish answer the harness reads.
#[derive(Debug, Deserialize)]
struct PublishAck {
    seq: u64,
}

/// One result of `POST /api/events`: an ack (`seq`, `epoch`) or an `error`.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchOutcome {
    /// The item's room.
    pub room: String,
    /// Its seq, when accepted.
    #[serde(default)]
    pub seq: Option<u64>,
    /// The room's epoch, when accepted.
    #[serde(default)]
    pub epoch: Option<String>,
    /// The error code, when refused.
    #[serde(default)]
    pub error: Option<String>,
}

/// One room of `GET /api/rooms`.
#[derive(Debug, Clone, Deserialize)]
pub struct RoomListing {
    /// Name.
    pub room: String,
    /// Epoch.
    pub epoch: String,
    /// Head seq.
    pub seq: u64,
    /// Events held in history.
    pub history: u64,
}

/// The part of `GET /api/rooms/{room}/history` the harness reads.
#[derive(Debug, Clone, Deserialize)]
pub struct RoomHistory {
    /// Epoch.
    pub epoch: String,
    /// Head seq.
    pub seq: u64,
    /// The events, oldest first.
    pub events: Vec<HistoryEvent>,
}

/// One event of a history answer.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryEvent {
    /// Its seq.
    pub seq: u64,
}

/// The part of `/socket-status` the harness reads.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct SocketStatus {
    /// Sockets connected to the hub.
    pub total_sockets: u64,
}

impl HubHttp {
    /// A client that never uses a proxy and keeps up to `pool` idle connections.
    pub fn new(endpoint: &Endpoint, pool: usize) -> Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            endpoint: endpoint.clone(),
        })
    }

    /// Publishes `body` into `room`; returns the seq the hub gave it.
    pub async fn publish(&self, room: &str, body: String) -> Result<u64> {
        let url = self.endpoint.http_url(&format!("/api/rooms/{room}/events"));
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .context("publish request")?;
        let status = response.status();
        let bytes = response.bytes().await.context("publish answer")?;
        if !status.is_success() {
            bail!(
                "publish answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let ack: PublishAck =
            serde_json::from_slice(&bytes).context("publish answer is not {seq}")?;
        Ok(ack.seq)
    }

    /// `POST /api/events` with `body` (a JSON array of items); one outcome per item.
    pub async fn publish_batch(&self, body: String) -> Result<Vec<BatchOutcome>> {
        let response = self
            .client
            .post(self.endpoint.http_url("/api/events"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .context("batch publish request")?;
        let bytes = success_body(response, "batch publish").await?;
        serde_json::from_slice(&bytes).context("batch publish answer is not a list of results")
    }

    /// `GET /api/rooms`.
    pub async fn rooms(&self) -> Result<Vec<RoomListing>> {
        let response = self
            .client
            .get(self.endpoint.http_url("/api/rooms"))
            .send()
            .await
            .context("room list request")?;
        let bytes = success_body(response, "room list").await?;
        serde_json::from_slice(&bytes).context("room list answer is not a list of rooms")
    }

    /// `GET /api/rooms/{room}/history`.
    pub async fn history(&self, room: &str) -> Result<RoomHistory> {
        let response = self
            .client
            .get(
                self.endpoint
                    .http_url(&format!("/api/rooms/{room}/history")),
            )
            .send()
            .await
            .context("history request")?;
        let bytes = success_body(response, "history").await?;
        serde_json::from_slice(&bytes).context("history answer has no epoch, seq and events")
    }

    /// `GET /socket-status`.
    pub async fn socket_status(&self) -> Result<SocketStatus> {
        let response = self
            .client
            .get(self.endpoint.http_url("/socket-status"))
            .send()
            .await
            .context("socket-status request")?;
        let status = response.status();
        let bytes = response.bytes().await.context("socket-status answer")?;
        if !status.is_success() {
            bail!("socket-status answered {status}");
        }
        serde_json::from_slice(&bytes).context("socket-status answer has no total_sockets")
    }

    /// `GET /socket-status`, recording its round trip into `latency`.
    pub async fn timed_socket_status(&self, latency: &SharedHistogram) -> Result<SocketStatus> {
        let started = Instant::now();
        let status = self.socket_status().await?;
        latency.record(duration_ns(started.elapsed()));
        Ok(status)
    }

    /// True when `GET /healthz` answers 200.
    pub async fn healthy(&self) -> bool {
        let request = self.client.get(self.endpoint.http_url("/healthz")).send();
        matches!(request.await, Ok(r) if r.status().is_success())
    }

    /// True when `GET /readyz` answers 200.
    pub async fn ready(&self) -> bool {
        let request = self.client.get(self.endpoint.http_url("/readyz")).send();
        matches!(request.await, Ok(r) if r.status().is_success())
    }

    /// Polls `/socket-status` until `total_sockets <= target` or `max_wait` passes;
    /// returns the last total seen.
    pub async fn wait_sockets_at_most(&self, target: u64, max_wait: Duration) -> Result<u64> {
        let deadline = Instant::now() + max_wait;
        loop {
            let total = self.socket_status().await?.total_sockets;
            if total <= target || Instant::now() >= deadline {
                return Ok(total);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The body of a 2xx answer; an error naming `what` and the body otherwise.
async fn success_body(response: reqwest::Response, what: &str) -> Result<Vec<u8>> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("{what} answer"))?;
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
        bail!("{what} answered {status}: {text}");
    }
    Ok(bytes.to_vec())
}

/// `d` in nanoseconds, saturating.
pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
