//! The HTTP side: one reqwest client, requests that answer (status, JSON body),
//! publishing, and polling an endpoint until it says what a test waits for.
//! Every wait is bounded.

use std::time::Duration;

use realtime_hub::SpawnedHub;
use serde_json::{json, Value};

use super::WAIT;

/// An HTTP client with a bounded timeout.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client")
}

/// (status, JSON body) of an answer; a body that is not JSON comes back as a
/// JSON string, and no answer at all (refused, timed out) as status 0.
async fn answer(sent: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    match sent {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        Err(e) => (0, Value::String(format!("no answer: {e}"))),
    }
}

/// GET `url`: (status, JSON body).
pub async fn get(url: &str) -> (u16, Value) {
    answer(http().get(url).send().await).await
}

/// POST JSON to `url`: (status, JSON body).
pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    post_raw(url, body.to_string()).await
}

/// POST a raw body to `url` as JSON: (status, JSON body).
pub async fn post_raw(url: &str, body: String) -> (u16, Value) {
    answer(
        http()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await,
    )
    .await
}

/// POSTs one event (`{"type":kind,"data":data}`) to `url` with `client`.
pub async fn post_event(
    client: &reqwest::Client,
    url: &str,
    kind: &str,
    data: &Value,
) -> (u16, Value) {
    post_event_keyed(client, url, kind, data, None).await
}

/// [`post_event`] with an `Idempotency-Key` header when `key` is given.
pub async fn post_event_keyed(
    client: &reqwest::Client,
    url: &str,
    kind: &str,
    data: &Value,
    key: Option<&str>,
) -> (u16, Value) {
    let body = json!({"type": kind, "data": data}).to_string();
    let mut request = client.post(url).header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    answer(request.body(body).send().await).await
}

/// Publishes one event over HTTP; asserts 200 and returns the ack.
pub async fn publish(hub: &SpawnedHub, room: &str, kind: &str, data: Value) -> Value {
    let url = hub.http(&format!("/api/rooms/{room}/events"));
    let (status, ack) = post_event(&http(), &url, kind, &data).await;
    assert_eq!(status, 200, "publish failed: {ack}");
    ack
}

/// Polls `/socket-status` until `pred` holds (bounded by WAIT).
pub async fn wait_status(hub: &SpawnedHub, pred: impl Fn(&Value) -> bool) -> Value {
    poll_status(&hub.http("/socket-status"), WAIT, pred).await
}

/// [`poll_http`] for a status body: panics when `pred` never held.
pub async fn poll_status(url: &str, wait: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let (_, s) = poll_http(url, wait, |_, s| pred(s)).await;
    assert!(pred(&s), "status never matched; last: {s}");
    s
}

/// GETs `url` every 20 ms until `pred(status, body)` holds or `wait` passes;
/// returns the last answer either way.
pub async fn poll_http(
    url: &str,
    wait: Duration,
    pred: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (status, body) = get(url).await;
        if pred(status, &body) || tokio::time::Instant::now() >= deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sum of a metric's samples on a node's /metrics (0 when absent).
pub async fn metric_sum(url: &str, name: &str) -> f64 {
    let text = http()
        .get(url)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}
