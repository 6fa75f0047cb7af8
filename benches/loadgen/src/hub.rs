//! Starting and stopping a hub process for a run, and where it keeps its rooms.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::endpoint::Endpoint;
use crate::http::HubHttp;

/// The room every scenario uses on a hub the harness starts.
pub const BENCH_ROOM: &str = "bench";

/// The most keys a keyed room may hold (the hub's limit on `rooms.max_keys`).
pub const MAX_KEYS_LIMIT: usize = 1_000_000;

/// The environment that makes the hub's rooms, [`BENCH_ROOM`] included, keyed
/// (`rooms.keyed`), holding up to `max_keys` keys each (`rooms.max_keys`,
/// clamped to 1 ..= [`MAX_KEYS_LIMIT`]).
pub fn keyed_room_env(max_keys: usize) -> Vec<(String, String)> {
    vec![
        ("HUB_ROOMS__KEYED".to_owned(), "true".to_owned()),
        (
            "HUB_ROOMS__MAX_KEYS".to_owned(),
            max_keys.clamp(1, MAX_KEYS_LIMIT).to_string(),
        ),
    ]
}

/// How long a started hub has to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a hub the harness starts keeps its rooms (the hub's `[storage]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// No store (`HUB_STORAGE__PATH=""`): rooms live in memory only.
    #[default]
    Memory,
    /// A durable store in a fresh temp directory per hub, removed with the hub.
    Durable {
        /// `HUB_STORAGE__FSYNC`: every commit is synced before it is acknowledged.
        fsync: bool,
    },
}

impl Storage {
    /// True for [`Storage::Durable`].
    pub fn is_durable(self) -> bool {
        matches!(self, Storage::Durable { .. })
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Storage::Memory => f.write_str("memory"),
            Storage::Durable { fsync: true } => f.write_str("durable, fsync on"),
            Storage::Durable { fsync: false } => f.write_str("durable, fsync off"),
        }
    }
}

/// `{"mode":"memory"}` or `{"mode":"durable","fsync":B}`.
impl Serialize for Storage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            Storage::Memory => map.serialize_entry("mode", "memory")?,
            Storage::Durable { fsync } => {
                map.serialize_entry("mode", "durable")?;
                map.serialize_entry("fsync", fsync)?;
            }
        }
        map.end()
    }
}

/// A store directory the harness made in the temp directory; removed, with
/// everything in it, when dropped.
#[derive(Debug)]
pub struct StoreDir {
    path: PathBuf,
}

/// What a store directory takes on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// Bytes allocated on disk: the sum of `st_blocks × 512` of its files.
    pub allocated_bytes: u64,
    /// The sum of the files' sizes (`st_size`; sparse or preallocated space
    /// makes it differ from what is allocated).
    pub apparent_bytes: u64,
    /// Regular files.
    pub files: u64,
}

impl StoreDir {
    /// Creates a new, empty directory `hub-bench-store-…` in the temp directory.
    pub fn create() -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "hub-bench-store-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path)
            .with_context(|| format!("creating the store directory {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the directory's files take on disk, subdirectories included.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut usage = DiskUsage::default();
        let mut pending = vec![self.path.clone()];
        while let Some(dir) = pending.pop() {
            let entries =
                std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
            for entry in entries {
                let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
                let meta = entry
                    .metadata()
                    .with_context(|| format!("reading {}", entry.path().display()))?;
                if meta.is_dir() {
                    pending.push(entry.path());
                } else if meta.is_file() {
                    usage.allocated_bytes += meta.blocks() * 512;
                    usage.apparent_bytes += meta.size();
                    usage.files += 1;
                }
            }
        }
        Ok(usage)
    }
}

impl Drop for StoreDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// How to stop a hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: the hub drains and shuts its store down cleanly.
    Term,
    /// SIGKILL: the process ends at once, as in a crash.
    Kill,
}

impl StopSignal {
    /// `SIGTERM` or `SIGKILL`.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Kill => "SIGKILL",
        }
    }
}

/// How a stopped hub ended.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The exit status, as text (`exit status: 0`, `signal: 9 (SIGKILL)`).
    pub status: String,
    /// The exit code, when it exited rather than was killed.
    pub code: Option<i32>,
    /// From sending the signal to the process's exit.
    pub took: Duration,
}

/// A hub process this harness started; killed when dropped (and its store
/// directory, if it has one the harness made, removed).
#[derive(Debug)]
pub struct HubProcess {
    child: Child,
    endpoint: Endpoint,
    log: PathBuf,
    storage: Storage,
    store: Option<StoreDir>,
    spawned: Instant,
}

impl HubProcess {
    /// Starts `bin` on a free loopback port and waits until it is healthy.
    ///
    /// The hub is configured through the environment: it listens on
    /// `127.0.0.1:PORT`, declares the room [`BENCH_ROOM`], allows 100,000 sockets,
    /// replays no snapshot to new subscribers, and logs warnings only (one log
    /// line per connect would otherwise be part of what is measured). Its log
    /// goes to a file in the temp directory. `storage` says where it keeps its
    /// rooms: nowhere (memory) or in a fresh store directory of its own.
    pub async fn start(bin: &Path, storage: Storage) -> Result<Self> {
        Self::start_with_env(bin, storage, &[]).await
    }

    /// Like [`HubProcess::start`], with more environment variables (set after,
    /// so they may override the harness's own), e.g. cluster settings.
    pub async fn start_with_env(
        bin: &Path,
        storage: Storage,
        env: &[(String, String)],
    ) -> Result<Self> {
        let mut hub = Self::spawn(bin, storage, None, env)?;
        hub.wait_healthy().await?;
        Ok(hub)
    }

    /// Starts `bin` like [`HubProcess::start_with_env`] without waiting for it.
    ///
    /// With durable `storage`, the hub uses `store` (e.g. the directory a
    /// stopped hub left, see [`HubProcess::take_store`]) or, when `None`, a
    /// fresh directory. Memory storage takes no directory.
    pub fn spawn(
        bin: &Path,
        storage: Storage,
        store: Option<StoreDir>,
        env: &[(String, String)],
    ) -> Result<Self> {
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
        let (store, storage_env) = match storage {
            Storage::Memory => {
                if store.is_some() {
                    bail!("a memory hub takes no store directory");
                }
                (None, vec![("HUB_STORAGE__PATH", String::new())])
            }
            Storage::Durable { fsync } => {
                let store = match store {
                    Some(store) => store,
                    None => StoreDir::create()?,
                };
                let path = store.path().display().to_string();
                let env = vec![
                    ("HUB_STORAGE__PATH", path),
                    ("HUB_STORAGE__FSYNC", fsync.to_string()),
                ];
                (Some(store), env)
            }
        };
        let spawned = Instant::now();
        let child = Command::new(bin)
            .env("HUB_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("HUB_WEBSOCKET__MAX_CONNECTIONS", "100000")
            .env("HUB_ROOMS__DECLARE", BENCH_ROOM)
            .env("HUB_ROOMS__SNAPSHOT", "0")
            .env("RUST_LOG", "warn")
            .envs(storage_env)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let endpoint = Endpoint::new(&format!("http://127.0.0.1:{port}"), Some(child.id()))?;
        Ok(Self {
            child,
            endpoint,
            log,
            storage,
            store,
            spawned,
        })
    }

    /// Where the hub listens, with its pid.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The file the hub's stdout and stderr go to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Where the hub keeps its rooms.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The hub's store directory (durable storage).
    pub fn store(&self) -> Option<&StoreDir> {
        self.store.as_ref()
    }

    /// Waits until `GET /readyz` answers 200 (in a cluster: connected to Redis).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        self.wait_ready_polling(timeout, Duration::from_millis(50))
            .await
            .map(drop)
    }

    /// Asks `GET /readyz` every `poll` until it answers 200; returns the time
    /// from the process's start to that answer.
    pub async fn wait_ready_polling(
        &mut self,
        timeout: Duration,
        poll: Duration,
    ) -> Result<Duration> {
        let http = HubHttp::new(&self.endpoint, 1)?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("checking the hub process")? {
                bail!("hub exited with {status}; see {}", self.log.display());
            }
            if http.ready().await {
                return Ok(self.spawned.elapsed());
            }
            tokio::time::sleep(poll).await;
        }
        bail!(
            "hub not ready (/readyz) after {timeout:?}; see {}",
            self.log.display()
        )
    }

    /// Sends `signal` and waits up to `timeout` for the process to exit.
    pub async fn stop(&mut self, signal: StopSignal, timeout: Duration) -> Result<Stopped> {
        if let Some(status) = self.child.try_wait().context("checking the hub process")? {
            bail!(
                "hub had already exited ({status}) before {}; see {}",
                signal.name(),
                self.log.display()
            );
        }
        let sent = Instant::now();
        match signal {
            StopSignal::Kill => self.child.kill().context("sending SIGKILL to the hub")?,
            StopSignal::Term => {
                let pid = libc::pid_t::try_from(self.child.id()).context("hub pid out of range")?;
                // SAFETY: kill(2) takes plain integers and touches no memory;
                // the pid is our own child, which has not been reaped yet.
                if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
                    let e = std::io::Error::last_os_error();
                    return Err(e).context("sending SIGTERM to the hub");
                }
            }
        }
        let deadline = sent + timeout;
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for the hub")? {
                return Ok(Stopped {
                    status: status.to_string(),
                    code: status.code(),
                    took: sent.elapsed(),
                });
            }
            if Instant::now() >= deadline {
                bail!(
                    "hub still running {timeout:?} after {}; see {}",
                    signal.name(),
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Takes the store directory of a hub that has exited (see
    /// [`HubProcess::stop`]), so that it outlives this process and another
    /// hub can be started on it.
    pub fn take_store(&mut self) -> Result<StoreDir> {
        if self.is_running() {
            bail!("the hub is still running: stop it before taking its store");
        }
        self.store.take().context("the hub has no store directory")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_reported_by_mode_and_fsync() {
        let json = |s: Storage| serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(json(Storage::Memory), r#"{"mode":"memory"}"#);
        assert_eq!(
            json(Storage::Durable { fsync: false }),
            r#"{"mode":"durable","fsync":false}"#
        );
        assert_eq!(
            Storage::Durable { fsync: true }.to_string(),
            "durable, fsync on"
        );
        assert!(!Storage::default().is_durable());
    }

    #[test]
    fn store_dir_counts_allocated_bytes_and_is_removed_when_dropped() {
        let dir = StoreDir::create().expect("store dir");
        let other = StoreDir::create().expect("second store dir");
        assert_ne!(dir.path(), other.path());
        assert_eq!(dir.disk_usage().ok(), Some(DiskUsage::default()));
        std::fs::create_dir(dir.path().join("sub")).expect("subdir");
        std::fs::write(dir.path().join("sub/f"), vec![1u8; 10_000]).expect("file");
        let usage = dir.disk_usage().expect("usage");
        assert_eq!((usage.files, usage.apparent_bytes), (1, 10_000));
        assert!(usage.allocated_bytes >= 10_000, "{usage:?}");
        let path = dir.path().to_owned();
        drop(dir);
        assert!(!path.exists());
    }
}
