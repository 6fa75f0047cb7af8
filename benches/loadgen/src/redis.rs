//! A private Redis server for cluster runs: started on a free loopback port in
//! a temp directory, with persistence off, and killed when dropped.
//!
//! The harness never uses a Redis it did not start (in particular not a shared
//! one on the default port 6379): every cluster run gets a fresh, empty server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::hub::free_port;

/// How long a started Redis has to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Redis's default port: never used by the harness.
const DEFAULT_REDIS_PORT: u16 = 6379;

/// A Redis server this harness started; killed (and its directory removed)
/// when dropped.
#[derive(Debug)]
pub struct RedisProcess {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisProcess {
    /// Starts `bin` (`redis-server`) on a free loopback port with
    /// `--save '' --appendonly no`, in a fresh directory under the temp
    /// directory, and waits until it answers `PING`.
    pub async fn start(bin: &Path) -> Result<Self> {
        let mut port = free_port()?;
        if port == DEFAULT_REDIS_PORT {
            port = free_port()?;
        }
        if port == DEFAULT_REDIS_PORT {
            bail!("no free port for a private Redis other than {DEFAULT_REDIS_PORT}");
        }
        let dir = std::env::temp_dir().join(format!("hub-bench-redis-{port}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let child = server_command(bin, port, &dir).spawn().with_context(|| {
            format!(
                "starting {} (install redis-server, or pass --redis-bin)",
                bin.display()
            )
        })?;
        let mut redis = Self { child, port, dir };
        redis.wait_pong().await?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's pid, for CPU readings.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_pong(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("checking redis-server")? {
                bail!(
                    "redis-server exited with {status} at start; see {}",
                    self.dir.join("redis.log").display()
                );
            }
            if ping(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("redis-server on port {} did not answer PING", self.port)
    }
}

/// `bin` on `127.0.0.1:port` in `dir` (its log `redis.log` there), with
/// persistence off and its standard streams closed.
fn server_command(bin: &Path, port: u16, dir: &Path) -> Command {
    let mut command = Command::new(bin);
    command
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// True when a Redis on `127.0.0.1:port` answers `PING` with `+PONG`.
async fn ping(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).await?;
        std::io::Result::Ok(answer == *b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Ok(true))
    )
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis data node of a replicated set (primary or replica) on a port chosen
/// by the caller, so that a killed node can come back on the same address.
/// Killed (and its directory removed) when dropped.
#[derive(Debug)]
pub struct RedisNode {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisNode {
    /// Starts `bin` on `port` (persistence off), as a replica of
    /// `127.0.0.1:replica_of` when given, and waits until it answers `PING`.
    pub async fn start(bin: &Path, port: u16, replica_of: Option<u16>) -> Result<Self> {
        if port == DEFAULT_REDIS_PORT {
            bail!("refusing to start a private Redis on {DEFAULT_REDIS_PORT}");
        }
        let dir = std::env::temp_dir().join(format!("hub-bench-redis-node-{port}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut command = server_command(bin, port, &dir);
        if let Some(primary) = replica_of {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut node = Self {
            child: Some(child),
            port,
            dir,
        };
        node.wait_pong().await?;
        Ok(node)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL (a crash); the directory stays for a restart.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_pong(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("checking redis-server")? {
                    bail!(
                        "redis-server on {} exited with {status} at start",
                        self.port
                    );
                }
            }
            if ping(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("redis-server on port {} did not answer PING", self.port)
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server --sentinel` on a free port monitoring a primary; killed
/// (and its directory removed) when dropped.
#[derive(Debug)]
pub struct SentinelProcess {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl SentinelProcess {
    /// Starts a Sentinel watching `127.0.0.1:primary` as `master` (quorum 2,
    /// `down-after-milliseconds` `down_after_ms`).
    pub async fn start(bin: &Path, primary: u16, master: &str, down_after_ms: u64) -> Result<Self> {
        let port = free_port()?;
        if port == DEFAULT_REDIS_PORT {
            bail!("no free port for a Sentinel");
        }
        let dir = std::env::temp_dir().join(format!("hub-bench-sentinel-{port}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf = dir.join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n\
             dir {d}\nlogfile {d}/sentinel.log\n\
             sentinel monitor {master} 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds {master} {down_after_ms}\n\
             sentinel failover-timeout {master} 10000\n\
             sentinel parallel-syncs {master} 2\n",
            d = dir.display(),
        );
        std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
        let child = Command::new(bin)
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} --sentinel", bin.display()))?;
        let sentinel = Self {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !ping(port).await {
            if Instant::now() >= deadline {
                bail!("Sentinel on {port} did not answer PING");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(sentinel)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True while it has not been killed.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The primary's port this Sentinel names (`SENTINEL get-master-addr-by-name`).
    pub async fn primary_port(&self, master: &str) -> Option<u16> {
        let reply = command(self.port, &["SENTINEL", "get-master-addr-by-name", master]).await?;
        reply.get(1)?.parse().ok()
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends one command to `127.0.0.1:port` and reads an array of bulk strings
/// (or one simple/bulk string) back; `None` on any error or another reply.
pub async fn command(port: u16, args: &[&str]) -> Option<Vec<String>> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(parsed) = parse_reply(&buf) {
                return Some(parsed);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}

/// A complete RESP reply of strings, or `None` while incomplete or unsupported.
fn parse_reply(buf: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(buf).ok()?;
    let mut lines = text.split("\r\n");
    let head = lines.next()?;
    let bulk = |lines: &mut std::str::Split<'_, &str>| -> Option<String> {
        let len: i64 = lines.next()?.strip_prefix('$')?.parse().ok()?;
        if len < 0 {
            return Some(String::new());
        }
        let value = lines.next()?;
        (value.len() as i64 == len).then(|| value.to_owned())
    };
    match head.as_bytes().first()? {
        b'+' => text.ends_with("\r\n").then(|| vec![head[1..].to_owned()]),
        b'*' => {
            let n: i64 = head[1..].parse().ok()?;
            let mut out = Vec::new();
            for _ in 0..n.max(0) {
                out.push(bulk(&mut lines)?);
            }
            text.ends_with("\r\n").then_some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts a private Redis, talks to it, and checks that dropping it ends
    /// the process and removes its directory. Skipped without `redis-server`.
    #[test]
    fn resp_replies_parse_when_complete() {
        assert_eq!(
            parse_reply(b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"),
            Some(vec!["127.0.0.1".to_owned(), "6380".to_owned()])
        );
        assert_eq!(parse_reply(b"*2\r\n$9\r\n127.0.0.1\r\n"), None);
        assert_eq!(parse_reply(b"+PONG\r\n"), Some(vec!["PONG".to_owned()]));
        assert_eq!(parse_reply(b"-ERR x\r\n"), None);
    }

    #[tokio::test]
    async fn private_redis_starts_answers_and_goes_away() {
        let bin = Path::new("redis-server");
        if Command::new(bin).arg("--version").output().is_err() {
            eprintln!("redis-server not installed: skipped");
            return;
        }
        let redis = RedisProcess::start(bin).await.expect("redis starts");
        assert_ne!(redis.port, DEFAULT_REDIS_PORT);
        assert!(redis.url().starts_with("redis://127.0.0.1:"));
        assert!(ping(redis.port).await);
        let (port, dir, pid) = (redis.port, redis.dir.clone(), redis.pid());
        drop(redis);
        assert!(!ping(port).await);
        assert!(!dir.exists());
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
