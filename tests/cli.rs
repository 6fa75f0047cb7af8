//! The binary's operator commands (`status`, `rooms`, `publish`, `healthcheck`)
//! run as real child processes against a hub on a loopback port, and the JSON
//! log format of the serving binary.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Runs `realtime-hub ARGS` with `envs`, without the caller's HUB_URL or
/// HUB_API_KEY leaking in, bounded in time.
async fn cli_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_realtime-hub"));
    cmd.args(args)
        .env_remove("HUB_URL")
        .env_remove("HUB_API_KEY")
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("the command ends in time")
        .expect("run realtime-hub")
}

async fn cli(args: &[&str]) -> Output {
    cli_env(args, &[]).await
}

fn base(hub: &realtime_hub::SpawnedHub) -> String {
    format!("http://{}", hub.addr)
}

/// The rows (cells split on whitespace) under `title` in a `status` output.
fn section(text: &str, title: &str) -> Vec<Vec<String>> {
    let block = text
        .split("\n\n")
        .find(|b| b.lines().next() == Some(title))
        .unwrap_or_else(|| panic!("no {title} section in:\n{text}"));
    block
        .lines()
        .skip(2) // title, column header
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn row<'a>(rows: &'a [Vec<String>], first: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in {rows:?}"))
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn status_prints_sockets_and_rooms() {
    let hub = start(|_| {});
    let (mut a, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    a.recv().await; // subscribed
    let (mut c, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    c.subscribe("alerts").await;
    c.subscribe("hotspots").await;
    let s = wait_status(&hub, |s| {
        s["total_sockets"] == 2 && s["rooms"]["hotspots"] == 1
    })
    .await;

    let o = cli(&["status", "--url", &base(&hub)]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["node", s["node"].as_str().expect("node")]),
        "{text}"
    );
    assert!(text.contains("\nsockets  2\n"), "{text}");
    assert!(text.contains("\nactive   yes\n"), "{text}");
    let sockets = section(&text, "SOCKETS");
    assert_eq!(row(&sockets, "connect"), ["connect", "1", "/ws"]);
    assert_eq!(row(&sockets, "alerts"), ["alerts", "1", "/ws/alerts"]);
    assert_eq!(row(&sockets, "hotspots"), ["hotspots", "0", "/ws/hotspots"]);
    assert_eq!(
        row(&sockets, "recommendations"),
        ["recommendations", "0", "/ws/recommendations"]
    );
    let rooms = section(&text, "ROOMS");
    assert_eq!(row(&rooms, "alerts"), ["alerts", "2"]);
    assert_eq!(row(&rooms, "hotspots"), ["hotspots", "1"]);
    assert_eq!(row(&rooms, "recommendations"), ["recommendations", "0"]);
    assert!(
        !text.contains("NODES"),
        "single node: no NODES table\n{text}"
    );
}

#[tokio::test]
async fn status_json_is_the_socket_status_body() {
    let hub = start(|_| {});
    let (mut a, _) = Client::connect_welcomed(&hub.ws("/ws/recommendations")).await;
    a.recv().await;
    wait_status(&hub, |s| s["total_sockets"] == 1).await;

    let o = cli(&["status", "--json", "--url", &base(&hub)]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed: Value = serde_json::from_str(&stdout(&o)).expect("status --json prints JSON");
    let (_, direct) = get(&hub.http("/socket-status")).await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&printed), keys(&direct));
    for field in [
        "active",
        "total_sockets",
        "sockets_by_type",
        "rooms",
        "ws_endpoints",
        "node",
    ] {
        assert_eq!(printed[field], direct[field], "{field}");
    }
    assert_eq!(printed["sockets_by_type"]["recommendations"], 1);
}

#[tokio::test]
async fn rooms_as_table_and_json() {
    let hub = start(|_| {});
    let ack = publish(&hub, "alerts", "alert_raised", json!({"n": 1})).await;

    let o = cli(&["rooms", "--url", &base(&hub)]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["ROOM", "SUBSCRIBERS", "SEQ", "HISTORY", "EPOCH"])
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let epoch = ack["epoch"].as_str().expect("epoch");
    assert_eq!(row(&rows, "alerts"), ["alerts", "0", "1", "1", epoch]);
    assert_eq!(row(&rows, "hotspots")[2], "0");
    assert!(rows.iter().any(|r| r[0] == "recommendations"));

    let o = cli(&["rooms", "--json", "--url", &base(&hub)]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed: Value = serde_json::from_str(&stdout(&o)).expect("rooms --json prints JSON");
    let (_, direct) = get(&hub.http("/api/rooms")).await;
    assert_eq!(printed, direct);
    let alerts = printed
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["room"] == "alerts")
        .expect("alerts listed");
    assert_eq!(alerts["seq"], 1);
}

#[tokio::test]
async fn publish_reaches_a_subscriber_and_prints_the_seq() {
    let hub = start(|_| {});
    let (mut sub, _) = Client::connect_welcomed(&hub.ws("/ws/alerts")).await;
    sub.recv().await; // subscribed
    wait_status(&hub, |s| s["rooms"]["alerts"] == 1).await;

    let data = r#"{"level":"high","zone":4}"#;
    let o = cli(&[
        "publish",
        "alerts",
        "alert_raised",
        data,
        "--url",
        &base(&hub),
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let line = stdout(&o);
    assert!(line.contains("alerts") && line.contains("seq 1"), "{line}");
    assert!(line.contains("queued for 1 session"), "{line}");
    let event = sub.recv().await;
    assert_eq!(event["type"], "alert_raised");
    assert_eq!(event["seq"], 1);
    assert_eq!(event["data"], json!({"level": "high", "zone": 4}));

    // --json prints the hub's ack; a negative number is data, not a flag.
    let o = cli(&[
        "publish",
        "alerts",
        "tick",
        "-7",
        "--json",
        "--url",
        &base(&hub),
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ack: Value = serde_json::from_str(&stdout(&o)).expect("publish --json prints JSON");
    assert_eq!(ack["room"], "alerts");
    assert_eq!(ack["seq"], 2);
    assert_eq!(ack["delivered"], 1);
    assert!(ack["epoch"].is_string());
    assert_eq!(sub.recv().await["data"], -7);

    // Run twice with one --idempotency-key: published once, the rerun says so.
    let keyed = |data: &'static str| {
        let url = base(&hub);
        async move {
            cli(&[
                "publish",
                "alerts",
                "tick",
                data,
                "--idempotency-key",
                "cron-2026-11-22",
                "--url",
                &url,
            ])
            .await
        }
    };
    let o = keyed("1").await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("seq 3"), "{}", stdout(&o));
    let o = keyed("2").await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let line = stdout(&o);
    assert!(
        line.contains("already published") && line.contains("seq 3"),
        "{line}"
    );
    assert_eq!(sub.recv().await["data"], 1);
    let marker = publish(&hub, "alerts", "tick", json!("marker")).await;
    assert_eq!(marker["seq"], 4, "the rerun published nothing: {marker}");
    assert_eq!(sub.recv().await["data"], "marker");
}

#[tokio::test]
async fn publish_with_a_key_updates_and_deletes_a_keyed_rooms_state() {
    let hub = start(|c| {
        let mut recs = realtime_hub::config::RoomDecl::named("recommendations");
        recs.keyed = Some(true);
        c.rooms.declare = vec![recs, realtime_hub::config::RoomDecl::named("alerts")];
    });
    let url = base(&hub);
    let run = |args: Vec<&'static str>| {
        let url = url.clone();
        async move {
            let mut all = vec!["publish"];
            all.extend(args);
            all.extend(["--url", &url]);
            cli(&all).await
        }
    };
    for (args, seq) in [
        (
            vec![
                "recommendations",
                "rec_created",
                r#"{"s":"open"}"#,
                "--key",
                "rec 1",
            ],
            1,
        ),
        (
            vec![
                "recommendations",
                "rec_created",
                r#"{"s":"open"}"#,
                "--key",
                "rec-2",
            ],
            2,
        ),
        (
            vec![
                "recommendations",
                "rec_updated",
                r#"{"s":"ok"}"#,
                "--key",
                "rec 1",
            ],
            3,
        ),
        (
            vec![
                "recommendations",
                "rec_removed",
                "--key",
                "rec-2",
                "--delete",
            ],
            4,
        ),
    ] {
        let o = run(args.clone()).await;
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains(&format!("seq {seq}")), "{}", stdout(&o));
    }
    let (status, state) = get(&hub.http("/api/rooms/recommendations/state")).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["seq"], 4);
    let events = state["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{state}");
    assert_eq!(
        (&events[0]["key"], &events[0]["seq"], &events[0]["data"]),
        (&json!("rec 1"), &json!(3), &json!({"s": "ok"}))
    );
    let (_, history) = get(&hub.http("/api/rooms/recommendations/history?since=3")).await;
    let removed = &history["events"][0];
    assert_eq!(
        (&removed["key"], &removed["delete"]),
        (&json!("rec-2"), &json!(true))
    );
    assert_eq!(
        removed["data"],
        Value::Null,
        "a delete without data carries null"
    );

    // A key for a room that is not keyed is the hub's 400; --delete without
    // --key and a missing JSON without --delete are usage errors.
    let o = run(vec!["alerts", "t", "1", "--key", "k"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("400 bad_request"), "{}", stderr(&o));
    for args in [
        vec!["recommendations", "t", "1", "--delete"],
        vec!["recommendations", "t", "--key", "k"],
    ] {
        let o = run(args.clone()).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[tokio::test]
async fn publish_with_invalid_json_is_a_usage_error_and_sends_nothing() {
    let hub = start(|_| {});
    let o = cli(&[
        "publish",
        "alerts",
        "alert_raised",
        "{level: high}",
        "--url",
        &base(&hub),
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("not valid JSON"), "{}", stderr(&o));
    let (_, rooms) = get(&hub.http("/api/rooms")).await;
    let alerts = rooms
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["room"] == "alerts")
        .cloned()
        .expect("alerts");
    assert_eq!(alerts["seq"], 0, "nothing was published");
}

#[tokio::test]
async fn hub_errors_are_printed_with_status_and_code_and_exit_1() {
    let hub = start(|c| c.auth.api_keys = vec!["k-secret-1".into()]);
    let url = base(&hub);

    let o = cli(&["publish", "alerts", "t", "1", "--url", &url]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("realtime-hub: 401 unauthorized: "),
        "{}",
        stderr(&o)
    );

    let o = cli(&[
        "publish",
        "alerts",
        "t",
        "1",
        "--url",
        &url,
        "--api-key",
        "wrong-key-9",
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("401 unauthorized"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("wrong-key-9"),
        "keys are never printed"
    );

    let o = cli(&[
        "publish",
        "alerts",
        "t",
        "1",
        "--url",
        &url,
        "--api-key",
        "k-secret-1",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("seq 1"), "{}", stdout(&o));

    let o = cli_env(
        &["publish", "alerts", "t", "2"],
        &[("HUB_URL", &url), ("HUB_API_KEY", "k-secret-1")],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "env HUB_URL/HUB_API_KEY: {}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("seq 2"), "{}", stdout(&o));

    let o = cli(&[
        "publish",
        "no-such-room",
        "t",
        "1",
        "--url",
        &url,
        "--api-key",
        "k-secret-1",
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("realtime-hub: 404 unknown_room: "),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn healthcheck_is_silent_and_zero_when_healthy() {
    let hub = start(|_| {});
    let o = cli(&["healthcheck", "--url", &base(&hub)]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "silent when healthy"
    );
}

/// A one-shot HTTP server answering `response` to the first request.
fn fake_server(response: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    port
}

#[tokio::test]
async fn healthcheck_fails_on_an_unhealthy_answer_or_a_silent_server() {
    let port = fake_server(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 11\r\nconnection: close\r\n\r\nmaintenance",
    );
    let url = format!("http://127.0.0.1:{port}");
    let o = cli(&["healthcheck", "--url", &url]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!("realtime-hub: {url}/healthz answered 503: maintenance")
    );

    // Accepts, never answers: the timeout bounds the wait.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let started = Instant::now();
    let o = cli(&["healthcheck", "--url", &url, "--timeout", "1"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr(&o).contains("within 1 s"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&url), "{}", stderr(&o));
    drop(silent);
}

#[tokio::test]
async fn every_command_names_an_unreachable_url_and_exits_1() {
    let url = format!("http://127.0.0.1:{}", dead_port());
    let commands: [&[&str]; 6] = [
        &["status"],
        &["status", "--json"],
        &["rooms"],
        &["rooms", "--json"],
        &["publish", "alerts", "t", "{}"],
        &["healthcheck"],
    ];
    for args in commands {
        let mut all = args.to_vec();
        all.extend(["--url", &url]);
        let o = cli(&all).await;
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("realtime-hub: cannot reach the hub at ") && err.contains(&url),
            "{args:?}: {err}"
        );
        assert!(err.contains("connection refused"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // The same through HUB_URL, and a URL this client cannot use.
    let o = cli_env(&["status"], &[("HUB_URL", &url)]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&url), "{}", stderr(&o));
    let o = cli(&["status", "--url", "https://127.0.0.1:1"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("http:// only"), "{}", stderr(&o));
}

#[tokio::test]
async fn help_of_every_command_names_its_options() {
    let cases: [(&str, &[&str]); 4] = [
        ("status", &["--url", "--json", "--timeout", "HUB_URL"]),
        ("rooms", &["--url", "--json", "--timeout"]),
        (
            "publish",
            &[
                "<ROOM>",
                "<TYPE>",
                "[JSON]",
                "--key",
                "--delete",
                "--api-key",
                "HUB_API_KEY",
                "--url",
                "--json",
            ],
        ),
        ("healthcheck", &["--url", "--timeout", "/healthz"]),
    ];
    for (command, needles) in cases {
        let o = cli_env(&[command, "--help"], &[("HUB_API_KEY", "do-not-show-me")]).await;
        assert_eq!(o.status.code(), Some(0), "{command}");
        let text = stdout(&o);
        for needle in needles {
            assert!(
                text.contains(needle),
                "{command} --help lacks {needle}:\n{text}"
            );
        }
        assert!(!text.contains("do-not-show-me"), "help never shows the key");
    }
    let o = cli(&["--help"]).await;
    let text = stdout(&o);
    for command in [
        "status",
        "rooms",
        "publish",
        "healthcheck",
        "--check-config",
    ] {
        assert!(text.contains(command), "--help lacks {command}:\n{text}");
    }
    // Serving flags and commands do not mix; that is a usage error.
    let o = cli(&["--config", "hub.toml", "status"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = cli(&["status", "--no-such-flag"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let started = Instant::now();
    let child = ChildHub::spawn(&[("HUB_LOG_FORMAT", "json")]);
    let (c, _) = Client::connect_welcomed(&child.ws("/ws/alerts")).await;
    c.close().await;
    child.wait_status(|s| s["total_sockets"] == 0).await;
    let rest = Duration::from_secs(1).saturating_sub(started.elapsed());
    tokio::time::sleep(rest + Duration::from_millis(100)).await;

    let lines = child.log.lock().expect("log lock").clone();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let obj = v.as_object().expect("an object per line");
        for key in ["ts", "level", "target", "msg"] {
            assert!(
                obj.get(key).is_some_and(Value::is_string),
                "{key} in {line}"
            );
        }
        let ts = obj["ts"].as_str().expect("ts");
        chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("{e}: {ts}"));
        assert!(
            ts.ends_with('Z') && ts.len() == "2026-11-22T15:55:09.123Z".len(),
            "{ts}"
        );
    }
    let msgs: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split("\"msg\":").nth(1))
        .collect();
    assert!(msgs
        .iter()
        .any(|m| m.contains("realtime-hub listening on ")));
    assert!(
        msgs.iter().any(|m| m.contains("connect session=")),
        "{lines:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("disconnect session=")),
        "{lines:?}"
    );
}
