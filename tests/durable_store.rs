//! The durable store (contract section 10) against the real binary: a child
//! hub with its own store directory, killed and restarted on the same path.
//! What got a 200 is in history with its seq after any restart, epochs stay,
//! idempotency keys survive, and a store that cannot be used stops the hub
//! with exit 2 naming the path.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A child hub on the store at `dir`, with `envs` on top.
fn hub_on(dir: &Path, envs: &[(&str, &str)]) -> ChildHub {
    let path = dir.display().to_string();
    let mut all: Vec<(&str, &str)> = vec![
        ("HUB_STORAGE__PATH", path.as_str()),
        ("HUB_ROOMS__DECLARE", "r1,r2,r3"),
        ("HUB_ROOMS__HISTORY", "10000"),
        ("HUB_ROOMS__SNAPSHOT", "0"),
    ];
    all.extend_from_slice(envs);
    ChildHub::spawn(&all)
}

/// Runs the binary on the store at `dir` and expects it to refuse to start:
/// its exit code and what it printed.
fn refused_start(dir: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(hub_binary())
        .env("HUB_SERVER__BIND", "127.0.0.1:0")
        .env("HUB_STORAGE__PATH", dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + WAIT * 2;
    let mut child = out;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the hub started on a store it should refuse ({})",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(hub: &mut ChildHub) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &hub.proc.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let deadline = Instant::now() + WAIT * 2;
    loop {
        if let Some(status) = hub.proc.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0), "a drained hub exits 0");
            return;
        }
        assert!(Instant::now() < deadline, "hub did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sigkill(hub: &mut ChildHub) {
    hub.proc.kill().expect("SIGKILL");
    let _ = hub.proc.wait();
}

async fn history(hub: &ChildHub, room: &str) -> Value {
    let (status, page) = get(&hub.http(&format!("/api/rooms/{room}/history"))).await;
    assert_eq!(status, 200, "{page}");
    page
}

/// Publishes `{"n": n}` into `room` until `stop`, as fast as answers come;
/// returns what got a 200: seq -> n.
async fn publish_until(
    url: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> BTreeMap<u64, u64> {
    let client = http();
    let mut acked = BTreeMap::new();
    let mut n = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    while !*stop.borrow() {
        tick.tick().await;
        n += 1;
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .body(json!({"type": "t", "data": {"n": n}}).to_string())
            .send()
            .await;
        let Ok(res) = sent else { continue };
        if res.status().as_u16() != 200 {
            continue;
        }
        let Ok(ack) = res.json::<Value>().await else {
            continue;
        };
        if let Some(seq) = ack["seq"].as_u64() {
            acked.insert(seq, n);
        }
    }
    acked
}

/// Every event of a history page: seq -> n.
fn events_of(page: &Value) -> BTreeMap<u64, u64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().expect("seq"),
                e["data"]["n"].as_u64().expect("n"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_acknowledged_twenty_times() {
    let dir = temp_dir("sigkill");
    let rooms = ["r1", "r2", "r3"];
    let mut acked: BTreeMap<&str, BTreeMap<u64, u64>> = BTreeMap::new();
    let mut seen: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut epochs: BTreeMap<&str, String> = BTreeMap::new();
    for round in 0..20u64 {
        let mut hub = hub_on(&dir, &[]);
        // Subscribers resume where they stopped: recovered and gap-free.
        let mut subs = Vec::new();
        for room in rooms {
            let path = match (epochs.get(room), seen.get(room).and_then(|s| s.last())) {
                (Some(e), Some(last)) => format!("/ws/{room}?since={last}&epoch={e}"),
                (Some(e), None) => format!("/ws/{room}?since=0&epoch={e}"),
                _ => format!("/ws/{room}"),
            };
            let (mut c, _) = Client::connect_welcomed(&hub.ws(&path)).await;
            let (sub, _) = c.recv_until(|v| v["type"] == "subscribed").await;
            let epoch = sub["epoch"].as_str().expect("epoch").to_string();
            if let Some(before) = epochs.get(room) {
                assert_eq!(&epoch, before, "round {round}: {room} changed epoch");
                assert_eq!(sub["recovered"], true, "round {round}: {room} {sub}");
            }
            epochs.insert(room, epoch);
            subs.push((room, c));
        }
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let publishers: Vec<_> = rooms
            .iter()
            .map(|room| {
                let url = hub.http(&format!("/api/rooms/{room}/events"));
                tokio::spawn(publish_until(url, stop.clone()))
            })
            .collect();
        // Read live events while publishing; kill at a moment that varies.
        let run_for = Duration::from_millis(150 + (round * 37) % 400);
        let readers: Vec<_> = subs
            .into_iter()
            .map(|(room, mut c)| {
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let until = tokio::time::Instant::now() + run_for + Duration::from_secs(2);
                    while let Ok(Some(Ok(m))) =
                        tokio::time::timeout_at(until, futures_util::StreamExt::next(&mut c.ws))
                            .await
                    {
                        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                            let v: Value = serde_json::from_str(&t).expect("json");
                            if let Some(seq) = v["seq"].as_u64() {
                                if v["type"] != "subscribed" {
                                    got.push(seq);
                                }
                            }
                        }
                    }
                    (room, got)
                })
            })
            .collect();
        tokio::time::sleep(run_for).await;
        sigkill(&mut hub);
        let _ = stop_tx.send(true);
        for (room, p) in rooms.iter().zip(publishers) {
            acked
                .entry(room)
                .or_default()
                .extend(p.await.expect("publisher"));
        }
        for r in readers {
            let (room, got) = r.await.expect("reader");
            seen.entry(room).or_default().extend(got);
        }
    }
    // After the last kill: history holds every acknowledged event, with its
    // seq, in the same epoch; subscribers saw each exactly once, in order.
    let hub = hub_on(&dir, &[]);
    for room in rooms {
        let page = history(&hub, room).await;
        assert_eq!(page["epoch"].as_str(), epochs.get(room).map(String::as_str));
        let held = events_of(&page);
        let head = page["seq"].as_u64().expect("seq");
        assert_eq!(
            held.keys().copied().collect::<Vec<_>>(),
            (1..=head).collect::<Vec<_>>()
        );
        for (seq, n) in &acked[room] {
            assert_eq!(
                held.get(seq),
                Some(n),
                "{room}: acked seq {seq} lost or changed"
            );
        }
        let s = &seen[room];
        let mut sorted = s.clone();
        sorted.dedup();
        assert_eq!(
            &sorted, s,
            "{room}: a subscriber saw a duplicate or a reorder"
        );
        assert!(s.windows(2).all(|w| w[1] == w[0] + 1), "{room}: a gap");
        eprintln!(
            "{room}: {} acked over 20 kills, head {head}, {} seen live",
            acked[room].len(),
            s.len()
        );
    }
}

#[tokio::test]
async fn a_sigterm_restart_keeps_epochs_history_and_idempotency_keys() {
    let dir = temp_dir("sigterm");
    let mut hub = hub_on(&dir, &[]);
    let key_publish = |hub: &ChildHub, n: u64| {
        let url = hub.http("/api/rooms/r1/events");
        async move {
            let res = http()
                .post(url)
                .header("Idempotency-Key", "order-7")
                .header("content-type", "application/json")
                .body(json!({"type": "t", "data": {"n": n}}).to_string())
                .send()
                .await
                .expect("publish");
            res.json::<Value>().await.expect("json")
        }
    };
    let first = key_publish(&hub, 1).await;
    for n in 2..=5 {
        post(
            &hub.http("/api/rooms/r1/events"),
            &json!({"type": "t", "data": {"n": n}}),
        )
        .await;
    }
    let before = history(&hub, "r1").await;
    sigterm(&mut hub);
    let hub = hub_on(&dir, &[]);
    let after = history(&hub, "r1").await;
    assert_eq!(after, before, "history and epoch survive a clean restart");
    let retry = key_publish(&hub, 99).await;
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(
        (retry["seq"].clone(), retry["epoch"].clone()),
        (first["seq"].clone(), first["epoch"].clone())
    );
    let next = publish_n(&hub, "r1").await;
    assert_eq!(next["seq"], 6, "no seq is given twice: {next}");
}

/// A keyed publish into `room`: `{"n": n}` under `key`, or its delete.
async fn publish_key(hub: &ChildHub, room: &str, key: &str, n: u64, delete: bool) -> Value {
    let body = match delete {
        true => json!({"type": "t", "key": key, "delete": true}),
        false => json!({"type": "t", "key": key, "data": {"n": n}}),
    };
    let (status, ack) = post(&hub.http(&format!("/api/rooms/{room}/events")), &body).await;
    assert_eq!(status, 200, "{ack}");
    ack
}

#[tokio::test]
async fn keyed_state_survives_a_sigterm_and_a_sigkill_restart() {
    let dir = temp_dir("keyed");
    // History 5: the state (a, c, e) reaches back past it.
    let keyed = [("HUB_ROOMS__KEYED", "true"), ("HUB_ROOMS__HISTORY", "5")];
    let mut hub = hub_on(&dir, &keyed);
    for (i, key) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        publish_key(&hub, "r1", key, i as u64, false).await;
    }
    publish_key(&hub, "r1", "b", 0, true).await;
    publish_key(&hub, "r1", "d", 0, true).await;
    publish_key(&hub, "r1", "a", 10, false).await;
    for _ in 0..10 {
        publish_n(&hub, "r1").await;
    }
    let state_url = |hub: &ChildHub| hub.http("/api/rooms/r1/state");
    let (status, before) = get(&state_url(&hub)).await;
    assert_eq!(status, 200, "{before}");
    let keys = |state: &Value| -> Vec<(String, u64)> {
        state["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| {
                (
                    e["key"].as_str().expect("key").to_string(),
                    e["data"]["n"].as_u64().expect("n"),
                )
            })
            .collect()
    };
    assert_eq!(
        keys(&before),
        [("c".into(), 2), ("e".into(), 4), ("a".into(), 10)]
    );

    sigterm(&mut hub);
    let mut hub = hub_on(&dir, &keyed);
    let (_, after) = get(&state_url(&hub)).await;
    assert_eq!(after, before, "the state survives a clean restart");
    let (mut ws, _) = Client::connect_welcomed(&hub.ws("/ws")).await;
    let sub = ws.subscribe("r1").await;
    assert_eq!(
        (sub["state"].clone(), sub["seq"].clone()),
        (json!(3), before["seq"].clone()),
        "{sub}"
    );
    for expected in ["c", "e", "a"] {
        let ev = ws.recv().await;
        assert_eq!(
            (ev["room"].as_str(), ev["key"].as_str()),
            (Some("r1"), Some(expected)),
            "{ev}"
        );
    }

    publish_key(&hub, "r1", "c", 0, true).await;
    sigkill(&mut hub);
    let hub = hub_on(&dir, &keyed);
    let (_, killed) = get(&state_url(&hub)).await;
    assert_eq!(
        keys(&killed),
        [("e".into(), 4), ("a".into(), 10)],
        "an acknowledged delete survives a kill"
    );
    assert_eq!(killed["epoch"], before["epoch"]);
}

async fn publish_n(hub: &ChildHub, room: &str) -> Value {
    let (status, ack) = post(
        &hub.http(&format!("/api/rooms/{room}/events")),
        &json!({"type": "t", "data": {"n": 0}}),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    ack
}

/// The store's files, for the tests that damage them.
fn store_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read store dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && std::fs::metadata(p).is_ok_and(|m| m.len() > 4096))
        .collect();
    files.sort();
    files
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read").flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_or_garbage_store_is_loaded_consistently_or_refused_with_its_path() {
    let dir = temp_dir("torn");
    let mut hub = hub_on(&dir, &[]);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let p = tokio::spawn(publish_until(hub.http("/api/rooms/r1/events"), stop));
    tokio::time::sleep(Duration::from_millis(600)).await;
    sigkill(&mut hub);
    let _ = stop_tx.send(true);
    let acked = p.await.expect("publisher");
    assert!(!acked.is_empty());
    let files = store_files(&dir);
    assert!(!files.is_empty(), "the store wrote a file");
    let len = std::fs::metadata(&files[0]).expect("meta").len();
    let (mut started, mut refused) = (0, 0);
    for i in 1..=8u64 {
        let trial = temp_dir("torn-trial");
        copy_dir(&dir, &trial);
        let file = trial.join(files[0].file_name().expect("name"));
        let cut = len * i / 9;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_len(cut))
            .expect("truncate");
        let attempt = std::panic::catch_unwind(|| hub_on(&trial, &[]));
        match attempt {
            Ok(h) => {
                started += 1;
                // Whatever it serves is what was sent, in order, gap-free.
                let held = events_of(&history(&h, "r1").await);
                let mut last_n = 0;
                for (k, (seq, n)) in held.iter().enumerate() {
                    assert_eq!(*seq, held.keys().next().copied().unwrap_or(1) + k as u64);
                    assert!(*n > last_n, "cut {cut}: events out of order");
                    last_n = *n;
                    if let Some(sent) = acked.get(seq) {
                        assert_eq!(sent, n, "cut {cut}: seq {seq} holds another event");
                    }
                }
            }
            Err(_) => {
                let (code, err) = refused_start(&trial);
                assert_eq!(code, Some(2), "{err}");
                assert!(
                    err.contains(&trial.display().to_string()),
                    "names the path: {err}"
                );
                refused += 1;
            }
        }
    }
    eprintln!("torn store: started {started}, refused {refused} of 8 cuts");
    // Random bytes where the store should be: refused, naming the path.
    let garbage = temp_dir("garbage");
    copy_dir(&dir, &garbage);
    let file = garbage.join(files[0].file_name().expect("name"));
    let noise: Vec<u8> = (0..len as usize).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&file, noise).expect("write noise");
    let (code, err) = refused_start(&garbage);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&garbage.display().to_string()),
        "names the path: {err}"
    );
}

#[tokio::test]
async fn a_second_hub_on_the_same_store_exits_2_naming_it() {
    let dir = temp_dir("lock");
    let _first = hub_on(&dir, &[]);
    let (code, err) = refused_start(&dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&dir.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_full_disk_answers_503_and_recovers_losing_nothing_acknowledged() {
    let dir = temp_dir("diskfull");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run"
        );
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.clone());
    let store = dir.join("store");
    let hub = hub_on(&store, &[]);
    let mut acked = BTreeMap::new();
    for n in 1..=50u64 {
        let ack = post(
            &hub.http("/api/rooms/r1/events"),
            &json!({"type": "t", "data": {"n": n}}),
        )
        .await;
        assert_eq!(ack.0, 200);
        acked.insert(ack.1["seq"].as_u64().expect("seq"), n);
    }
    // Fill the disk.
    let filler = dir.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let big = "x".repeat(60_000);
    let mut refused = false;
    for n in 51..=400u64 {
        let (status, body) = post(
            &hub.http("/api/rooms/r1/events"),
            &json!({"type": "t", "data": {"n": n, "pad": big}}),
        )
        .await;
        match status {
            200 => {
                acked.insert(body["seq"].as_u64().expect("seq"), n);
            }
            503 => {
                assert_eq!(body["error"], "unavailable", "{body}");
                refused = true;
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused, "a full disk must refuse publishes");
    let (status, ready) = get(&hub.http("/readyz")).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready.to_string().contains("store"),
        "readyz names the store: {ready}"
    );
    std::fs::remove_file(&filler).expect("free space");
    // Both recover by themselves.
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = post(
            &hub.http("/api/rooms/r1/events"),
            &json!({"type": "t", "data": {"n": 1000}}),
        )
        .await;
        if status == 200 {
            acked.insert(body["seq"].as_u64().expect("seq"), 1000);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "publishes did not recover: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = get(&hub.http("/readyz")).await;
    assert_eq!(status, 200);
    let held = events_of(&history(&hub, "r1").await);
    for (seq, n) in &acked {
        assert_eq!(held.get(seq), Some(n), "acked seq {seq} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_events_into_one_room_keep_the_store_bounded() {
    let dir = temp_dir("bounded");
    let hub = hub_on(
        &dir,
        &[
            ("HUB_ROOMS__HISTORY", "100"),
            ("HUB_STORAGE__FSYNC", "false"),
        ],
    );
    let url = hub.http("/api/events");
    let mut sizes = Vec::new();
    let batch = 2000;
    for b in 0..(1_000_000 / batch) {
        let items: Vec<Value> = (0..batch)
            .map(|i| json!({"room": "r1", "type": "t", "data": {"n": b * batch + i}}))
            .collect();
        let (status, _) = post(&url, &Value::Array(items)).await;
        assert_eq!(status, 200);
        if (b + 1) % 100 == 0 {
            let bytes: u64 = store_files(&dir)
                .iter()
                .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
                .sum();
            sizes.push(bytes);
        }
    }
    eprintln!("store bytes after each 200,000 events: {sizes:?}");
    let max = *sizes.iter().max().expect("sizes");
    assert!(max < 16 * 1024 * 1024, "the store grew to {max} bytes");
    assert!(
        sizes.last() <= Some(&(sizes[0] * 2 + 1024 * 1024)),
        "the store grows with the count: {sizes:?}"
    );
    let page = history(&hub, "r1").await;
    assert_eq!(page["seq"], 1_000_000);
    assert_eq!(page["events"].as_array().map(Vec::len), Some(100));
}

/// A free loopback port, so a restarted hub comes back where clients look.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A resuming subscriber: reconnects (with `since` + `epoch`) whenever its
/// socket ends, until it has seen seq `last`; returns every seq it got.
async fn follow(url_base: String, last: u64) -> Vec<u64> {
    let mut got: Vec<u64> = Vec::new();
    let mut epoch: Option<String> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while got.last().copied().unwrap_or(0) < last {
        assert!(
            tokio::time::Instant::now() < deadline,
            "follower stuck at {:?}",
            got.last()
        );
        let path = match (&epoch, got.last()) {
            (Some(e), Some(s)) => format!("{url_base}/ws/r1?since={s}&epoch={e}"),
            (Some(e), None) => format!("{url_base}/ws/r1?since=0&epoch={e}"),
            _ => format!("{url_base}/ws/r1"),
        };
        let Ok(Ok((mut ws, _))) =
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(&path)).await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while let Ok(Some(Ok(m))) = tokio::time::timeout(
            Duration::from_secs(10),
            futures_util::StreamExt::next(&mut ws),
        )
        .await
        {
            let tokio_tungstenite::tungstenite::Message::Text(t) = m else {
                continue;
            };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "subscribed" {
                if let Some(e) = &epoch {
                    assert_eq!(v["epoch"].as_str(), Some(e.as_str()), "the epoch changed");
                    assert_eq!(v["recovered"], true, "{v}");
                }
                epoch = v["epoch"].as_str().map(str::to_string);
            } else if let Some(seq) = v["seq"].as_u64() {
                got.push(seq);
                if seq >= last {
                    break;
                }
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_loss_deploy_with_two_restarts() {
    let dir = temp_dir("deploy");
    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let envs = [
        ("HUB_SERVER__BIND", bind.as_str()),
        ("HUB_SERVER__SHUTDOWN_GRACE_S", "2"),
    ];
    let mut hub = hub_on(&dir, &envs);
    let base = format!("http://127.0.0.1:{port}");
    let ws_base = format!("ws://127.0.0.1:{port}");
    const EVENTS: u64 = 300;
    let followers: Vec<_> = (0..50)
        .map(|_| tokio::spawn(follow(ws_base.clone(), EVENTS)))
        .collect();
    hub.wait_status(|s| s["rooms"]["r1"] == 50).await;
    // The publisher: the CLI, one process per event, each with its own
    // idempotency key, retried until it succeeds.
    let publisher = {
        let base = base.clone();
        tokio::spawn(async move {
            let mut attempts = 0u64;
            for n in 1..=EVENTS {
                loop {
                    attempts += 1;
                    let out = tokio::process::Command::new(hub_binary())
                        .args(["publish", "r1", "t", &json!({"n": n}).to_string()])
                        .args(["--idempotency-key", &format!("deploy-{n}"), "--url", &base])
                        .env_remove("HUB_URL")
                        .env_remove("HUB_API_KEY")
                        .output()
                        .await
                        .expect("run the CLI");
                    if out.status.success() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            attempts
        })
    };
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        sigterm(&mut hub);
        hub = hub_on(&dir, &envs);
    }
    let attempts = publisher.await.expect("publisher");
    let page = history(&hub, "r1").await;
    let held = events_of(&page);
    assert_eq!(
        page["seq"], EVENTS,
        "each event published exactly once ({attempts} attempts)"
    );
    assert_eq!(
        held.values().copied().collect::<Vec<_>>(),
        (1..=EVENTS).collect::<Vec<_>>(),
        "history holds every event once, in order"
    );
    for f in followers {
        let got = f.await.expect("follower");
        assert_eq!(
            got,
            (1..=EVENTS).collect::<Vec<_>>(),
            "a client missed or repeated events"
        );
    }
    eprintln!(
        "zero-loss deploy: {EVENTS} events, {attempts} CLI attempts, 2 restarts, 50 clients exact"
    );
}
