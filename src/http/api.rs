//! REST handlers (contract section 6): each checks access, reads and validates
//! its input, asks the registry by message, and answers JSON.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    parse_json, read_access, read_json_body, registry_down, registry_gone, require_write_access,
    AppState,
};
use crate::engine::PublishAck;
use crate::error::{ErrorBody, HubError};
use crate::protocol::{check_event_type, check_idempotency_key, event_data, MAX_USER_BYTES};
use crate::registry::{
    Disconnect, GetHistory, GetPresence, GetStatus, ListRooms, ListSockets, Ping, Publish,
    PublishBatch, PublishUser, Read, RoomInfo, Status,
};
use crate::session_stats::SocketInfo;

/// How long health probes wait for the registry before calling it stuck.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

type Data = web::Data<AppState>;

/// `GET /socket-status`: counts only, public.
#[utoipa::path(get, path = "/socket-status", tag = "status",
    responses((status = 200, description = "Who is connected, by type and room", body = Status)))]
pub async fn socket_status(state: Data) -> Result<HttpResponse, HubError> {
    let body = state
        .registry
        .send(GetStatus)
        .await
        .map_err(registry_down)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// `?type=` filter of the socket list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketsQuery {
    /// Only sockets of this type (`connect`, a room name).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
}

/// `GET /socket-status/sockets` (admin).
#[utoipa::path(get, path = "/socket-status/sockets", tag = "admin", params(SocketsQuery), security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Every open session", body = Vec<SocketInfo>),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "A browser Origin not in server.allowed_origins (forbidden_origin); or, with no API keys configured, a caller not on loopback or a Host that is neither a loopback name nor in server.public_hosts", body = ErrorBody),
    ))]
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
        .map_err(registry_down)?
        .get()
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Body of a single publish (and of a user message).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct EventBody {
    /// The event type; not one of the reserved frame types.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 128)]
    kind: String,
    /// Any JSON value, delivered byte for byte.
    #[schema(value_type = Value)]
    data: Box<RawValue>,
}

/// Body of a publish into a room.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoomEventBody {
    /// The event type; not one of the reserved frame types.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 128)]
    kind: String,
    /// Any JSON value, delivered byte for byte; may be absent (then `null`)
    /// only for a `delete`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Value>)]
    data: Option<Box<RawValue>>,
    /// A keyed room's state key (1-256 bytes): the event becomes the key's
    /// latest (contract section 11). Refused (400) by a room that is not keyed.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    key: Option<String>,
    /// Removes `key` from the room's state.
    #[serde(default)]
    delete: bool,
}

/// A field that is present, `null` included (absent is the `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Reads, parses and checks the `{type, data}` body of a user message.
async fn read_event_body(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<EventBody, HubError> {
    let body = read_json_body(req, payload, &state.config).await?;
    let event: EventBody = parse_json(&body)?;
    check_event_type(&event.kind).map_err(HubError::BadRequest)?;
    Ok(event)
}

/// `POST /api/rooms/{room}/events` (write).
#[utoipa::path(post, path = "/api/rooms/{room}/events", tag = "publish", security((), ("api_key" = [])),
    params(
        ("room" = String, Path, description = "Room name"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-128 visible ASCII characters: a retry with the same key within rooms.idempotency_ttl_s gets the first publish's seq (duplicate: true) instead of a second event"),
    ),
    request_body = RoomEventBody,
    responses(
        (status = 200, description = "Accepted: the event's seq", body = PublishAck),
        (status = 400, description = "Malformed body, invalid event type, idempotency key or state key, a `key` for a room that is not keyed, or a `delete` without a key", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "A browser Origin not in server.allowed_origins (forbidden_origin); or, with no API keys configured, a caller not on loopback or a Host that is neither a loopback name nor in server.public_hosts; or a system room", body = ErrorBody),
        (status = 404, description = "Unknown room", body = ErrorBody),
        (status = 408, description = "Body not received within server.body_timeout_s (the connection is closed)", body = ErrorBody),
        (status = 409, description = "limit_exceeded: a new key in a keyed room that holds max_keys keys (nothing is stored, no seq is used)", body = ErrorBody),
        (status = 413, description = "Body over server.max_body_bytes", body = ErrorBody),
        (status = 415, description = "Body not declared Content-Type: application/json", body = ErrorBody),
        (status = 503, description = "Room limit reached or registry unavailable", body = ErrorBody),
    ))]
pub async fn publish(
    req: HttpRequest,
    state: Data,
    room: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, HubError> {
    require_write_access(&req, &state.config)?;
    let idempotency = idempotency_key(&req)?;
    let body = read_json_body(&req, payload, &state.config).await?;
    let RoomEventBody {
        kind,
        data,
        key,
        delete,
    } = parse_json(&body)?;
    check_event_type(&kind).map_err(HubError::BadRequest)?;
    let data = event_data(data, delete).map_err(HubError::BadRequest)?;
    // `do_send` + a reply channel, not `send`: the registry answers as soon as
    // the seq is assigned, before it fans the event out.
    let (msg, answer) = Publish::http(room.into_inner(), kind, data, idempotency);
    state.registry.offer_request(msg.with_key(key, delete))?;
    let ack = answer.await.map_err(|_| registry_gone())??;
    Ok(HttpResponse::Ok().json(ack))
}

/// The `Idempotency-Key` header, checked.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, HubError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| HubError::BadRequest("Idempotency-Key is not visible ASCII".into()))?;
    check_idempotency_key(key).map_err(HubError::BadRequest)?;
    Ok(Some(key.to_string()))
}

/// One item of a batch publish.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct BatchItem {
    /// Room name.
    room: String,
    /// The event type.
    #[serde(rename = "type")]
    kind: String,
    /// Any JSON value; may be absent (then `null`) only for a `delete`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Value>)]
    data: Option<Box<RawValue>>,
    /// Like the `Idempotency-Key` header of a single publish (an extension).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    idempotency_key: Option<String>,
    /// A keyed room's state key, as in a single publish.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    key: Option<String>,
    /// Removes `key` from the room's state.
    #[serde(default)]
    delete: bool,
}

/// The failure of one batch item.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchError {
    /// The item's room.
    room: String,
    /// The contract's code.
    error: crate::protocol::ErrorCode,
    /// Detail for humans.
    message: String,
}

/// One result of a batch publish: the ack, or the error for that item.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    Ok(PublishAck),
    Err(BatchError),
}

impl BatchResult {
    fn error(room: String, err: &HubError) -> Self {
        BatchResult::Err(BatchError {
            room,
            error: err.code(),
            message: err.to_string(),
        })
    }
}

/// `POST /api/events` (write): items are applied in order; each gets a result.
#[utoipa::path(post, path = "/api/events", tag = "publish", security((), ("api_key" = [])),
    request_body = Vec<BatchItem>,
    responses(
        (status = 200, description = "One result per item, in order (an item refused as a single publish would be carries that error, e.g. limit_exceeded for a new key past max_keys)", body = Vec<BatchResult>),
        (status = 400, description = "Body is not an array of items", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "A browser Origin not in server.allowed_origins (forbidden_origin); or, with no API keys configured, a caller not on loopback or a Host that is neither a loopback name nor in server.public_hosts", body = ErrorBody),
        (status = 408, description = "Body not received within server.body_timeout_s (the connection is closed)", body = ErrorBody),
        (status = 413, description = "Body over server.max_body_bytes", body = ErrorBody),
        (status = 415, description = "Body not declared Content-Type: application/json", body = ErrorBody),
        (status = 503, description = "Registry unavailable", body = ErrorBody),
    ))]
pub async fn publish_batch(
    req: HttpRequest,
    state: Data,
    payload: web::Payload,
) -> Result<HttpResponse, HubError> {
    require_write_access(&req, &state.config)?;
    let body = read_json_body(&req, payload, &state.config).await?;
    let items: Vec<BatchItem> = parse_json(&body)?;
    // Items with a bad type never reach the registry; their slot keeps its place.
    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(items.len());
    let mut publishes = Vec::with_capacity(items.len());
    for item in items {
        let checked = check_event_type(&item.kind)
            .and_then(|()| {
                item.idempotency_key
                    .as_deref()
                    .map_or(Ok(()), check_idempotency_key)
            })
            .and_then(|()| event_data(item.data, item.delete));
        match checked {
            Ok(data) => {
                results.push(None);
                let idempotency = item.idempotency_key;
                let publish = Publish::http(item.room, item.kind, data, idempotency).0;
                publishes.push(publish.with_key(item.key, item.delete));
            }
            Err(message) => results.push(Some(BatchResult::error(
                item.room,
                &HubError::BadRequest(message),
            ))),
        }
    }
    let rooms: Vec<String> = publishes.iter().map(|p| p.room.clone()).collect();
    let (reply, answer) = tokio::sync::oneshot::channel();
    state.registry.offer_request(PublishBatch {
        items: publishes,
        reply,
    })?;
    let acks = answer.await.map_err(|_| registry_gone())?;
    let mut acks = acks.into_iter().zip(rooms);
    let results: Vec<BatchResult> = results
        .into_iter()
        .filter_map(|slot| match slot {
            Some(done) => Some(done),
            None => acks.next().map(|(ack, room)| match ack {
                Ok(ack) => BatchResult::Ok(ack),
                Err(err) => BatchResult::error(room, &err),
            }),
        })
        .collect();
    Ok(HttpResponse::Ok().json(results))
}

/// Answer of a user message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Delivered {
    /// Sessions of the user it was queued for.
    delivered: usize,
}

/// `POST /api/users/{user}/events` (write).
#[utoipa::path(post, path = "/api/users/{user}/events", tag = "publish", security((), ("api_key" = [])),
    params(("user" = String, Path, description = "User id (the token's sub)")),
    request_body = EventBody,
    responses(
        (status = 200, description = "Queued for every session of the user on this node", body = Delivered),
        (status = 400, description = "Malformed body, invalid event type or user id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "A browser Origin not in server.allowed_origins (forbidden_origin); or, with no API keys configured, a caller not on loopback or a Host that is neither a loopback name nor in server.public_hosts", body = ErrorBody),
        (status = 408, description = "Body not received within server.body_timeout_s (the connection is closed)", body = ErrorBody),
        (status = 413, description = "Body over server.max_body_bytes", body = ErrorBody),
        (status = 415, description = "Body not declared Content-Type: application/json", body = ErrorBody),
        (status = 503, description = "Registry unavailable", body = ErrorBody),
    ))]
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
    let EventBody { kind, data } = read_event_body(&req, &state, payload).await?;
    let delivered = state
        .registry
        .send(PublishUser { user, kind, data })
        .await
        .map_err(registry_down)?
        .get()
        .await?;
    Ok(HttpResponse::Ok().json(Delivered { delivered }))
}

/// `GET /api/rooms`. With `auth.public_reads` false, a token reader sees only
/// the rooms its `rooms` claim allows.
#[utoipa::path(get, path = "/api/rooms", tag = "rooms",
    params(("token" = Option<String>, Query, description = "JWT, when auth.public_reads is false (or Authorization: Bearer)")),
    responses(
        (status = 200, description = "Every room (the token's rooms, for a token reader) with its order and history", body = Vec<RoomInfo>),
        (status = 401, description = "auth.public_reads is false and no API key or valid token was presented", body = ErrorBody),
        (status = 403, description = "auth.public_reads is false and a browser Origin or Host the write API would refuse", body = ErrorBody),
    ))]
pub async fn list_rooms(req: HttpRequest, state: Data) -> Result<HttpResponse, HubError> {
    let access = read_access(&req, &state)?;
    // The registry's body is built once and shared; only a token reader's
    // narrower view is filtered from it, here on the worker.
    let body = state
        .registry
        .send(ListRooms)
        .await
        .map_err(registry_down)?;
    let body = match access {
        super::access::ReadAccess::All => body,
        narrower => {
            let mut rooms: Vec<serde_json::Value> = serde_json::from_slice(&body)
                .map_err(|e| HubError::Internal(format!("room list: {e}")))?;
            rooms.retain(|r| r["room"].as_str().is_some_and(|room| narrower.allows(room)));
            serde_json::to_vec(&rooms)
                .map_err(|e| HubError::Internal(format!("room list: {e}")))?
                .into()
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// `?since=&limit=` of the history endpoint.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Events with seq greater than this (default 0).
    #[param(minimum = 0)]
    since: Option<u64>,
    /// At most this many (default: all held).
    #[param(minimum = 0)]
    limit: Option<usize>,
}

/// One event frame, as sockets receive it.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents the history body, which is spliced from stored frames
pub struct EventFrameDoc {
    /// The publisher's event type.
    #[serde(rename = "type")]
    kind: String,
    /// The room it was published to.
    room: String,
    /// Position in the room's order.
    seq: u64,
    /// When the hub accepted it (RFC 3339, UTC, ms).
    ts: String,
    /// A keyed publish's key (keyed rooms only).
    key: Option<String>,
    /// Present (true) when the keyed publish removed its key.
    delete: Option<bool>,
    /// The publisher's payload.
    #[schema(value_type = Value)]
    data: serde_json::Value,
}

/// `GET /api/rooms/{room}/history` (the body is spliced from stored frames;
/// this type documents it).
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
pub struct HistoryDoc {
    /// The room asked about.
    room: String,
    /// Epoch ("" for a dynamic room never used).
    epoch: String,
    /// Head seq.
    seq: u64,
    /// Events after `since`, oldest first.
    events: Vec<EventFrameDoc>,
}

/// `GET /api/rooms/{room}/history`: the HTTP fallback for clients that cannot
/// resume over the socket.
#[utoipa::path(get, path = "/api/rooms/{room}/history", tag = "rooms",
    params(("room" = String, Path, description = "Room name"), HistoryQuery,
        ("token" = Option<String>, Query, description = "JWT, when auth.public_reads is false (or Authorization: Bearer)")),
    responses(
        (status = 200, description = "Events still in history", body = HistoryDoc),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "auth.public_reads is false and no API key or valid token was presented", body = ErrorBody),
        (status = 403, description = "auth.public_reads is false and the token does not allow the room, or a browser Origin or Host the write API would refuse", body = ErrorBody),
        (status = 404, description = "Unknown room", body = ErrorBody),
    ))]
pub async fn history(
    req: HttpRequest,
    state: Data,
    room: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, HubError> {
    let HistoryQuery { since, limit } = query.into_inner();
    let read = Read::After {
        since: since.unwrap_or(0),
        limit: limit.unwrap_or(usize::MAX),
    };
    read_room(&req, &state, room.into_inner(), read).await
}

/// A history page or a state, as the JSON body, for a reader the room allows.
async fn read_room(
    req: &HttpRequest,
    state: &AppState,
    room: String,
    read: Read,
) -> Result<HttpResponse, HubError> {
    if !read_access(req, state)?.allows(&room) {
        return Err(HubError::Forbidden(format!(
            "token does not allow room {room}"
        )));
    }
    let page = state
        .registry
        .send(GetHistory { room, read })
        .await
        .map_err(registry_down)?
        .get()
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(page.to_json()))
}

/// `GET /api/rooms/{room}/state` (the body is spliced from stored frames;
/// this type documents it).
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
pub struct StateDoc {
    /// The keyed room asked about.
    room: String,
    /// Epoch ("" for a dynamic room never used).
    epoch: String,
    /// Head seq: the state is the room's at this seq.
    seq: u64,
    /// The latest event of each live key, in seq order.
    events: Vec<EventFrameDoc>,
}

/// `GET /api/rooms/{room}/state`: a keyed room's state, consistent at `seq`
/// (contract section 11).
#[utoipa::path(get, path = "/api/rooms/{room}/state", tag = "rooms",
    params(("room" = String, Path, description = "Room name"),
        ("token" = Option<String>, Query, description = "JWT, when auth.public_reads is false (or Authorization: Bearer)")),
    responses(
        (status = 200, description = "The latest event of each live key, in seq order, at seq", body = StateDoc),
        (status = 400, description = "The room is not keyed", body = ErrorBody),
        (status = 401, description = "auth.public_reads is false and no API key or valid token was presented", body = ErrorBody),
        (status = 403, description = "auth.public_reads is false and the token does not allow the room, or a browser Origin or Host the write API would refuse", body = ErrorBody),
        (status = 404, description = "Unknown room", body = ErrorBody),
    ))]
pub async fn state(
    req: HttpRequest,
    state: Data,
    room: web::Path<String>,
) -> Result<HttpResponse, HubError> {
    read_room(&req, &state, room.into_inner(), Read::State).await
}

/// `GET /api/rooms/{room}/presence` (admin): who is subscribed to a
/// presence room (contract section 13), the same body as the `presence` frame.
#[utoipa::path(get, path = "/api/rooms/{room}/presence", tag = "admin", security((), ("api_key" = [])),
    params(("room" = String, Path, description = "Room name")),
    responses(
        (status = 200, description = "The room's users (by `sub`, with their session counts) and anonymous sessions", body = crate::presence::PresenceBody),
        (status = 400, description = "The room does not track presence", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "A browser Origin not in server.allowed_origins (forbidden_origin); or, with no API keys configured, a caller not on loopback or a Host that is neither a loopback name nor in server.public_hosts", body = ErrorBody),
        (status = 404, description = "Unknown room", body = ErrorBody),
    ))]
pub async fn presence(
    req: HttpRequest,
    state: Data,
    room: web::Path<String>,
) -> Result<HttpResponse, HubError> {
    require_write_access(&req, &state.config)?;
    let body = state
        .registry
        .send(GetPresence {
            room: room.into_inner(),
        })
        .await
        .map_err(registry_down)??;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body.into_bytes()))
}

/// Answer of an admin disconnect.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Disconnected {
    /// The session that is being closed.
    disconnected: String,
}

/// `POST /api/sockets/{id}/disconnect` (admin): closes with 4009.
#[utoipa::path(post, path = "/api/sockets/{id}/disconnect", tag = "admin", security((), ("api_key" = [])),
    params(("id" = String, Path, description = "Session id from welcome or the socket list")),
    responses(
        (status = 200, description = "The session is closing with 4009", body = Disconnected),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "A browser Origin not in server.allowed_origins (forbidden_origin); or, with no API keys configured, a caller not on loopback or a Host that is neither a loopback name nor in server.public_hosts", body = ErrorBody),
        (status = 404, description = "Unknown session", body = ErrorBody),
    ))]
pub async fn disconnect(
    req: HttpRequest,
    state: Data,
    id: web::Path<String>,
) -> Result<HttpResponse, HubError> {
    require_write_access(&req, &state.config)?;
    let id = id.into_inner();
    let closed = state
        .registry
        .send(Disconnect { id: id.clone() })
        .await
        .map_err(registry_down)?
        .get()
        .await?;
    if closed == 0 {
        return Err(HubError::UnknownSession(id));
    }
    Ok(HttpResponse::Ok().json(Disconnected { disconnected: id }))
}

async fn registry_answers(state: &AppState) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, state.registry.probe(Ping)).await,
        Ok(Ok(()))
    )
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "status",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
        (status = 503, description = "Another metrics recorder is installed", body = ErrorBody),
    ))]
pub async fn metrics(state: Data) -> Result<HttpResponse, HubError> {
    let body = crate::metrics::render(state.registry.depth()).ok_or_else(|| {
        HubError::Unavailable("another metrics recorder is installed in this process".into())
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}

/// Answer of the health probes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    status: &'static str,
}

/// `GET /healthz`: 200 while the process and its registry answer.
#[utoipa::path(get, path = "/healthz", tag = "status",
    responses(
        (status = 200, description = "Alive", body = Health),
        (status = 503, description = "The registry does not answer", body = ErrorBody),
    ))]
pub async fn healthz(state: Data) -> Result<HttpResponse, HubError> {
    if registry_answers(&state).await {
        Ok(HttpResponse::Ok().json(Health { status: "ok" }))
    } else {
        Err(HubError::Unavailable("registry does not answer".into()))
    }
}

/// `GET /readyz`: 200 while accepting sockets; 503 with the reason otherwise.
#[utoipa::path(get, path = "/readyz", tag = "status",
    responses(
        (status = 200, description = "Accepting sockets", body = Health),
        (status = 503, description = "Draining, the registry does not answer, or (cluster) Redis is unreachable", body = ErrorBody),
    ))]
pub async fn readyz(state: Data) -> Result<HttpResponse, HubError> {
    if state.is_draining() {
        return Err(HubError::Unavailable("draining".into()));
    }
    if !registry_answers(&state).await {
        return Err(HubError::Unavailable("registry does not answer".into()));
    }
    (state.readiness)().map_err(HubError::Unavailable)?;
    Ok(HttpResponse::Ok().json(Health { status: "ready" }))
}
