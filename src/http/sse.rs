//! `GET /sse`: the Server-Sent Events transport (contract section 12). The
//! request is admitted exactly as a WebSocket upgrade ([`admit`]); an
//! accepted one becomes a [`Session`] of type `sse` whose writer feeds the
//! response body ([`crate::sse`]).

use std::sync::Arc;

use actix::Actor;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::admission::{admit, Admitted};
use super::AppState;
use crate::error::ErrorBody;
use crate::error::HubError;
use crate::protocol::SSE_TYPE;
use crate::protocol::STATUS_ROOM;
use crate::session::{InitialSubscription, Session, SessionStart, Transport};
use crate::sse::{self, Cursor};

/// The header EventSource resends on reconnect with the last `id:` it saw.
const LAST_EVENT_ID: &str = "last-event-id";

/// The answers of `/sse`, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: the handler answers through HubError
enum SseResponses {
    /// The stream: `retry:`, then one `data:` JSON frame per message, room
    /// events with an `id:` cursor, `:` keep-alive comments (docs/PROTOCOL.md).
    #[response(status = 200, content_type = "text/event-stream")]
    Stream(String),
    /// `rooms` missing, more rooms than allowed, or a bad query string.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing, invalid or expired token (auth on).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Origin not allowed, or a room not allowed by the token.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    #[response(status = 404)]
    UnknownRoom(ErrorBody),
    /// Over capacity, or draining.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Query parameters of `/sse`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SseQuery {
    /// Comma-separated rooms (`$status` allowed).
    rooms: Option<String>,
    /// A resume cursor (an `id:` of an earlier stream), for clients that
    /// cannot set `Last-Event-ID`; the header wins when both are sent.
    last_event_id: Option<String>,
    /// JWT, when auth is on (or `Authorization: Bearer`).
    #[allow(dead_code)] // read by the authenticator from the query string
    token: Option<String>,
}

/// `GET /sse?rooms=a,b`: a stream of the frames `/ws` would send, as
/// `data:` JSON lines, each room event with an `id:` resume cursor.
#[utoipa::path(get, path = "/sse", tag = "sse",
    params(SseQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last id: seen, to resume every room")),
    responses(SseResponses))]
pub async fn sse(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<SseQuery>,
) -> Result<HttpResponse, HubError> {
    let SseQuery {
        rooms,
        last_event_id,
        ..
    } = query.into_inner();
    let rooms = rooms_of(rooms.as_deref().unwrap_or(""))?;
    let cap = state.config.websocket.max_rooms_per_session;
    let counted = rooms.iter().filter(|r| *r != STATUS_ROOM).count();
    if cap > 0 && counted > cap {
        return Err(HubError::BadRequest(format!(
            "at most {cap} rooms per stream (websocket.max_rooms_per_session)"
        )));
    }
    if let Some(room) = rooms
        .iter()
        .find(|r| *r != STATUS_ROOM && state.config.room_settings(r).is_none())
    {
        return Err(HubError::UnknownRoom(room.clone()));
    }
    let names: Vec<&str> = rooms.iter().map(String::as_str).collect();
    let Admitted { claims, permit } = admit(&req, &state, &names)?;

    let header_id = req
        .headers()
        .get(LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok());
    let mut cursor = header_id
        .or(last_event_id.as_deref())
        .map(Cursor::parse)
        .unwrap_or_default();
    cursor.retain(&rooms);
    let initial = rooms
        .iter()
        .map(|room| {
            let pos = cursor.get(room);
            InitialSubscription {
                room: room.clone(),
                since: pos.map(|p| p.seq),
                epoch: pos.map(|p| p.epoch.clone()),
            }
        })
        .collect();
    let retry = sse::jittered_retry(state.config.websocket.sse_retry_ms);
    let (sink, body) = sse::stream(
        retry,
        cursor,
        req.conn_data::<crate::socket_end::PeerSocket>().copied(),
        state.session_settings.write_timeout,
    );
    let remote = req
        .peer_addr()
        .map_or_else(|| Arc::from("unknown"), |a| Arc::from(a.to_string()));
    Session::new(
        Arc::from(SSE_TYPE),
        remote,
        claims,
        state.registry.clone(),
        state.session_settings.clone(),
        SessionStart {
            transport: Transport::Sse(sink),
            initial,
        },
        permit,
    )
    .start();
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        // nginx buffers proxied responses unless told otherwise per response.
        .insert_header(("x-accel-buffering", HeaderValue::from_static("no")))
        .streaming(body))
}

/// The `rooms` list: comma-separated, duplicates dropped, order kept.
fn rooms_of(list: &str) -> Result<Vec<String>, HubError> {
    let mut rooms: Vec<String> = Vec::new();
    for room in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        if !rooms.iter().any(|r| r == room) {
            rooms.push(room.to_string());
        }
    }
    if rooms.is_empty() {
        return Err(HubError::BadRequest(
            "rooms is required: /sse?rooms=a,b".into(),
        ));
    }
    Ok(rooms)
}
