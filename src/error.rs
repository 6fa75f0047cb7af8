//! The hub's error type, and its one mapping to the contract's codes, HTTP
//! statuses and JSON bodies.
//!
//! A concrete enum on the hot path (publish, subscribe) so matching is cheap and
//! exhaustive; every variant carries the human-readable detail for the client.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::protocol::ErrorCode;

/// Everything that can go wrong in a request or command, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// Malformed input.
    #[error("{0}")]
    BadRequest(String),
    /// The room does not exist and may not be created.
    #[error("unknown room `{0}`")]
    UnknownRoom(String),
    /// No session with that id.
    #[error("unknown session `{0}`")]
    UnknownSession(String),
    /// Credentials do not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The Origin is not allowed.
    #[error("origin `{0}` is not allowed")]
    ForbiddenOrigin(String),
    /// Missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Over a rate limit.
    #[error("{0}")]
    RateLimited(String),
    /// Body or frame too large.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// Client publish is disabled for the room.
    #[error("client publish is disabled in room `{0}`")]
    PublishDisabled(String),
    /// Cannot serve this now.
    #[error("{0}")]
    Unavailable(String),
    /// Connection limits reached.
    #[error("{0}")]
    OverCapacity(String),
    /// A session, IP or room limit would be passed.
    #[error("{0}")]
    LimitExceeded(String),
    /// No such route.
    #[error("{0}")]
    NotFound(String),
    /// A route that does not take this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A write body with another content type than JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request body did not arrive in time (seconds allowed).
    #[error("request body not received within {0} s")]
    RequestTimeout(u64),
    /// A failure on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

impl HubError {
    /// The contract code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::BadRequest(_) => ErrorCode::BadRequest,
            HubError::UnknownRoom(_) => ErrorCode::UnknownRoom,
            HubError::UnknownSession(_) => ErrorCode::UnknownSession,
            HubError::Forbidden(_) => ErrorCode::Forbidden,
            HubError::ForbiddenOrigin(_) => ErrorCode::ForbiddenOrigin,
            HubError::Unauthorized(_) => ErrorCode::Unauthorized,
            HubError::RateLimited(_) => ErrorCode::RateLimited,
            HubError::TooLarge(_) => ErrorCode::TooLarge,
            HubError::PublishDisabled(_) => ErrorCode::PublishDisabled,
            HubError::Unavailable(_) => ErrorCode::Unavailable,
            HubError::OverCapacity(_) => ErrorCode::OverCapacity,
            HubError::LimitExceeded(_) => ErrorCode::LimitExceeded,
            HubError::NotFound(_) => ErrorCode::NotFound,
            HubError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            HubError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            HubError::RequestTimeout(_) => ErrorCode::RequestTimeout,
            HubError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The JSON body of an HTTP error: `{"error":CODE,"message":TEXT}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code(),
            message: self.to_string(),
        }
    }
}

/// The contract's HTTP error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The code.
    pub error: ErrorCode,
    /// Detail for humans.
    pub message: String,
}

impl ResponseError for HubError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        // The rest of a body that is late is not waited for: the connection
        // goes, so a slow sender cannot hold it.
        if matches!(self, HubError::RequestTimeout(_)) {
            response.force_close();
        }
        response.json(self.body())
    }
}
