//! Who is connected (contract section 6): the `/socket-status` body, the
//! `$status` room's updates, the room list — and the caching that keeps these
//! O(rooms) answers from costing the registry once per reader.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Context, Message};
use actix_web::web::Bytes;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use super::handle::Handles;
use super::RegistryActor;
use crate::outbound::Outbound;
use crate::protocol::{encode, timestamp_now, StatusFrame, STATUS_ROOM, STATUS_UPDATE};

/// The `/socket-status` body, encoded (shared, cached).
#[derive(Message)]
#[rtype(result = "Bytes")]
pub struct GetStatus;

/// The room list, encoded as the `/api/rooms` body (cached like the status).
#[derive(Message)]
#[rtype(result = "Bytes")]
pub struct ListRooms;

/// One room, for `GET /api/rooms`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoomInfo {
    /// The room's name.
    pub room: String,
    /// Subscribers (on every node, in a cluster).
    pub subscribers: usize,
    /// The room's epoch: a new one means its seqs started again.
    pub epoch: String,
    /// Head seq.
    pub seq: u64,
    /// Events held in history.
    pub history: usize,
}

/// Dynamic rooms listed in a status by name (the busiest); the rest are
/// counted in `rooms_omitted`.
pub const MAX_LISTED_DYNAMIC: usize = 1000;

/// O(rooms) answers (the status, the room list) rebuilt at most this many
/// times a second each; readers in between share the last build.
pub const REBUILDS_PER_S: u32 = 20;

/// A cached answer older than this is rebuilt even if no count changed, so
/// `timestamp` and `uptime_s` keep moving.
pub const MAX_STALENESS: Duration = Duration::from_secs(1);

/// The status as last built: the HTTP body and the `$status` frame, each
/// encoded once and shared by every reader until the next build.
#[derive(Debug)]
pub struct StatusSnapshot {
    /// The registry's change counter when it was built.
    pub version: u64,
    /// When it was built.
    pub built: Instant,
    /// Fingerprint of its counts, compared with each `$status` subscriber's.
    pub fingerprint: u64,
    /// The `/socket-status` body.
    pub body: actix_web::web::Bytes,
    /// The `status_update` frame.
    pub frame: ByteString,
}

/// A `$status` follower and the counts it last saw, so it gets an update
/// exactly when its own view is out of date — also if it joined between two
/// broadcasts.
pub(super) struct StatusSubscriber {
    /// Where its updates go.
    pub(super) queue: crate::outbound::OutboundQueue,
    /// Fingerprint of the counts it last received.
    pub(super) seen: u64,
}

/// A budget of [`REBUILDS_PER_S`] rebuilds per one-second window.
#[derive(Debug)]
pub struct RebuildBudget {
    window: Instant,
    used: u32,
}

impl Default for RebuildBudget {
    fn default() -> Self {
        RebuildBudget {
            window: Instant::now(),
            used: 0,
        }
    }
}

impl RebuildBudget {
    /// Takes one rebuild if the current window has one left.
    pub fn take(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.used = 0;
        }
        if self.used >= REBUILDS_PER_S {
            return false;
        }
        self.used += 1;
        true
    }
}

/// The counts part of the status: what changes trigger a `status_update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusCounts {
    /// False while draining.
    pub active: bool,
    /// Sockets on this node.
    pub total_sockets: usize,
    /// Sockets per type (`connect`, room names of `/ws/{room}`).
    pub sockets_by_type: BTreeMap<String, usize>,
    /// Subscribers per room: declared rooms, `$status`, and the busiest
    /// [`MAX_LISTED_DYNAMIC`] dynamic rooms.
    pub rooms: BTreeMap<String, usize>,
    /// Dynamic rooms left out of `rooms` (an extension; absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rooms_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl StatusCounts {
    /// Adds another node's counts to these (cluster-wide totals).
    pub fn add(&mut self, other: &StatusCounts) {
        self.total_sockets += other.total_sockets;
        self.rooms_omitted += other.rooms_omitted;
        for (k, n) in &other.sockets_by_type {
            *self.sockets_by_type.entry(k.clone()).or_insert(0) += n;
        }
        for (k, n) in &other.rooms {
            *self.rooms.entry(k.clone()).or_insert(0) += n;
        }
    }

    /// A 64-bit fingerprint, so each `$status` subscriber's last view costs a
    /// word rather than a copy of the maps.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// `GET /socket-status` (contract section 6).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// The counts, flattened into the body.
    #[serde(flatten)]
    pub counts: StatusCounts,
    /// When the status was taken (RFC 3339).
    pub timestamp: String,
    /// Socket type to WebSocket path.
    pub ws_endpoints: BTreeMap<String, String>,
    /// This node's id.
    pub node: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// In a cluster: every live node's own counts, by node id (this one included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, NodeRecord>>,
}

/// One node's own counts, as it publishes them in a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeRecord {
    /// The node's counts.
    #[serde(flatten)]
    pub counts: StatusCounts,
    /// The node's uptime.
    pub uptime_s: u64,
    /// The node process's instance tag (the prefix of its session ids): two
    /// processes with the same node id are a misconfiguration, seen by this.
    #[serde(default)]
    pub instance: String,
}

impl Handles<GetStatus> for RegistryActor {
    fn on(&mut self, _: GetStatus, _: &mut Context<RegistryActor>) -> Bytes {
        self.status_snapshot().body.clone()
    }
}

impl Handles<ListRooms> for RegistryActor {
    fn on(&mut self, _: ListRooms, _: &mut Context<RegistryActor>) -> Bytes {
        let now = Instant::now();
        if let Some((version, built, body)) = &self.rooms_cache {
            let current = *version == self.changes && now.duration_since(*built) < MAX_STALENESS;
            if current || !self.rebuilds.1.take(now) {
                return body.clone();
            }
        }
        let body: Bytes = serde_json::to_vec(&self.room_list())
            .unwrap_or_default()
            .into();
        self.rooms_cache = Some((self.changes, now, body.clone()));
        body
    }
}

impl RegistryActor {
    /// This node's counts.
    fn counts(&self) -> StatusCounts {
        let mut sockets_by_type: BTreeMap<String, usize> = self
            .ws_endpoints
            .keys()
            .filter(|k| k.as_str() != "echo")
            .map(|k| (k.clone(), 0))
            .collect();
        for (kind, n) in &self.by_type {
            sockets_by_type.insert(kind.to_string(), *n);
        }
        let mut rooms: BTreeMap<String, usize> = self
            .config
            .rooms
            .declare
            .iter()
            .map(|d| (d.name.clone(), 0))
            .collect();
        // Dynamic rooms are listed busiest first up to a bound, so the body
        // (and every `$status` frame) stays small however many rooms exist.
        let mut dynamic = Vec::new();
        for r in self.rooms.values() {
            if r.dynamic {
                dynamic.push((r.subscriber_count(), &r.name));
            } else {
                rooms.insert(r.name.to_string(), r.subscriber_count());
            }
        }
        let listed = dynamic.len().min(MAX_LISTED_DYNAMIC);
        if listed < dynamic.len() {
            dynamic.select_nth_unstable_by(listed, |a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        }
        let rooms_omitted = dynamic.len() - listed;
        rooms.extend(
            dynamic
                .into_iter()
                .take(listed)
                .map(|(n, name)| (name.to_string(), n)),
        );
        rooms.insert(STATUS_ROOM.to_string(), self.status_subscribers.len());
        StatusCounts {
            active: !self.draining.load(Ordering::Relaxed),
            total_sockets: self.sessions.len(),
            sockets_by_type,
            rooms,
            rooms_omitted,
        }
    }

    /// The status; in a cluster, summed over every live node.
    fn status(&self) -> Status {
        let own = self.counts();
        let uptime_s = self.started.elapsed().as_secs();
        if !self.engine.is_cluster() {
            return Status {
                counts: own,
                timestamp: timestamp_now(),
                ws_endpoints: self.ws_endpoints.clone(),
                node: self.node.clone(),
                uptime_s,
                nodes: None,
            };
        }
        let now = Instant::now();
        let mut total = own.clone();
        let mut nodes = BTreeMap::new();
        for (id, (record, expires)) in &self.cluster_nodes {
            if *id != self.node && *expires > now {
                total.add(&record.counts);
                nodes.insert(id.clone(), record.clone());
            }
        }
        nodes.insert(
            self.node.clone(),
            NodeRecord {
                counts: own,
                uptime_s,
                instance: crate::ids::instance().to_string(),
            },
        );
        Status {
            counts: total,
            timestamp: timestamp_now(),
            ws_endpoints: self.ws_endpoints.clone(),
            node: self.node.clone(),
            uptime_s,
            nodes: Some(nodes),
        }
    }

    /// This node's own record, for the cluster heartbeat.
    pub(super) fn node_record(&self) -> NodeRecord {
        NodeRecord {
            counts: self.counts(),
            uptime_s: self.started.elapsed().as_secs(),
            instance: crate::ids::instance().to_string(),
        }
    }

    /// The status body and `$status` frame: the cached ones while nothing
    /// changed (and for at most a second, so `timestamp` moves), rebuilt at most
    /// [`REBUILDS_PER_S`] times a second however many readers ask — building
    /// is O(rooms), so no client may make the registry do it per request.
    pub(super) fn status_snapshot(&mut self) -> Arc<StatusSnapshot> {
        self.snapshot_status(false)
    }

    /// The snapshot; `fresh` rebuilds it whatever the budget when a count
    /// changed (the once-a-second push, so no subscriber is sent an update
    /// older than what it already has).
    fn snapshot_status(&mut self, fresh: bool) -> Arc<StatusSnapshot> {
        let now = Instant::now();
        if let Some(cached) = &self.status_cache {
            let current =
                cached.version == self.changes && now.duration_since(cached.built) < MAX_STALENESS;
            if current || (!fresh && !self.rebuilds.0.take(now)) {
                return cached.clone();
            }
        }
        let status = self.status();
        let snapshot = Arc::new(StatusSnapshot {
            version: self.changes,
            built: now,
            fingerprint: status.counts.fingerprint(),
            body: serde_json::to_vec(&status).unwrap_or_default().into(),
            frame: encode(&StatusFrame {
                kind: STATUS_UPDATE,
                room: STATUS_ROOM,
                ts: &status.timestamp,
                data: &status,
            }),
        });
        self.status_cache = Some(snapshot.clone());
        snapshot
    }

    /// Pushes a `status_update` to each `$status` subscriber whose last view
    /// differs from the current counts (called at most once a second).
    pub(super) fn push_status_if_changed(&mut self) {
        if self.status_subscribers.is_empty() {
            return;
        }
        let snapshot = self.snapshot_status(true);
        let now = snapshot.fingerprint;
        if self.status_subscribers.values().all(|s| s.seen == now) {
            return;
        }
        self.status_subscribers.retain(|_, s| {
            if s.seen == now {
                return true;
            }
            s.seen = now;
            s.queue
                .push(Outbound::Frame(snapshot.frame.clone()))
                .is_ok()
        });
    }

    /// Every room with its order and subscribers, sorted by name.
    fn room_list(&self) -> Vec<RoomInfo> {
        // In a cluster, subscribers are counted on every node, as in /socket-status.
        let counts = self.status().counts.rooms;
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .values()
            .map(|r| RoomInfo {
                room: r.name.to_string(),
                subscribers: counts
                    .get(&*r.name)
                    .copied()
                    .unwrap_or_else(|| r.subscriber_count()),
                epoch: r.epoch.to_string(),
                seq: r.seq,
                history: r.history_len(),
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        rooms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rebuild_budget_refills_each_second() {
        let t0 = Instant::now();
        let mut b = RebuildBudget {
            window: t0,
            ..Default::default()
        };
        for _ in 0..REBUILDS_PER_S {
            assert!(b.take(t0));
        }
        assert!(!b.take(t0 + Duration::from_millis(999)));
        assert!(b.take(t0 + Duration::from_secs(1)));
    }
}
