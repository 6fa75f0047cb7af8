//! The two ways a client receives frames: a WebSocket (`/ws`, [`crate::ws`])
//! or a Server-Sent Events stream (`/sse`, [`crate::sse`]). Either way each
//! frame is the same JSON text, read by the same [`crate::payload`] code.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Result;
use futures_util::StreamExt;
use serde::Serialize;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::endpoint::Endpoint;
use crate::sse::{self, SseStream};
use crate::ws::{self, WsStream};

/// How clients connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `GET /ws…` upgraded to a WebSocket.
    #[default]
    Websocket,
    /// `GET /sse?rooms=…`, a `text/event-stream` response.
    Sse,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Websocket => "websocket",
            Transport::Sse => "sse",
        })
    }
}

/// An open client connection of either transport.
#[derive(Debug)]
pub enum Conn {
    /// A WebSocket.
    Ws(Box<WsStream>),
    /// An event stream.
    Sse(Box<SseStream>),
}

/// What [`Conn::next`] read.
#[derive(Debug)]
pub enum Incoming {
    /// A WebSocket text frame.
    Text(Utf8Bytes),
    /// An SSE event's data.
    Data(String),
    /// Something else (a ping, a pong, a binary frame).
    Control,
    /// The connection ended: a close code, `eof`, or `error: …`.
    Ended(String),
}

impl Incoming {
    /// The frame's JSON text, for [`Incoming::Text`] and [`Incoming::Data`].
    pub fn text(&self) -> Option<&str> {
        match self {
            Incoming::Text(t) => Some(t.as_str()),
            Incoming::Data(d) => Some(d.as_str()),
            Incoming::Control | Incoming::Ended(_) => None,
        }
    }
}

impl Conn {
    /// Connects to `room` and waits for its `subscribed`; returns the room's
    /// head. WebSocket: `/ws/{room}`; SSE: `/sse?rooms={room}`.
    pub async fn subscribe(
        transport: Transport,
        endpoint: &Endpoint,
        room: &str,
        source: Option<Ipv4Addr>,
        read_buffer: usize,
        timeout: Duration,
    ) -> Result<(Conn, u64)> {
        Ok(match transport {
            Transport::Websocket => {
                let path = format!("/ws/{room}");
                let mut s = ws::connect(endpoint, &path, source, read_buffer).await?;
                let base = ws::wait_subscribed(&mut s, timeout).await?;
                (Conn::Ws(Box::new(s)), base)
            }
            Transport::Sse => {
                let path = sse::path(&[room]);
                let mut s = sse::connect(endpoint, &path, source, read_buffer).await?;
                let base = sse::wait_subscribed(&mut s, timeout).await?;
                (Conn::Sse(Box::new(s)), base)
            }
        })
    }

    /// Connects a WebSocket to `/ws` (no room) and waits for `welcome`.
    pub async fn websocket_welcomed(
        endpoint: &Endpoint,
        source: Option<Ipv4Addr>,
        read_buffer: usize,
        timeout: Duration,
    ) -> Result<Conn> {
        let mut s = ws::connect(endpoint, "/ws", source, read_buffer).await?;
        ws::wait_welcome(&mut s, timeout).await?;
        Ok(Conn::Ws(Box::new(s)))
    }

    /// The next thing the connection delivers. Cancel-safe.
    pub async fn next(&mut self) -> Incoming {
        match self {
            Conn::Ws(s) => match s.next().await {
                Some(Ok(Message::Text(text))) => Incoming::Text(text),
                Some(Ok(close @ Message::Close(_))) => {
                    Incoming::Ended(ws::close_reason(Some(&close)))
                }
                Some(Ok(_)) => Incoming::Control,
                Some(Err(e)) => Incoming::Ended(format!("error: {e}")),
                None => Incoming::Ended(ws::close_reason(None)),
            },
            Conn::Sse(s) => match s.next_event().await {
                Ok(Some(event)) => Incoming::Data(event.data),
                Ok(None) => Incoming::Ended(s.end_reason()),
                Err(e) => Incoming::Ended(format!("error: {e:#}")),
            },
        }
    }

    /// Ends the connection politely: a WebSocket close frame (waiting at
    /// most `timeout`); an event stream is just dropped (its reader never speaks).
    pub async fn close(self, timeout: Duration) {
        match self {
            Conn::Ws(mut s) => {
                let _ = tokio::time::timeout(timeout, s.close(None)).await;
            }
            Conn::Sse(s) => drop(s),
        }
    }
}
