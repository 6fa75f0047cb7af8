//! Cluster mode over TLS (`rediss://`), against a real `redis-server` serving
//! TLS with a certificate made here: the hub verifies Redis's certificate
//! against the trusted roots (here `SSL_CERT_FILE`), and refuses one it cannot
//! verify.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, ChildHub, WAIT};
use serde_json::{json, Value};

/// A TLS-only `redis-server` on a free port with a self-signed certificate;
/// killed on drop.
struct TlsRedis {
    proc: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let dir = std::env::temp_dir().join(format!("hub-tls-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).expect("write cert");
        std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).expect("write key");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let proc = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                &path("cert.pem"),
                "--tls-key-file",
                &path("key.pem"),
            ])
            .args([
                "--tls-ca-cert-file",
                &path("cert.pem"),
                "--tls-auth-clients",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no", "--dir", &path("")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "TLS redis never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsRedis { proc, port, dir }
    }

    fn cert(&self) -> String {
        self.dir.join("cert.pem").to_string_lossy().into_owned()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn hub(redis: &TlsRedis, node: &str, roots: Option<&str>) -> ChildHub {
    let url = format!("rediss://localhost:{}/", redis.port);
    let mut envs = vec![
        ("HUB_CLUSTER__REDIS_URL", url.as_str()),
        ("HUB_CLUSTER__NODE_ID", node),
        ("HUB_CLUSTER__HEARTBEAT_MS", "200"),
        ("HUB_CLUSTER__COMMAND_TIMEOUT_MS", "500"),
        ("HUB_CLUSTER__RECONNECT_MAX_MS", "300"),
    ];
    // An empty file trusts nothing; a missing variable would fall back to the
    // machine's roots, which do not hold our certificate either.
    envs.push(("SSL_CERT_FILE", roots.unwrap_or("/dev/null")));
    ChildHub::spawn(&envs)
}

async fn readyz(hub: &ChildHub) -> (u16, Value) {
    common::get(&hub.http("/readyz")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_reaches_redis_over_verified_tls() {
    let redis = TlsRedis::start();
    let cert = redis.cert();
    let good = hub(&redis, "tls-good", Some(&cert));
    let bad = hub(&redis, "tls-bad", None);

    let deadline = Instant::now() + WAIT * 2;
    loop {
        let (status, body) = readyz(&good).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready over TLS: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = http()
        .post(good.http("/api/rooms/alerts/events"))
        .json(&json!({"type": "alert_raised", "data": {"tls": true}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(res.status().as_u16(), 200);
    let ack: Value = res.json().await.expect("json");
    assert_eq!(ack["seq"], 1, "{ack}");

    // The node that cannot verify the certificate never becomes ready, says
    // why, and refuses publishes rather than accepting them.
    let deadline = Instant::now() + WAIT;
    let why = loop {
        let (status, body) = readyz(&bad).await;
        assert_eq!(status, 503, "{body}");
        let why = body["message"].as_str().unwrap_or("").to_string();
        // Past "not connected yet": a connection attempt failed.
        if why.contains("unreachable") {
            break why;
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempt reported: {why}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(why.to_lowercase().contains("certificate"), "{why}");
    let res = http()
        .post(bad.http("/api/rooms/alerts/events"))
        .json(&json!({"type": "alert_raised", "data": {}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(res.status().as_u16(), 503);
}
