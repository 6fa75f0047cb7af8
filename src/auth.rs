//! Who a socket is and what it may do (contract section 7).
//!
//! Every socket carries [`Claims`]. With no JWT configured they are anonymous and
//! allow every room (client publish still needs the room's `client_publish`).
//! With `auth.jwt_secret` (HS256) or `auth.jwt_public_key_file` (RS256 or ES256,
//! chosen by the key's type) every upgrade must present a token; the algorithm is
//! pinned to the one the key is for, so `alg: none` and algorithm confusion
//! (an HS256 token signed with the public key) are refused. `exp` and `nbf` are
//! checked with no leeway, `aud` / `iss` when `auth.jwt_audience` /
//! `auth.jwt_issuer` are set, and a token with a `crit` header is refused: the
//! hub implements no JWS extension, so it must not accept one it would ignore
//! (RFC 7515 4.1.11). The session and the registry only ever ask `Claims`.
//!
//! Verification is `jsonwebtoken` (well kept, constant-time HMAC, PEM parsing)
//! with its pure-Rust crypto backend, so the build needs no C toolchain beyond
//! what the rest of the hub uses.

use actix_web::HttpRequest;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{AuthConfig, ConfigError};
use crate::error::HubError;

/// What a socket's credentials allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// The user id (`sub`), used for user-targeted messages.
    pub sub: Option<String>,
    /// Unix seconds at which the session must end (`exp`).
    pub exp: Option<u64>,
    /// Rooms it may subscribe to (names or `prefix*`); `None` = all.
    pub rooms: Option<Vec<String>>,
    /// Rooms it may publish into from the socket; `None` = as the room allows.
    pub publish: Option<Vec<String>>,
}

fn matches_any(patterns: &[String], room: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => p == room,
    })
}

impl Claims {
    /// Claims of a socket on a hub without JWT auth.
    pub fn anonymous() -> Self {
        Claims::default()
    }

    /// Whether the socket may subscribe to `room`. System rooms carry only
    /// public counts and are open to every socket.
    pub fn can_subscribe(&self, room: &str) -> bool {
        crate::protocol::is_system_room(room)
            || self.rooms.as_deref().is_none_or(|p| matches_any(p, room))
    }

    /// Whether the socket may publish into `room` (the room must also allow it).
    pub fn can_publish(&self, room: &str) -> bool {
        self.publish.as_deref().is_none_or(|p| matches_any(p, room))
    }
}

/// The token's payload as signed: `sub` and `exp` required (checked by the
/// validator too), `rooms` and `publish` optional.
#[derive(Debug, Deserialize)]
struct TokenClaims {
    sub: String,
    exp: u64,
    rooms: Option<Vec<String>>,
    /// Absent = none: a token must grant client publish explicitly.
    #[serde(default)]
    publish: Vec<String>,
}

/// A configured verifier: the key and the validation rules that go with it.
struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

/// Turns a request's credentials into [`Claims`].
pub struct Authenticator {
    /// `None` when auth is off.
    verifier: Option<Verifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Authenticator")
            .field("enabled", &self.enabled())
            .finish()
    }
}

impl Authenticator {
    /// Builds the authenticator for `config`; a key file that cannot be read
    /// or parsed is a config error naming the key.
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        let (key, alg) = if !config.jwt_secret.is_empty() {
            (
                DecodingKey::from_secret(config.jwt_secret.as_bytes()),
                Algorithm::HS256,
            )
        } else if !config.jwt_public_key_file.is_empty() {
            load_public_key(&config.jwt_public_key_file)?
        } else {
            return Ok(Authenticator { verifier: None });
        };
        let mut validation = Validation::new(alg);
        let mut required = vec!["exp", "sub"];
        // `exp` is exact: the contract closes the session at `exp`, so a token
        // past it must not open one; `nbf` alike.
        validation.leeway = 0;
        validation.validate_nbf = true;
        if config.jwt_audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&config.jwt_audience]);
            required.push("aud");
        }
        if !config.jwt_issuer.is_empty() {
            validation.set_issuer(&[&config.jwt_issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Authenticator {
            verifier: Some(Verifier { key, validation }),
        })
    }

    /// Whether sockets must present a token.
    pub fn enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// The claims of an upgrade request, or why it is refused. The token comes
    /// from `?token=` or `Authorization: Bearer`; it is never logged.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<Claims, HubError> {
        let Some(verifier) = &self.verifier else {
            return Ok(Claims::anonymous());
        };
        let token = token_of(req).ok_or_else(|| {
            HubError::Unauthorized("a token is required (?token= or Authorization: Bearer)".into())
        })?;
        self.verify(verifier, &token)
    }

    /// The claims of a token sent over an open socket (`refresh`), or why
    /// it is refused: the same checks as at the upgrade.
    pub fn verify_token(&self, token: &str) -> Result<Claims, HubError> {
        match &self.verifier {
            Some(verifier) => self.verify(verifier, token),
            None => Err(HubError::BadRequest(
                "auth is off on this hub: there is no token to refresh".into(),
            )),
        }
    }

    /// Whether the request carries a token at all (`?token=` or Bearer).
    pub fn presented(req: &HttpRequest) -> bool {
        token_of(req).is_some()
    }

    fn verify(&self, verifier: &Verifier, token: &str) -> Result<Claims, HubError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| HubError::Unauthorized("token invalid".into()))?;
        if header.crit.is_some() {
            log::debug!("token refused: crit header");
            return Err(HubError::Unauthorized(
                "token has a crit header; no JWS extension is supported".into(),
            ));
        }
        let data = jsonwebtoken::decode::<TokenClaims>(token, &verifier.key, &verifier.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::ImmatureSignature => "token not valid yet (nbf)",
                    ErrorKind::InvalidAudience => "token audience not accepted",
                    ErrorKind::InvalidIssuer => "token issuer not accepted",
                    ErrorKind::InvalidAlgorithm => "token algorithm not accepted",
                    ErrorKind::InvalidSignature => "token signature invalid",
                    ErrorKind::MissingRequiredClaim(_) => {
                        "token lacks a required claim (sub, exp, and aud/iss when configured)"
                    }
                    _ => "token invalid",
                };
                log::debug!("token refused: {why}");
                HubError::Unauthorized(why.into())
            })?;
        let c = data.claims;
        if c.sub.is_empty() {
            return Err(HubError::Unauthorized("token `sub` is empty".into()));
        }
        Ok(Claims {
            sub: Some(c.sub),
            exp: Some(c.exp),
            rooms: c.rooms,
            publish: Some(c.publish),
        })
    }
}

/// The token of a request: `?token=` first, then `Authorization: Bearer`.
fn token_of(req: &HttpRequest) -> Option<String> {
    let from_query = req.query_string().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token" && !v.is_empty()).then(|| percent_decode(v))
    });
    from_query.or_else(|| {
        req.headers()
            .get(actix_web::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    })
}

/// Minimal %XX decoding for the token parameter (JWTs are URL-safe already;
/// this only undoes clients that escape them anyway).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a PEM public key and picks the algorithm its type implies.
fn load_public_key(path: &str) -> Result<(DecodingKey, Algorithm), ConfigError> {
    let bad = |message: String| ConfigError::Key {
        key: "auth.jwt_public_key_file".into(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read `{path}`: {e}")))?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((key, Algorithm::RS256));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        return Ok((key, Algorithm::ES256));
    }
    Err(bad(format!(
        "`{path}` is not an RSA or EC public key in PEM form"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_patterns_match_names_and_prefixes() {
        let claims = Claims {
            rooms: Some(vec!["alerts".into(), "team-1:*".into()]),
            publish: Some(vec![]),
            ..Claims::default()
        };
        assert!(claims.can_subscribe("alerts"));
        assert!(claims.can_subscribe("team-1:ops"));
        assert!(!claims.can_subscribe("hotspots"));
        assert!(claims.can_subscribe("$status"));
        assert!(!claims.can_publish("alerts"));
        assert!(Claims::anonymous().can_subscribe("anything"));
        assert!(Claims::anonymous().can_publish("anything"));
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(percent_decode("a%2Eb"), "a.b");
        assert_eq!(percent_decode("abc"), "abc");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("a%"), "a%");
        assert_eq!(percent_decode("a%4"), "a%4");
    }
}
