//! The HTTP surface: routes, shared state, and the helpers every handler uses
//! (write-API access, bounded body reading, JSON errors for every failure).

mod api;
mod echo;
mod upgrade;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::connections::ConnectionLimiter;
use crate::error::HubError;
use crate::registry::RegistryActor;
use crate::session::SessionSettings;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The state owner.
    pub registry: Addr<RegistryActor>,
    /// Token checks for sockets.
    pub auth: Arc<Authenticator>,
    /// True while draining: upgrades get 503 and `/readyz` fails.
    pub draining: Arc<AtomicBool>,
    /// Socket admission.
    pub connections: Arc<ConnectionLimiter>,
    /// Limits handed to each session.
    pub session_settings: Arc<SessionSettings>,
    /// Process start.
    pub started: Instant,
}

impl AppState {
    /// Whether the hub is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Registers every route on an `App`.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let echo = state.config.websocket.echo_endpoint;
        cfg.app_data(web::Data::new(state))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                HubError::BadRequest(format!("bad query string: {err}")).into()
            }))
            .app_data(
                web::PathConfig::default().error_handler(|err, _| {
                    HubError::BadRequest(format!("bad path: {err}")).into()
                }),
            );
        cfg.service(resource("/ws").route(web::get().to(upgrade::connect)))
            .service(resource("/ws/connect").route(web::get().to(upgrade::connect)));
        if echo {
            cfg.service(resource("/ws/_echo").route(web::get().to(echo::echo)));
        }
        cfg.service(resource("/ws/{room}").route(web::get().to(upgrade::room)))
            .service(resource("/socket-status").route(web::get().to(api::socket_status)))
            .service(resource("/socket-status/").route(web::get().to(api::socket_status)))
            .service(resource("/socket-status/sockets").route(web::get().to(api::list_sockets)))
            .service(resource("/api/rooms").route(web::get().to(api::list_rooms)))
            .service(resource("/api/rooms/{room}/events").route(web::post().to(api::publish)))
            .service(resource("/api/rooms/{room}/history").route(web::get().to(api::history)))
            .service(resource("/api/events").route(web::post().to(api::publish_batch)))
            .service(resource("/api/users/{user}/events").route(web::post().to(api::publish_user)))
            .service(
                resource("/api/sockets/{id}/disconnect").route(web::post().to(api::disconnect)),
            )
            .service(resource("/healthz").route(web::get().to(api::healthz)))
            .service(resource("/readyz").route(web::get().to(api::readyz)))
            .default_service(web::to(not_found));
    }
}

/// A resource whose other methods get a JSON 405 rather than an empty one.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, HubError> {
    Err(HubError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let body = serde_json::json!({
        "error": "method_not_allowed",
        "message": format!("{} is not allowed on {}", req.method(), req.path()),
    });
    HttpResponse::MethodNotAllowed().json(body)
}

/// The client's IP as the socket sees it (proxies: see docs/OPERATIONS.md).
pub fn peer_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

/// Write/admin access: one of `auth.api_keys` as a Bearer token, or, when no
/// keys are configured, a loopback client.
pub fn require_write_access(req: &HttpRequest, config: &Config) -> Result<(), HubError> {
    let keys = &config.auth.api_keys;
    if keys.is_empty() {
        return match peer_ip(req) {
            Some(ip) if ip.is_loopback() => Ok(()),
            _ => Err(HubError::Forbidden(
                "the write API answers only loopback clients when auth.api_keys is empty".into(),
            )),
        };
    }
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| HubError::Unauthorized("missing Authorization: Bearer <api key>".into()))?;
    // Every key is compared, in constant time, so timing tells nothing.
    let matched = keys.iter().fold(false, |found, key| {
        found | constant_time_eq::constant_time_eq(key.as_bytes(), presented.as_bytes())
    });
    if matched {
        Ok(())
    } else {
        Err(HubError::Unauthorized("invalid API key".into()))
    }
}

/// Reads a request body up to `limit` bytes; more is `too_large` (413), checked
/// against Content-Length first so an oversized upload is refused unread.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, HubError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(HubError::TooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| HubError::BadRequest(format!("reading body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(HubError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON body into `T`, with the serde message as the 400 detail.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, HubError> {
    serde_json::from_slice(body)
        .map_err(|e| HubError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Maps a failed registry call (mailbox closed) to 503.
pub fn registry_down(err: actix::MailboxError) -> HubError {
    HubError::Unavailable(format!("registry unavailable: {err}"))
}
