//! The reader: a socket's incoming frames, decoded and reassembled into whole
//! messages with every limit applied to what a frame header **declares**, before
//! its payload is buffered.
//!
//! Why not actix-ws's `MessageStream`: it copies every chunk the connection has
//! into its buffer before decoding, and actix-http's frame parser checks a
//! frame's length against the limit only once the whole frame is buffered. A
//! header declaring 2^33 bytes followed by a stream of zeros therefore grew the
//! buffer 1:1 with what the peer sent. Here the header is read first, a frame
//! over the limit is refused at once, and the connection is read only while no
//! complete frame is buffered — so one socket holds at most one frame of
//! `max_message_bytes` plus one read chunk, and TCP back-pressure does the
//! rest (actix stops reading a connection whose request payload holds 32 KiB
//! unread; its own read buffer holds at most 128 KiB).
//!
//! Decoding itself stays actix-http's `ws::Codec` (masking, opcodes, control
//! frame rules, close payload validation), the code Autobahn checks; actix-ws is
//! still the writing half and the handshake ([`upgrade`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame};
use actix_web::dev::Payload;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, Item, ProtocolError};
use bytestring::ByteString;
use futures_util::Stream;

use crate::protocol::{CloseCode, DisconnectReason};

/// Longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// Longest control frame payload (RFC 6455 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// What one socket may send, per message.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Largest frame, and largest message across its continuation frames.
    pub max_message_bytes: usize,
    /// Most frames one fragmented message may take.
    pub max_fragments: usize,
}

/// Why reading stopped; each maps to the close code the peer gets.
#[derive(Debug)]
pub enum ReadError {
    /// A frame declared, or a message reassembled to, more than
    /// `max_message_bytes`.
    TooBig,
    /// A fragmented message took more than `max_fragments` frames.
    TooManyFragments,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// Any other break of RFC 6455 (bad opcode, unmasked frame, orphan
    /// continuation, oversized control frame, ...).
    Protocol(ProtocolError),
}

impl ReadError {
    /// The close code sent to the peer.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ReadError::TooBig => CloseCode::TooBig,
            ReadError::TooManyFragments => CloseCode::Policy,
            ReadError::InvalidUtf8 => CloseCode::InvalidPayload,
            ReadError::Protocol(_) => CloseCode::ProtocolError,
        }
    }

    /// The disconnect reason for logs and metrics.
    pub fn reason(&self) -> DisconnectReason {
        match self {
            ReadError::TooManyFragments => DisconnectReason::Policy,
            _ => DisconnectReason::ProtocolError,
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooBig => f.write_str("frame or message over the size limit"),
            ReadError::TooManyFragments => f.write_str("message over the fragment limit"),
            ReadError::InvalidUtf8 => f.write_str("text message is not UTF-8"),
            ReadError::Protocol(e) => write!(f, "{e}"),
        }
    }
}

/// A fragmented message being reassembled.
struct Partial {
    /// Text (checked as UTF-8 when complete) or binary.
    text: bool,
    /// The payload so far, at most `max_message_bytes`.
    buf: BytesMut,
    /// Frames so far, at most `max_fragments`.
    frames: usize,
}

/// Whole messages from one socket; see the module docs. Ends (`None`) when the
/// connection does, and after the first error.
pub struct FrameReader {
    /// The request body of the upgrade: the client's bytes.
    payload: Payload,
    /// Bytes read and not yet decoded.
    buf: BytesMut,
    /// actix-http's frame decoder, with `max_message_bytes` as its own limit.
    codec: Codec,
    /// What each message may take.
    limits: ReadLimits,
    /// A fragmented message in progress.
    partial: Option<Partial>,
    /// Set by an error or the end of the connection.
    done: bool,
}

/// Answers a WebSocket upgrade: the handshake response, actix-ws's writing
/// half, and a [`FrameReader`] over the connection. actix-ws gets an empty
/// request body, so its own reader never sees a byte.
pub async fn upgrade(
    req: &HttpRequest,
    body: web::Payload,
    limits: ReadLimits,
) -> Result<(HttpResponse, actix_ws::Session, FrameReader), actix_web::Error> {
    let empty = web::Payload::from_request(req, &mut Payload::None).await?;
    let (response, session, _unused) = actix_ws::handle(req, empty)?;
    Ok((
        response,
        session,
        FrameReader::new(body.into_inner(), limits),
    ))
}

impl FrameReader {
    /// A reader over `payload`.
    pub fn new(payload: Payload, limits: ReadLimits) -> Self {
        FrameReader {
            payload,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(limits.max_message_bytes),
            limits,
            partial: None,
            done: false,
        }
    }

    /// The next whole message among the buffered bytes, if they hold one.
    fn decode(&mut self) -> Result<Option<AggregatedMessage>, ReadError> {
        loop {
            self.check_declared()?;
            let frame = match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(ProtocolError::Overflow) => return Err(ReadError::TooBig),
                Err(e) => return Err(ReadError::Protocol(e)),
            };
            let message = match frame {
                Frame::Text(bytes) => text(bytes)?,
                Frame::Binary(bytes) => AggregatedMessage::Binary(bytes),
                Frame::Ping(bytes) => AggregatedMessage::Ping(bytes),
                Frame::Pong(bytes) => AggregatedMessage::Pong(bytes),
                Frame::Close(reason) => AggregatedMessage::Close(reason),
                Frame::Continuation(item) => match self.assemble(item)? {
                    Some(message) => message,
                    None => continue,
                },
            };
            return Ok(Some(message));
        }
    }

    /// Refuses the buffered frame's header if it declares more than may be
    /// buffered: the rest of `max_message_bytes` for a continuation, 125 bytes
    /// for a control frame.
    fn check_declared(&self) -> Result<(), ReadError> {
        let Some((opcode, length)) = declared(&self.buf) else {
            return Ok(());
        };
        if opcode >= 8 {
            return match length > MAX_CONTROL_PAYLOAD {
                true => Err(ReadError::Protocol(ProtocolError::InvalidLength(
                    usize::try_from(length).unwrap_or(usize::MAX),
                ))),
                false => Ok(()),
            };
        }
        let taken = match (&self.partial, opcode) {
            (Some(partial), 0) => partial.buf.len(),
            _ => 0,
        };
        let room = self.limits.max_message_bytes.saturating_sub(taken) as u64;
        match length > room {
            true => Err(ReadError::TooBig),
            false => Ok(()),
        }
    }

    /// Starts a fragmented message; returns its first chunk.
    fn begin(&mut self, text: bool, chunk: Bytes) -> Bytes {
        self.partial = Some(Partial {
            text,
            buf: BytesMut::new(),
            frames: 0,
        });
        chunk
    }

    /// Adds one fragment; the whole message once the last one is in. The codec
    /// has already refused orphan and interleaved continuations.
    fn assemble(&mut self, item: Item) -> Result<Option<AggregatedMessage>, ReadError> {
        let (chunk, last) = match item {
            Item::FirstText(chunk) => (self.begin(true, chunk), false),
            Item::FirstBinary(chunk) => (self.begin(false, chunk), false),
            Item::Continue(chunk) => (chunk, false),
            Item::Last(chunk) => (chunk, true),
        };
        let Some(partial) = self.partial.as_mut() else {
            return Err(ReadError::Protocol(ProtocolError::ContinuationNotStarted));
        };
        partial.frames += 1;
        if partial.frames > self.limits.max_fragments {
            return Err(ReadError::TooManyFragments);
        }
        // `check_declared` bounds each frame by what is left of the budget.
        partial.buf.extend_from_slice(&chunk);
        if !last {
            return Ok(None);
        }
        let Some(Partial {
            text: is_text, buf, ..
        }) = self.partial.take()
        else {
            return Ok(None);
        };
        match is_text {
            true => text(buf.freeze()).map(Some),
            false => Ok(Some(AggregatedMessage::Binary(buf.freeze()))),
        }
    }
}

fn text(bytes: Bytes) -> Result<AggregatedMessage, ReadError> {
    ByteString::try_from(bytes)
        .map(AggregatedMessage::Text)
        .map_err(|_| ReadError::InvalidUtf8)
}

/// The opcode and payload length a frame header declares, once its length
/// field is buffered (RFC 6455 5.2).
fn declared(buf: &[u8]) -> Option<(u8, u64)> {
    let opcode = buf.first()? & 0x0f;
    let length = match buf.get(1)? & 0x7f {
        126 => u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
        127 => u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?),
        n => u64::from(n),
    };
    Some((opcode, length))
}

impl Stream for FrameReader {
    type Item = Result<AggregatedMessage, ReadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.done {
            // Decode before reading: the connection is read only while no whole
            // frame is buffered, which bounds the buffer (module docs).
            match this.decode() {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            debug_assert!(this.buf.len() < this.limits.max_message_bytes + MAX_HEADER);
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.buf.extend_from_slice(&chunk),
                // The connection failed or ended; the session ends with it.
                Poll::Ready(Some(Err(_)) | None) => this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    const LIMITS: ReadLimits = ReadLimits {
        max_message_bytes: 1024,
        max_fragments: 4,
    };

    /// A client frame: FIN/opcode byte, masked (with a zero mask) payload.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(payload);
        out
    }

    /// A payload that yields `chunks` and then stays open (never ends).
    fn payload_of(chunks: Vec<Vec<u8>>) -> Payload {
        let items = chunks
            .into_iter()
            .map(|c| Ok::<_, actix_web::error::PayloadError>(Bytes::from(c)));
        let stream = futures_util::stream::iter(items).chain(futures_util::stream::pending());
        Payload::Stream {
            payload: Box::pin(stream),
        }
    }

    /// Everything the reader yields until it would wait.
    fn drain(reader: &mut FrameReader) -> Vec<Result<AggregatedMessage, ReadError>> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        while let Poll::Ready(Some(item)) = Pin::new(&mut *reader).poll_next(&mut cx) {
            out.push(item);
        }
        out
    }

    #[test]
    fn whole_and_fragmented_messages_come_out_whole() {
        let mut reader = FrameReader::new(
            payload_of(vec![
                frame(0x81, b"one"),
                frame(0x01, b"t"),
                frame(0x89, b"p"), // a ping between fragments
                frame(0x00, b"w"),
                frame(0x80, b"o"),
            ]),
            LIMITS,
        );
        let got = drain(&mut reader);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(&got[0], Ok(AggregatedMessage::Text(t)) if t == "one"));
        assert!(matches!(&got[1], Ok(AggregatedMessage::Ping(p)) if &p[..] == b"p"));
        assert!(matches!(&got[2], Ok(AggregatedMessage::Text(t)) if t == "two"));
    }

    #[test]
    fn a_huge_declared_frame_is_refused_from_its_header() {
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 33).to_be_bytes());
        header.extend_from_slice(&[0; 4]);
        let mut reader = FrameReader::new(payload_of(vec![header]), LIMITS);
        let got = drain(&mut reader);
        assert!(
            matches!(got.as_slice(), [Err(ReadError::TooBig)]),
            "{got:?}"
        );
        assert!(reader.buf.len() <= MAX_HEADER);
    }

    #[test]
    fn a_continuation_over_what_is_left_is_refused_from_its_header() {
        let mut reader = FrameReader::new(
            payload_of(vec![frame(0x01, &[b'a'; 1000]), frame(0x80, &[b'b'; 100])]),
            LIMITS,
        );
        let got = drain(&mut reader);
        assert!(
            matches!(got.as_slice(), [Err(ReadError::TooBig)]),
            "{got:?}"
        );
    }

    #[test]
    fn the_fragment_count_is_capped() {
        let mut chunks = vec![frame(0x01, b"")];
        chunks.extend(std::iter::repeat_with(|| frame(0x00, b"")).take(10));
        let mut reader = FrameReader::new(payload_of(chunks), LIMITS);
        let got = drain(&mut reader);
        assert!(
            matches!(got.as_slice(), [Err(ReadError::TooManyFragments)]),
            "{got:?}"
        );
    }

    #[test]
    fn bad_utf8_and_oversized_control_frames_are_refused() {
        let mut reader = FrameReader::new(payload_of(vec![frame(0x81, &[0xff])]), LIMITS);
        assert!(matches!(
            drain(&mut reader).as_slice(),
            [Err(ReadError::InvalidUtf8)]
        ));
        let mut ping = vec![0x89, 0x80 | 126];
        ping.extend_from_slice(&300u16.to_be_bytes());
        let mut reader = FrameReader::new(payload_of(vec![ping]), LIMITS);
        assert!(matches!(
            drain(&mut reader).as_slice(),
            [Err(ReadError::Protocol(_))]
        ));
    }

    #[test]
    fn nothing_more_is_read_while_a_whole_frame_is_buffered() {
        // Two chunks of 100 small frames: the second chunk is read only once
        // every frame of the first has been handed out.
        let many: Vec<u8> = (0..100).flat_map(|_| frame(0x82, b"x")).collect();
        let mut reader = FrameReader::new(payload_of(vec![many.clone(), many.clone()]), LIMITS);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for i in 1..=100 {
            let next = Pin::new(&mut reader).poll_next(&mut cx);
            assert!(matches!(
                next,
                Poll::Ready(Some(Ok(AggregatedMessage::Binary(_))))
            ));
            assert_eq!(reader.buf.len(), many.len() * (100 - i) / 100, "after {i}");
        }
        assert_eq!(drain(&mut reader).len(), 100);
    }
}
