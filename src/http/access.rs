//! Who may call which HTTP endpoint, and with what.
//!
//! The write/admin API (publish, user messages, the socket list, disconnect) is
//! what a hostile web page would want to drive. A browser on the hub's host is
//! a loopback client, so "loopback only" alone does not stop a page from
//! another origin (CSRF) nor one whose name was rebound to 127.0.0.1 (DNS
//! rebinding). So, on those endpoints:
//!
//! - a request with an `Origin` (browsers always send one on a POST, and on a
//!   cross-origin GET) is refused with 403 `forbidden_origin` unless
//!   `server.allowed_origins` lists it; requests without one (scripts, curl,
//!   backends) are unaffected;
//! - with no API keys, the peer must be loopback **and** `Host` a loopback name
//!   or one of `server.public_hosts` (a rebound name arrives as its own `Host`);
//! - a body must be `application/json` (415 otherwise), so a form or a
//!   `text/plain` no-cors fetch, which need no CORS preflight, is never read;
//! - CORS headers are sent only for listed origins ([`cors_write`]).
//!
//! Read endpoints keep the contract's public reads and permissive CORS
//! ([`cors_read`]), unless `auth.public_reads` is false ([`read_access`]).

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::HttpRequest;

use super::{peer_ip, AppState};
use crate::address::host_name;
use crate::auth::{Authenticator, Claims};
use crate::config::Config;
use crate::error::HubError;

/// `localhost`, a name under `.localhost` (RFC 6761: never resolved through
/// DNS), or a loopback IP literal.
fn is_loopback_host(host: &str) -> bool {
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    let literal = lower
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&lower);
    literal
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The request's `Host` (HTTP/1) or authority (HTTP/2).
fn request_host(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// Why a write/admin request is refused.
enum Denied {
    /// A browser page from an origin not in `allowed_origins`.
    Origin(String),
    /// No keys configured and the peer is not loopback.
    NotLoopback,
    /// No keys configured and `Host` is not a loopback or public name.
    Host(String),
    /// Keys configured and none presented.
    MissingKey,
    /// Keys configured and a wrong one presented.
    WrongKey,
}

impl From<Denied> for HubError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Origin(origin) => HubError::ForbiddenOrigin(origin),
            Denied::NotLoopback => HubError::Forbidden(
                "the write API answers only loopback clients when auth.api_keys is empty".into(),
            ),
            Denied::Host(host) => HubError::Forbidden(format!(
                "Host `{host}` is neither a loopback name nor in server.public_hosts; \
                 without auth.api_keys the write API answers only those"
            )),
            Denied::MissingKey => {
                HubError::Unauthorized("missing Authorization: Bearer <api key>".into())
            }
            Denied::WrongKey => HubError::Unauthorized("invalid API key".into()),
        }
    }
}

fn check_write(req: &HttpRequest, config: &Config) -> Result<(), Denied> {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !config.server.allowed_origins.iter().any(|a| a == origin) {
            return Err(Denied::Origin(origin.chars().take(200).collect()));
        }
    }
    let keys = &config.auth.api_keys;
    if keys.is_empty() {
        if !peer_ip(req).is_some_and(|ip| ip.is_loopback()) {
            return Err(Denied::NotLoopback);
        }
        let host = request_host(req).unwrap_or("");
        let name = host_name(host);
        let public = config
            .server
            .public_hosts
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name));
        if !(is_loopback_host(name) || public) {
            return Err(Denied::Host(host.chars().take(200).collect()));
        }
        return Ok(());
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(Denied::MissingKey)?;
    // Every key is compared, in constant time, so timing tells nothing.
    let matched = keys.iter().fold(false, |found, key| {
        found | constant_time_eq::constant_time_eq(key.as_bytes(), presented.as_bytes())
    });
    if matched {
        Ok(())
    } else {
        Err(Denied::WrongKey)
    }
}

/// Write/admin access: an allowed or absent `Origin`, and one of
/// `auth.api_keys` as a Bearer token or, when no keys are configured, a
/// loopback client addressing the hub by a loopback or public host name.
pub fn require_write_access(req: &HttpRequest, config: &Config) -> Result<(), HubError> {
    check_write(req, config).map_err(HubError::from)
}

/// What a reader may see.
pub enum ReadAccess {
    /// Every room: public reads, an API key, or loopback without keys.
    All,
    /// The rooms a socket with these claims could subscribe to.
    Token(Claims),
}

impl ReadAccess {
    /// Whether `room` may be read.
    pub fn allows(&self, room: &str) -> bool {
        match self {
            ReadAccess::All => true,
            ReadAccess::Token(claims) => claims.can_subscribe(room),
        }
    }
}

/// Access to history and room lists: everyone while `auth.public_reads`;
/// otherwise whoever has write access, or a valid socket token (`?token=` or
/// Bearer), limited to the rooms its `rooms` claim allows.
pub fn read_access(req: &HttpRequest, state: &AppState) -> Result<ReadAccess, HubError> {
    let config = &state.config;
    if config.auth.public_reads {
        return Ok(ReadAccess::All);
    }
    let denied = match check_write(req, config) {
        Ok(()) => return Ok(ReadAccess::All),
        Err(denied) => denied,
    };
    if state.auth.enabled() && Authenticator::presented(req) {
        return state.auth.authenticate(req).map(ReadAccess::Token);
    }
    Err(match denied {
        // A foreign page or a rebound name stays refused as such.
        Denied::Origin(_) | Denied::Host(_) => denied.into(),
        Denied::NotLoopback | Denied::MissingKey | Denied::WrongKey => HubError::Unauthorized(
            "auth.public_reads is false: this read needs an API key, or a token (?token= or \
             Authorization: Bearer) allowing the room"
                .into(),
        ),
    })
}

/// 415 unless the body is declared `application/json` (parameters such as
/// `charset` allowed).
pub fn require_json(req: &HttpRequest) -> Result<(), HubError> {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = declared.and_then(|v| v.split(';').next()).map(str::trim);
    if essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json")) {
        return Ok(());
    }
    Err(HubError::UnsupportedMediaType(format!(
        "the body must be Content-Type: application/json (got {})",
        declared.map_or_else(
            || "none".to_string(),
            |v| format!("`{}`", v.chars().take(100).collect::<String>())
        )
    )))
}

fn cors_base() -> actix_cors::Cors {
    actix_cors::Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .block_on_origin_mismatch(false)
        .max_age(3600)
}

/// CORS of the read API and the history fallback, which browser dashboards on
/// other origins read: origins follow `server.allowed_origins` (empty = any).
/// A disallowed origin is not blocked here — it just gets no CORS headers — so
/// upgrades still get the contract's own 403 `forbidden_origin`.
pub fn cors_read(config: &Config) -> actix_cors::Cors {
    if config.server.allowed_origins.is_empty() {
        cors_base().allow_any_origin()
    } else {
        listed(config)
    }
}

/// CORS of the write/admin API: only the listed origins (empty = none).
pub fn cors_write(config: &Config) -> actix_cors::Cors {
    listed(config)
}

fn listed(config: &Config) -> actix_cors::Cors {
    config
        .server
        .allowed_origins
        .iter()
        .fold(cors_base(), |c, origin| c.allowed_origin(origin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn config_with_keys(keys: &[&str]) -> Config {
        let mut c = Config::default();
        c.auth.api_keys = keys.iter().map(|k| k.to_string()).collect();
        c
    }

    fn loopback() -> TestRequest {
        TestRequest::default()
            .peer_addr("127.0.0.1:1".parse().expect("addr"))
            .insert_header(("host", "127.0.0.1:8080"))
    }

    #[test]
    fn loopback_hosts_are_names_and_literals() {
        for host in [
            "localhost",
            "LOCALHOST",
            "app.localhost",
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example",
            "localhost.attacker.example",
            "10.0.0.1",
            "[2001:db8::1]",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    // The loopback rule needs a non-loopback peer, which a test on this machine
    // cannot open over real TCP without touching a non-loopback address; the
    // rule itself is checked here on requests with a given peer.
    #[test]
    fn without_keys_only_loopback_peers_may_write() {
        let c = config_with_keys(&[]);
        for peer in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            let req = TestRequest::default()
                .peer_addr(peer.parse().expect("addr"))
                .insert_header(("host", "localhost:8080"))
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
                .insert_header(("host", "localhost:8080"))
                .to_http_request();
            assert!(
                matches!(require_write_access(&req, &c), Err(HubError::Forbidden(_))),
                "{peer}"
            );
        }
        let req = TestRequest::default()
            .insert_header(("host", "localhost"))
            .to_http_request();
        assert!(
            require_write_access(&req, &c).is_err(),
            "no peer address: refused"
        );
    }

    #[test]
    fn without_keys_the_host_must_be_loopback_or_public() {
        let mut c = config_with_keys(&[]);
        let with_host = |host: &str| loopback().insert_header(("host", host)).to_http_request();
        assert!(require_write_access(&with_host("localhost"), &c).is_ok());
        assert!(require_write_access(&with_host("[::1]:1"), &c).is_ok());
        let rebound = with_host("attacker.example:8080");
        assert!(matches!(
            require_write_access(&rebound, &c),
            Err(HubError::Forbidden(m)) if m.contains("attacker.example")
        ));
        let no_host = TestRequest::default()
            .peer_addr("127.0.0.1:1".parse().expect("addr"))
            .to_http_request();
        assert!(require_write_access(&no_host, &c).is_err());
        c.server.public_hosts = vec!["hub.internal".into()];
        assert!(require_write_access(&with_host("HUB.internal:443"), &c).is_ok());
        assert!(require_write_access(&rebound, &c).is_err());
    }

    #[test]
    fn an_origin_must_be_listed_even_with_a_key() {
        let mut c = config_with_keys(&["first-key-123"]);
        let req = |origin: &str| {
            loopback()
                .insert_header(("origin", origin))
                .insert_header(("authorization", "Bearer first-key-123"))
                .to_http_request()
        };
        assert!(matches!(
            require_write_access(&req("https://evil.example"), &c),
            Err(HubError::ForbiddenOrigin(_))
        ));
        assert!(matches!(
            require_write_access(&req("null"), &c),
            Err(HubError::ForbiddenOrigin(_))
        ));
        c.server.allowed_origins = vec!["https://app.example".into()];
        assert!(require_write_access(&req("https://app.example"), &c).is_ok());
        assert!(require_write_access(&req("https://evil.example"), &c).is_err());
    }

    #[test]
    fn with_keys_any_peer_needs_a_matching_bearer_key() {
        let c = config_with_keys(&["first-key-123", "second-key-456"]);
        let peer = "10.1.2.3:1".parse().expect("addr");
        let ok = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("host", "hub.example.com"))
            .insert_header(("authorization", "Bearer second-key-456"))
            .to_http_request();
        assert!(require_write_access(&ok, &c).is_ok());
        let loopback_without_key = loopback().to_http_request();
        assert!(matches!(
            require_write_access(&loopback_without_key, &c),
            Err(HubError::Unauthorized(_))
        ));
    }

    #[test]
    fn only_json_bodies_are_read() {
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON ;charset=UTF-8",
        ] {
            let req = TestRequest::default()
                .insert_header(("content-type", ct))
                .to_http_request();
            assert!(require_json(&req).is_ok(), "{ct}");
        }
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            None,
        ] {
            let mut req = TestRequest::default();
            if let Some(ct) = ct {
                req = req.insert_header(("content-type", ct));
            }
            assert!(
                matches!(
                    require_json(&req.to_http_request()),
                    Err(HubError::UnsupportedMediaType(_))
                ),
                "{ct:?}"
            );
        }
    }
}
