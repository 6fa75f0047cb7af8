//! The HTTP surface: routes, shared state, and the helpers every handler uses
//! (write-API access, bounded body reading, JSON errors for every failure).

mod api;
mod echo;
pub mod openapi;
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
            .service(resource("/ws/connect").route(web::get().to(upgrade::connect_alias)));
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
            .service(resource("/metrics").route(web::get().to(api::metrics)))
            .service(resource("/openapi.json").route(web::get().to(openapi::openapi_json)))
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

/// The client's IP as the socket sees it, IPv4-mapped IPv6 folded to IPv4 so a
/// dual-stack listener treats `::ffff:127.0.0.1` as loopback.
pub fn peer_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip().to_canonical())
}

/// CORS for browser dashboards served from another origin: the read API and
/// the history fallback must be readable cross-origin. Origins follow
/// `server.allowed_origins` (empty = any). A disallowed origin is not blocked
/// here — it just gets no CORS headers — so upgrades still get the contract's
/// own 403 `forbidden_origin`.
pub fn cors(config: &Config) -> actix_cors::Cors {
    use actix_web::http::header;
    let cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .block_on_origin_mismatch(false)
        .max_age(3600);
    if config.server.allowed_origins.is_empty() {
        cors.allow_any_origin()
    } else {
        config
            .server
            .allowed_origins
            .iter()
            .fold(cors, |c, origin| c.allowed_origin(origin))
    }
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

    fn config_with_keys(keys: &[&str]) -> Config {
        let mut c = Config::default();
        c.auth.api_keys = keys.iter().map(|k| k.to_string()).collect();
        c
    }

    // The loopback rule needs a non-loopback peer, which a test on this machine
    // cannot open over real TCP without touching a non-loopback address; the
    // rule itself is checked here on requests with a given peer.
    #[test]
    fn without_keys_only_loopback_peers_may_write() {
        use actix_web::test::TestRequest;
        let c = config_with_keys(&[]);
        for peer in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            let req = TestRequest::default()
                .peer_addr(peer.parse().expect("addr"))
                .to_http_request();
            assert!(require_write_access(&req, &c).is_ok(), "{peer}");
        }
        for peer in [
            "10.1.2.3:1",
            "192.0.2.7:1",
            "[2001:db8::1]:1",
            "[::ffff:10.0.0.1]:1",
        ] {
            let req = TestRequest::default()
                .peer_addr(peer.parse().expect("addr"))
                .to_http_request();
            assert!(
                matches!(require_write_access(&req, &c), Err(HubError::Forbidden(_))),
                "{peer}"
            );
        }
        let req = TestRequest::default().to_http_request();
        assert!(
            require_write_access(&req, &c).is_err(),
            "no peer address: refused"
        );
    }

    #[test]
    fn with_keys_any_peer_needs_a_matching_bearer_key() {
        use actix_web::test::TestRequest;
        let c = config_with_keys(&["first-key-123", "second-key-456"]);
        let peer = "10.1.2.3:1".parse().expect("addr");
        let ok = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("authorization", "Bearer second-key-456"))
            .to_http_request();
        assert!(require_write_access(&ok, &c).is_ok());
        let loopback_without_key = TestRequest::default()
            .peer_addr("127.0.0.1:1".parse().expect("addr"))
            .to_http_request();
        assert!(matches!(
            require_write_access(&loopback_without_key, &c),
            Err(HubError::Unauthorized(_))
        ));
    }
}
