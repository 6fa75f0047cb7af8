//! A raw SSE client over TCP: writes the GET by hand, decodes the chunked body
//! and the SSE framing itself, so tests see exactly the bytes the hub sends
//! (no EventSource library hiding `id:`, `retry:` or comments).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::WAIT;

/// One SSE message, as the fields it carried.
#[derive(Debug, Clone, Default)]
pub struct SseMessage {
    /// The `id:` line.
    pub id: Option<String>,
    /// The `data:` line, parsed as JSON.
    pub data: Option<Value>,
    /// The `retry:` line.
    pub retry: Option<u64>,
    /// Comment lines (`:` ...), without the colon.
    pub comments: Vec<String>,
}

/// An open `200 text/event-stream` response.
pub struct SseStream {
    /// The connection.
    pub tcp: TcpStream,
    /// The response headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Bytes read but not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked body bytes not yet parsed into messages.
    body: Vec<u8>,
    /// The terminating chunk (or EOF) was seen.
    ended: bool,
    /// The last `id:` seen, as EventSource would keep it.
    pub last_id: Option<String>,
}

/// How a request to `/sse` was answered.
pub enum SseAnswer {
    /// The stream started.
    Stream(SseStream),
    /// A refusal: status and JSON body.
    Refused(u16, Value),
}

/// GET `path` (with query) from `addr` with extra `headers`.
pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseAnswer {
    let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    request(tcp, addr, path, headers).await
}

/// As [`open`], on a socket with a small receive buffer, for readers that stop.
pub async fn open_small_buffer(addr: SocketAddr, path: &str, rcvbuf: u32) -> SseStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(rcvbuf).expect("rcvbuf");
    let tcp = socket.connect(addr).await.expect("connect");
    match request(tcp, addr, path, &[]).await {
        SseAnswer::Stream(s) => s,
        SseAnswer::Refused(status, body) => panic!("refused {status}: {body}"),
    }
}

/// Opens a stream that must be accepted.
pub async fn stream(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseStream {
    match open(addr, path, headers).await {
        SseAnswer::Stream(s) => s,
        SseAnswer::Refused(status, body) => panic!("{path} refused {status}: {body}"),
    }
}

/// A request that must be refused: (status, JSON body).
pub async fn refused(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    match open(addr, path, headers).await {
        SseAnswer::Stream(_) => panic!("{path} should be refused"),
        SseAnswer::Refused(status, body) => (status, body),
    }
}

async fn request(
    mut tcp: TcpStream,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> SseAnswer {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("response head in time")
            .expect("read head");
        assert!(n > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let rest = raw[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let mut s = SseStream {
        tcp,
        headers,
        raw: rest,
        body: Vec::new(),
        ended: false,
        last_id: None,
    };
    if status == 200 {
        assert!(chunked, "an SSE stream is chunked: {:?}", s.headers);
        return SseAnswer::Stream(s);
    }
    let length: Option<usize> = s.header("content-length").and_then(|v| v.parse().ok());
    let body = match (chunked, length) {
        (true, _) => {
            while !s.ended {
                s.fill(WAIT).await.expect("refusal body in time");
            }
            std::mem::take(&mut s.body)
        }
        (false, Some(n)) => {
            while s.raw.len() < n {
                s.read_raw(WAIT).await.expect("refusal body in time");
            }
            s.raw[..n].to_vec()
        }
        (false, None) => panic!("refusal without a length"),
    };
    let v = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "JSON refusal body, got {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    SseAnswer::Refused(status, v)
}

impl SseStream {
    /// Whether the response has ended (terminating chunk, EOF or reset).
    pub fn ended(&self) -> bool {
        self.ended && self.body.windows(2).all(|w| w != b"\n\n")
    }

    /// A response header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads more raw bytes; false on EOF or a reset.
    async fn read_raw(&mut self, wait: Duration) -> Option<bool> {
        let mut buf = [0u8; 16384];
        match tokio::time::timeout(wait, self.tcp.read(&mut buf)).await {
            Err(_) => None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.ended = true;
                Some(false)
            }
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&buf[..n]);
                Some(true)
            }
        }
    }

    /// Moves whole chunks from `raw` to `body`.
    fn dechunk(&mut self) {
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..eol]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("chunk size");
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
        }
    }

    /// Reads until at least one more chunk arrived; None on timeout.
    async fn fill(&mut self, wait: Duration) -> Option<()> {
        let before = self.body.len();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.dechunk();
            if self.body.len() > before || self.ended {
                return Some(());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.read_raw(left).await?;
        }
    }

    /// The next whole SSE message (data, comment or retry), or None when the
    /// stream ended or nothing came within `wait`.
    pub async fn message_within(&mut self, wait: Duration) -> Option<SseMessage> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let text = String::from_utf8(self.body[..end].to_vec()).expect("utf-8 stream");
                self.body.drain(..end + 2);
                let mut m = SseMessage::default();
                for line in text.split('\n') {
                    if let Some(c) = line.strip_prefix(':') {
                        m.comments.push(c.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        assert!(m.data.is_none(), "one data line per message: {text}");
                        m.data = Some(serde_json::from_str(v).expect("data is JSON"));
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        m.id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("retry: ") {
                        m.retry = Some(v.parse().expect("retry ms"));
                    } else {
                        panic!("unexpected SSE line {line:?}");
                    }
                }
                if m.id.is_some() {
                    self.last_id = m.id.clone();
                }
                return Some(m);
            }
            if self.ended {
                return None;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            self.fill(left).await?;
        }
    }

    /// The next `data:` frame within `wait` (comments and retry skipped).
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.message_within(left).await?;
            if let Some(data) = m.data {
                return Some(data);
            }
        }
    }

    /// The next `data:` frame; panics after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        self.recv_within(WAIT)
            .await
            .expect("an SSE frame within the wait")
    }

    /// Frames until `pred` holds (that one included last); panics after `wait`
    /// without one.
    pub async fn recv_until(
        &mut self,
        wait: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self
                .recv_within(left)
                .await
                .unwrap_or_else(|| panic!("frame never came; got {} frames", frames.len()));
            let done = pred(&f);
            frames.push(f);
            if done {
                return frames;
            }
        }
    }

    /// Every message until the stream ends; panics if it has not within `wait`.
    pub async fn until_end(&mut self, wait: Duration) -> Vec<SseMessage> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "stream did not end; {} messages",
                out.len()
            );
            match self.message_within(left).await {
                Some(m) => out.push(m),
                None if self.ended => return out,
                None => {}
            }
        }
    }

    /// Drops the connection with a reset (SO_LINGER 0), as a crashed client.
    pub fn reset(self) {
        // Deprecated for blocking on drop, which a zero linger does not: the
        // kernel sends the RST at once.
        #[allow(deprecated)]
        let _ = self.tcp.set_linger(Some(Duration::ZERO));
        drop(self.tcp);
    }
}
