//! The writer task: the only owner of a session's transport — a WebSocket
//! (`actix_ws::Session`) or an SSE stream ([`crate::sse::SseSink`]).
//!
//! It drains the session's [`OutboundQueue`] into the transport, each write
//! bounded by `write_timeout`, and ends with the transport's close. Keeping
//! writes here, off the session actor, is what lets the actor keep its
//! heartbeat and mailbox running while a peer stops reading (the fault of
//! `actix-web-actors`). The [`Sink`] trait is the seam between the two
//! transports: the queue, the bounds and the slow-consumer rule are this
//! file's, once; how a frame becomes bytes is the sink's.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix_ws::CloseReason;
use bytestring::ByteString;

use crate::outbound::{Next, Outbound, OutboundQueue};
use crate::protocol::CloseCode;
use crate::session_stats::SessionStats;
use crate::socket_end::PeerSocket;

/// How a writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterEnd {
    /// A close frame with this code was sent (or attempted).
    Closed(CloseCode),
    /// The socket went away under us.
    SocketGone,
}

/// The peer is gone: a write into a transport that can no longer carry it.
#[derive(Debug, Clone, Copy)]
pub struct Gone;

/// What a session writes to: one implementation per transport. Every write
/// may wait (the peer is slow); the writer bounds each with `write_timeout`.
pub trait Sink {
    /// One text frame, the shared bytes every subscriber gets.
    fn frame(&mut self, frame: &ByteString) -> impl Future<Output = Result<(), Gone>>;
    /// A keep-alive: a protocol ping, or an SSE comment line.
    fn ping(&mut self) -> impl Future<Output = Result<(), Gone>>;
    /// The answer to the client's ping (WebSocket only).
    fn pong(&mut self, payload: &[u8]) -> impl Future<Output = Result<(), Gone>>;
    /// Ends the transport telling the peer `code` (a close frame, or a final
    /// SSE comment before the stream ends).
    fn close(self, code: CloseCode) -> impl Future<Output = ()>;
    /// Resolves when the peer is known to be gone although nothing was
    /// written: an SSE client reads only, so its leaving would otherwise be
    /// noticed at the second or third failed write (heartbeats, 30-45 s in an
    /// idle room). A WebSocket's reader sees it; that sink never resolves.
    fn peer_gone(&mut self) -> impl Future<Output = ()>;
}

/// A WebSocket as the writer's [`Sink`]: actix-ws's writing half, and the
/// TCP socket under it for ending the connection after the close handshake.
pub struct WebSocketSink {
    /// actix-ws's writing half.
    pub ws: actix_ws::Session,
    /// The plain TCP socket under it (none over TLS).
    pub socket: Option<PeerSocket>,
    /// The session's, for whether the client closed first.
    pub stats: Arc<SessionStats>,
}

impl Sink for WebSocketSink {
    async fn frame(&mut self, frame: &ByteString) -> Result<(), Gone> {
        self.ws.text(frame.clone()).await.map_err(|_| Gone)
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        self.ws.ping(b"").await.map_err(|_| Gone)
    }

    async fn pong(&mut self, payload: &[u8]) -> Result<(), Gone> {
        self.ws.pong(payload).await.map_err(|_| Gone)
    }

    async fn peer_gone(&mut self) {
        std::future::pending().await
    }

    async fn close(self, code: CloseCode) {
        let reason = CloseReason {
            code: code.code().into(),
            description: Some(code.reason().to_string()),
        };
        let closed = self.ws.close(Some(reason)).await;
        // The client closed first and our answering close frame is with
        // actix: end the connection right after it instead of lingering
        // (src/socket_end.rs). No await since `close` returned, so the
        // connection is still open. When the hub closes first, actix keeps
        // reading until the client's answer, so it never meets a closed socket.
        let answered = self.stats.peer_closed.load(Ordering::Acquire);
        if let (Ok(()), Some(socket), true) = (closed, self.socket, answered) {
            socket.stop_reading();
        }
    }
}

enum WriteError {
    Gone,
    Stalled,
    Aborted,
}

/// Runs until the queue closes or the socket fails. `on_end` learns how it ended
/// as soon as that is known — before the close frame is attempted, which may
/// take up to `write_timeout` on a stalled socket — so the session can leave the
/// registry at once.
pub async fn run<S: Sink>(
    mut ws: S,
    queue: OutboundQueue,
    stats: Arc<SessionStats>,
    write_timeout: Duration,
    on_end: impl FnOnce(WriterEnd),
) {
    let mut spare = VecDeque::new();
    let code = loop {
        let next = tokio::select! {
            biased;
            next = queue.next(std::mem::take(&mut spare)) => next,
            () = ws.peer_gone() => {
                queue.close(CloseCode::Normal, false);
                return on_end(WriterEnd::SocketGone);
            }
        };
        match next {
            Next::Items(mut items) => {
                // Boxed: the write path's futures (the socket write, its timer and
                // the abort watch) are most of this task's size. Inline, every idle
                // socket would carry them; boxed, they exist only while a batch is
                // being written (one allocation per wake-up, not per frame).
                let outcome = Box::pin(write_batch(
                    &mut ws,
                    &mut items,
                    &queue,
                    &stats,
                    write_timeout,
                ))
                .await;
                match outcome {
                    BatchEnd::Done => {}
                    BatchEnd::SocketGone => {
                        queue.close(CloseCode::Normal, false);
                        return on_end(WriterEnd::SocketGone);
                    }
                }
                items.clear();
                spare = items;
            }
            Next::Close(code) => break code,
        }
    };
    on_end(WriterEnd::Closed(code));
    let _ = Box::pin(tokio::time::timeout(write_timeout, ws.close(code))).await;
}

/// How writing one batch of queue items ended.
enum BatchEnd {
    /// Written, or stopped early because the queue is closing (`next` hands over
    /// the close).
    Done,
    /// The socket went away under us.
    SocketGone,
}

async fn write_batch<S: Sink>(
    ws: &mut S,
    items: &mut VecDeque<Outbound>,
    queue: &OutboundQueue,
    stats: &SessionStats,
    write_timeout: Duration,
) -> BatchEnd {
    while let Some(item) = items.pop_front() {
        match write_item(ws, &item, queue, write_timeout).await {
            Ok(frames) => {
                stats.msgs_out.fetch_add(frames, Ordering::Relaxed);
                queue.written(&item);
            }
            // The queue is closing now; `next` hands over the close.
            Err(WriteError::Aborted) => break,
            Err(WriteError::Stalled) => {
                queue.close(CloseCode::SlowConsumer, false);
                break;
            }
            Err(WriteError::Gone) => return BatchEnd::SocketGone,
        }
    }
    BatchEnd::Done
}

async fn write_item<S: Sink>(
    ws: &mut S,
    item: &Outbound,
    queue: &OutboundQueue,
    write_timeout: Duration,
) -> Result<u64, WriteError> {
    match item {
        Outbound::Frame(frame) => {
            bounded(ws.frame(frame), queue, write_timeout).await?;
            Ok(1)
        }
        Outbound::Batch(frames) => {
            for frame in frames {
                bounded(ws.frame(frame), queue, write_timeout).await?;
            }
            Ok(frames.len() as u64)
        }
        Outbound::Ping => bounded(ws.ping(), queue, write_timeout).await.map(|_| 0),
        Outbound::Pong(payload) => bounded(ws.pong(payload), queue, write_timeout)
            .await
            .map(|_| 0),
    }
}

/// Awaits one write; the timer and abort watch are armed only when the write
/// does not complete at once, so the common path costs no timer.
async fn bounded<F>(write: F, queue: &OutboundQueue, limit: Duration) -> Result<(), WriteError>
where
    F: Future<Output = Result<(), Gone>>,
{
    let mut write = pin!(write);
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    let result = match first {
        Poll::Ready(r) => r,
        Poll::Pending => {
            tokio::select! {
                r = &mut write => r,
                _ = tokio::time::sleep(limit) => return Err(WriteError::Stalled),
                _ = queue.aborted() => return Err(WriteError::Aborted),
            }
        }
    };
    result.map_err(|_| WriteError::Gone)
}
