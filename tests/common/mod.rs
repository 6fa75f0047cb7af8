//! Shared helpers for the black-box tests: start a hub on 127.0.0.1:0 in-process,
//! talk to it with a real WebSocket client (tokio-tungstenite) and a real HTTP
//! client (reqwest). Every wait is bounded.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use realtime_hub::config::Config;
use realtime_hub::SpawnedHub;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod presence;
pub mod redis;
pub mod sse;

/// The longest any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A fresh directory under the system temp dir, removed by nothing: the
/// machine's temp cleaning does that (tests may want to look after a failure).
pub fn temp_dir(what: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rthub-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The store path test hubs use: memory only (`""`), unless
/// `HUB_TEST_STORAGE=durable`, which runs the same suites on the durable
/// engine, each hub in a directory of its own.
pub fn test_storage_path() -> String {
    match std::env::var("HUB_TEST_STORAGE").as_deref() {
        Ok("durable") => temp_dir("store").display().to_string(),
        _ => String::new(),
    }
}

/// A config for tests: loopback, port 0, short heartbeats, small limits.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.storage.path = test_storage_path();
    c.server.bind = "127.0.0.1:0".into();
    c.server.workers = 2;
    c.server.shutdown_grace_s = 3;
    c.websocket.heartbeat_interval_s = 1;
    c.websocket.client_timeout_s = 3;
    c.websocket.write_timeout_s = 2;
    c
}

/// Starts a hub with the test config changed by `tweak`.
pub fn start(tweak: impl FnOnce(&mut Config)) -> SpawnedHub {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut c = test_config();
    tweak(&mut c);
    c.validate().expect("test config is valid");
    realtime_hub::spawn(c).expect("hub starts")
}

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

    /// Frames until one satisfies `pred` (returned); the skipped ones too.
    pub async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let v = self.recv().await;
            if pred(&v) {
                return (v, skipped);
            }
            skipped.push(v);
        }
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

/// An HTTP client with a bounded timeout.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client")
}

/// GET `url`, returning (status, JSON body).
pub async fn get(url: &str) -> (u16, Value) {
    let r = http().get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POST JSON to `url`, returning (status, JSON body).
pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    post_raw(url, body.to_string()).await
}

/// POST a raw body to `url`, returning (status, JSON body).
pub async fn post_raw(url: &str, body: String) -> (u16, Value) {
    let r = http()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Publishes one event over HTTP; asserts 200 and returns the ack.
pub async fn publish(hub: &SpawnedHub, room: &str, kind: &str, data: Value) -> Value {
    let (status, ack) = post(
        &hub.http(&format!("/api/rooms/{room}/events")),
        &json!({"type": kind, "data": data}),
    )
    .await;
    assert_eq!(status, 200, "publish failed: {ack}");
    ack
}

/// Polls `/socket-status` until `pred` holds (bounded by WAIT).
pub async fn wait_status(hub: &SpawnedHub, pred: impl Fn(&Value) -> bool) -> Value {
    poll_status(&hub.http("/socket-status"), WAIT, pred).await
}

/// Polls a status URL every 20 ms until `pred` holds, for at most `wait`.
pub async fn poll_status(url: &str, wait: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (_, s) = get(url).await;
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never matched; last: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The seqs of the event frames in `frames` for `room`.
pub fn seqs(frames: &[Value], room: &str) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["room"] == room && f.get("seq").is_some() && f["type"] != "subscribed")
        .map(|f| f["seq"].as_u64().expect("seq"))
        .collect()
}

/// The binary child hubs run: `HUB_BIN` when set (scripts/test sets it to the
/// release build, so load and memory bounds are checked on what ships), else
/// the build cargo made for these tests.
pub fn hub_binary() -> std::path::PathBuf {
    std::env::var_os("HUB_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_realtime-hub").into())
}

/// A `realtime-hub` child process on a free loopback port, for tests that need
/// its own RSS or send it signals. Killed on drop.
pub struct ChildHub {
    pub proc: std::process::Child,
    pub addr: String,
    /// Every line the child logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildHub {
    /// Starts the binary with `envs` (config overrides); its address is read
    /// from its log line.
    pub fn spawn(envs: &[(&str, &str)]) -> ChildHub {
        Self::spawn_with_nofile(envs, None)
    }

    /// Like [`spawn`](Self::spawn), with the child's RLIMIT_NOFILE set to `nofile`.
    pub fn spawn_with_nofile(envs: &[(&str, &str)], nofile: Option<u64>) -> ChildHub {
        use std::io::{BufRead, BufReader};
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(hub_binary());
        if let Some(n) = nofile {
            let limit = rustix::process::Rlimit {
                current: Some(n),
                maximum: Some(n),
            };
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between
            // fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                        .map_err(std::io::Error::from)
                });
            }
        }
        cmd.env("HUB_SERVER__BIND", "127.0.0.1:0")
            .env("HUB_STORAGE__PATH", test_storage_path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut proc = cmd.spawn().expect("spawn realtime-hub");
        let stderr = proc.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            // Keep draining the log so the child never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line.clone());
                if !sent {
                    if let Some(rest) = line.split("realtime-hub listening on ").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| {
                let _ = proc.kill();
                let _ = proc.wait();
                panic!(
                    "hub logs its address; its log: {:?}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                )
            });
        ChildHub { proc, addr, log }
    }

    /// `http://ADDR{path}`.
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://ADDR{path}`.
    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The child's resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("VmRSS")
    }

    /// Polls `/socket-status` until `pred` holds (bounded by twice WAIT: a
    /// child hub may be a debug build under load).
    pub async fn wait_status(&self, pred: impl Fn(&Value) -> bool) -> Value {
        poll_status(&self.http("/socket-status"), WAIT * 2, pred).await
    }
}

impl Drop for ChildHub {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// The HS256 secret of the test hubs that check tokens (`auth.jwt_secret`).
pub const JWT_SECRET: &str = "test-secret-that-is-32-bytes-long";

/// Unix seconds now, the clock `exp` is read by.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `claims` signed with [`JWT_SECRET`].
pub fn hs256(claims: Value) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign")
}

/// A token for `sub` valid for an hour, with `extra` claims on top.
pub fn token_for(sub: &str, extra: Value) -> String {
    let mut claims = json!({"sub": sub, "exp": unix_now() + 3600});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    hs256(claims)
}
