//! An event as the hub keeps it: its seq and its frame, encoded once and
//! shared by every history, mirror and subscriber queue that holds it.

use std::sync::Arc;

use bytestring::ByteString;

/// An event in history: its seq and its frame, serialized once and shared.
#[derive(Debug, Clone)]
pub struct Event {
    /// Position in the room's order.
    pub seq: u64,
    /// The encoded event frame.
    pub frame: ByteString,
    /// What a keyed publish does to its room's state (the frame says the
    /// same; this is what the mirrors apply).
    pub key: Option<KeyChange>,
}

impl Event {
    /// An event without a key.
    pub fn plain(seq: u64, frame: ByteString) -> Self {
        Event {
            seq,
            frame,
            key: None,
        }
    }
}

/// What a keyed event does to its room's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The key (1 to 256 bytes), shared by the event, the mirror and the
    /// engine's live keys.
    pub key: Arc<str>,
    /// The event removes the key; otherwise it becomes the key's latest event.
    pub delete: bool,
}
