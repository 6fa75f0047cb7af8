//! Admission of a long-lived session, WebSocket or SSE (contract sections 2
//! and 12): one check, in one order, so the two transports cannot drift
//! apart. Every refusal is a [`HubError`], answered as JSON before any
//! upgrade or stream starts.

use actix_web::HttpRequest;

use super::{peer_ip, AppState};
use crate::auth::Claims;
use crate::connections::{ConnectionPermit, Refusal};
use crate::error::HubError;

/// A request that may become a session.
pub struct Admitted {
    /// What its credentials allow, for the session's later checks.
    pub claims: Claims,
    /// Its slot of `max_connections` (and of the per-IP limit).
    pub permit: ConnectionPermit,
}

/// Draining (503), Origin (403), token (401), the token's claim on every room
/// of `rooms` (403), then capacity (503): the permit is taken last, so a
/// refused request never holds a slot.
pub fn admit(req: &HttpRequest, state: &AppState, rooms: &[&str]) -> Result<Admitted, HubError> {
    if state.is_draining() {
        return Err(HubError::Unavailable(
            "server draining; reconnect elsewhere".into(),
        ));
    }
    check_origin(req, &state.config.server.allowed_origins)?;
    let claims = state.auth.authenticate(req)?;
    if let Some(room) = rooms.iter().find(|room| !claims.can_subscribe(room)) {
        return Err(HubError::Forbidden(format!(
            "token does not allow room {room}"
        )));
    }
    let permit = state
        .connections
        .try_acquire(peer_ip(req))
        .map_err(|refusal| {
            HubError::OverCapacity(match refusal {
                Refusal::Total(n) => format!("connection limit reached ({n})"),
                Refusal::PerIp(n) => format!("per-IP connection limit reached ({n})"),
            })
        })?;
    Ok(Admitted { claims, permit })
}

fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), HubError> {
    if allowed.is_empty() {
        return Ok(());
    }
    match req.headers().get(actix_web::http::header::ORIGIN) {
        // Scripts and servers send no Origin; browsers always do.
        None => Ok(()),
        Some(origin) => {
            let origin = origin.to_str().unwrap_or("");
            if allowed.iter().any(|a| a == origin) {
                Ok(())
            } else {
                Err(HubError::ForbiddenOrigin(
                    origin.chars().take(200).collect(),
                ))
            }
        }
    }
}
