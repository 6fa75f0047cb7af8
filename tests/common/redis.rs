//! The Redis side of the cluster tests: a private `redis-server` per test (never
//! the shared one on 6379), on a free loopback port, in its own temp dir, that a
//! test can kill with SIGKILL and restart on the same port with the same data
//! (persistent) or empty, or freeze with SIGSTOP; and a `Cluster` of
//! `realtime-hub` child processes sharing it, tuned for fast tests (200 ms
//! cluster heartbeats). Every wait is bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{poll_http, post, ChildHub};

/// How long a starting (or restarting) Redis may take to answer PING.
const REDIS_READY: Duration = Duration::from_secs(5);

/// The `redis-server` binary (from PATH; Debian's package puts it in /usr/bin).
const REDIS_SERVER: &str = "redis-server";

/// A private `redis-server`; killed (and its dir removed) on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    persistent: bool,
    /// Started as a replica of this port (`--replicaof`).
    replica_of: Option<u16>,
}

/// `redis-cli -p PORT ARGS...` (installed with redis-server): stdout, trimmed.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli (installed with redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A free loopback port: bind port 0, read it, let it go.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A fresh, empty temp dir for one server.
fn fresh_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "rthub-redis-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create redis dir");
    dir
}

/// One PING over RESP; true on `+PONG` (a loading server answers `-LOADING`).
fn ping(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG"),
        Err(_) => false,
    }
}

impl RedisServer {
    /// A server without persistence: a restart comes back empty.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// A server with an fsync-always append-only file: a kill + restart keeps
    /// every acknowledged write.
    pub fn start_persistent() -> RedisServer {
        Self::start_with(true)
    }

    /// A non-persistent replica of the server on `primary`.
    pub fn start_replica_of(primary: u16) -> RedisServer {
        Self::start_as(false, Some(primary))
    }

    fn start_with(persistent: bool) -> RedisServer {
        Self::start_as(persistent, None)
    }

    fn start_as(persistent: bool, replica_of: Option<u16>) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir: fresh_dir(),
            persistent,
            replica_of,
        };
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start in 5 attempts; last: {last}");
    }

    /// Starts redis-server on `self.port` in `self.dir` and waits for PING.
    fn launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "redis-server is already running");
        let log = self.dir.join("redis.log");
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--daemonize", "no", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(["--appendonly", if self.persistent { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            // A replica's first sync at once (the default waits 5 s for more).
            .args(["--repl-diskless-sync-delay", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(primary) = self.replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server is not installed (scripts/test installs it): {e}")
            }
            Err(e) => return Err(format!("spawn redis-server: {e}")),
        };
        let deadline = Instant::now() + REDIS_READY;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited with {status}: {}",
                    self.port,
                    self.log_tail(10)
                ));
            }
            if ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {REDIS_READY:?}: {}",
                    self.port,
                    self.log_tail(10)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// True while the server answers PING.
    pub fn answers(&self) -> bool {
        ping(self.port)
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server must still die (SIGKILL works on a stopped
            // process, but let it go on anyway).
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its connections but answers nothing (a hung
    /// Redis), until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// Starts it again on the same port, in the same dir, with the same
    /// persistence (kills it first if it is still running).
    pub fn restart(&mut self) {
        self.kill();
        let mut last = String::new();
        for _ in 0..5 {
            match self.launch() {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!("redis-server did not restart on port {}: {last}", self.port);
    }

    /// Runs `redis-cli -p PORT ARGS...`; its stdout, trimmed.
    pub fn cmd(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Its directory (where `SAVE` writes `dump.rdb`).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Hubs sharing one Redis. On a failing test (drop while panicking) the tail of
/// every hub's log and of Redis' log is printed.
pub struct Cluster {
    pub redis: RedisServer,
    pub hubs: Vec<ChildHub>,
    pub ids: Vec<String>,
}

/// The cluster heartbeat the tests run with; a node's record lives 3 of them.
pub const NODE_HEARTBEAT: Duration = Duration::from_millis(200);

/// The config overrides every cluster test starts its hubs with (later entries,
/// such as a test's own, win).
pub fn cluster_envs(redis_url: &str, node: &str) -> Vec<(String, String)> {
    [
        ("HUB_CLUSTER__REDIS_URL", redis_url),
        ("HUB_CLUSTER__NODE_ID", node),
        ("HUB_CLUSTER__HEARTBEAT_MS", "200"),
        ("HUB_CLUSTER__CONNECT_TIMEOUT_MS", "1000"),
        ("HUB_CLUSTER__COMMAND_TIMEOUT_MS", "500"),
        ("HUB_CLUSTER__RECONNECT_MAX_MS", "300"),
        ("HUB_WEBSOCKET__HEARTBEAT_INTERVAL_S", "1"),
        // Generous: a test may leave a socket unread through an outage.
        ("HUB_WEBSOCKET__CLIENT_TIMEOUT_S", "30"),
        ("HUB_SERVER__WORKERS", "1"),
        ("HUB_SERVER__SHUTDOWN_GRACE_S", "2"),
        // Enough history for every gap a test makes.
        ("HUB_ROOMS__HISTORY", "6000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Cluster {
    /// Starts a Redis (persistent or not) and one hub per id, and waits until
    /// every hub's `/readyz` is 200.
    pub async fn start(ids: &[&str], persistent: bool, extra: &[(&str, &str)]) -> Cluster {
        let redis = if persistent {
            RedisServer::start_persistent()
        } else {
            RedisServer::start()
        };
        let mut cluster = Cluster {
            redis,
            hubs: Vec::new(),
            ids: Vec::new(),
        };
        for id in ids {
            let hub = cluster.spawn_hub(id, extra);
            cluster.hubs.push(hub);
            cluster.ids.push(id.to_string());
        }
        for i in 0..cluster.hubs.len() {
            cluster.wait_ready(i, Duration::from_secs(10)).await;
        }
        cluster
    }

    /// A hub with node id `id` on this cluster's Redis.
    pub fn spawn_hub(&self, id: &str, extra: &[(&str, &str)]) -> ChildHub {
        let mut envs = cluster_envs(&self.redis.url(), id);
        envs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        ChildHub::spawn(&refs)
    }

    /// Polls hub `i`'s `/readyz` until it is 200, for at most `wait`.
    pub async fn wait_ready(&self, i: usize, wait: Duration) -> Value {
        let (status, body) = poll_http(&self.hubs[i].http("/readyz"), wait, |s, _| s == 200).await;
        assert_eq!(
            status, 200,
            "node {} never became ready: {body}",
            self.ids[i]
        );
        body
    }
}

/// Hubs of a test cluster, by index.
pub trait Nodes {
    /// The hubs.
    fn hubs(&self) -> &[ChildHub];

    /// `http://ADDR{path}` of hub `i`.
    fn http(&self, i: usize, path: &str) -> String {
        self.hubs()[i].http(path)
    }

    /// `ws://ADDR{path}` of hub `i`.
    fn ws(&self, i: usize, path: &str) -> String {
        self.hubs()[i].ws(path)
    }
}

impl Nodes for Cluster {
    fn hubs(&self) -> &[ChildHub] {
        &self.hubs
    }
}

/// On a failing test: the last `lines` log lines of every hub.
fn print_node_logs(hubs: &[ChildHub], ids: &[String], lines: usize) {
    for (hub, id) in hubs.iter().zip(ids) {
        let log = hub.log.lock().map(|l| l.clone()).unwrap_or_default();
        eprintln!(
            "----- node {id} ({}): last {} of {} log lines -----",
            hub.addr,
            log.len().min(lines),
            log.len()
        );
        for line in &log[log.len().saturating_sub(lines)..] {
            eprintln!("{line}");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        print_node_logs(&self.hubs, &self.ids, 120);
        eprintln!(
            "----- redis on port {} -----\n{}",
            self.redis.port(),
            self.redis.log_tail(30)
        );
    }
}

/// One accepted publish: its seq, epoch and the data sent.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub seq: u64,
    pub epoch: String,
    pub data: Value,
}

/// Publishes through hub `i`, asserting 200; the ack.
pub async fn publish_on(cl: &Cluster, i: usize, room: &str, data: Value) -> Accepted {
    let (status, ack) = post(
        &cl.http(i, &format!("/api/rooms/{room}/events")),
        &json!({"type": "hotspot_detected", "data": data}),
    )
    .await;
    assert_eq!(status, 200, "publish on node {} failed: {ack}", cl.ids[i]);
    assert_eq!(ack["room"], room, "{ack}");
    Accepted {
        seq: ack["seq"].as_u64().expect("ack seq"),
        epoch: ack["epoch"].as_str().expect("ack epoch").to_string(),
        data,
    }
}

/// The node ids listed in a status' `nodes`, sorted.
pub fn node_ids(s: &Value) -> Vec<String> {
    let mut ids: Vec<String> = s["nodes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Top-level counts equal the sums of the per-node counts.
pub fn sums_match(s: &Value) -> bool {
    let Some(nodes) = s["nodes"].as_object() else {
        return false;
    };
    let total: u64 = nodes
        .values()
        .map(|n| n["total_sockets"].as_u64().unwrap_or(u64::MAX / 8))
        .sum();
    if s["total_sockets"].as_u64() != Some(total) {
        return false;
    }
    for field in ["sockets_by_type", "rooms"] {
        let Some(top) = s[field].as_object() else {
            return false;
        };
        let mut keys: Vec<&String> = top.keys().collect();
        for n in nodes.values() {
            match n[field].as_object() {
                Some(m) => keys.extend(m.keys()),
                None => return false,
            }
        }
        for k in keys {
            let sum: u64 = nodes
                .values()
                .map(|n| n[field][k].as_u64().unwrap_or(0))
                .sum();
            if top.get(k).and_then(Value::as_u64).unwrap_or(0) != sum {
                return false;
            }
        }
    }
    true
}

/// The master name the test Sentinels monitor.
pub const SENTINEL_MASTER: &str = "hubmaster";

/// A `redis-server --sentinel` on a free port, with its config in its own dir
/// (Sentinel rewrites it); killed on drop.
pub struct SentinelProc {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl SentinelProc {
    /// A Sentinel monitoring the primary on `primary` (quorum 2).
    fn start(primary: u16, down_after_ms: u64) -> SentinelProc {
        let dir = fresh_dir();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.join("sentinel.conf");
            let text = format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n\
                 dir {d}\nlogfile {d}/sentinel.log\n\
                 sentinel monitor {m} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {m} {down_after_ms}\n\
                 sentinel failover-timeout {m} 10000\n\
                 sentinel parallel-syncs {m} 2\n",
                d = dir.display(),
                m = SENTINEL_MASTER,
            );
            std::fs::write(&conf, text).expect("write sentinel.conf");
            let mut child = Command::new(REDIS_SERVER)
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server --sentinel");
            let deadline = Instant::now() + REDIS_READY;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("sentinel on {port} exited with {status}");
                    break;
                }
                if ping(port) {
                    return SentinelProc {
                        child: Some(child),
                        port,
                        dir,
                    };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!("sentinel on {port} did not answer PING");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server --sentinel did not start: {last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis-cli -p PORT ARGS...` on this Sentinel, stdout trimmed.
    pub fn cmd(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// `SENTINEL master NAME` as a map (redis-cli prints field, value lines).
    fn master_info(&self) -> HashMap<String, String> {
        let text = self.cmd(&["SENTINEL", "master", SENTINEL_MASTER]);
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((k.to_string(), v.to_string())),
                _ => None,
            })
            .collect()
    }

    /// The port this Sentinel names as the primary.
    pub fn primary_port(&self) -> Option<u16> {
        let text = self.cmd(&["SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER]);
        text.lines().nth(1)?.trim().parse().ok()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A primary, its replicas and 3 Sentinels, all private processes on free ports.
pub struct SentinelSet {
    /// `servers[0]` starts as the primary; a failover moves that role.
    pub servers: Vec<RedisServer>,
    pub sentinels: Vec<SentinelProc>,
}

impl SentinelSet {
    /// Starts them and waits (bounded) until the replicas are in sync and every
    /// Sentinel knows the replicas and the other two Sentinels, so a failover
    /// can be elected.
    pub fn start(replicas: usize, down_after_ms: u64) -> SentinelSet {
        let primary = RedisServer::start();
        let port = primary.port();
        let mut servers = vec![primary];
        for _ in 0..replicas {
            servers.push(RedisServer::start_replica_of(port));
        }
        let set = SentinelSet {
            sentinels: (0..3)
                .map(|_| SentinelProc::start(port, down_after_ms))
                .collect(),
            servers,
        };
        set.wait_settled(port, Duration::from_secs(15));
        set
    }

    /// Waits until the Sentinels agree `primary` is the primary, see every other
    /// server as its replica and each other; and every replica's link is up.
    pub fn wait_settled(&self, primary: u16, wait: Duration) {
        let deadline = Instant::now() + wait;
        let want_replicas = (self.servers.len() - 1).to_string();
        loop {
            let links_up = self
                .servers
                .iter()
                .filter(|s| s.port() != primary && s.answers())
                .all(|s| {
                    s.cmd(&["INFO", "replication"])
                        .contains("master_link_status:up")
                });
            let sentinels_agree = self
                .sentinels
                .iter()
                .filter(|s| s.child.is_some())
                .all(|s| {
                    let m = s.master_info();
                    s.primary_port() == Some(primary)
                        && m.get("num-other-sentinels").map(String::as_str) == Some("2")
                        && m.get("num-slaves") == Some(&want_replicas)
                        && m.get("flags").is_some_and(|f| f == "master")
                });
            if links_up && sentinels_agree {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "sentinels did not settle on primary {primary} within {wait:?}: {:?}\n{}",
                    self.sentinels[0].master_info(),
                    self.sentinels[0].log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` (the env form of `cluster.sentinels`).
    pub fn addrs(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port a majority of live Sentinels names as the primary.
    pub fn primary_port(&self) -> Option<u16> {
        let named: Vec<u16> = self
            .sentinels
            .iter()
            .filter(|s| s.child.is_some())
            .filter_map(SentinelProc::primary_port)
            .collect();
        let first = *named.first()?;
        (named.iter().filter(|p| **p == first).count() * 2 > named.len()).then_some(first)
    }

    /// The server on `port`.
    pub fn server(&self, port: u16) -> usize {
        self.servers
            .iter()
            .position(|s| s.port() == port)
            .expect("a server of this set")
    }

    /// Polls until the Sentinels name another primary than `old`, for at most `wait`.
    pub fn wait_new_primary(&self, old: u16, wait: Duration) -> u16 {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(p) = self.primary_port().filter(|p| *p != old) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "no failover away from {old} within {wait:?}:\n{}",
                self.sentinels[0].log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Hubs finding their Redis through a [`SentinelSet`]; on a failing test the
/// tails of every hub's, server's and Sentinel's log are printed.
pub struct SentinelCluster {
    pub set: SentinelSet,
    pub hubs: Vec<ChildHub>,
    pub ids: Vec<String>,
}

impl SentinelCluster {
    /// `replicas` replicas, Sentinels with `down_after_ms`, and one hub per id
    /// (with `extra` config), each ready.
    pub async fn start(
        ids: &[&str],
        replicas: usize,
        down_after_ms: u64,
        extra: &[(&str, &str)],
    ) -> SentinelCluster {
        let set = tokio::task::spawn_blocking(move || SentinelSet::start(replicas, down_after_ms))
            .await
            .expect("sentinel set");
        let mut cl = SentinelCluster {
            set,
            hubs: Vec::new(),
            ids: Vec::new(),
        };
        for id in ids {
            cl.add_hub(id, extra);
        }
        for i in 0..cl.hubs.len() {
            cl.wait_ready(i).await;
        }
        cl
    }

    /// Starts one more hub on these Sentinels (not waited for).
    pub fn add_hub(&mut self, id: &str, extra: &[(&str, &str)]) {
        let mut envs: Vec<(String, String)> = cluster_envs("", id)
            .into_iter()
            .filter(|(k, _)| k != "HUB_CLUSTER__REDIS_URL")
            .collect();
        envs.push(("HUB_CLUSTER__SENTINELS".into(), self.set.addrs()));
        envs.push((
            "HUB_CLUSTER__SENTINEL_MASTER".into(),
            SENTINEL_MASTER.into(),
        ));
        envs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        self.hubs.push(ChildHub::spawn(&refs));
        self.ids.push(id.to_string());
    }

    /// Polls hub `i`'s `/readyz` until 200 (at most 10 s).
    pub async fn wait_ready(&self, i: usize) {
        let (status, body) =
            poll_http(&self.http(i, "/readyz"), Duration::from_secs(10), |s, _| {
                s == 200
            })
            .await;
        assert_eq!(
            status, 200,
            "node {} never became ready: {body}",
            self.ids[i]
        );
    }
}

impl Nodes for SentinelCluster {
    fn hubs(&self) -> &[ChildHub] {
        &self.hubs
    }
}

impl Drop for SentinelCluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        print_node_logs(&self.hubs, &self.ids, 80);
        for s in &self.set.servers {
            eprintln!("----- redis {} -----\n{}", s.port(), s.log_tail(15));
        }
        for s in &self.set.sentinels {
            eprintln!("----- sentinel {} -----\n{}", s.port(), s.log_tail(25));
        }
    }
}
