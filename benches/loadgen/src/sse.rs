//! Server-Sent Events clients on raw TCP, bound to chosen loopback source
//! addresses like the WebSocket clients ([`crate::ws`]).
//!
//! [`connect`] sends `GET /sse?rooms=…`, checks for `200` and
//! `text/event-stream`, and returns an [`SseStream`] that reads the body
//! incrementally: HTTP/1.1 chunked transfer-encoding ([`ChunkedDecoder`], the
//! hub splits each message over three chunks), a `Content-Length` body, or a
//! body that runs until the connection closes; then the event-stream format
//! itself ([`EventParser`]: lines ending in LF, CRLF or CR, `data:` / `id:` /
//! `event:` / `retry:` fields, `:` comments, a blank line dispatching an
//! event). Each event's `data` is the JSON frame `/ws` would send, so it goes
//! through the same [`crate::payload::parse_frame`] and accounting as a
//! WebSocket text frame.
//!
//! Nothing read from the network is trusted: malformed chunk sizes, lines or
//! heads longer than their limits, and bad status lines are errors, never
//! panics.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::endpoint::Endpoint;
use crate::payload::{self, FrameSource};

/// The longest event-stream line accepted (a `data:` line holds one frame).
pub const MAX_LINE: usize = 1 << 20;

/// The longest response head accepted (status line and headers).
pub const MAX_HEAD: usize = 16 * 1024;

/// The longest chunk-size or trailer line accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// The smallest read buffer a stream gets (the head must fit comfortably).
const MIN_READ_BUFFER: usize = 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field given in this event's block, if any (the stream's
    /// last event id persists in [`EventParser::last_event_id`]).
    pub id: Option<String>,
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental parser of the `text/event-stream` format (the HTML
/// standard's "event stream interpretation"): feed it body bytes in pieces of
/// any size, take dispatched events out with [`EventParser::pop_event`].
#[derive(Debug, Default)]
pub struct EventParser {
    /// The current line so far, when it spans feeds.
    line: Vec<u8>,
    /// The previous feed ended with CR: a LF right after belongs to it.
    after_cr: bool,
    /// A line has been processed (a BOM is stripped from the first only).
    started: bool,
    /// The data buffer: every `data:` value followed by LF.
    data: Vec<u8>,
    /// The event's `data:` lines so far (a block without any dispatches nothing).
    data_lines: usize,
    /// The `event:` field of the block being read.
    event: Option<String>,
    /// The `id:` field of the block being read.
    id: Option<String>,
    /// The last `id:` seen on the stream.
    last_event_id: Option<String>,
    /// The last valid `retry:` value.
    retry_ms: Option<u64>,
    /// Comment lines seen (`:` first).
    comments: u64,
    /// The text of the last non-empty comment.
    last_comment: Option<String>,
    /// Events dispatched and not yet taken.
    ready: VecDeque<SseEvent>,
}

impl EventParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds body bytes; complete events become available to
    /// [`EventParser::pop_event`]. Fails only on a line over [`MAX_LINE`].
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if let Some(rest) = bytes.strip_prefix(b"\n") {
                    bytes = rest;
                    continue;
                }
            }
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    let (part, rest) = bytes.split_at(end);
                    if self.line.is_empty() {
                        self.process_line(part);
                    } else {
                        self.check_line_len(part.len())?;
                        let mut line = std::mem::take(&mut self.line);
                        line.extend_from_slice(part);
                        self.process_line(&line);
                        line.clear();
                        self.line = line;
                    }
                    self.after_cr = rest.first() == Some(&b'\r');
                    bytes = rest.get(1..).unwrap_or_default();
                }
                None => {
                    self.check_line_len(bytes.len())?;
                    self.line.extend_from_slice(bytes);
                    break;
                }
            }
        }
        Ok(())
    }

    fn check_line_len(&self, more: usize) -> Result<()> {
        if self.line.len() + more > MAX_LINE {
            bail!("event-stream line longer than {MAX_LINE} bytes");
        }
        Ok(())
    }

    fn process_line(&mut self, mut line: &[u8]) {
        if !self.started {
            self.started = true;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if let Some(comment) = line.strip_prefix(b":") {
            self.comments += 1;
            let text = String::from_utf8_lossy(comment.strip_prefix(b" ").unwrap_or(comment));
            if !text.is_empty() {
                self.last_comment = Some(text.into_owned());
            }
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (field, value) = line.split_at(colon);
                let value = value.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.data_lines += 1;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                let id = String::from_utf8_lossy(value).into_owned();
                self.last_event_id = Some(id.clone());
                self.id = Some(id);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Digits only; too many of them is not a useful retry either.
                self.retry_ms = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let event = self.event.take();
        let id = self.id.take();
        if self.data_lines == 0 {
            return;
        }
        self.data_lines = 0;
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the LF after the last data line
        let data = String::from_utf8(data)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        self.ready.push_back(SseEvent { id, event, data });
    }

    /// The next dispatched event, oldest first.
    pub fn pop_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    /// The last `id:` seen on the stream (what a reconnect sends back).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The last valid `retry:`, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Comment lines seen (the hub's keep-alives are `:` lines).
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// The text of the last non-empty comment (the hub's closing one names
    /// the close code: `closed 4000 slow consumer`).
    pub fn last_comment(&self) -> Option<&str> {
        self.last_comment.as_deref()
    }
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk: this many bytes left.
    Data(u64),
    /// Reading the CRLF after a chunk's data.
    DataEnd,
    /// After the last (zero-size) chunk: trailer lines up to a blank one.
    Trailer,
    /// The body is complete.
    Done,
}

/// An incremental decoder of HTTP/1.1 `Transfer-Encoding: chunked`.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self {
            state: ChunkState::Size,
            line: Vec::new(),
        }
    }

    /// True once the last chunk and the trailer have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, handing the body's bytes to `body` as they come.
    /// Bytes after the end of the body are ignored.
    pub fn decode(
        &mut self,
        mut input: &[u8],
        mut body: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Done => return Ok(()),
                ChunkState::Data(left) => {
                    let take = usize::try_from(left).map_or(input.len(), |l| l.min(input.len()));
                    let (data, rest) = input.split_at(take);
                    body(data)?;
                    input = rest;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailer => {
                    let Some(end) = input.iter().position(|&b| b == b'\n') else {
                        self.push_line(input)?;
                        return Ok(());
                    };
                    let (part, rest) = input.split_at(end);
                    self.push_line(part)?;
                    input = rest.get(1..).unwrap_or_default();
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.state = self.after_line(&line)?;
                    line.clear();
                    self.line = line;
                }
            }
        }
        Ok(())
    }

    fn push_line(&mut self, part: &[u8]) -> Result<()> {
        if self.line.len() + part.len() > MAX_CHUNK_LINE {
            bail!("chunked body: a size or trailer line longer than {MAX_CHUNK_LINE} bytes");
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    /// The state after a complete line (without its line ending) in a line state.
    fn after_line(&self, line: &[u8]) -> Result<ChunkState> {
        Ok(match self.state {
            ChunkState::Size => match parse_chunk_size(line)? {
                0 => ChunkState::Trailer,
                n => ChunkState::Data(n),
            },
            ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
            ChunkState::DataEnd => bail!("chunked body: chunk data longer than its size"),
            ChunkState::Trailer if line.is_empty() => ChunkState::Done,
            other => other,
        })
    }
}

/// A chunk-size line: hex digits, optionally `;extensions`.
fn parse_chunk_size(line: &[u8]) -> Result<u64> {
    let size = line.split(|&b| b == b';').next().unwrap_or_default();
    let size = size.trim_ascii();
    if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
        bail!(
            "chunked body: bad chunk size `{}`",
            String::from_utf8_lossy(line)
        );
    }
    let text = std::str::from_utf8(size).context("chunk size")?;
    u64::from_str_radix(text, 16).context("chunk size")
}

/// The parts of a response head the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// The body is `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Content-Length`, if sent (and not chunked).
    pub content_length: Option<u64>,
}

impl ResponseHead {
    /// True for `200` with a `text/event-stream` content type.
    pub fn is_event_stream(&self) -> bool {
        self.status == 200
            && self.content_type.as_deref().is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
            })
    }
}

/// Where the head ends in `buf` (the index just past the blank line), if it does.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a response head (status line and headers, up to the blank line).
pub fn parse_head(head: &[u8]) -> Result<ResponseHead> {
    let text = std::str::from_utf8(head).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x response: `{status_line}`");
    }
    let status = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("bad status line `{status_line}`"))?;
    let mut out = ResponseHead {
        status,
        content_type: None,
        chunked: false,
        content_length: None,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad header line `{line}`");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            out.content_type = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            out.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse()
                .with_context(|| format!("bad Content-Length `{value}`"))?;
            out.content_length = Some(length);
        }
    }
    if out.chunked {
        out.content_length = None;
    }
    Ok(out)
}

/// How the body of the response is framed.
#[derive(Debug)]
enum Body {
    Chunked(ChunkedDecoder),
    Length(u64),
    UntilClose,
}

/// One open event stream.
#[derive(Debug)]
pub struct SseStream {
    stream: TcpStream,
    buf: Vec<u8>,
    body: Body,
    parser: EventParser,
    /// The body ended (last chunk, full length, or the peer closed).
    ended: bool,
    /// The peer closed before a chunked or sized body was complete.
    cut_short: bool,
}

impl SseStream {
    /// The next event; `None` once the stream has ended. Cancel-safe: an event
    /// is only taken out of the parser when returned.
    pub async fn next_event(&mut self) -> Result<Option<SseEvent>> {
        loop {
            if let Some(event) = self.parser.pop_event() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            let n = self
                .stream
                .read(&mut self.buf)
                .await
                .context("reading the stream")?;
            if n == 0 {
                self.ended = true;
                self.cut_short = !matches!(self.body, Body::UntilClose);
                continue;
            }
            let Self {
                buf, body, parser, ..
            } = self;
            let input = buf.get(..n).unwrap_or_default();
            self.ended = feed_body(body, parser, input)?;
        }
    }

    /// The next event's data; `None` once the stream has ended.
    pub async fn next_data(&mut self) -> Result<Option<String>> {
        Ok(self.next_event().await?.map(|e| e.data))
    }

    /// The parser, for its stream-wide state (last id, retry, comments).
    pub fn parser(&self) -> &EventParser {
        &self.parser
    }

    /// How the stream ended, in the words [`crate::ws::close_reason`] uses:
    /// the close code the hub's closing comment names (`: closed 4000 …`),
    /// or `eof` (`eof-cut` when the body was not complete).
    pub fn end_reason(&self) -> String {
        let code = self
            .parser
            .last_comment()
            .and_then(|c| c.strip_prefix("closed "))
            .and_then(|c| c.split(' ').next())
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
        match code {
            Some(code) => code.to_owned(),
            None if self.cut_short => "eof-cut".to_owned(),
            None => "eof".to_owned(),
        }
    }
}

/// Feeds body bytes through the framing into the parser; true once the body ended.
fn feed_body(body: &mut Body, parser: &mut EventParser, input: &[u8]) -> Result<bool> {
    match body {
        Body::Chunked(decoder) => {
            decoder.decode(input, |bytes| parser.feed(bytes))?;
            Ok(decoder.is_done())
        }
        Body::Length(left) => {
            let take = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
            parser.feed(input.get(..take).unwrap_or_default())?;
            *left -= take as u64;
            Ok(*left == 0)
        }
        Body::UntilClose => {
            parser.feed(input)?;
            Ok(false)
        }
    }
}

/// `/sse?rooms=A,B` (room names percent-encoded where they need it).
pub fn path(rooms: &[&str]) -> String {
    let mut out = String::from("/sse?rooms=");
    for (i, room) in rooms.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for b in room.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'$') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Opens an event stream at `path` (e.g. [`path`]) from source address
/// `source`, reading with a buffer of `read_buffer` bytes; fails unless the
/// hub answers `200` with `text/event-stream`.
pub async fn connect(
    endpoint: &Endpoint,
    path: &str,
    source: Option<Ipv4Addr>,
    read_buffer: usize,
) -> Result<SseStream> {
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::from((ip, 0)))
            .with_context(|| format!("binding to {ip}"))?;
    }
    let mut stream = socket
        .connect(endpoint.addr())
        .await
        .with_context(|| format!("connecting to {}", endpoint.addr()))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\r\n",
        endpoint.addr()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .with_context(|| format!("sending GET {path}"))?;

    let mut buf = vec![0; read_buffer.max(MIN_READ_BUFFER)];
    let mut head = Vec::with_capacity(512);
    let end = loop {
        let n = stream
            .read(&mut buf)
            .await
            .context("reading the response head")?;
        if n == 0 {
            bail!("connection closed before the response head of GET {path}");
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if let Some(end) = head_end(&head) {
            break end;
        }
        if head.len() > MAX_HEAD {
            bail!("response head of GET {path} longer than {MAX_HEAD} bytes");
        }
    };
    let (head_bytes, rest) = head.split_at(end);
    let parsed = parse_head(head_bytes)?;
    if !parsed.is_event_stream() {
        let body = String::from_utf8_lossy(rest);
        bail!(
            "GET {path}: {} {} instead of 200 text/event-stream: {}",
            parsed.status,
            parsed
                .content_type
                .as_deref()
                .unwrap_or("(no content type)"),
            body.chars().take(300).collect::<String>()
        );
    }
    let mut body = match (parsed.chunked, parsed.content_length) {
        (true, _) => Body::Chunked(ChunkedDecoder::new()),
        (false, Some(length)) => Body::Length(length),
        (false, None) => Body::UntilClose,
    };
    let mut parser = EventParser::new();
    let ended = feed_body(&mut body, &mut parser, rest)?;
    Ok(SseStream {
        stream,
        buf,
        body,
        parser,
        ended,
        cut_short: false,
    })
}

impl FrameSource for SseStream {
    async fn next_frame_text(&mut self) -> Result<String> {
        match self.next_data().await? {
            Some(data) => Ok(data),
            None => bail!(
                "stream ended ({}) while waiting for a frame",
                self.end_reason()
            ),
        }
    }
}

/// Waits for `welcome`.
pub async fn wait_welcome(sse: &mut SseStream, timeout: Duration) -> Result<()> {
    payload::wait_welcome(sse, timeout).await
}

/// Waits for `subscribed`; returns the room head it reports.
pub async fn wait_subscribed(sse: &mut SseStream, timeout: Duration) -> Result<u64> {
    payload::wait_subscribed(sse, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(parser: &mut EventParser) -> Vec<SseEvent> {
        std::iter::from_fn(|| parser.pop_event()).collect()
    }

    fn ev(id: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            id: id.map(str::to_owned),
            event: None,
            data: data.to_owned(),
        }
    }

    #[test]
    fn fields_comments_and_line_endings() {
        let mut p = EventParser::new();
        let stream = b"\xEF\xBB\xBFretry: 2213\n\n: hello\ndata: {\"a\":1}\n\n\
            id: v1;r/e/4\r\ndata:x\r\ndata: y\r\n\r\n:\n\nevent: e\rdata\r\r\
            data: no end";
        p.feed(stream).expect("feed");
        let got = events(&mut p);
        assert_eq!(
            got,
            vec![
                ev(None, "{\"a\":1}"),
                ev(Some("v1;r/e/4"), "x\ny"),
                SseEvent {
                    id: None,
                    event: Some("e".to_owned()),
                    data: String::new()
                },
            ]
        );
        assert_eq!(p.retry_ms(), Some(2213));
        assert_eq!(p.comments(), 2);
        assert_eq!(p.last_comment(), Some("hello"));
        assert_eq!(p.last_event_id(), Some("v1;r/e/4"));
        // The unterminated block dispatches once its blank line comes.
        p.feed(b"\n\n").expect("feed");
        assert_eq!(events(&mut p), vec![ev(None, "no end")]);
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let stream = b"id: 1\r\ndata: one\r\n\r\nid: 2\rdata: two\r\r:c\ndata: three\n\n";
        let mut whole = EventParser::new();
        whole.feed(stream).expect("feed");
        let mut bytewise = EventParser::new();
        for b in stream {
            bytewise.feed(std::slice::from_ref(b)).expect("feed");
        }
        let expected = vec![
            ev(Some("1"), "one"),
            ev(Some("2"), "two"),
            ev(None, "three"),
        ];
        assert_eq!(events(&mut whole), expected);
        assert_eq!(events(&mut bytewise), expected);
        assert_eq!(bytewise.last_event_id(), Some("2"));
    }

    #[test]
    fn ignored_and_refused_input() {
        let mut p = EventParser::new();
        // Unknown fields, an id with NUL, a bad retry, an empty block: nothing.
        p.feed(b"foo: bar\nid: a\0b\nretry: 12x\n\n\n\n")
            .expect("feed");
        assert!(p.pop_event().is_none());
        assert_eq!(p.last_event_id(), None);
        assert_eq!(p.retry_ms(), None);
        // Invalid UTF-8 in data is replaced, not an error.
        p.feed(b"data: \xFF\n\n").expect("feed");
        assert_eq!(p.pop_event().map(|e| e.data), Some("\u{FFFD}".to_owned()));
        // A line without end longer than the limit is an error.
        let mut long = EventParser::new();
        let chunk = vec![b'a'; 64 * 1024];
        let mut failed = false;
        for _ in 0..=(MAX_LINE / chunk.len()) {
            if long.feed(&chunk).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }

    fn dechunk(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool)> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for part in input.chunks(piece.max(1)) {
            d.decode(part, |b| {
                out.extend_from_slice(b);
                Ok(())
            })?;
        }
        Ok((out, d.is_done()))
    }

    #[test]
    fn chunked_in_any_pieces() {
        let body = b"6\r\ndata: \r\n18;ext=1\r\n{\"type\":\"x\",\"seq\":12345}\r\n\
            2\r\n\n\n\r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\nignored";
        for piece in [1, 2, 3, 7, 64, body.len()] {
            let (out, done) = dechunk(body, piece).expect("valid chunked body");
            assert_eq!(out, b"data: {\"type\":\"x\",\"seq\":12345}\n\n0123456789");
            assert!(done, "piece {piece}");
        }
        // Bare LF line endings are accepted too.
        let (out, done) = dechunk(b"3\nabc\n0\n\n", 1).expect("LF only");
        assert_eq!((out.as_slice(), done), (&b"abc"[..], true));
    }

    #[test]
    fn bad_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\nab\r\n"[..],
            b"\r\n",
            b"3\r\nabcd\r\n",
            b"ffffffffffffffff\r\n",
            b"-1\r\n",
        ] {
            assert!(dechunk(bad, 1).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let endless = vec![b'1'; 2 * MAX_CHUNK_LINE];
        assert!(dechunk(&endless, 100).is_err());
    }

    #[test]
    fn heads() {
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\
            Content-Type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n\r\n";
        assert_eq!(head_end(head), Some(head.len()));
        let h = parse_head(head).expect("head");
        assert!(h.chunked && h.is_event_stream());
        let h = parse_head(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 12\r\ncontent-type: application/json\r\n\r\n")
            .expect("head");
        assert_eq!((h.status, h.content_length), (503, Some(12)));
        assert!(!h.is_event_stream());
        for bad in [
            &b"SSH-2.0\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 \xFF\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n"), None);
    }

    #[test]
    fn paths_are_encoded() {
        assert_eq!(path(&["bench"]), "/sse?rooms=bench");
        assert_eq!(path(&["a b", "$status"]), "/sse?rooms=a%20b,$status");
    }
}
