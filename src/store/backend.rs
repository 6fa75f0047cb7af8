//! redb's file backend with the fsync made switchable.
//!
//! `storage.fsync = false` cannot use redb's `Durability::None`: such commits
//! stay in redb's own memory until a durable commit (a SIGKILL loses them, and
//! the pages they free are not reused, so the file grows). Instead every commit
//! is a full redb commit, written to the file (the kernel's page cache, which
//! survives a crash of the process), and only the `fsync` is skipped.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// The database file, syncing only while `sync` is set.
#[derive(Debug)]
pub(super) struct SwitchedSync {
    file: FileBackend,
    sync: Arc<AtomicBool>,
}

impl SwitchedSync {
    /// Opens (or creates) the file at `path`.
    pub(super) fn open(path: &Path, sync: Arc<AtomicBool>) -> io::Result<Self> {
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let file = FileBackend::new(file);
        Ok(SwitchedSync { file, sync })
    }
}

impl StorageBackend for SwitchedSync {
    fn len(&self) -> Result<u64, BackendError> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), BackendError> {
        match self.sync.load(Ordering::Acquire) {
            true => self.file.sync_data(),
            false => Ok(()),
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.file.write(offset, data)
    }

    fn close(&self) -> Result<(), BackendError> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}
