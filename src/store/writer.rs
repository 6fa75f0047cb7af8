//! The writer thread: opens the file, then commits what is submitted, one
//! transaction per batch of queued submissions.
//!
//! It keeps each room's state ([`RoomState`]) in memory, so an op is checked
//! without reading the file and an append costs one insert and (with a full
//! history) one delete. A batch's changes reach that view only once the batch
//! is committed; a failed batch leaves it as the file has it.
//!
//! A failed write may leave redb refusing further writes until reopened, so
//! after one the writer drops the database and reopens it (redb repairs the
//! file to its last commit) at the next batch, at most once per
//! [`REOPEN_EVERY`]; until then submissions fail at once with the failure.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{Builder, Database, ReadableDatabase, ReadableTable, Table};

use super::backend::SwitchedSync;
use super::load::{self, RoomState};
use super::schema::{
    boot_id, now_unix_ms, successor, DB_FILE, EVENTS, FORMAT_VERSION, KEYS, LOCK_FILE, META,
    META_BOOT_ID, META_CLEAN, META_FORMAT, META_FSYNC, ROOMS, STATE,
};
use super::{Done, Msg, RoomRecord, Shared, StoreError, StoreSettings, WriteOp};

/// redb's page cache. The hub keeps every room in memory itself; the store
/// reads only at open, so the cache serves the writes' B-tree paths.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Shortest pause between attempts to reopen the file after a failed write.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Opened {
    pub writer: Writer,
    pub rooms: Vec<RoomRecord>,
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    /// `storage.fsync`.
    fsync: bool,
    /// Whether the backend syncs now (forced on for the open and close marks).
    sync: Arc<AtomicBool>,
    /// `None` after a failed write, until reopened.
    db: Option<Database>,
    /// Why `db` is `None`, and when to try again.
    broken: Option<(StoreError, Instant)>,
    rooms: HashMap<String, RoomState>,
    /// The flock on `LOCK`, held while the writer lives.
    _lock: File,
}

impl Writer {
    pub(super) fn open(settings: &StoreSettings) -> Result<Opened, StoreError> {
        let dir = settings.path.as_path();
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let lock = take_lock(dir)?;
        let file = dir.join(DB_FILE);
        catch_unwind(AssertUnwindSafe(|| {
            Writer::open_locked(settings, &file, lock)
        }))
        .unwrap_or_else(|panic| {
            let detail = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("reading it panicked");
            Err(StoreError::corrupt(&file, detail))
        })
    }

    fn open_locked(
        settings: &StoreSettings,
        file: &Path,
        lock: File,
    ) -> Result<Opened, StoreError> {
        let dir = settings.path.as_path();
        let new_file = !file.exists();
        let sync = Arc::new(AtomicBool::new(true));
        let db = open_db(file, &sync)?;
        if new_file {
            // The file's directory entry must survive a power loss too.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::io(dir, e))?;
        }
        let redb = |e: redb::Error| StoreError::redb(file, e);
        let last = load::last_run(&db.begin_read().map_err(|e| redb(e.into()))?, file)?;
        let boot = boot_id();
        // Unsynced commits are lost only with the page cache, i.e. when the
        // machine went down: a crash of the process alone keeps them.
        let untrusted = last
            .as_ref()
            .is_some_and(|l| !l.fsync && !l.clean && (boot.is_empty() || l.boot_id != boot));
        let now = now_unix_ms();

        // Synced even with fsync off: a later power loss must find at least
        // this run's "not closed cleanly" mark, never an older clean one.
        let txn = db.begin_write().map_err(|e| redb(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| redb(e.into()))?;
            let format = FORMAT_VERSION.to_le_bytes();
            let records: [(&str, &[u8]); 4] = [
                (META_FORMAT, &format),
                (META_FSYNC, &[u8::from(settings.fsync)]),
                (META_CLEAN, &[0]),
                (META_BOOT_ID, boot.as_bytes()),
            ];
            for (name, value) in records {
                meta.insert(name, value).map_err(|e| redb(e.into()))?;
            }
            let mut keys = txn.open_table(KEYS).map_err(|e| redb(e.into()))?;
            keys.retain(|(_, expires, _), _| expires > now)
                .map_err(|e| redb(e.into()))?;
            txn.open_table(EVENTS).map_err(|e| redb(e.into()))?;
            txn.open_table(STATE).map_err(|e| redb(e.into()))?;
            let mut rooms = txn.open_table(ROOMS).map_err(|e| redb(e.into()))?;
            if untrusted {
                let all: Vec<(String, String, u64)> = rooms
                    .iter()
                    .map_err(|e| redb(e.into()))?
                    .map(|row| {
                        row.map(|(name, v)| {
                            let (epoch, head, _) = v.value();
                            (name.value().to_string(), epoch.to_string(), head)
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| redb(e.into()))?;
                for (name, epoch, head) in &all {
                    rooms
                        .insert(name.as_str(), (epoch.as_str(), *head, true))
                        .map_err(|e| redb(e.into()))?;
                }
            }
        }
        txn.commit().map_err(|e| redb(e.into()))?;
        sync.store(settings.fsync, Ordering::Release);

        let (rooms, states) =
            load::rooms(&db.begin_read().map_err(|e| redb(e.into()))?, file, now)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            file: file.to_path_buf(),
            failure: Mutex::new(None),
            last_commit_ns: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let writer = Writer {
            shared,
            fsync: settings.fsync,
            sync,
            db: Some(db),
            broken: None,
            rooms: states,
            _lock: lock,
        };
        Ok(Opened { writer, rooms })
    }

    pub(super) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Commits batch after batch until the handle closes the channel (its
    /// last message is a `Close`), then marks the store closed.
    pub(super) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut replies = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut batch = Vec::new();
            for msg in std::iter::once(first).chain(rx.try_iter()) {
                match msg {
                    Msg::Submit(ops, done) => batch.push((ops, done)),
                    Msg::Close(reply) => replies.push(reply),
                }
            }
            self.commit_batch(batch);
            if !replies.is_empty() {
                break;
            }
        }
        let result = self.finish();
        if let Err(e) = &result {
            log::error!("closing the store: {e}");
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }

    fn commit_batch(&mut self, batch: Vec<(Vec<WriteOp>, Done)>) {
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let outcome = self.write(&batch);
        let outcomes: Vec<Result<(), StoreError>> = match outcome {
            Ok((refusals, staged)) => {
                let took = started.elapsed();
                self.shared.last_commit_ns.store(
                    u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1),
                    Ordering::Release,
                );
                for (room, state) in staged {
                    match state {
                        Some(state) => self.rooms.insert(room, state),
                        None => self.rooms.remove(&room),
                    };
                }
                if self.shared.failure.lock().take().is_some() {
                    log::info!("store {}: writes work again", self.shared.dir.display());
                }
                refusals
                    .into_iter()
                    .map(|r| r.map_or(Ok(()), Err))
                    .collect()
            }
            Err(e) => {
                let first = self.shared.failure.lock().replace(e.to_string()).is_none();
                if first {
                    log::error!("store write failed: {e}");
                }
                if self.db.take().is_some() {
                    self.broken = Some((e.clone(), Instant::now() + REOPEN_EVERY));
                }
                batch.iter().map(|_| Err(e.clone())).collect()
            }
        };
        for ((_, done), result) in batch.into_iter().zip(outcomes) {
            if catch_unwind(AssertUnwindSafe(|| done(result))).is_err() {
                log::error!("a store submission's callback panicked");
            }
        }
    }

    /// Writes the batch in one transaction; per submission `Some(refusal)` or
    /// `None` (written), and the rooms it changed (`None`: dropped).
    #[allow(clippy::type_complexity)]
    fn write(
        &mut self,
        batch: &[(Vec<WriteOp>, Done)],
    ) -> Result<(Vec<Option<StoreError>>, HashMap<String, Option<RoomState>>), StoreError> {
        self.reopen_if_due()?;
        let file = self.shared.file.clone();
        let redb = |e: redb::Error| StoreError::redb(&file, e);
        let Some(db) = self.db.as_ref() else {
            return Err(StoreError::Closed {
                path: self.shared.dir.clone(),
            });
        };
        let now = now_unix_ms();
        let mut staged: HashMap<String, Option<RoomState>> = HashMap::new();
        let mut refusals = Vec::with_capacity(batch.len());
        let txn = db.begin_write().map_err(|e| redb(e.into()))?;
        {
            let mut tables = Tables {
                rooms: txn.open_table(ROOMS).map_err(|e| redb(e.into()))?,
                events: txn.open_table(EVENTS).map_err(|e| redb(e.into()))?,
                state: txn.open_table(STATE).map_err(|e| redb(e.into()))?,
                keys: txn.open_table(KEYS).map_err(|e| redb(e.into()))?,
            };
            for (ops, _) in batch {
                match check(ops, &staged, &self.rooms) {
                    Err(refusal) => refusals.push(Some(refusal)),
                    Ok(()) => {
                        for op in ops {
                            let state = staged
                                .entry(op_room(op).to_string())
                                .or_insert_with(|| self.rooms.get(op_room(op)).cloned());
                            tables.apply(op, state, now).map_err(|e| redb(e.into()))?;
                        }
                        refusals.push(None);
                    }
                }
            }
            for (room, state) in &staged {
                match state {
                    Some(s) => tables
                        .rooms
                        .insert(room.as_str(), (s.epoch.as_str(), s.head, s.suspect))
                        .map(drop),
                    None => tables.rooms.remove(room.as_str()).map(drop),
                }
                .map_err(|e| redb(e.into()))?;
            }
        }
        if staged.is_empty() {
            txn.abort().map_err(|e| redb(e.into()))?;
        } else {
            txn.commit().map_err(|e| redb(e.into()))?;
            self.shared.commits.fetch_add(1, Ordering::AcqRel);
        }
        Ok((refusals, staged))
    }

    /// After a failed write: reopens the file when the pause is over (else
    /// fails with what broke it) and reloads the rooms' state from it.
    fn reopen_if_due(&mut self) -> Result<(), StoreError> {
        let Some((broken, retry_at)) = &self.broken else {
            return Ok(());
        };
        if Instant::now() < *retry_at {
            return Err(broken.clone());
        }
        let file = self.shared.file.clone();
        let reopened = catch_unwind(AssertUnwindSafe(|| -> Result<_, StoreError> {
            let db = open_db(&file, &self.sync)?;
            let txn = db
                .begin_read()
                .map_err(|e| StoreError::redb(&file, redb::Error::from(e)))?;
            let states = load::states(&txn, &file)?;
            drop(txn);
            Ok((db, states))
        }))
        .unwrap_or_else(|_| Err(StoreError::corrupt(&file, "reopening it panicked")));
        match reopened {
            Ok((db, states)) => {
                self.db = Some(db);
                self.rooms = states;
                self.broken = None;
                Ok(())
            }
            Err(e) => {
                self.broken = Some((e.clone(), Instant::now() + REOPEN_EVERY));
                Err(e)
            }
        }
    }

    /// The clean-close mark, synced whatever `fsync` says, then the file and
    /// the lock are released.
    fn finish(&mut self) -> Result<(), StoreError> {
        if let Some((_, retry_at)) = &mut self.broken {
            *retry_at = Instant::now();
        }
        let file = self.shared.file.clone();
        let redb = |e: redb::Error| StoreError::redb(&file, e);
        let mark = self.reopen_if_due().and_then(|()| {
            let Some(db) = self.db.as_ref() else {
                return Ok(());
            };
            self.sync.store(true, Ordering::Release);
            let txn = db.begin_write().map_err(|e| redb(e.into()))?;
            txn.open_table(META)
                .map_err(|e| redb(e.into()))?
                .insert(META_CLEAN, [1u8].as_slice())
                .map_err(|e| redb(e.into()))?;
            txn.commit().map_err(|e| redb(e.into()))
        });
        let closed = match self.db.take() {
            Some(db) => db.close().map_err(|e| redb(e.into())),
            None => Ok(()),
        };
        self.sync.store(self.fsync, Ordering::Release);
        self.shared.closed.store(true, Ordering::Release);
        mark.and(closed)
    }
}

/// The tables a batch writes, open in its transaction.
struct Tables<'t> {
    rooms: Table<'t, &'static str, (&'static str, u64, bool)>,
    events: Table<'t, (&'static str, u64), &'static [u8]>,
    state: Table<'t, (&'static str, &'static str), (u64, &'static [u8])>,
    keys: Table<'t, (&'static str, u64, u64), &'static str>,
}

impl Tables<'_> {
    /// Applies one checked op; `state` is the room's, updated to match.
    fn apply(
        &mut self,
        op: &WriteOp,
        state: &mut Option<RoomState>,
        now_ms: u64,
    ) -> Result<(), redb::StorageError> {
        match op {
            WriteOp::Epoch { room, epoch, head } => {
                if let Some(old) = state.take() {
                    self.delete_room(room, &old)?;
                }
                *state = Some(RoomState {
                    epoch: epoch.clone(),
                    head: *head,
                    first: head.saturating_add(1),
                    keys: 0,
                    suspect: false,
                });
            }
            WriteOp::Append {
                room,
                seq,
                frame,
                keep,
                key,
                state: change,
                ..
            } => {
                // `check` saw the room; a missing state cannot happen.
                let Some(st) = state.as_mut() else {
                    return Ok(());
                };
                let keep = u64::try_from(*keep).unwrap_or(u64::MAX);
                if keep > 0 {
                    self.events
                        .insert((room.as_str(), *seq), frame.as_bytes().as_ref())?;
                }
                st.head = *seq;
                if let Some(change) = change {
                    let at = (room.as_str(), change.key.as_str());
                    if change.delete {
                        self.state.remove(at)?;
                    } else {
                        self.state.insert(at, (*seq, frame.as_bytes().as_ref()))?;
                    }
                }
                while st.first.saturating_add(keep) <= *seq {
                    self.events.remove((room.as_str(), st.first))?;
                    st.first += 1;
                }
                if let Some(k) = key {
                    let fresh = self
                        .keys
                        .insert((room.as_str(), k.expires_unix_ms, *seq), k.key.as_str())?
                        .is_none();
                    st.keys += u64::from(fresh);
                    self.trim_keys(room, st, now_ms, k.keep_keys)?;
                }
            }
            WriteOp::Drop { room } => {
                if let Some(old) = state.take() {
                    self.delete_room(room, &old)?;
                }
            }
        }
        Ok(())
    }

    fn delete_room(&mut self, room: &str, old: &RoomState) -> Result<(), redb::StorageError> {
        for seq in old.first..=old.head {
            self.events.remove((room, seq))?;
        }
        let next = successor(room);
        self.state
            .retain_in((room, "")..(next.as_str(), ""), |_, _| false)?;
        self.keys
            .retain_in((room, 0u64, 0u64)..(next.as_str(), 0u64, 0u64), |_, _| {
                false
            })
    }

    /// Deletes the room's expired keys, then its oldest beyond `keep_keys`.
    fn trim_keys(
        &mut self,
        room: &str,
        st: &mut RoomState,
        now_ms: u64,
        keep_keys: usize,
    ) -> Result<(), redb::StorageError> {
        let expired: Vec<(u64, u64)> = self
            .keys
            .range((room, 0u64, 0u64)..(room, now_ms.saturating_add(1), 0u64))?
            .map(|row| {
                row.map(|(k, _)| {
                    let (_, expires, seq) = k.value();
                    (expires, seq)
                })
            })
            .collect::<Result<_, _>>()?;
        for (expires, seq) in expired {
            self.keys.remove((room, expires, seq))?;
            st.keys = st.keys.saturating_sub(1);
        }
        let keep = u64::try_from(keep_keys.max(1)).unwrap_or(u64::MAX);
        let next = successor(room);
        while st.keys > keep {
            let oldest = self
                .keys
                .range((room, 0u64, 0u64)..(next.as_str(), 0u64, 0u64))?
                .next()
                .transpose()?
                .map(|(k, _)| {
                    let (_, expires, seq) = k.value();
                    (expires, seq)
                });
            let Some((expires, seq)) = oldest else {
                st.keys = 0;
                break;
            };
            self.keys.remove((room, expires, seq))?;
            st.keys -= 1;
        }
        Ok(())
    }
}

fn op_room(op: &WriteOp) -> &str {
    match op {
        WriteOp::Epoch { room, .. } | WriteOp::Append { room, .. } | WriteOp::Drop { room } => room,
    }
}

/// Whether every op of one submission fits the rooms' states as the ops
/// before it (in this batch and this submission) leave them.
fn check(
    ops: &[WriteOp],
    staged: &HashMap<String, Option<RoomState>>,
    rooms: &HashMap<String, RoomState>,
) -> Result<(), StoreError> {
    // (epoch, head, suspect) of the rooms this submission changed.
    let mut local: HashMap<&str, Option<(&str, u64, bool)>> = HashMap::new();
    for op in ops {
        let room = op_room(op);
        let refuse = |detail: String| StoreError::Refused {
            room: room.to_string(),
            detail,
        };
        match op {
            WriteOp::Epoch { epoch, head, .. } => {
                if epoch.is_empty() {
                    return Err(refuse("an empty epoch".into()));
                }
                local.insert(room, Some((epoch.as_str(), *head, false)));
            }
            WriteOp::Append { epoch, seq, .. } => {
                let current = match local.get(room) {
                    Some(s) => *s,
                    None => staged
                        .get(room)
                        .map(|s| s.as_ref())
                        .unwrap_or_else(|| rooms.get(room))
                        .map(|s| (s.epoch.as_str(), s.head, s.suspect)),
                };
                let Some((current_epoch, head, suspect)) = current else {
                    return Err(refuse("no such room (an Epoch op creates it)".into()));
                };
                if suspect {
                    return Err(refuse("it needs a new epoch first".into()));
                }
                if current_epoch != epoch {
                    return Err(refuse(format!(
                        "epoch {epoch} is not the room's {current_epoch}"
                    )));
                }
                if head.checked_add(1) != Some(*seq) {
                    return Err(refuse(format!("seq {seq} does not follow head {head}")));
                }
                local.insert(room, Some((epoch.as_str(), *seq, false)));
            }
            WriteOp::Drop { .. } => {
                local.insert(room, None);
            }
        }
    }
    Ok(())
}

fn open_db(file: &Path, sync: &Arc<AtomicBool>) -> Result<Database, StoreError> {
    let backend = SwitchedSync::open(file, sync.clone()).map_err(|e| StoreError::io(file, e))?;
    Builder::new()
        .set_cache_size(CACHE_BYTES)
        // Verifies every page's checksum: a file damaged since its last clean
        // close is refused (or rolled back to its last intact commit), never
        // read as if it were whole.
        .set_check_integrity_on_open(true)
        .create_with_backend(backend)
        .map_err(|e| StoreError::redb(file, e))
}

/// Takes the flock on `dir/LOCK` (released when the file is closed, also by
/// a crash) and writes this process's id into it, for the operator.
fn take_lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StoreError::Locked {
                path: dir.to_path_buf(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(|e| StoreError::io(&path, e))?;
    Ok(file)
}
