//! Who a socket is and what it may do: the claims seam (contract section 7).
//!
//! Every socket carries [`Claims`]. With no JWT configured they are anonymous and
//! allow every room (client publish still needs the room's `client_publish`). The
//! JWT verifier plugs in at [`Authenticator::authenticate`]; the session and the
//! registry only ever ask `Claims`.

use actix_web::HttpRequest;

use crate::config::AuthConfig;
use crate::error::HubError;

/// What a socket's credentials allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// The user id (`sub`), used for user-targeted messages.
    pub sub: Option<String>,
    /// Unix seconds at which the session must end (`exp`).
    pub exp: Option<i64>,
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

/// Turns a request's credentials into [`Claims`].
#[derive(Debug, Clone)]
pub struct Authenticator {
    enabled: bool,
}

impl Authenticator {
    /// Builds the authenticator for `config`.
    pub fn new(config: &AuthConfig) -> Self {
        Authenticator {
            enabled: !config.jwt_secret.is_empty() || !config.jwt_public_key_file.is_empty(),
        }
    }

    /// Whether sockets must present a token.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The claims of an upgrade request, or why it is refused.
    pub fn authenticate(&self, _req: &HttpRequest) -> Result<Claims, HubError> {
        if self.enabled {
            // Config validation refuses JWT settings until the verifier lands, so
            // this is unreachable in a running hub; refuse rather than allow.
            return Err(HubError::Unauthorized(
                "token verification is not available".into(),
            ));
        }
        Ok(Claims::anonymous())
    }
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
}
