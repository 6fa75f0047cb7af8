//! The SSE reader against canned responses over loopback TCP: the response
//! is written in awkward pieces (splits inside the head, inside chunk-size
//! lines, inside `data:` lines, CRLF split in two), and refusals must be
//! errors naming the status.

use std::time::Duration;

use hub_bench::endpoint::Endpoint;
use hub_bench::sse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one connection: reads the request head, checks it asks for an
/// event stream, then writes `pieces` one by one with a pause between them.
async fn serve_once(pieces: Vec<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 1024];
            match stream.read(&mut buf).await {
                Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(
            head.starts_with("get /sse?rooms=bench http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\naccept: text/event-stream\r\n"), "{head}");
        for piece in pieces {
            if stream.write_all(&piece).await.is_err() {
                return;
            }
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    format!("http://{addr}")
}

fn chunk(part: &str) -> String {
    format!("{:x}\r\n{part}\r\n", part.len())
}

/// `text` cut at each of `cuts` (byte offsets, increasing).
fn cut(text: &str, cuts: &[usize]) -> Vec<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    for &at in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let at = at.min(bytes.len());
        if at > from {
            out.push(bytes[from..at].to_vec());
            from = at;
        }
    }
    out
}

#[tokio::test]
async fn chunked_stream_in_pieces() {
    let welcome =
        r#"{"type":"welcome","session":"s","node":"n","protocol":1,"heartbeat_ms":15000}"#;
    let subscribed =
        r#"{"type":"subscribed","room":"bench","epoch":"e1","seq":5,"recovered":false}"#;
    let e6 = r#"{"type":"bench","room":"bench","seq":6,"ts":"t","data":{"t_ns":1}}"#;
    let e7 = r#"{"type":"bench","room":"bench","seq":7,"ts":"t","data":{"t_ns":2}}"#;
    let mut body = String::from(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n",
    );
    body += &chunk("retry: 2213\n\n");
    for (id, frame) in [(None, welcome), (None, subscribed), (Some(6), e6)] {
        body += &chunk(&match id {
            Some(n) => format!("id: v1;bench/e1/{n}\ndata: "),
            None => "data: ".to_owned(),
        });
        body += &chunk(frame);
        body += &chunk("\n\n");
    }
    body += &chunk(":\n\n");
    body += &chunk(&format!("id: v1;bench/e1/7\r\ndata: {e7}\r\n\r\n"));
    body += &chunk(": closed 4000 slow consumer\n\n");
    body += "0\r\n\r\n";
    // Cuts: inside the status line, inside the headers' blank line, inside
    // chunk sizes and data, and between a CR and its LF.
    let crlf = body.find("7\r\ndata").map_or(300, |i| i + 1);
    let cuts = [
        5,
        60,
        81,
        83,
        90,
        97,
        150,
        151,
        200,
        333,
        crlf,
        crlf + 1,
        700,
    ];
    let url = serve_once(cut(&body, &cuts)).await;
    let endpoint = Endpoint::new(&url, None).expect("endpoint");

    let mut s = sse::connect(&endpoint, &sse::path(&["bench"]), None, 16)
        .await
        .expect("stream opens");
    let head = sse::wait_subscribed(&mut s, Duration::from_secs(5))
        .await
        .expect("subscribed");
    assert_eq!(head, 5);
    let event = s.next_event().await.expect("read").expect("event 6");
    assert_eq!(event.id.as_deref(), Some("v1;bench/e1/6"));
    assert_eq!(event.data, e6);
    let event = s.next_event().await.expect("read").expect("event 7");
    assert_eq!(event.data, e7);
    assert!(s.next_event().await.expect("read").is_none(), "stream ends");
    assert_eq!(s.end_reason(), "4000");
    assert_eq!(s.parser().comments(), 2);
    assert_eq!(s.parser().retry_ms(), Some(2213));
    assert_eq!(s.parser().last_event_id(), Some("v1;bench/e1/7"));
}

#[tokio::test]
async fn plain_body_until_close() {
    let body = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n\
                data: {\"type\":\"welcome\"}\n\ndata: {\"type\":\"pong\"}\n\n";
    let url = serve_once(cut(body, &[40, 70])).await;
    let endpoint = Endpoint::new(&url, None).expect("endpoint");
    let mut s = sse::connect(&endpoint, "/sse?rooms=bench", None, 4096)
        .await
        .expect("stream opens");
    sse::wait_welcome(&mut s, Duration::from_secs(5))
        .await
        .expect("welcome");
    assert_eq!(
        s.next_data().await.expect("read").as_deref(),
        Some(r#"{"type":"pong"}"#)
    );
    assert!(s.next_data().await.expect("read").is_none());
    assert_eq!(s.end_reason(), "eof");
}

#[tokio::test]
async fn cut_short_chunked_body() {
    let body =
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n\
                6\r\ndata: \r\n";
    let url = serve_once(vec![body.as_bytes().to_vec()]).await;
    let endpoint = Endpoint::new(&url, None).expect("endpoint");
    let mut s = sse::connect(&endpoint, "/sse?rooms=bench", None, 4096)
        .await
        .expect("stream opens");
    assert!(s.next_event().await.expect("read").is_none());
    assert_eq!(s.end_reason(), "eof-cut");
}

#[tokio::test]
async fn refusals_and_garbage_are_errors() {
    let refusal = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                   content-length: 25\r\n\r\n{\"error\":\"over_capacity\"}";
    let not_a_stream =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    let bad_chunk = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\nzz\r\n";
    for (response, expect) in [
        (refusal, "503"),
        (not_a_stream, "application/json"),
        ("SSH-2.0-nope\r\n\r\n", "not an HTTP/1.x response"),
        ("HTTP/1.1 200 OK\r\n", "closed before the response head"),
    ] {
        let url = serve_once(vec![response.as_bytes().to_vec()]).await;
        let endpoint = Endpoint::new(&url, None).expect("endpoint");
        let err = sse::connect(&endpoint, "/sse?rooms=bench", None, 4096)
            .await
            .expect_err("refused");
        assert!(format!("{err:#}").contains(expect), "{err:#}");
    }
    let url = serve_once(vec![bad_chunk.as_bytes().to_vec()]).await;
    let endpoint = Endpoint::new(&url, None).expect("endpoint");
    let failed = match sse::connect(&endpoint, "/sse?rooms=bench", None, 4096).await {
        Err(_) => true,
        Ok(mut s) => s.next_event().await.is_err(),
    };
    assert!(failed, "a bad chunk size is an error");
}
