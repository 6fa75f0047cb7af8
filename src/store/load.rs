//! Reading the store back: the last run's marks, and every room, checked
//! against the invariants the writer keeps, so a damaged file is refused
//! rather than served.

use std::collections::HashMap;
use std::path::Path;

use bytestring::ByteString;
use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError};

use super::schema::{
    EVENTS, FORMAT_VERSION, KEYS, META, META_BOOT_ID, META_CLEAN, META_FORMAT, META_FSYNC, ROOMS,
    STATE,
};
use super::{KeyRecord, RoomRecord, StateRecord, StoreError};

/// What the writer needs to know of a room to check and apply ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RoomState {
    pub epoch: String,
    pub head: u64,
    /// The lowest stored seq; `head + 1` when none is stored.
    pub first: u64,
    /// Keys stored (expired ones included until they are deleted).
    pub keys: u64,
    pub suspect: bool,
}

/// How the run that last opened the store ran and ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LastRun {
    pub fsync: bool,
    pub clean: bool,
    pub boot_id: String,
}

/// The last run's marks, after checking the format; `None` for a file that
/// holds no table at all (a new store).
pub(super) fn last_run(txn: &ReadTransaction, file: &Path) -> Result<Option<LastRun>, StoreError> {
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => {
            let tables = txn
                .list_tables()
                .map_err(|e| StoreError::redb(file, e))?
                .count();
            return match tables {
                0 => Ok(None),
                _ => Err(StoreError::corrupt(file, "no format record")),
            };
        }
        Err(e) => return Err(StoreError::redb(file, e)),
    };
    let get = |name: &str| -> Result<Option<Vec<u8>>, StoreError> {
        Ok(meta
            .get(name)
            .map_err(|e| StoreError::redb(file, e))?
            .map(|v| v.value().to_vec()))
    };
    let format = get(META_FORMAT)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| StoreError::corrupt(file, "no format record"))?;
    if format > FORMAT_VERSION {
        return Err(StoreError::NewerVersion {
            path: file.to_path_buf(),
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    if format == 0 {
        return Err(StoreError::corrupt(file, "format record 0"));
    }
    let flag = |name: &str| -> Result<bool, StoreError> {
        match get(name)?.as_deref() {
            Some([0]) => Ok(false),
            Some([1]) => Ok(true),
            _ => Err(StoreError::corrupt(file, format!("bad `{name}` record"))),
        }
    };
    let boot_id = get(META_BOOT_ID)?
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or_else(|| StoreError::corrupt(file, "bad `boot_id` record"))?;
    Ok(Some(LastRun {
        fsync: flag(META_FSYNC)?,
        clean: flag(META_CLEAN)?,
        boot_id,
    }))
}

/// Every room, with its events and the keys not expired at `now_ms`, and the
/// writer's view of each.
pub(super) fn rooms(
    txn: &ReadTransaction,
    file: &Path,
    now_ms: u64,
) -> Result<(Vec<RoomRecord>, HashMap<String, RoomState>), StoreError> {
    let corrupt = |detail: String| StoreError::corrupt(file, detail);
    let redb = |e: redb::StorageError| StoreError::redb(file, e);

    let mut records: Vec<RoomRecord> = Vec::new();
    let mut states: HashMap<String, RoomState> = HashMap::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    if let Some(rooms) = open(txn, ROOMS, file)? {
        for row in rooms.iter().map_err(redb)? {
            let (name, value) = row.map_err(redb)?;
            let name = name.value().to_string();
            let (epoch, head, suspect) = value.value();
            if epoch.is_empty() {
                return Err(corrupt(format!("room {name} has an empty epoch")));
            }
            index.insert(name.clone(), records.len());
            states.insert(
                name.clone(),
                RoomState {
                    epoch: epoch.to_string(),
                    head,
                    first: head.saturating_add(1),
                    keys: 0,
                    suspect,
                },
            );
            records.push(RoomRecord {
                name,
                epoch: epoch.to_string(),
                head,
                events: Vec::new(),
                keys: Vec::new(),
                state: Vec::new(),
                needs_new_epoch: suspect,
            });
        }
    }

    if let Some(events) = open(txn, EVENTS, file)? {
        for row in events.iter().map_err(redb)? {
            let (key, frame) = row.map_err(redb)?;
            let (room, seq) = key.value();
            let Some(&i) = index.get(room) else {
                return Err(corrupt(format!("events of unknown room {room}")));
            };
            let record = &mut records[i];
            let expected = record.events.last().map(|(s, _)| s + 1);
            if seq == 0 || seq > record.head || expected.is_some_and(|e| e != seq) {
                return Err(corrupt(format!(
                    "room {room}: event {seq} out of order (head {})",
                    record.head
                )));
            }
            let frame = ByteString::try_from(frame.value().to_vec())
                .map_err(|_| corrupt(format!("room {room}: event {seq} is not UTF-8")))?;
            record.events.push((seq, frame));
        }
    }
    for record in &records {
        if let Some(&(last, _)) = record.events.last() {
            if last != record.head {
                return Err(corrupt(format!(
                    "room {}: last event {last} is not the head {}",
                    record.name, record.head
                )));
            }
            if let (Some(state), Some(&(first, _))) =
                (states.get_mut(&record.name), record.events.first())
            {
                state.first = first;
            }
        }
    }

    if let Some(state) = open(txn, STATE, file)? {
        for row in state.iter().map_err(redb)? {
            let (at, value) = row.map_err(redb)?;
            let (room, key) = at.value();
            let (seq, frame) = value.value();
            let Some(&i) = index.get(room) else {
                return Err(corrupt(format!("state of unknown room {room}")));
            };
            let record = &mut records[i];
            if seq == 0 || seq > record.head {
                return Err(corrupt(format!(
                    "room {room}: state key at seq {seq} beyond head {}",
                    record.head
                )));
            }
            let frame = ByteString::try_from(frame.to_vec())
                .map_err(|_| corrupt(format!("room {room}: state frame {seq} is not UTF-8")))?;
            record.state.push(StateRecord {
                key: key.to_string(),
                seq,
                frame,
            });
        }
        for record in &mut records {
            record.state.sort_by_key(|s| s.seq);
            if record.state.windows(2).any(|w| w[0].seq == w[1].seq) {
                return Err(corrupt(format!(
                    "room {}: two state keys at one seq",
                    record.name
                )));
            }
        }
    }

    if let Some(keys) = open(txn, KEYS, file)? {
        for row in keys.iter().map_err(redb)? {
            let (at, key) = row.map_err(redb)?;
            let (room, expires_unix_ms, seq) = at.value();
            let key = key.value();
            let (Some(&i), Some(state)) = (index.get(room), states.get_mut(room)) else {
                return Err(corrupt(format!("keys of unknown room {room}")));
            };
            let record = &mut records[i];
            if seq == 0 || seq > record.head {
                return Err(corrupt(format!(
                    "room {room}: key for seq {seq} beyond head {}",
                    record.head
                )));
            }
            state.keys += 1;
            if expires_unix_ms > now_ms {
                record.keys.push(KeyRecord {
                    key: key.to_string(),
                    epoch: record.epoch.clone(),
                    seq,
                    expires_unix_ms,
                });
            }
        }
    }
    Ok((records, states))
}

/// A table, or `None` when it was never created.
fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
    file: &Path,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(StoreError::redb(file, e)),
    }
}

/// The writer's view of every room, without loading events: after a failed
/// write, when the file may hold more or less than the writer thought.
pub(super) fn states(
    txn: &ReadTransaction,
    file: &Path,
) -> Result<HashMap<String, RoomState>, StoreError> {
    let redb = |e: redb::StorageError| StoreError::redb(file, e);
    let mut states = HashMap::new();
    let (Some(rooms), Some(events), Some(keys)) = (
        open(txn, ROOMS, file)?,
        open(txn, EVENTS, file)?,
        open(txn, KEYS, file)?,
    ) else {
        return Ok(states);
    };
    for row in rooms.iter().map_err(redb)? {
        let (name, value) = row.map_err(redb)?;
        let name = name.value();
        let (epoch, head, suspect) = value.value();
        let first = events
            .range((name, 0u64)..=(name, u64::MAX))
            .map_err(redb)?
            .next()
            .transpose()
            .map_err(redb)?
            .map_or(head.saturating_add(1), |(k, _)| k.value().1);
        let next = super::schema::successor(name);
        let stored_keys = keys
            .range((name, 0u64, 0u64)..(next.as_str(), 0u64, 0u64))
            .map_err(redb)?
            .count();
        states.insert(
            name.to_string(),
            RoomState {
                epoch: epoch.to_string(),
                head,
                first,
                keys: u64::try_from(stored_keys).unwrap_or(u64::MAX),
                suspect,
            },
        );
    }
    Ok(states)
}
