//! REST handlers (contract section 6): each checks access, reads and validates
//! its input, asks the registry by message, and answers JSON.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{parse_json, read_body, registry_down, registry_gone, require_write_access, AppState};
use crate::error::{ErrorBody, HubError};
use crate::protocol::{check_event_type, MAX_USER_BYTES};
use crate::registry::{
    Disconnect, GetHistory, GetStatus, ListRooms, ListSockets, Ping, Publish, PublishAck,
    PublishBatch, PublishUser,
};

/// How long health probes wait for the registry before calling it stuck.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

type Data = web::Data<AppState>;

/// `GET /socket-status`: counts only, public.
pub async fn socket_status(state: Data) -> Result<HttpResponse, HubError> {
    let status = state
        .registry
        .send(GetStatus)
        .await
        .map_err(registry_down)?;
    Ok(HttpResponse::Ok().json(status))
}

/// `?type=` filter of the socket list.
#[derive(Deserialize)]
pub struct SocketsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `GET /socket-status/sockets` (admin).
pub async fn list_sockets(
    req: HttpRequest,
    state: Data,
    query: web::Query<SocketsQuery>,
) -> Result<HttpResponse, HubError> {
    require_write_access(&req, &state.config)?;
    let kind = query.into_inner().kind;
    let list = state
        .registry
        .send(ListSockets { kind })
        .await
        .map_err(registry_down)?;
    Ok(HttpResponse::Ok().json(list))
}

/// Body of a single publish.
#[derive(Deserialize)]
struct EventBody {
    #[serde(rename = "type")]
    kind: String,
    data: Box<RawValue>,
}

/// `POST /api/rooms/{room}/events` (write).
pub async fn publish(
    req: HttpRequest,
    state: Data,
    room: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, HubError> {
    require_write_access(&req, &state.config)?;
    let body = read_body(&req, payload, state.config.server.max_body_bytes).await?;
    let EventBody { kind, data } = parse_json(&body)?;
    check_event_type(&kind).map_err(HubError::BadRequest)?;
    // `do_send` + a reply channel, not `send`: the registry answers as soon as
    // the seq is assigned, before it fans the event out.
    let (msg, answer) = Publish::http(room.into_inner(), kind, data);
    state.registry.do_send(msg);
    let ack = answer.await.map_err(|_| registry_gone())??;
    Ok(HttpResponse::Ok().json(ack))
}

/// One item of a batch publish.
#[derive(Deserialize)]
struct BatchItem {
    room: String,
    #[serde(rename = "type")]
    kind: String,
    data: Box<RawValue>,
}

/// One result of a batch publish: the ack, or the error for that item.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchResult {
    Ok(PublishAck),
    Err {
        room: String,
        #[serde(flatten)]
        error: ErrorBody,
    },
}

/// `POST /api/events` (write): items are applied in order; each gets a result.
pub async fn publish_batch(
    req: HttpRequest,
    state: Data,
    payload: web::Payload,
) -> Result<HttpResponse, HubError> {
    require_write_access(&req, &state.config)?;
    let body = read_body(&req, payload, state.config.server.max_body_bytes).await?;
    let items: Vec<BatchItem> = parse_json(&body)?;
    // Items with a bad type never reach the registry; their slot keeps its place.
    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(items.len());
    let mut publishes = Vec::with_capacity(items.len());
    for item in items {
        match check_event_type(&item.kind) {
            Ok(()) => {
                results.push(None);
                publishes.push(Publish::http(item.room, item.kind, item.data).0);
            }
            Err(message) => results.push(Some(BatchResult::Err {
                room: item.room,
                error: HubError::BadRequest(message).body(),
            })),
        }
    }
    let rooms: Vec<String> = publishes.iter().map(|p| p.room.clone()).collect();
    let (reply, answer) = tokio::sync::oneshot::channel();
    state.registry.do_send(PublishBatch {
        items: publishes,
        reply,
    });
    let acks = answer.await.map_err(|_| registry_gone())?;
    let mut acks = acks.into_iter().zip(rooms);
    let results: Vec<BatchResult> = results
        .into_iter()
        .filter_map(|slot| match slot {
            Some(done) => Some(done),
            None => acks.next().map(|(ack, room)| match ack {
                Ok(ack) => BatchResult::Ok(ack),
                Err(err) => BatchResult::Err {
                    room,
                    error: err.body(),
                },
            }),
        })
        .collect();
    Ok(HttpResponse::Ok().json(results))
}

/// `POST /api/users/{user}/events` (write).
pub async fn publish_user(
    req: HttpRequest,
    state: Data,
    user: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, HubError> {
    require_write_access(&req, &state.config)?;
    let user = user.into_inner();
    if user.is_empty() || user.len() > MAX_USER_BYTES {
        return Err(HubError::BadRequest(format!(
            "user id must be 1 to {MAX_USER_BYTES} bytes"
        )));
    }
    let body = read_body(&req, payload, state.config.server.max_body_bytes).await?;
    let EventBody { kind, data } = parse_json(&body)?;
    check_event_type(&kind).map_err(HubError::BadRequest)?;
    let delivered = state
        .registry
        .send(PublishUser { user, kind, data })
        .await
        .map_err(registry_down)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "delivered": delivered })))
}

/// `GET /api/rooms`.
pub async fn list_rooms(state: Data) -> Result<HttpResponse, HubError> {
    let rooms = state
        .registry
        .send(ListRooms)
        .await
        .map_err(registry_down)?;
    Ok(HttpResponse::Ok().json(rooms))
}

/// `?since=&limit=` of the history endpoint.
#[derive(Deserialize)]
pub struct HistoryQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/rooms/{room}/history`: the HTTP fallback for clients that cannot
/// resume over the socket.
pub async fn history(
    state: Data,
    room: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, HubError> {
    let HistoryQuery { since, limit } = query.into_inner();
    let page = state
        .registry
        .send(GetHistory {
            room: room.into_inner(),
            since: since.unwrap_or(0),
            limit: limit.unwrap_or(usize::MAX),
        })
        .await
        .map_err(registry_down)??;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(page.to_json()))
}

/// `POST /api/sockets/{id}/disconnect` (admin): closes with 4009.
pub async fn disconnect(
    req: HttpRequest,
    state: Data,
    id: web::Path<String>,
) -> Result<HttpResponse, HubError> {
    require_write_access(&req, &state.config)?;
    let id = id.into_inner();
    state
        .registry
        .send(Disconnect { id: id.clone() })
        .await
        .map_err(registry_down)??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "disconnected": id })))
}

async fn registry_answers(state: &AppState) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, state.registry.send(Ping)).await,
        Ok(Ok(()))
    )
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(state: Data) -> Result<HttpResponse, HubError> {
    let body = crate::metrics::render(state.registry.depth()).ok_or_else(|| {
        HubError::Unavailable("another metrics recorder is installed in this process".into())
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}

/// `GET /healthz`: 200 while the process and its registry answer.
pub async fn healthz(state: Data) -> Result<HttpResponse, HubError> {
    if registry_answers(&state).await {
        Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })))
    } else {
        Err(HubError::Unavailable("registry does not answer".into()))
    }
}

/// `GET /readyz`: 200 while accepting sockets; 503 with the reason otherwise.
pub async fn readyz(state: Data) -> Result<HttpResponse, HubError> {
    if state.is_draining() {
        return Err(HubError::Unavailable("draining".into()));
    }
    if !registry_answers(&state).await {
        return Err(HubError::Unavailable("registry does not answer".into()));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}
