//! Prometheus metrics: every metric name and label in one place, the recorder,
//! and the `/metrics` rendering.
//!
//! Recording goes through the `metrics` facade and the text exposition is
//! `metrics-exporter-prometheus` (well kept, no hand-written format); process
//! RSS, fds and CPU come from `metrics-process`. Hot paths hold metric handles
//! (a room keeps its counters), so a publish costs a few atomic adds, not map
//! lookups.
//!
//! The recorder is process-wide: one hub per process (the binary) gets exact
//! series; an application embedding several hubs gets them summed.
//!
//! Label cardinality is bounded: rooms created dynamically share the label
//! [`DYNAMIC`], so a client inventing room names cannot grow the series.

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, describe_histogram, Counter, Gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Open sockets, by socket type.
pub const CONNECTIONS: &str = "hub_connections";
/// Rooms held.
pub const ROOMS: &str = "hub_rooms";
/// Subscribers, by room.
pub const ROOM_SUBSCRIBERS: &str = "hub_room_subscribers";
/// Users present in presence rooms (every node's, as this node counts
/// them), by room.
pub const PRESENCE_USERS: &str = "hub_presence_users";
/// Events accepted, by room.
pub const EVENTS_PUBLISHED: &str = "hub_events_published_total";
/// Event frames queued for sockets, by room.
pub const DELIVERIES: &str = "hub_deliveries_total";
/// Sessions ended, by reason.
pub const DISCONNECTS: &str = "hub_disconnects_total";
/// Error frames sent, by code.
pub const ERROR_FRAMES: &str = "hub_error_frames_total";
/// Time from a publish entering the hub to its event queued for every subscriber.
pub const PUBLISH_ENQUEUE: &str = "hub_publish_enqueue_seconds";
/// Messages waiting in the registry's mailbox.
pub const REGISTRY_MAILBOX: &str = "hub_registry_mailbox_depth";
/// Durable store: commit latency (one commit per batch of publishes), by outcome.
pub const STORE_COMMIT: &str = "hub_store_commit_seconds";
/// Durable store: bytes the store file takes on disk.
pub const STORE_BYTES: &str = "hub_store_bytes";
/// Counter: `refresh` commands, by `result` (`ok`, `refused`).
pub const TOKEN_REFRESHES: &str = "hub_token_refreshes_total";
/// Events an engine handed over that did not follow their room's mirror
/// (the room was read again): always 0 unless there is a bug.
pub const OUT_OF_ORDER: &str = "hub_engine_out_of_order_total";
/// Client-driven messages refused because the registry's intake was full.
pub const REGISTRY_REFUSED: &str = "hub_registry_refused_total";

/// Cluster mode: 1 while this node's Redis links work, else 0.
pub const CLUSTER_REDIS_UP: &str = "hub_cluster_redis_up";
/// Cluster mode: events a node read from a room's stream to fill a gap.
pub const CLUSTER_GAP_FILLED: &str = "hub_cluster_gap_filled_events_total";
/// Cluster mode: rooms resynced because the missed events were gone, by reason.
pub const CLUSTER_RESYNCS: &str = "hub_cluster_resyncs_total";
/// Cluster mode: publishes answered 503 because too few replicas acknowledged.
pub const CLUSTER_UNREPLICATED: &str = "hub_cluster_unreplicated_total";

/// The label value of rooms (and room socket types) created on demand.
pub const DYNAMIC: &str = "_dynamic";

/// Latency buckets for [`PUBLISH_ENQUEUE`], 50 µs to 1 s.
const ENQUEUE_BUCKETS: [f64; 13] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

struct Exporter {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static EXPORTER: OnceLock<Option<Exporter>> = OnceLock::new();

/// Installs the process-wide recorder once. Returns false if another recorder
/// was installed first (an embedding application), in which case the hub's
/// metrics go to that recorder and `/metrics` answers 503.
pub fn install() -> bool {
    EXPORTER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(PUBLISH_ENQUEUE.into()), &ENQUEUE_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full(STORE_COMMIT.into()), &ENQUEUE_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            let process = metrics_process::Collector::default();
            process.describe();
            Some(Exporter { handle, process })
        })
        .is_some()
}

fn describe() {
    describe_gauge!(CONNECTIONS, "Open WebSocket sessions, by socket type.");
    describe_gauge!(ROOMS, "Rooms held (declared and dynamic).");
    describe_gauge!(
        CLUSTER_REDIS_UP,
        "Cluster mode: 1 while the node's Redis links work."
    );
    describe_counter!(
        CLUSTER_GAP_FILLED,
        "Cluster mode: events read from a room's Redis stream to fill a delivery gap."
    );
    describe_counter!(
        CLUSTER_RESYNCS,
        "Cluster mode: rooms resynced (subscribers told recovered:false), by reason."
    );
    describe_counter!(
        CLUSTER_UNREPLICATED,
        "Cluster mode: publishes answered 503 because fewer than min_replicas_acked replicas acknowledged them in time."
    );
    describe_gauge!(ROOM_SUBSCRIBERS, "Subscribers, by room.");
    describe_gauge!(
        PRESENCE_USERS,
        "Users present in presence rooms (cluster-wide), by room."
    );
    describe_counter!(EVENTS_PUBLISHED, "Events accepted, by room.");
    describe_counter!(DELIVERIES, "Event frames queued for sockets, by room.");
    describe_counter!(DISCONNECTS, "Sessions ended, by reason.");
    describe_counter!(ERROR_FRAMES, "Error frames sent to clients, by code.");
    describe_histogram!(
        PUBLISH_ENQUEUE,
        Unit::Seconds,
        "From a publish entering the hub to its event queued for every subscriber."
    );
    describe_gauge!(
        REGISTRY_MAILBOX,
        "Messages waiting in the registry's mailbox."
    );
    describe_histogram!(
        STORE_COMMIT,
        Unit::Seconds,
        "Durable store: one commit (a batch of publishes, synced with storage.fsync), by result."
    );
    describe_gauge!(STORE_BYTES, "Durable store: bytes its file takes on disk.");
    describe_counter!(
        TOKEN_REFRESHES,
        "Token refreshes over an open socket, by result (ok, refused)."
    );
    describe_counter!(
        OUT_OF_ORDER,
        "Events an engine handed over out of their room's order (the room was read again); 0 unless there is a bug."
    );
    describe_counter!(
        REGISTRY_REFUSED,
        "Client commands and HTTP requests refused because the registry's intake was full."
    );
}

/// The text exposition, with the sampled gauges refreshed; `None` when the
/// hub's recorder is not the installed one.
pub fn render(registry_mailbox: usize) -> Option<String> {
    let exporter = EXPORTER.get()?.as_ref()?;
    metrics::gauge!(REGISTRY_MAILBOX).set(registry_mailbox as f64);
    exporter.process.collect();
    Some(exporter.handle.render())
}

/// A room's metric handles, taken once when the room is created.
#[derive(Debug, Clone)]
pub struct RoomMetrics {
    /// [`EVENTS_PUBLISHED`].
    pub published: Counter,
    /// [`DELIVERIES`].
    pub delivered: Counter,
    /// [`ROOM_SUBSCRIBERS`].
    pub subscribers: Gauge,
    /// [`PRESENCE_USERS`].
    pub presence_users: Gauge,
}

impl RoomMetrics {
    /// Handles for a room; dynamic rooms share one label.
    pub fn new(room: &str, dynamic: bool) -> Self {
        let label = if dynamic {
            DYNAMIC.to_string()
        } else {
            room.to_string()
        };
        RoomMetrics {
            published: metrics::counter!(EVENTS_PUBLISHED, "room" => label.clone()),
            delivered: metrics::counter!(DELIVERIES, "room" => label.clone()),
            subscribers: metrics::gauge!(ROOM_SUBSCRIBERS, "room" => label.clone()),
            presence_users: metrics::gauge!(PRESENCE_USERS, "room" => label),
        }
    }
}

/// The gauge of open sessions of one socket type.
pub fn connections(socket_type: &str) -> Gauge {
    metrics::gauge!(CONNECTIONS, "type" => socket_type.to_string())
}

/// Counts a session's end.
pub fn disconnect(reason: crate::protocol::DisconnectReason) {
    metrics::counter!(DISCONNECTS, "reason" => reason.as_str()).increment(1);
}

/// Counts an error frame.
pub fn error_frame(code: crate::protocol::ErrorCode) {
    metrics::counter!(ERROR_FRAMES, "code" => code.as_str()).increment(1);
}

/// Records one store commit.
pub fn store_commit(took: std::time::Duration, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::histogram!(STORE_COMMIT, "result" => result).record(took.as_secs_f64());
}

/// Records the store's size on disk.
pub fn store_size(bytes: u64) {
    metrics::gauge!(STORE_BYTES).set(bytes as f64);
}

/// Counts one `refresh` command, accepted or refused.
pub fn token_refresh(ok: bool) {
    let result = if ok { "ok" } else { "refused" };
    metrics::counter!(TOKEN_REFRESHES, "result" => result).increment(1);
}

/// Counts a message refused at the registry's full intake.
pub fn registry_refused() {
    metrics::counter!(REGISTRY_REFUSED).increment(1);
}

/// Records a publish's enqueue latency.
pub fn publish_enqueued(since: std::time::Instant) {
    metrics::histogram!(PUBLISH_ENQUEUE).record(since.elapsed().as_secs_f64());
}
