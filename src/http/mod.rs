//! The HTTP surface: routes, shared state, and the helpers every handler uses
//! (access rules in `access`, bounded body reading, JSON errors for every
//! failure).

mod access;
mod admission;
mod api;
mod echo;
pub mod openapi;
pub mod sse;
mod upgrade;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::connections::ConnectionLimiter;
use crate::error::HubError;
use crate::registry::RegistryHandle;
use crate::session::SessionSettings;

use access::{cors_read, cors_write, read_access, require_json, require_write_access};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The state owner.
    pub registry: RegistryHandle,
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
    /// Whether the engine can take writes (Redis reachable, store writable):
    /// `/readyz` reports why not.
    pub readiness: crate::engine::Readiness,
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
        let config = state.config.clone();
        cfg.app_data(web::Data::new(state))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                HubError::BadRequest(format!("bad query string: {err}")).into()
            }))
            .app_data(
                web::PathConfig::default().error_handler(|err, _| {
                    HubError::BadRequest(format!("bad path: {err}")).into()
                }),
            );
        let read = |path: &str, route: actix_web::Route| {
            resource(path).route(route).wrap(cors_read(&config))
        };
        let write = |path: &str, route: actix_web::Route| {
            resource(path).route(route).wrap(cors_write(&config))
        };
        cfg.service(read("/ws", web::get().to(upgrade::connect)))
            .service(read("/ws/connect", web::get().to(upgrade::connect_alias)));
        if echo {
            cfg.service(read("/ws/_echo", web::get().to(echo::echo)));
        }
        cfg.service(read("/ws/{room}", web::get().to(upgrade::room)))
            .service(read("/sse", web::get().to(sse::sse)))
            .service(read("/socket-status", web::get().to(api::socket_status)))
            .service(read("/socket-status/", web::get().to(api::socket_status)))
            .service(read("/api/rooms", web::get().to(api::list_rooms)))
            .service(read(
                "/api/rooms/{room}/history",
                web::get().to(api::history),
            ))
            .service(read("/api/rooms/{room}/state", web::get().to(api::state)))
            .service(read("/metrics", web::get().to(api::metrics)))
            .service(read("/openapi.json", web::get().to(openapi::openapi_json)))
            .service(read("/healthz", web::get().to(api::healthz)))
            .service(read("/readyz", web::get().to(api::readyz)))
            .service(write(
                "/socket-status/sockets",
                web::get().to(api::list_sockets),
            ))
            .service(write(
                "/api/rooms/{room}/events",
                web::post().to(api::publish),
            ))
            .service(write("/api/events", web::post().to(api::publish_batch)))
            .service(write(
                "/api/users/{user}/events",
                web::post().to(api::publish_user),
            ))
            .service(write(
                "/api/sockets/{id}/disconnect",
                web::post().to(api::disconnect),
            ))
            .service(write(
                "/api/rooms/{room}/presence",
                web::get().to(api::presence),
            ))
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

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, HubError> {
    Err(HubError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.path()
    )))
}

/// The client's IP as the socket sees it, IPv4-mapped IPv6 folded to IPv4 so a
/// dual-stack listener treats `::ffff:127.0.0.1` as loopback.
pub fn peer_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip().to_canonical())
}

/// Query keys whose values never reach a log line.
const SECRET_KEYS: [&str; 7] = [
    "token",
    "access_token",
    "jwt",
    "key",
    "api_key",
    "apikey",
    "secret",
];

/// The query string with secret values replaced, for logs.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}=REDACTED")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Request ids: a process-wide counter, unique within a run.
static NEXT_REQUEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Gives every response an `X-Request-Id` (the caller's own, if it sent a
/// sane one) and writes the access log at debug level under target
/// `realtime_hub::access` (enable with `RUST_LOG=info,realtime_hub::access=debug`):
/// request id, peer, method, path, redacted query, status, duration. Headers
/// are never logged, so neither are bearer tokens or API keys.
pub async fn access_log(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header::{HeaderName, HeaderValue};
    const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "{:x}",
                NEXT_REQUEST.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )
        });
    let header = HeaderValue::from_str(&id).ok();
    if !log::log_enabled!(target: "realtime_hub::access", log::Level::Debug) {
        let mut res = next.call(req).await?;
        if let Some(h) = header {
            res.headers_mut().insert(REQUEST_ID, h);
        }
        return Ok(res);
    }
    let started = Instant::now();
    let query = redact_query(req.query_string());
    let line = format!(
        "req={id} {} {} {}{}{}",
        req.peer_addr()
            .map_or_else(|| "-".to_string(), |a| a.to_string()),
        req.method(),
        req.path(),
        if query.is_empty() { "" } else { "?" },
        query
    );
    let mut res = next.call(req).await?;
    if let Some(h) = header {
        res.headers_mut().insert(REQUEST_ID, h);
    }
    log::debug!(
        target: "realtime_hub::access",
        "{line} {} {}us",
        res.status().as_u16(),
        started.elapsed().as_micros()
    );
    Ok(res)
}

/// Makes actix close, not drain, a connection whose request body was left
/// unread (a refused or timed-out request). actix-http drains the rest of a
/// chunked body once the handler drops it, however long it runs, so one
/// endless chunked request would pin a connection for good; while the request
/// payload is still held, it closes the connection after the response
/// instead. So the payload is shared: the handler reads it as usual, and the
/// response body holds it until written. WebSocket handshakes pass untouched
/// (their "payload" is the socket).
pub async fn close_unread_bodies(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::body::{BodySize, BoxBody, MessageBody};
    use actix_web::dev::Payload;
    use actix_web::http::header;
    use actix_web::HttpMessage;
    use std::cell::RefCell;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll};

    struct Shared(Rc<RefCell<Payload>>);
    impl futures_util::Stream for Shared {
        type Item = Result<web::Bytes, actix_web::error::PayloadError>;
        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.borrow_mut().poll_next_unpin(cx)
        }
    }
    struct Holding {
        body: BoxBody,
        _payload: Rc<RefCell<Payload>>,
    }
    impl MessageBody for Holding {
        type Error = Box<dyn std::error::Error>;
        fn size(&self) -> BodySize {
            self.body.size()
        }
        fn poll_next(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
            Pin::new(&mut self.body).poll_next(cx)
        }
    }

    let headers = req.headers();
    let handshake = headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && !headers.contains_key(header::TRANSFER_ENCODING);
    if handshake {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let payload = Rc::new(RefCell::new(req.take_payload()));
    req.set_payload(Payload::Stream {
        payload: Box::pin(Shared(payload.clone())),
    });
    let res = next.call(req).await?;
    Ok(res
        .map_body(|_, body| Holding {
            body: body.boxed(),
            _payload: payload,
        })
        .map_into_boxed_body())
}

/// Most of a declared body length reserved before any of it arrived.
const PREALLOCATE_MAX: usize = 16 * 1024;

/// Reads a write request's JSON body: `application/json` or 415, at most
/// `server.max_body_bytes` (413, checked against Content-Length first so an
/// oversized upload is refused unread), within `server.body_timeout_s` (408,
/// and the connection is closed).
pub async fn read_json_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    config: &Config,
) -> Result<web::Bytes, HubError> {
    require_json(req)?;
    let limit = config.server.max_body_bytes;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(HubError::TooLarge(limit));
    }
    let read = async {
        // Grown as bytes arrive: reserving the declared length up front would
        // let a few bytes claiming a megabyte commit a megabyte of address
        // space, per connection.
        let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(PREALLOCATE_MAX));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| HubError::BadRequest(format!("reading body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(HubError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    let allowed = config.server.body_timeout_s;
    tokio::time::timeout(std::time::Duration::from_secs(allowed), read)
        .await
        .map_err(|_| HubError::RequestTimeout(allowed))?
}

/// Parses a JSON body into `T`, with the serde message as the 400 detail.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, HubError> {
    serde_json::from_slice(body)
        .map_err(|e| HubError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Maps a failed registry call to 503: its intake is full (`Timeout`, see
/// `RegistryHandle::send`) or it is gone.
pub fn registry_down(err: actix::MailboxError) -> HubError {
    match err {
        actix::MailboxError::Timeout => crate::registry::Busy.into(),
        actix::MailboxError::Closed => {
            HubError::Unavailable("registry unavailable: stopped".into())
        }
    }
}

/// A registry that dropped a reply channel (it is stopping) is a 503 too.
pub fn registry_gone() -> HubError {
    HubError::Unavailable("registry unavailable: stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_from_queries() {
        assert_eq!(
            redact_query("since=4&token=eyJabc.def.ghi&epoch=e1"),
            "since=4&token=REDACTED&epoch=e1"
        );
        assert_eq!(redact_query("API_KEY=k&x"), "API_KEY=REDACTED&x");
        assert_eq!(redact_query(""), "");
    }
}
