//! The Server-Sent Events transport (contract section 12): the writer's
//! [`Sink`] for an SSE stream, the response body it feeds, and the `id:`
//! cursor that lets one `Last-Event-ID` resume every room of the stream.
//!
//! A frame is written as a fixed prefix, the shared bytes the registry encoded
//! once for every subscriber (WebSocket or SSE), and a fixed suffix; only the
//! `id:` line is built per stream. Between the writer and the HTTP response
//! sits a small channel: the writer's sends wait while actix does not poll the
//! body (the peer stopped reading), which is what `write_timeout` and the
//! slow-consumer rule measure, exactly as for a stalled WebSocket.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::Bytes;
use bytestring::ByteString;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::protocol::{CloseCode, STATUS_ROOM};
use crate::socket_end::PeerSocket;
use crate::writer::{Gone, Sink};

/// Messages the channel between writer and response holds beyond the
/// outbound queue: enough to keep the socket busy, few enough that a stalled
/// reader pins almost nothing (they are shared bytes anyway).
const CHANNEL: usize = 8;

/// How often an SSE stream looks whether its reader left (one non-blocking
/// peek): a client that goes leaves the registry, its rooms' presence and its
/// connection slot within this long, not at the second failed heartbeat.
const PEER_CHECK: Duration = Duration::from_secs(1);

/// The keep-alive: an SSE comment, ignored by every client.
const KEEP_ALIVE: &[u8] = b":\n\n";

/// How much jitter a stream's `retry:` gets, as a fraction of the base.
const RETRY_JITTER: f64 = 0.25;

/// The cursor's version prefix, so its format can change without an old id
/// being misread.
const CURSOR_V1: &str = "v1";

/// One unit on the channel: whole SSE messages only, so a write interrupted
/// by a close never leaves half a message before the closing comment.
enum Chunk {
    /// Bytes of our own making (the `retry:` line, keep-alives, the close).
    Raw(Bytes),
    /// `head` (the `id:` line, if any, and `data: `), the shared frame, `\n\n`.
    Message {
        /// The per-stream part.
        head: Bytes,
        /// The frame's shared bytes.
        frame: Bytes,
    },
}

/// A room's position on this stream: what `since` + `epoch` would say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The room's epoch, as its `subscribed` told it.
    pub epoch: String,
    /// The last seq the client has been sent (or the head it was told).
    pub seq: u64,
    /// A keyed room's state being sent: frames still to come and the head
    /// they add up to. State frames skip seqs, so the last one moves the
    /// position to the head, not to its own seq: resuming from there replays
    /// nothing the client already holds.
    state: Option<(u64, u64)>,
}

/// The stream's position in all its rooms; its encoding is the `id:` of every
/// event message. Opaque to clients: `v1;ROOM/EPOCH/SEQ;...`, rooms sorted,
/// the epoch percent-escaped (room names cannot hold `;`, `/` or `%`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    rooms: BTreeMap<String, Position>,
}

/// The fields of a frame the cursor follows; the rest is skipped unread.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    room: Option<std::borrow::Cow<'a, str>>,
    seq: Option<u64>,
    #[serde(borrow)]
    epoch: Option<std::borrow::Cow<'a, str>>,
    /// On `subscribed` in a keyed room: how many state frames follow.
    state: Option<u64>,
}

impl Cursor {
    /// Reads a cursor sent back as `Last-Event-ID` / `last_event_id`.
    /// Anything unreadable is an empty cursor: every room then starts fresh
    /// with `recovered:false`, which tells the client to resync — better than
    /// refusing a stream that EventSource would retry with the same id forever.
    pub fn parse(text: &str) -> Cursor {
        let mut parts = text.trim().split(';');
        if parts.next() != Some(CURSOR_V1) {
            return Cursor::default();
        }
        let mut rooms = BTreeMap::new();
        for entry in parts {
            let mut fields = entry.split('/');
            let (Some(room), Some(epoch), Some(seq), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Cursor::default();
            };
            let (Some(epoch), Ok(seq)) = (unescape(epoch), seq.parse::<u64>()) else {
                return Cursor::default();
            };
            if room.is_empty() || epoch.is_empty() {
                return Cursor::default();
            }
            rooms.insert(
                room.to_string(),
                Position {
                    epoch,
                    seq,
                    state: None,
                },
            );
        }
        Cursor { rooms }
    }

    /// Where `room` resumes from, if the cursor knows it.
    pub fn get(&self, room: &str) -> Option<&Position> {
        self.rooms.get(room)
    }

    /// Keeps only `rooms`: a reconnect may ask for fewer rooms than its id
    /// names, and the new stream's ids should not carry the others.
    pub fn retain(&mut self, rooms: &[String]) {
        self.rooms.retain(|r, _| rooms.iter().any(|x| x == r));
    }

    /// The cursor as an `id:` value.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 + self.rooms.len() * 24);
        out.push_str(CURSOR_V1);
        for (room, pos) in &self.rooms {
            out.push(';');
            out.push_str(room);
            out.push('/');
            escape_into(&pos.epoch, &mut out);
            let _ = write!(out, "/{}", pos.seq);
        }
        out
    }

    /// Follows one frame: `subscribed` sets its room's epoch and head, an
    /// event moves its room's seq. Returns the `id:` the frame's message
    /// carries: the new cursor for a room event, none for anything else.
    fn observe(&mut self, frame: &[u8]) -> Option<String> {
        let head: Head = serde_json::from_slice(frame).ok()?;
        let room = head.room?;
        let seq = head.seq?;
        if room == STATUS_ROOM {
            return None;
        }
        match head.kind.as_ref() {
            "subscribed" => {
                // The head: a replay or snapshot that follows ends there and
                // moves the position event by event on the way.
                let epoch = head.epoch?.into_owned();
                let state = head.state.filter(|n| *n > 0).map(|n| (n, seq));
                self.rooms
                    .insert(room.into_owned(), Position { epoch, seq, state });
                None
            }
            // Replies, not room events; an SSE session sends no commands anyway.
            "published" | "unsubscribed" | "error" => None,
            _ => {
                // An event always follows its room's `subscribed`; without one
                // there is no epoch to resume with, so no position to record.
                let pos = self.rooms.get_mut(room.as_ref())?;
                pos.seq = match &mut pos.state {
                    Some((left, head)) if *left <= 1 => {
                        let head = *head;
                        pos.state = None;
                        head
                    }
                    Some((left, _)) => {
                        *left -= 1;
                        seq
                    }
                    None => seq,
                };
                Some(self.encode())
            }
        }
    }
}

fn escape_into(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `retry_ms` plus up to [`RETRY_JITTER`] of it, different per stream.
pub fn jittered_retry(retry_ms: u64) -> u64 {
    let random = std::hash::RandomState::new().build_hasher().finish();
    let spread = (retry_ms as f64 * RETRY_JITTER) as u64;
    retry_ms
        + if spread == 0 {
            0
        } else {
            random % (spread + 1)
        }
}

/// The writer's end of one SSE stream.
pub struct SseSink {
    /// Messages to the response body.
    tx: mpsc::Sender<Chunk>,
    /// The stream's position, for every event's `id:`.
    cursor: Cursor,
    /// Ends the connection of a stream whose reader stopped; see [`Drop`].
    end: Option<HardEnd>,
}

/// What a stream's end needs to cut a stalled connection.
struct HardEnd {
    /// The connection's socket (plain TCP only).
    socket: PeerSocket,
    /// Alive while actix holds the response body.
    body: Weak<()>,
    /// How long the body may take to drain once the writer is done.
    grace: Duration,
    /// When to look whether the peer left.
    check: tokio::time::Interval,
}

/// The response body of one SSE stream: what the writer sent, in order.
pub struct SseBody {
    /// The writer's messages; ends when the writer does.
    rx: mpsc::Receiver<Chunk>,
    /// The rest of a message being handed to actix, one part per poll.
    pending: [Option<Bytes>; 2],
    /// Tells the sink the body is still held.
    _held: Arc<()>,
}

/// A stream that opens with `retry: retry_ms` and resumes from `cursor`.
/// With the connection's `socket`, a stream whose reader stopped is cut
/// `grace` after its session ended (see [`SseSink`]'s `Drop`).
pub fn stream(
    retry_ms: u64,
    cursor: Cursor,
    socket: Option<PeerSocket>,
    grace: Duration,
) -> (SseSink, SseBody) {
    let (tx, rx) = mpsc::channel(CHANNEL);
    // The channel is empty: the first message always fits.
    let _ = tx.try_send(Chunk::Raw(Bytes::from(format!("retry: {retry_ms}\n\n"))));
    let held = Arc::new(());
    let end = socket.map(|socket| {
        let mut check = tokio::time::interval(PEER_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        HardEnd {
            socket,
            body: Arc::downgrade(&held),
            grace,
            check,
        }
    });
    (
        SseSink { tx, cursor, end },
        SseBody {
            rx,
            pending: [None, None],
            _held: held,
        },
    )
}

/// The session is over. A reader that keeps up gets the rest and the body
/// ends; one that stopped reading would hold its connection (and what actix
/// buffered for it) for as long as it likes, since actix has no write
/// timeout. So if the body is still held `grace` later, the socket is shut,
/// which makes actix drop the connection.
impl Drop for SseSink {
    fn drop(&mut self) {
        let Some(end) = self.end.take() else {
            return;
        };
        if end.body.strong_count() == 0 {
            return;
        }
        // On this worker thread, the one that owns the connection (see
        // `PeerSocket::stop`).
        actix_web::rt::spawn(async move {
            tokio::time::sleep(end.grace).await;
            if end.body.strong_count() > 0 {
                end.socket.stop();
            }
        });
    }
}

impl SseSink {
    async fn send(&mut self, chunk: Chunk) -> Result<(), Gone> {
        self.tx.send(chunk).await.map_err(|_| Gone)
    }
}

impl Sink for SseSink {
    async fn frame(&mut self, frame: &ByteString) -> Result<(), Gone> {
        let head = match self.cursor.observe(frame.as_bytes()) {
            Some(id) => Bytes::from(format!("id: {id}\ndata: ")),
            None => Bytes::from_static(b"data: "),
        };
        let frame = frame.as_bytes().clone();
        self.send(Chunk::Message { head, frame }).await
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        self.send(Chunk::Raw(Bytes::from_static(KEEP_ALIVE))).await
    }

    async fn pong(&mut self, _: &[u8]) -> Result<(), Gone> {
        // An SSE client sends nothing, so there is no ping to answer.
        Ok(())
    }

    async fn peer_gone(&mut self) {
        let Some(end) = &mut self.end else {
            return std::future::pending().await; // over TLS: the writes tell
        };
        loop {
            end.check.tick().await;
            // The body is held, and this runs on the connection's worker
            // thread (see `PeerSocket::peer_closed`).
            if end.body.strong_count() == 0 || end.socket.peer_closed() {
                return;
            }
        }
    }

    async fn close(mut self, code: CloseCode) {
        // A comment, for `curl -N` readers; clients see the stream end and
        // reconnect (EventSource by itself) with the last id they hold.
        let text = format!(": closed {} {}\n\n", code.code(), code.reason());
        let _ = self.send(Chunk::Raw(Bytes::from(text))).await;
    }
}

impl futures_util::Stream for SseBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        for part in &mut this.pending {
            if let Some(bytes) = part.take() {
                return Poll::Ready(Some(Ok(bytes)));
            }
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Chunk::Raw(bytes))) => Poll::Ready(Some(Ok(bytes))),
            Poll::Ready(Some(Chunk::Message { head, frame })) => {
                this.pending = [Some(frame), Some(Bytes::from_static(b"\n\n"))];
                Poll::Ready(Some(Ok(head)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_follows_frames() {
        let mut c = Cursor::default();
        assert_eq!(
            c.observe(
                br#"{"type":"subscribed","room":"a","epoch":"p/1 x","seq":3,"recovered":false}"#
            ),
            None
        );
        c.observe(br#"{"type":"subscribed","room":"b.c","epoch":"e-2","seq":0,"recovered":false}"#);
        let id = c
            .observe(br#"{"type":"alert","room":"a","seq":4,"ts":"t","data":{"room":"x","seq":9}}"#)
            .expect("an event has an id");
        assert_eq!(id, "v1;a/p%2F1%20x/4;b.c/e-2/0");
        assert_eq!(Cursor::parse(&id), c);
        let back = Cursor::parse(&id);
        assert_eq!(back.get("a").map(|p| p.epoch.as_str()), Some("p/1 x"));
        assert_eq!(c.observe(br#"{"type":"pong"}"#), None);
        // A keyed room's state: the last state frame moves to the head.
        c.observe(
            br#"{"type":"subscribed","room":"k","epoch":"e","seq":9,"recovered":false,"state":2}"#,
        );
        c.observe(br#"{"type":"u","room":"k","seq":3,"key":"x","data":1}"#);
        assert_eq!(c.get("k").map(|p| p.seq), Some(3));
        c.observe(br#"{"type":"u","room":"k","seq":5,"key":"y","data":1}"#);
        assert_eq!(c.get("k").map(|p| p.seq), Some(9));
        c.observe(br#"{"type":"u","room":"k","seq":10,"key":"y","data":2}"#);
        assert_eq!(c.get("k").map(|p| p.seq), Some(10));
        assert_eq!(
            c.observe(br#"{"type":"status_update","room":"$status","seq":1,"data":{}}"#),
            None
        );
    }

    #[test]
    fn unreadable_cursors_start_fresh() {
        for bad in [
            "",
            "v2;a/e/1",
            "v1;a/e",
            "v1;a/e/x",
            "v1;a/%zz/1",
            "v1;/e/1",
        ] {
            assert_eq!(Cursor::parse(bad), Cursor::default(), "{bad}");
        }
    }

    #[test]
    fn retry_jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let r = jittered_retry(2000);
            assert!((2000..=2500).contains(&r), "{r}");
        }
        assert_eq!(jittered_retry(1), 1);
    }
}
