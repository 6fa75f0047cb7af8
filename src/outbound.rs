//! The bounded queue between everything that produces frames for one socket (the
//! registry's fan-out, the session's replies) and the writer task that owns it.
//!
//! Producers never wait: [`OutboundQueue::push`] either takes the frame or reports
//! the session as a slow consumer, at which point the queue drops what it holds
//! (releasing the memory at once) and asks the writer to close with 4008. A
//! frame counts against the limit until the writer has handed it to the socket,
//! so the limit bounds everything in flight, not just what waits.

use std::collections::VecDeque;
use std::sync::Arc;

use bytestring::ByteString;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::protocol::CloseCode;

/// One unit of work for the writer.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// One text frame: an event or a reply.
    Frame(ByteString),
    /// `subscribed` plus its replay: one slot however long, so a replay is paced
    /// by the socket and never counts as slowness. Its frames are history's
    /// shared bytes, so its memory is bounded by the room's history.
    Batch(Vec<ByteString>),
    /// A protocol-level ping (heartbeat).
    Ping,
    /// A protocol-level pong answering the client's ping.
    Pong(actix_web::web::Bytes),
}

impl Outbound {
    /// Bytes counted against the byte bound. A replay counts as none: its frames
    /// are history's shared bytes, held by the room anyway, and counting them
    /// would close a fresh subscriber as slow right after a long replay.
    fn bytes(&self) -> usize {
        match self {
            Outbound::Frame(f) => f.len(),
            Outbound::Batch(_) | Outbound::Ping => 0,
            Outbound::Pong(b) => b.len(),
        }
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue was full: the session is now closing with 4008.
    SlowConsumer,
    /// The session is already closing; the frame was dropped.
    Closed,
}

/// How the queue is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    /// The close code to send.
    pub code: CloseCode,
    /// Send what is queued first (drain, admin) or drop it (slow, broken peer).
    pub flush: bool,
}

/// What the writer gets from [`OutboundQueue::next`].
#[derive(Debug)]
pub enum Next {
    /// Items to write, in order.
    Items(VecDeque<Outbound>),
    /// Nothing more to write: send this close and stop.
    Close(CloseCode),
}

#[derive(Debug, Default)]
struct State {
    /// Items not yet taken by the writer.
    items: VecDeque<Outbound>,
    /// Items taken or waiting, not yet written: what counts against the limit.
    pending: usize,
    /// Bytes of those items.
    pending_bytes: usize,
    /// Set once; the queue accepts nothing after it.
    closing: Option<Closing>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Wakes the writer when items arrive or the queue closes.
    ready: Notify,
    /// Interrupts a write the writer is blocked in, for an immediate close.
    abort: Notify,
    /// `websocket.outbound_queue`.
    limit: usize,
    /// `websocket.outbound_queue_bytes`.
    limit_bytes: usize,
}

/// A cheap, cloneable handle on one session's queue.
#[derive(Debug, Clone)]
pub struct OutboundQueue {
    inner: Arc<Inner>,
}

/// A snapshot of a queue's fill, for the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Items not yet written.
    pub frames: usize,
    /// Their bytes.
    pub bytes: usize,
}

impl OutboundQueue {
    /// A queue that holds at most `limit` unwritten items and `limit_bytes`
    /// bytes of them (one item is always accepted into an empty queue, however
    /// large, so a big event cannot make a session undeliverable).
    pub fn new(limit: usize, limit_bytes: usize) -> Self {
        OutboundQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                ready: Notify::new(),
                abort: Notify::new(),
                limit: limit.max(1),
                limit_bytes,
            }),
        }
    }

    /// Hands `item` to the writer without waiting; on overflow closes with 4008.
    pub fn push(&self, item: Outbound) -> Result<(), PushError> {
        let mut state = self.inner.state.lock();
        if state.closing.is_some() {
            return Err(PushError::Closed);
        }
        let bytes = item.bytes();
        let over_bytes =
            state.pending_bytes > 0 && state.pending_bytes + bytes > self.inner.limit_bytes;
        if state.pending >= self.inner.limit || over_bytes {
            drop(state);
            self.close(CloseCode::SlowConsumer, false);
            return Err(PushError::SlowConsumer);
        }
        let was_empty = state.items.is_empty();
        state.pending += 1;
        state.pending_bytes += bytes;
        state.items.push_back(item);
        drop(state);
        if was_empty {
            self.inner.ready.notify_one();
        }
        Ok(())
    }

    /// Asks the writer to close with `code`, after what is queued when `flush`.
    /// The first close wins; later calls change nothing.
    pub fn close(&self, code: CloseCode, flush: bool) {
        let mut state = self.inner.state.lock();
        if state.closing.is_some() {
            return;
        }
        state.closing = Some(Closing { code, flush });
        if !flush {
            let dropped = std::mem::take(&mut state.items);
            state.pending -= dropped.len();
            state.pending_bytes = state
                .pending_bytes
                .saturating_sub(dropped.iter().map(Outbound::bytes).sum());
            drop(state);
            drop(dropped);
            self.inner.abort.notify_one();
        } else {
            drop(state);
        }
        self.inner.ready.notify_one();
    }

    /// How the queue is closing, if it is.
    pub fn closing(&self) -> Option<Closing> {
        self.inner.state.lock().closing
    }

    /// Current fill.
    pub fn depth(&self) -> QueueDepth {
        let state = self.inner.state.lock();
        QueueDepth {
            frames: state.pending,
            bytes: state.pending_bytes,
        }
    }

    /// Waits for the next items, or the close. `spare` is the writer's emptied
    /// buffer from last time, swapped in so steady state allocates nothing.
    pub async fn next(&self, spare: VecDeque<Outbound>) -> Next {
        let mut spare = Some(spare);
        loop {
            {
                let mut state = self.inner.state.lock();
                if !state.items.is_empty() {
                    let mut buf = spare.take().unwrap_or_default();
                    std::mem::swap(&mut buf, &mut state.items);
                    return Next::Items(buf);
                }
                if let Some(closing) = state.closing {
                    return Next::Close(closing.code);
                }
            }
            self.inner.ready.notified().await;
        }
    }

    /// Marks `item` written: it no longer counts against the limit.
    pub fn written(&self, item: &Outbound) {
        let mut state = self.inner.state.lock();
        state.pending = state.pending.saturating_sub(1);
        state.pending_bytes = state.pending_bytes.saturating_sub(item.bytes());
    }

    /// Resolves when an immediate close interrupts the writer.
    pub async fn aborted(&self) {
        loop {
            if matches!(self.closing(), Some(Closing { flush: false, .. })) {
                return;
            }
            self.inner.abort.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &'static str) -> Outbound {
        Outbound::Frame(ByteString::from_static(s))
    }

    #[tokio::test]
    async fn delivers_in_order_and_counts_until_written() {
        let q = OutboundQueue::new(3, usize::MAX);
        q.push(frame("a")).expect("room");
        q.push(frame("bb")).expect("room");
        assert_eq!(
            q.depth(),
            QueueDepth {
                frames: 2,
                bytes: 3
            }
        );
        let Next::Items(items) = q.next(VecDeque::new()).await else {
            panic!("expected items")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(q.depth().frames, 2, "taken but unwritten still counts");
        for item in &items {
            q.written(item);
        }
        assert_eq!(q.depth(), QueueDepth::default());
    }

    #[tokio::test]
    async fn overflow_closes_as_slow_consumer_and_frees_the_queue() {
        let q = OutboundQueue::new(2, usize::MAX);
        q.push(frame("a")).expect("room");
        q.push(frame("b")).expect("room");
        assert_eq!(q.push(frame("c")), Err(PushError::SlowConsumer));
        assert_eq!(q.depth().frames, 0, "queued frames are released");
        assert_eq!(q.push(frame("d")), Err(PushError::Closed));
        assert!(matches!(
            q.next(VecDeque::new()).await,
            Next::Close(CloseCode::SlowConsumer)
        ));
        tokio::time::timeout(std::time::Duration::from_secs(1), q.aborted())
            .await
            .expect("abort is signalled");
    }

    #[test]
    fn byte_bound_counts_live_frames_but_not_replays() {
        let q = OutboundQueue::new(100, 4);
        q.push(Outbound::Batch(vec![ByteString::from_static(
            "a long replay",
        )]))
        .expect("replays are not counted in bytes");
        q.push(frame("abc")).expect("3 bytes fit");
        assert_eq!(q.push(frame("de")), Err(PushError::SlowConsumer));
        let big = OutboundQueue::new(100, 4);
        big.push(frame("larger than the bound"))
            .expect("one item always fits an empty queue");
    }

    #[tokio::test]
    async fn flushing_close_keeps_queued_items_first() {
        let q = OutboundQueue::new(8, usize::MAX);
        q.push(frame("a")).expect("room");
        q.close(CloseCode::Draining, true);
        q.close(CloseCode::Normal, false);
        assert_eq!(q.closing().map(|c| c.code), Some(CloseCode::Draining));
        assert!(matches!(q.next(VecDeque::new()).await, Next::Items(i) if i.len() == 1));
        assert!(matches!(
            q.next(VecDeque::new()).await,
            Next::Close(CloseCode::Draining)
        ));
    }

    #[tokio::test]
    async fn a_waiting_writer_is_woken_by_a_push_from_another_thread() {
        let q = OutboundQueue::new(8, usize::MAX);
        let q2 = q.clone();
        let pusher = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            q2.push(frame("x")).expect("room");
        });
        let next = tokio::time::timeout(std::time::Duration::from_secs(2), q.next(VecDeque::new()))
            .await
            .expect("woken");
        assert!(matches!(next, Next::Items(i) if i.len() == 1));
        pusher.join().expect("pusher");
    }
}
