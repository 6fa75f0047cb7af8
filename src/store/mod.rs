//! The durable store of a single node (contract section 10): every room's
//! epoch, head, last events, keyed state and idempotency keys, in one redb file under
//! `storage.path`, written by one thread with group commit.
//!
//! The store is a component, not an engine: it never assigns a seq or decides
//! an epoch. The engine [`open`](Store::open)s it once (getting back every
//! room), then [`submit`](Store::submit)s what changed and answers publishers
//! from the `done` callback, which runs once the change is on disk.
//!
//! Why redb and not a log of our own or an LSM tree: docs/ARCHITECTURE.md,
//! "Durable store". What each `fsync` setting risks, backup and sizing:
//! docs/OPERATIONS.md.
//!
//! Invariants the store keeps whatever it is sent (an op that would break one
//! is refused with [`StoreError::Refused`], the others of its submission with
//! it): a room's events are the contiguous seqs ending at its head, all of its
//! epoch; a room holds at most `keep` events and `keep_keys` keys after an
//! append; a room marked [`RoomRecord::needs_new_epoch`] takes no append until
//! it gets a new epoch.

mod backend;
mod load;
mod schema;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytestring::ByteString;
use parking_lot::Mutex;

/// Where the store lives and whether commits are synced (`[storage]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The directory; created when missing.
    pub path: PathBuf,
    /// Sync every commit to disk before `done` is called.
    pub fsync: bool,
}

/// One room as the store holds it, handed back by [`Store::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    /// The room's name.
    pub name: String,
    pub epoch: String,
    /// The seq of its last event (0: none in this epoch).
    pub head: u64,
    /// Its newest events, `(seq, encoded event frame)`, oldest first; the seqs
    /// are contiguous and the last is `head` (or there are none).
    pub events: Vec<(u64, ByteString)>,
    /// Its idempotency keys that had not expired at open, oldest first.
    pub keys: Vec<KeyRecord>,
    /// A keyed room's state: the latest event of each live key, in seq order
    /// (empty for other rooms).
    pub state: Vec<StateRecord>,
    /// The store cannot vouch for this room's tail (the last run did not sync
    /// and the machine restarted since): give it a new epoch before anything
    /// else; until then appends to it are refused.
    pub needs_new_epoch: bool,
}

/// One live key of a keyed room's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    /// The state key.
    pub key: String,
    /// The seq of its latest event.
    pub seq: u64,
    /// That event's encoded frame.
    pub frame: ByteString,
}

/// What a keyed [`WriteOp::Append`] does to its room's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The state key.
    pub key: String,
    /// The event removes the key; otherwise it becomes the key's latest.
    pub delete: bool,
}

/// A remembered idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The `Idempotency-Key`.
    pub key: String,
    /// The epoch its publish landed in (the room's: an epoch change drops keys).
    pub epoch: String,
    /// The seq its publish got.
    pub seq: u64,
    /// When it is forgotten, in milliseconds since the Unix epoch.
    pub expires_unix_ms: u64,
}

/// The idempotency key an [`WriteOp::Append`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The `Idempotency-Key`.
    pub key: String,
    /// When it is forgotten, in milliseconds since the Unix epoch.
    pub expires_unix_ms: u64,
    /// Keys the room keeps at most (`rooms.idempotency_keys_per_room`): its
    /// oldest go first, expired ones before that.
    pub keep_keys: usize,
}

/// One change to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// A room's (new) epoch and head (0 for a new epoch): creates the room, or
    /// replaces its epoch, dropping its old events and keys.
    Epoch {
        room: String,
        /// Its epoch from now on.
        epoch: String,
        /// Its head from now on.
        head: u64,
    },
    /// One event: `seq` must be the room's head + 1 in `epoch`. The room keeps
    /// its newest `keep` events (older ones are deleted in the same commit).
    Append {
        room: String,
        /// The room's current epoch.
        epoch: String,
        /// The event's seq.
        seq: u64,
        /// The encoded event frame, as subscribers get it.
        frame: ByteString,
        /// Events the room keeps (`history`); 0 keeps only the head.
        keep: usize,
        /// The publish's idempotency key, if it had one.
        key: Option<NewKey>,
        /// A keyed publish's change to the state, in the same commit.
        state: Option<StateChange>,
    },
    /// The room left (an evicted dynamic room): everything of it is deleted.
    Drop { room: String },
}

/// Called once a submission is committed (and synced with `fsync`), or with
/// why it was not; on the writer thread, so it must not block.
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Why the store cannot be opened, or a write did not happen. Every variant
/// but [`Refused`](StoreError::Refused) and [`Closed`](StoreError::Closed)
/// names the path in its message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another process (another hub) holds the store.
    #[error("store {} is in use by another running hub (lock on {})", .path.display(), .path.join(schema::LOCK_FILE).display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The file is not a store, or is damaged beyond a torn tail.
    #[error("store {} is damaged or not a realtime-hub store: {detail}", .path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Reading or writing failed (permissions, disk full, I/O error).
    #[error("store {}: {source}", .path.display())]
    Io {
        /// The store directory or file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: Arc<io::Error>,
    },
    /// The file was written by a newer version of the hub.
    #[error("store {} has format {found}, newer than the {supported} this hub reads", .path.display())]
    NewerVersion {
        /// The store file.
        path: PathBuf,
        /// The format found.
        found: u64,
        /// The newest format this build reads.
        supported: u64,
    },
    /// An op that does not fit the room's state (a seq that is not head + 1,
    /// another epoch, a room that needs a new epoch): its submission was not
    /// written. An engine bug, or an engine going on after a failed write.
    #[error("store refused a write to room {room}: {detail}")]
    Refused {
        room: String,
        /// What did not fit.
        detail: String,
    },
    /// The store was closed before the submission.
    #[error("store {} is closed", .path.display())]
    Closed {
        /// The store directory.
        path: PathBuf,
    },
}

impl StoreError {
    fn io(path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    fn corrupt(path: &Path, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    /// Maps a redb error about the file at `path`.
    fn redb(path: &Path, err: impl Into<redb::Error>) -> Self {
        match err.into() {
            // redb's answer to a file that does not start like one of its own.
            // A file cut short reads past its end: damage, not an I/O fault.
            redb::Error::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) =>
            {
                StoreError::corrupt(path, e.to_string())
            }
            redb::Error::Io(e) => StoreError::io(path, e),
            redb::Error::Corrupted(detail) => StoreError::corrupt(path, detail),
            redb::Error::UpgradeRequired(v) => {
                StoreError::corrupt(path, format!("written in redb's old file format {v}"))
            }
            e @ (redb::Error::TableTypeMismatch { .. }
            | redb::Error::TableIsMultimap(_)
            | redb::Error::TableIsNotMultimap(_)
            | redb::Error::TypeDefinitionChanged { .. }) => {
                StoreError::corrupt(path, e.to_string())
            }
            redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
                StoreError::Locked {
                    path: path.parent().unwrap_or(path).to_path_buf(),
                }
            }
            other => StoreError::io(path, io::Error::other(other.to_string())),
        }
    }
}

/// What the writer thread and the handles share.
#[derive(Debug)]
struct Shared {
    /// The store directory.
    dir: PathBuf,
    /// The database file.
    file: PathBuf,
    /// The last write failure, until a commit succeeds.
    failure: Mutex<Option<String>>,
    /// Nanoseconds the last commit took (0: none yet).
    last_commit_ns: AtomicU64,
    /// Transactions committed since open.
    commits: AtomicU64,
    /// The writer thread has ended.
    closed: AtomicBool,
}

enum Msg {
    Submit(Vec<WriteOp>, Done),
    Close(mpsc::SyncSender<Result<(), StoreError>>),
}

/// A handle on the open store; clones share it. The store closes (cleanly:
/// what was submitted is committed, then a clean-close mark) with
/// [`close`](Store::close) or when the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// Taken by `close` (under the lock, so its `Close` is the last message).
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.shared.dir)
            .finish()
    }
}

impl Store {
    /// Opens the store at `settings.path` (creating the directory if
    /// missing), locks it against a second hub, loads every room (keys
    /// expired by now left out) and starts the writer thread.
    pub fn open(settings: &StoreSettings) -> Result<(Store, Vec<RoomRecord>), StoreError> {
        let opened = writer::Writer::open(settings)?;
        let shared = opened.writer.shared();
        let (tx, rx) = mpsc::channel();
        let writer = opened.writer;
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::io(&settings.path, e))?;
        let store = Store {
            inner: Arc::new(Inner {
                tx: Mutex::new(Some(tx)),
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        };
        Ok((store, opened.rooms))
    }

    /// Queues `ops` for the writer thread; they are committed together, in one
    /// transaction with whatever else is queued by then (group commit: one
    /// commit and one sync per batch, however many submissions it holds).
    /// `done` is called on the writer thread once they are committed (and
    /// synced with `fsync`), or with why not; callbacks run in submission
    /// order. After [`close`](Store::close), `done` gets
    /// [`StoreError::Closed`] at once, on the caller's thread.
    pub fn submit(&self, ops: Vec<WriteOp>, done: Done) {
        let refused = {
            let tx = self.inner.tx.lock();
            match tx.as_ref() {
                Some(tx) => tx.send(Msg::Submit(ops, done)).err().map(|e| e.0),
                None => Some(Msg::Submit(ops, done)),
            }
        };
        if let Some(Msg::Submit(_, done)) = refused {
            done(Err(StoreError::Closed {
                path: self.inner.shared.dir.clone(),
            }));
        }
    }

    /// Ok, or the last write failure (cleared by the next successful commit),
    /// naming the store: for `/readyz`.
    pub fn health(&self) -> Result<(), String> {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(format!("store {} is closed", shared.dir.display()));
        }
        match shared.failure.lock().as_ref() {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    /// Bytes the store file takes on disk (allocated blocks, not its apparent
    /// length: redb grows the file sparsely).
    pub fn size_bytes(&self) -> u64 {
        file_disk_bytes(&self.inner.shared.file)
    }

    /// How long the last commit took (write and sync), if there was one.
    pub fn last_commit_latency(&self) -> Option<Duration> {
        match self.inner.shared.last_commit_ns.load(Ordering::Acquire) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Transactions committed since the store was opened (one per batch of
    /// submissions that changed anything).
    pub fn commits(&self) -> u64 {
        self.inner.shared.commits.load(Ordering::Acquire)
    }

    /// Commits everything submitted before, marks the store cleanly closed
    /// (synced even with `fsync = false`, so the next start trusts every
    /// room), releases the lock and ends the writer thread. Other handles'
    /// later submissions fail with [`StoreError::Closed`].
    pub fn close(&self) -> Result<(), StoreError> {
        let result = self.inner.close();
        self.inner.join();
        result
    }
}

impl Inner {
    /// Sends the writer its last message and waits for its answer.
    fn close(&self) -> Result<(), StoreError> {
        let closed = StoreError::Closed {
            path: self.shared.dir.clone(),
        };
        let Some(tx) = self.tx.lock().take() else {
            return Err(closed);
        };
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        match tx.send(Msg::Close(reply_tx)) {
            Ok(()) => reply_rx.recv().unwrap_or(Err(closed)),
            Err(_) => Err(closed),
        }
    }

    fn join(&self) {
        if let Some(thread) = self.thread.lock().take() {
            if thread.join().is_err() {
                log::error!("store writer thread panicked");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer logs a failed close itself; a second close is `Closed`.
        let _ = self.close();
        self.join();
    }
}

/// Allocated bytes of `file` (0 when it cannot be read).
fn file_disk_bytes(file: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(file).map_or(0, |m| m.blocks() * 512)
}
