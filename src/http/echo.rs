//! `/ws/_echo` (only with `websocket.echo_endpoint = true`): echoes every message
//! back through the same transport the hub's sessions use, with no welcome, so
//! protocol conformance suites (Autobahn) exercise the real frame handling.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};

use super::AppState;
use crate::error::HubError;

/// Upgrades and echoes until the peer closes.
pub async fn echo(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HubError> {
    let max = state.config.websocket.max_frame_bytes;
    let (response, mut ws, stream) = actix_ws::handle(&req, body)
        .map_err(|e| HubError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    let mut stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    actix_rt::spawn(async move {
        let close = loop {
            let sent = match stream.recv().await {
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

fn close_for(err: &actix_ws::ProtocolError) -> CloseReason {
    use actix_ws::ProtocolError;
    let code = match err {
        ProtocolError::Overflow => CloseCode::Size,
        ProtocolError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => CloseCode::Invalid,
        _ => CloseCode::Protocol,
    };
    CloseReason {
        code,
        description: None,
    }
}
