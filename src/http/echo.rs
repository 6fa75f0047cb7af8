//! `/ws/_echo` (only with `websocket.echo_endpoint = true`): echoes every message
//! back through the same transport the hub's sessions use, with no welcome, so
//! protocol conformance suites (Autobahn) exercise the real frame handling.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseReason};
use futures_util::StreamExt;

use super::AppState;
use crate::error::HubError;
use crate::reader::{self, ReadError};

/// Upgrades and echoes until the peer closes.
pub async fn echo(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HubError> {
    let (response, mut ws, mut stream) =
        reader::upgrade(&req, body, state.session_settings.read_limits)
            .await
            .map_err(|e| HubError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    actix_rt::spawn(async move {
        let close = loop {
            let sent = match stream.next().await {
                Some(Ok(AggregatedMessage::Text(t))) => ws.text(t).await,
                Some(Ok(AggregatedMessage::Binary(b))) => ws.binary(b).await,
                Some(Ok(AggregatedMessage::Ping(p))) => ws.pong(&p).await,
                Some(Ok(AggregatedMessage::Pong(_))) => Ok(()),
                Some(Ok(AggregatedMessage::Close(reason))) => break reason,
                Some(Err(err)) => break Some(close_for(&err)),
                None => break None,
            };
            if sent.is_err() {
                return;
            }
        };
        let _ = ws.close(close).await;
    });
    Ok(response)
}

fn close_for(err: &ReadError) -> CloseReason {
    CloseReason {
        code: err.close_code().code().into(),
        description: None,
    }
}
