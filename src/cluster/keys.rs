//! Every Redis key and channel the cluster uses, in one place (docs/CLUSTER.md
//! lists them). A room's keys share a hash tag, so a sharded Redis would
//! keep them on one slot for the publish script.

/// Key and channel names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix` (`cluster.key_prefix`).
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// Hash `{epoch, seq}`: the room's order.
    pub fn room_meta(&self, room: &str) -> String {
        format!("{}:room:{{{room}}}:meta", self.prefix)
    }

    /// Stream of the room's last `history` event frames, entry id = `seq-0`.
    pub fn room_log(&self, room: &str) -> String {
        format!("{}:room:{{{room}}}:log", self.prefix)
    }

    /// Hash of a keyed room's state: field = state key, value = `SEQ FRAME`
    /// of the key's latest event.
    pub fn room_state(&self, room: &str) -> String {
        format!("{}:room:{{{room}}}:state", self.prefix)
    }

    /// String `EPOCH SEQ`: where the publish with this idempotency key landed.
    pub fn room_idempotency(&self, room: &str, key: &str) -> String {
        format!("{}:room:{{{room}}}:idem:{key}", self.prefix)
    }

    /// Hash of one node's share of a presence room (`cluster::presence`);
    /// expires 3 heartbeats after the node last pushed it back.
    pub fn presence_share(&self, room: &str, node: &str) -> String {
        format!("{}:room:{{{room}}}:presence:{node}", self.prefix)
    }

    /// Set of the nodes that may hold a share of a presence room.
    pub fn presence_nodes(&self, room: &str) -> String {
        format!("{}:room:{{{room}}}:presence", self.prefix)
    }

    /// Pub/sub channel carrying every node's presence writes.
    pub fn presence_channel(&self) -> String {
        format!("{}:presence", self.prefix)
    }

    /// Pub/sub channel carrying every room event to every node.
    pub fn events_channel(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// Pub/sub channel for requests every node answers (user events, disconnects).
    pub fn control_channel(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// Pub/sub channel where one node collects the answers to its requests.
    pub fn reply_channel(&self, node: &str) -> String {
        format!("{}:reply:{node}", self.prefix)
    }

    /// String with one node's counters; expires after 3 heartbeats.
    pub fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// Set of node ids that may have a record (pruned when the record is gone).
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// Hash node id → Redis time (ms) of its last heartbeat: the nodes the
    /// failover fence waits for (`cluster::fence`).
    pub fn beats(&self) -> String {
        format!("{}:beats", self.prefix)
    }

    /// Set of the nodes that caught up every room they mirror at the primary
    /// whose replication id is `replid` (`cluster::fence`).
    pub fn caught_up(&self, replid: &str) -> String {
        format!("{}:caughtup:{replid}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_keys_share_a_hash_tag() {
        let k = Keys::new("hub");
        assert_eq!(k.room_meta("a.b"), "hub:room:{a.b}:meta");
        assert_eq!(k.room_log("a.b"), "hub:room:{a.b}:log");
        assert_eq!(k.room_state("a.b"), "hub:room:{a.b}:state");
        assert_eq!(k.node("n1"), "hub:node:n1");
    }
}
