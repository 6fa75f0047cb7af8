//! The WebSocket side: a real client (tokio-tungstenite) speaking the hub's
//! JSON protocol, a raw socket for what a well-behaved client never sends, and
//! reading and checking the frames a test received. Every wait is bounded.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::WAIT;

/// A WebSocket client speaking the hub's JSON protocol.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended, as the client saw it.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Close(u16, String),
    NoCloseFrame,
}

impl Client {
    /// Connects to `url`; panics if the upgrade is refused.
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Client { ws }
    }

    /// Connects from the loopback address `source` (e.g. 127.0.0.2), so a test
    /// can be a second client IP without leaving the machine.
    pub async fn connect_from(url: &str, source: std::net::IpAddr) -> Client {
        let connect = async {
            let uri: tungstenite::http::Uri = url.parse().expect("ws url");
            let host = uri.host().expect("host");
            let port = uri.port_u16().expect("port");
            let target = tokio::net::lookup_host((host, port))
                .await
                .expect("resolve")
                .next()
                .expect("an address");
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(std::net::SocketAddr::new(source, 0))
                .expect("bind the source address");
            let stream = socket.connect(target).await.expect("tcp connect");
            tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
                .await
                .unwrap_or_else(|e| panic!("connect {url} from {source}: {e}"))
                .0
        };
        let ws = tokio::time::timeout(WAIT, connect)
            .await
            .expect("connect in time");
        Client { ws }
    }

    /// Connects over a socket with a `rcvbuf`-byte receive buffer, for a client
    /// that then stops reading so the hub's writes back up quickly.
    pub async fn connect_stalled(addr: std::net::SocketAddr, url: &str, rcvbuf: u32) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(rcvbuf).expect("rcvbuf");
        let tcp = socket.connect(addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("upgrade");
        Client { ws }
    }

    /// Connects and consumes the `welcome` frame, returning it.
    pub async fn connect_welcomed(url: &str) -> (Client, Value) {
        let mut c = Client::connect(url).await;
        let w = c.recv().await;
        assert_eq!(w["type"], "welcome", "first frame must be welcome: {w}");
        (c, w)
    }

    /// Sends a JSON command.
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    /// Sends a raw frame or message.
    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send raw");
    }

    /// The next JSON text frame (protocol pings and pongs skipped), within WAIT.
    pub async fn recv(&mut self) -> Value {
        self.recv_within(WAIT)
            .await
            .expect("a frame within the wait")
    }

    /// The next JSON text frame within `wait`, or None on timeout. Panics if the
    /// socket closes.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let text = self.recv_text_within(wait).await?;
        Some(serde_json::from_str(&text).expect("server frames are JSON"))
    }

    /// The next text frame as the hub wrote it, within WAIT (for byte-exact checks).
    pub async fn recv_text(&mut self) -> String {
        self.recv_text_within(WAIT)
            .await
            .expect("a frame within the wait")
    }

    async fn recv_text_within(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Frames until one satisfies `pred` (returned) within [`WAIT`]; the
    /// skipped ones too.
    pub async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut frames = read_until(self, deadline, "recv_until", pred).await;
        let found = frames
            .pop()
            .expect("read_until returns the frame it stopped at");
        (found, frames)
    }

    /// Subscribes and returns the `subscribed` reply.
    pub async fn subscribe(&mut self, room: &str) -> Value {
        self.send(json!({"op": "subscribe", "room": room})).await;
        let v = self.recv().await;
        assert_eq!(v["type"], "subscribed", "{v}");
        v
    }

    /// Reads until the socket ends; text frames before the close are returned.
    pub async fn until_closed(&mut self) -> (Ended, Vec<Value>) {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT * 2;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("socket ends within the wait");
            match next {
                Some(Ok(Message::Text(t))) => {
                    frames.push(serde_json::from_str(&t).expect("json"));
                }
                Some(Ok(Message::Close(Some(f)))) => {
                    return (
                        Ended::Close(u16::from(f.code), f.reason.to_string()),
                        frames,
                    )
                }
                Some(Ok(Message::Close(None))) | None => return (Ended::NoCloseFrame, frames),
                Some(Ok(_)) => continue,
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => return (Ended::NoCloseFrame, frames),
                Some(Err(e)) => return (Ended::Close(0, format!("error: {e}")), frames),
            }
        }
    }

    /// Asserts the socket is closed with `code`.
    pub async fn expect_close(&mut self, code: u16) -> Vec<Value> {
        let (ended, frames) = self.until_closed().await;
        match ended {
            Ended::Close(c, reason) => assert_eq!(c, code, "close reason {reason:?}"),
            other => panic!("expected close {code}, got {other:?}"),
        }
        frames
    }

    /// Closes politely.
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
    }
}

/// A WebSocket client on a bare TCP stream, for what no WebSocket library
/// sends: huge declared lengths, endless fragments, floods of tiny frames.
pub struct RawSocket {
    pub tcp: TcpStream,
    /// Bytes read from the hub and not yet parsed.
    buf: Vec<u8>,
}

/// The hub's close frame, as a raw client saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawEnd {
    /// A close frame with this code.
    Close(u16),
    /// The connection ended with no close frame.
    Gone,
    /// Nothing within the wait.
    Open,
}

/// A client frame (masked with a zero key, so the payload goes as it is).
pub fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(first, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// The header of a client frame declaring a `len`-byte payload: FIN/opcode
/// byte, length, zero mask.
pub fn frame_header(first: u8, len: u64) -> Vec<u8> {
    let mut out = vec![first];
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0; 4]);
    out
}

impl RawSocket {
    /// Upgrades `path` on `addr` and reads up to and including `welcome`.
    pub async fn connect(addr: &str, path: &str) -> RawSocket {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.expect("write upgrade");
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
                .await
                .expect("upgrade answered in time")
                .expect("read upgrade");
            assert!(n > 0, "hub closed during the upgrade");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        buf.drain(..head_end);
        let mut raw = RawSocket { tcp, buf };
        let welcome = next_frame(&mut raw.tcp, &mut raw.buf).await;
        assert!(
            matches!(&welcome, Ok((1, p)) if String::from_utf8_lossy(p).contains("\"welcome\"")),
            "first frame is welcome: {welcome:?}"
        );
        raw
    }

    /// Writes `bytes`; false once the hub stops taking them (closed, or
    /// stalled for WAIT).
    pub async fn write(&mut self, bytes: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt;
        matches!(
            tokio::time::timeout(WAIT, self.tcp.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// Reads until the hub's close frame; also the opcodes of the frames
    /// before it.
    pub async fn end(&mut self) -> (RawEnd, Vec<u8>) {
        let mut skipped = Vec::new();
        let end = end_of(&mut self.tcp, &mut self.buf, &mut skipped).await;
        (end, skipped)
    }

    /// Whether the hub closes the TCP connection (end of file) within `wait`;
    /// anything it still sends is discarded.
    pub async fn eof_within(&mut self, wait: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Writes `chunk` repeatedly, up to `total` bytes, while reading for the
    /// hub's close; stops writing once the hub closed or stopped taking bytes.
    /// Returns the bytes written and how the socket ended.
    pub async fn flood(&mut self, chunk: &[u8], total: usize) -> (usize, RawEnd) {
        self.trickle(chunk, total, Duration::ZERO).await
    }

    /// [`flood`](Self::flood), pausing `pace` between writes.
    pub async fn trickle(&mut self, chunk: &[u8], total: usize, pace: Duration) -> (usize, RawEnd) {
        use tokio::io::AsyncWriteExt;
        let (mut rd, mut wr) = self.tcp.split();
        let written = std::cell::Cell::new(0usize);
        let writing = async {
            while written.get() < total {
                match tokio::time::timeout(WAIT, wr.write_all(chunk)).await {
                    Ok(Ok(())) => written.set(written.get() + chunk.len()),
                    _ => break,
                }
                if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
            }
        };
        let mut skipped = Vec::new();
        let reading = end_of(&mut rd, &mut self.buf, &mut skipped);
        tokio::pin!(reading);
        let end = tokio::select! {
            end = &mut reading => end,
            () = writing => reading.await,
        };
        (written.get(), end)
    }
}

/// The next server frame (opcode, payload), or how the socket ended.
async fn next_frame<R>(rd: &mut R, buf: &mut Vec<u8>) -> Result<(u8, Vec<u8>), RawEnd>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    loop {
        if let Some((opcode, start, len)) = parse_server_header(buf) {
            if buf.len() >= start + len {
                let payload = buf[start..start + len].to_vec();
                buf.drain(..start + len);
                return Ok((opcode, payload));
            }
        }
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout(WAIT, rd.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => return Err(RawEnd::Gone),
            Err(_) => return Err(RawEnd::Open),
        }
    }
}

/// Reads frames until the close frame: its code, or how the socket ended.
/// The opcodes of the frames before it go to `skipped`.
async fn end_of<R>(rd: &mut R, buf: &mut Vec<u8>, skipped: &mut Vec<u8>) -> RawEnd
where
    R: tokio::io::AsyncRead + Unpin,
{
    loop {
        match next_frame(rd, buf).await {
            Ok((8, payload)) => {
                return RawEnd::Close(
                    payload
                        .get(..2)
                        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])),
                )
            }
            Ok((opcode, _)) => skipped.push(opcode),
            Err(end) => return end,
        }
    }
}

/// A server frame header in `buf`: (opcode, payload offset, payload length).
fn parse_server_header(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let opcode = buf.first()? & 0x0f;
    let (start, len) = match buf.get(1)? & 0x7f {
        126 => (4, u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize),
        127 => (
            10,
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
        ),
        n => (2, n as usize),
    };
    Some((opcode, start, len))
}

/// The seqs of [`events`].
pub fn seqs(frames: &[Value], room: &str) -> Vec<u64> {
    events(frames, room)
        .into_iter()
        .map(|(seq, _)| seq)
        .collect()
}

/// Reads frames from `c` until one satisfies `done` (included), panicking when
/// `deadline` passes first (naming the last event seqs seen) or the socket
/// closes. Every frame read is returned, in order.
pub async fn read_until(
    c: &mut Client,
    deadline: tokio::time::Instant,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut frames: Vec<Value> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.recv_within(left).await {
            Some(v) => {
                let stop = done(&v);
                frames.push(v);
                if stop {
                    return frames;
                }
            }
            None => {
                let seen: Vec<String> = frames
                    .iter()
                    .rev()
                    .take(8)
                    .rev()
                    .map(|f| match f.get("seq") {
                        Some(s) if f["type"] != "subscribed" => s.to_string(),
                        _ => f.to_string(),
                    })
                    .collect();
                panic!(
                    "{what}: timed out after {} frames; last: [{}]",
                    frames.len(),
                    seen.join(", ")
                );
            }
        }
    }
}

/// Reads until the event of `room` with seq `head` (or beyond) arrives.
pub async fn read_to_seq(
    c: &mut Client,
    room: &str,
    head: u64,
    deadline: tokio::time::Instant,
    what: &str,
) -> Vec<Value> {
    let room = room.to_string();
    read_until(c, deadline, what, move |v| {
        v["room"] == room.as_str()
            && v["type"] != "subscribed"
            && v["type"] != "published"
            && v["seq"].as_u64().is_some_and(|s| s >= head)
    })
    .await
}

/// Sends a ping with `r` as ref and reads until its pong; the frames before it
/// are returned (the pong is not).
pub async fn ping_pong(c: &mut Client, r: &str) -> Vec<Value> {
    c.send(serde_json::json!({"op": "ping", "ref": r})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let r = r.to_string();
    let mut frames = read_until(c, deadline, "pong", move |v| {
        v["type"] == "pong" && v["ref"] == r.as_str()
    })
    .await;
    frames.pop();
    frames
}

/// Asserts `seqs` is exactly `from..=to`, naming the first difference.
pub fn assert_consecutive(seqs: &[u64], from: u64, to: u64, what: &str) {
    let want: Vec<u64> = (from..=to).collect();
    if seqs == want.as_slice() {
        return;
    }
    let first_diff = seqs
        .iter()
        .zip(&want)
        .position(|(a, b)| a != b)
        .unwrap_or(seqs.len().min(want.len()));
    let lo = first_diff.saturating_sub(3);
    panic!(
        "{what}: expected seqs {from}..={to} ({} events), got {} events; first difference at \
         index {first_diff}: got {:?}, wanted {:?}",
        want.len(),
        seqs.len(),
        &seqs[lo..(first_diff + 4).min(seqs.len())],
        &want[lo..(first_diff + 4).min(want.len())],
    );
}

/// Where in `frames` a subscriber was told that `room` moved to `epoch`:
/// the last `subscribed`, with that epoch and `recovered:false`, and no event
/// of the old epoch after the restore before it. Its index.
pub fn told_new_epoch(frames: &[Value], room: &str, epoch: &str, who: &str) -> usize {
    let at = frames
        .iter()
        .rposition(|f| f["type"] == "subscribed")
        .unwrap_or_else(|| panic!("{who}: never told: {}", brief(frames)));
    assert!(
        events(&frames[..at], room).is_empty(),
        "{who}: events between the restore and the new subscribed: {}",
        brief(frames)
    );
    let sub = &frames[at];
    assert_eq!(
        (sub["epoch"].as_str(), sub["recovered"].as_bool()),
        (Some(epoch), Some(false)),
        "{who}: {sub}"
    );
    at
}

/// The event frames of `room` in `frames` (not `subscribed` or `published`
/// replies): (seq, data).
pub fn events(frames: &[Value], room: &str) -> Vec<(u64, Value)> {
    frames
        .iter()
        .filter(|f| {
            f["room"] == room
                && f["type"] != "subscribed"
                && f["type"] != "published"
                && f.get("seq").is_some()
        })
        .map(|f| (f["seq"].as_u64().expect("seq"), f["data"].clone()))
        .collect()
}

/// Asserts the events carry exactly the published data at each seq.
pub fn assert_data_matches(got: &[(u64, Value)], published: &HashMap<u64, Value>, who: &str) {
    for (seq, data) in got {
        let want = published
            .get(seq)
            .unwrap_or_else(|| panic!("{who}: seq {seq} was never acknowledged"));
        assert_eq!(data, want, "{who}: data at seq {seq}");
    }
}

/// Connects to `url` (a `/ws/{room}` URL), reads welcome and `subscribed`.
pub async fn subscribed_at(url: &str) -> (Client, Value, Value) {
    let (mut c, welcome) = Client::connect_welcomed(url).await;
    let sub = c.recv().await;
    assert_eq!(sub["type"], "subscribed", "{sub}");
    (c, welcome, sub)
}

/// A short rendering of frames for failure messages: `type#seq(ref)`.
pub fn brief(frames: &[Value]) -> String {
    frames
        .iter()
        .map(|f| {
            let mut s = f["type"].as_str().unwrap_or("?").to_string();
            if let Some(seq) = f["seq"].as_u64() {
                s += &format!("#{seq}");
            }
            if let Some(r) = f.get("ref") {
                s += &format!("({r})");
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refusal of an upgrade: (status, JSON body).
pub async fn refused(url: &str) -> (u16, Value) {
    refused_with(url, &[]).await
}

/// The refusal of an upgrade sent with extra headers.
pub async fn refused_with(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    use tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("request");
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("answer in time")
    {
        Ok(_) => panic!("upgrade to {url} should be refused"),
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().clone().unwrap_or_default();
            let v = serde_json::from_slice(&body).unwrap_or_else(|_| {
                panic!("JSON error body, got {:?}", String::from_utf8_lossy(&body))
            });
            (status, v)
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
    }
}

/// Asserts `sub` is a `subscribed` answer that recovered the resume, at
/// `head`, replying to `reference` (when given).
pub fn assert_recovered(sub: &Value, head: u64, reference: Option<&str>) {
    assert_eq!(
        (
            sub["type"].as_str(),
            sub["recovered"].as_bool(),
            sub["seq"].as_u64()
        ),
        (Some("subscribed"), Some(true), Some(head)),
        "{sub}"
    );
    if let Some(r) = reference {
        assert_eq!(sub["ref"].as_str(), Some(r), "{sub}");
    }
}
