//! The tables of the store file and what their rows mean.
//!
//! - `meta`: name → bytes. `format` (u64 LE, [`FORMAT_VERSION`]; read before
//!   any other table, so a newer layout is refused before it is misread),
//!   `fsync` and `clean` (one byte each: the settings and the close of the run
//!   that last opened the file), `boot_id` (the kernel boot that run was in).
//! - `rooms`: room → (epoch, head, suspect). `suspect`: the store could not
//!   vouch for the room's tail at open; cleared by its next `Epoch`.
//! - `events`: (room, seq) → frame. A room's events are exactly
//!   `first..=head` for some `first` (none at all is allowed), all of its epoch.
//! - `state`: (room, key) → (seq, frame): a keyed room's live keys, each
//!   with its latest event; written in the commit of that event, so state and
//!   head never disagree.
//! - `keys`: (room, expires_unix_ms, seq) → key: idempotency keys, oldest
//!   first within a room, so both expiry and the per-room cap take the front.

use redb::TableDefinition;

/// The layout this build writes and reads. A file with a higher number was
/// written by a newer hub and is refused, never guessed at.
pub(super) const FORMAT_VERSION: u64 = 1;

/// The database file inside `storage.path`.
pub(super) const DB_FILE: &str = "hub.redb";

/// The lock file inside `storage.path`: held (flock) while a hub uses it.
pub(super) const LOCK_FILE: &str = "LOCK";

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const ROOMS: TableDefinition<&str, (&str, u64, bool)> = TableDefinition::new("rooms");
pub(super) const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
pub(super) const STATE: TableDefinition<(&str, &str), (u64, &[u8])> = TableDefinition::new("state");
pub(super) const KEYS: TableDefinition<(&str, u64, u64), &str> = TableDefinition::new("keys");

pub(super) const META_FORMAT: &str = "format";
pub(super) const META_FSYNC: &str = "fsync";
pub(super) const META_CLEAN: &str = "clean";
pub(super) const META_BOOT_ID: &str = "boot_id";

/// `room` + NUL: no string lies strictly between `room` and it, so the range
/// `(room, ..)..(successor(room), ..)` holds exactly the rows of `room`.
pub(super) fn successor(room: &str) -> String {
    let mut next = String::with_capacity(room.len() + 1);
    next.push_str(room);
    next.push('\0');
    next
}

/// The id of the running kernel boot; empty where the kernel does not say
/// (then no earlier run counts as the same boot).
pub(super) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch, the clock idempotency keys expire by.
pub(super) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
