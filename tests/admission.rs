//! Who gets in (contract section 2): Origin checks, connection limits, and the
//! echo endpoint's switch.

mod common;

use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn origin_is_checked_when_present() {
    let hub = start(|c| c.server.allowed_origins = vec!["https://dash.example".into()]);
    let (status, body) = refused_with(&hub.ws("/ws"), &[("origin", "https://evil.example")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden_origin"))
    );
    // An allowed Origin and no Origin at all (scripts) both get in.
    let (mut ok, _) = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = hub.ws("/ws").into_client_request().expect("req");
        req.headers_mut()
            .insert("origin", "https://dash.example".parse().expect("v"));
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("allowed origin");
        (Client { ws }, ())
    };
    assert_eq!(ok.recv().await["type"], "welcome");
    let (_script, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
}

#[tokio::test]
async fn connection_limits_answer_503_over_capacity() {
    let hub = start(|c| c.websocket.max_connections = 2);
    let (a, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (_b, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (status, body) = refused(&hub.ws("/ws")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("over_capacity"))
    );
    // Status and health keep answering at the limit.
    let (status, _) = get(&hub.http("/socket-status")).await;
    assert_eq!(status, 200);
    // A slot frees when a session ends.
    a.close().await;
    wait_status(&hub, |s| s["total_sockets"] == 1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio_tungstenite::connect_async(hub.ws("/ws")).await {
            Ok(_) => break,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("slot never freed: {e}"),
        }
    }
}

#[tokio::test]
async fn per_ip_limit_answers_503_over_capacity() {
    let hub = start(|c| c.websocket.max_connections_per_ip = 1);
    let (_a, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let (status, body) = refused(&hub.ws("/ws/alerts")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("over_capacity"))
    );
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("per-IP")));
}

#[tokio::test]
async fn echo_endpoint_only_when_enabled() {
    let off = start(|_| {});
    let (status, _) = refused(&off.ws("/ws/_echo")).await;
    assert_eq!(status, 404);

    let on = start(|c| c.websocket.echo_endpoint = true);
    let mut c = Client::connect(&on.ws("/ws/_echo")).await;
    c.send(json!({"op": "anything"})).await;
    assert_eq!(
        c.recv().await,
        json!({"op": "anything"}),
        "echoed, no welcome first"
    );
    c.send_raw(Message::binary(vec![0u8, 1, 2])).await;
    use futures_util::StreamExt;
    let echoed = tokio::time::timeout(WAIT, c.ws.next())
        .await
        .expect("in time");
    assert!(matches!(echoed, Some(Ok(Message::Binary(b))) if b[..] == [0u8, 1, 2]));
    let (_, s) = get(&on.http("/socket-status")).await;
    assert_eq!(s["ws_endpoints"]["echo"], "/ws/_echo");
}
