//! WebSocket clients bound to chosen loopback source addresses.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::endpoint::Endpoint;
use crate::payload::{self, FrameSource};

/// A client WebSocket over plain TCP.
pub type WsStream = WebSocketStream<TcpStream>;

/// Read buffer for sockets that stay idle (the library default is 128 KiB each).
pub const IDLE_READ_BUFFER: usize = 4 * 1024;

/// Read buffer for sockets that receive a stream of events.
pub const BUSY_READ_BUFFER: usize = 32 * 1024;

/// Opens a WebSocket to `path` on the hub from source address `source`.
pub async fn connect(
    endpoint: &Endpoint,
    path: &str,
    source: Option<Ipv4Addr>,
    read_buffer: usize,
) -> Result<WsStream> {
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::from((ip, 0)))
            .with_context(|| format!("binding to {ip}"))?;
    }
    let stream = socket
        .connect(endpoint.addr())
        .await
        .with_context(|| format!("connecting to {}", endpoint.addr()))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0);
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(endpoint.ws_url(path), stream, Some(config))
            .await
            .with_context(|| format!("WebSocket handshake on {path}"))?;
    Ok(ws)
}

/// The next text frame, skipping control frames; `None` when the socket closed.
pub async fn next_text(ws: &mut WsStream) -> Result<Option<String>> {
    while let Some(message) = ws.next().await {
        match message.context("reading the socket")? {
            Message::Text(text) => return Ok(Some(text.as_str().to_owned())),
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

impl FrameSource for WsStream {
    async fn next_frame_text(&mut self) -> Result<String> {
        next_text(self)
            .await?
            .context("socket closed while waiting for a frame")
    }
}

/// Waits for `welcome`.
pub async fn wait_welcome(ws: &mut WsStream, timeout: Duration) -> Result<()> {
    payload::wait_welcome(ws, timeout).await
}

/// Waits for `subscribed`; returns the room head it reports.
pub async fn wait_subscribed(ws: &mut WsStream, timeout: Duration) -> Result<u64> {
    payload::wait_subscribed(ws, timeout).await
}

/// The close code of a close frame, or a short description of how the socket ended.
pub fn close_reason(message: Option<&Message>) -> String {
    match message {
        Some(Message::Close(Some(frame))) => u16::from(frame.code).to_string(),
        Some(Message::Close(None)) => "close".to_owned(),
        _ => "eof".to_owned(),
    }
}
