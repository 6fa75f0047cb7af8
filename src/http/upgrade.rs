//! WebSocket upgrades: every refusal of contract section 2 happens before the
//! upgrade (in [`admit`], shared with `/sse`), as an HTTP error with a JSON
//! body; an accepted socket becomes a [`Session`] actor.

use std::sync::Arc;

use actix::Actor;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::admission::{admit, Admitted};
use super::AppState;
use crate::error::{ErrorBody, HubError};
use crate::protocol::STATUS_ROOM;
use crate::reader;
use crate::session::{InitialSubscription, Session, SessionStart, Transport};

/// The answers of every upgrade endpoint, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: the handlers answer through HubError
enum UpgradeResponses {
    /// Switching to WebSocket: the socket protocol follows (docs/PROTOCOL.md).
    #[response(status = 101)]
    Switching,
    /// Not a WebSocket upgrade, or a bad query string.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing, invalid or expired token (auth on).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Origin not allowed, or room not allowed by the token.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    #[response(status = 404)]
    UnknownRoom(ErrorBody),
    /// Over capacity, or draining.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Query parameters of `/ws/{room}`: the resume point.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResumeQuery {
    /// Last seq the client holds.
    #[param(minimum = 0)]
    since: Option<u64>,
    /// The epoch that `since` belongs to.
    epoch: Option<String>,
}

/// `GET /ws` and `/ws/connect`: a multi-room socket.
#[utoipa::path(get, path = "/ws", tag = "websocket",
    params(("token" = Option<String>, Query, description = "JWT, when auth is on")),
    responses(UpgradeResponses))]
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HubError> {
    accept(&req, body, &state, Arc::from("connect"), None).await
}

/// The same socket as `/ws`, at its other path (documented separately).
#[utoipa::path(get, path = "/ws/connect", tag = "websocket",
    params(("token" = Option<String>, Query, description = "JWT, when auth is on")),
    responses(UpgradeResponses))]
pub async fn connect_alias(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HubError> {
    connect(req, body, state).await
}

/// `GET /ws/{room}`: a socket subscribed to `{room}` on connect.
#[utoipa::path(get, path = "/ws/{room}", tag = "websocket",
    params(("room" = String, Path, description = "Room name, or $status"), ResumeQuery,
        ("token" = Option<String>, Query, description = "JWT, when auth is on")),
    responses(UpgradeResponses))]
pub async fn room(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    room: web::Path<String>,
    query: web::Query<ResumeQuery>,
) -> Result<HttpResponse, HubError> {
    let room = room.into_inner();
    if room != STATUS_ROOM && state.config.room_settings(&room).is_none() {
        return Err(HubError::UnknownRoom(room));
    }
    let ResumeQuery { since, epoch } = query.into_inner();
    let initial = InitialSubscription {
        room: room.clone(),
        since,
        epoch,
    };
    accept(&req, body, &state, Arc::from(room), Some(initial)).await
}

async fn accept(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    kind: Arc<str>,
    initial: Option<InitialSubscription>,
) -> Result<HttpResponse, HubError> {
    let rooms: Vec<&str> = initial.iter().map(|i| i.room.as_str()).collect();
    let Admitted { claims, permit } = admit(req, state, &rooms)?;
    let (response, ws, stream) = reader::upgrade(req, body, state.session_settings.read_limits)
        .await
        .map_err(|e| HubError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    let remote = req
        .peer_addr()
        .map_or_else(|| Arc::from("unknown"), |a| Arc::from(a.to_string()));
    Session::new(
        kind,
        remote,
        claims,
        state.registry.clone(),
        state.session_settings.clone(),
        SessionStart {
            transport: Transport::WebSocket {
                ws,
                stream,
                socket: req.conn_data::<crate::socket_end::PeerSocket>().copied(),
            },
            initial: initial.into_iter().collect(),
        },
        permit,
    )
    .start();
    Ok(response)
}
