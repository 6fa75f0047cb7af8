//! Hubs to test: one in-process on 127.0.0.1:0 with the test config, or the
//! binary as a child process (for signals, RSS, fd limits), and the tokens
//! they accept.

use realtime_hub::config::Config;
use realtime_hub::SpawnedHub;
use serde_json::{json, Value};

use super::{poll_status, WAIT};
use std::time::Duration;

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

/// What a finished child process printed on stdout.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a finished child process printed on stderr.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
