//! Starting and stopping a hub process for a run.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::endpoint::Endpoint;
use crate::http::HubHttp;

/// The room every scenario uses on a hub the harness starts.
pub const BENCH_ROOM: &str = "bench";

/// How long a started hub has to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A hub process this harness started; killed when dropped.
#[derive(Debug)]
pub struct HubProcess {
    child: Child,
    endpoint: Endpoint,
    log: PathBuf,
}

impl HubProcess {
    /// Starts `bin` on a free loopback port and waits until it is healthy.
    ///
    /// The hub is configured through the environment: it listens on
    /// `127.0.0.1:PORT`, declares the room [`BENCH_ROOM`], allows 100,000 sockets,
    /// replays no snapshot to new subscribers, and logs warnings only (one log
    /// line per connect would otherwise be part of what is measured). Its log
    /// goes to a file in the temp directory.
    pub async fn start(bin: &Path) -> Result<Self> {
        Self::start_with_env(bin, &[]).await
    }

    /// Like [`HubProcess::start`], with more environment variables (set after,
    /// so they may override the harness's own), e.g. cluster settings.
    pub async fn start_with_env(bin: &Path, env: &[(String, String)]) -> Result<Self> {
        if !bin.is_file() {
            bail!(
                "hub binary `{}` not found: build it with `cargo build --release` in the hub's \
                 checkout, or pass --hub-bin / --url",
                bin.display()
            );
        }
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("hub-bench-hub-{port}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file")?;
        let child = Command::new(bin)
            .env("HUB_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("HUB_WEBSOCKET__MAX_CONNECTIONS", "100000")
            .env("HUB_ROOMS__DECLARE", BENCH_ROOM)
            .env("HUB_ROOMS__SNAPSHOT", "0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let endpoint = Endpoint::new(&format!("http://127.0.0.1:{port}"), Some(child.id()))?;
        let mut hub = Self {
            child,
            endpoint,
            log,
        };
        hub.wait_healthy().await?;
        Ok(hub)
    }

    /// Where the hub listens, with its pid.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The file the hub's stdout and stderr go to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until `GET /readyz` answers 200 (in a cluster: connected to Redis).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let http = HubHttp::new(&self.endpoint, 1)?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("checking the hub process")? {
                bail!("hub exited with {status}; see {}", self.log.display());
            }
            if http.ready().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "hub not ready (/readyz) after {timeout:?}; see {}",
            self.log.display()
        )
    }

    /// True while the hub process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let http = HubHttp::new(&self.endpoint, 1)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("checking the hub process")? {
                bail!(
                    "hub exited with {status} at start; see {}",
                    self.log.display()
                );
            }
            if http.healthy().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "hub not healthy after {START_TIMEOUT:?}; see {}",
            self.log.display()
        )
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        // The hub is only a subject of measurement: end it at once.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener
        .local_addr()
        .context("reading the free port")?
        .port())
}
