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
        let log = dir.join("redis.log");
        let child = Command::new(bin)
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts a private Redis, talks to it, and checks that dropping it ends
    /// the process and removes its directory. Skipped without `redis-server`.
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
