//! Cluster mode: several nodes sharing one Redis (contract section 9).
//!
//! [`RedisEngine`] is the registry's engine (see `crate::engine`) in a cluster;
//! the order of every room is Redis's:
//!
//! - **publish** ([`publisher`]): a Lua script assigns the room's next seq,
//!   appends the frame to the room's stream (capped at its history), updates a
//!   keyed room's state hash (refusing a new key past `max_keys` before any
//!   seq is used) and broadcasts it on one pub/sub channel, atomically; the
//!   publisher is answered from the script's result.
//! - **delivery** ([`subscriber`]): every node reads that channel and hands the
//!   registry each room's events strictly in seq order. A jump in seq, another
//!   epoch, or a reconnect makes it read the stream first, so local subscribers
//!   never see a gap; when the stream no longer holds what was missed, the room is
//!   resynced and its subscribers are told (`subscribed`, `recovered:false`).
//! - **status** ([`nodes`]): each node writes its counters with a TTL of three
//!   heartbeats and reads everyone's, so `/socket-status` is cluster-wide.
//! - **user events and admin disconnects**: asked of every node on a control
//!   channel, answers collected on the asking node's reply channel.
//!
//! Any Redis failure marks the node unready (`/readyz` 503), makes publishes
//! answer 503, and leaves sessions open; the tasks reconnect with backoff and
//! catch up.

mod conn;
mod control;
mod deadline;
mod engine;
mod error;
mod fence;
pub mod health;
pub mod keys;
mod nodes;
mod presence;
mod publisher;
pub mod scripts;
pub mod sentinel;
mod subscriber;
pub mod wire;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use error::ClusterError;

use crate::config::{ClusterConfig, RoomSettings};
use crate::engine::{Committed, ControlOp, Gathered, PublishJob};
use crate::error::HubError;
use crate::presence::Change;
use crate::registry::RegistryHandle;

pub use deadline::Timeouts;
pub use engine::RedisEngine;
pub use health::Health;
pub use keys::Keys;

/// Publishes waiting for a Redis connection, per connection, before a publish
/// is refused with 503 rather than queued without bound.
const PUBLISH_QUEUE: usize = 16_384;
/// Room syncs and cluster requests waiting for the subscriber task.
const COMMAND_QUEUE: usize = 16_384;

/// What the registry asks of the subscriber task.
pub enum SubscriberRequest {
    /// Mirror this room: read it from Redis, then follow its events.
    Track {
        room: Arc<str>,
        /// Its history size.
        history: usize,
        /// Idle expiry of its keys, 0 = none.
        ttl_ms: u64,
        /// It keeps a state, read with its order.
        keyed: bool,
        /// It tracks presence: every node's share is read and followed.
        presence: bool,
    },
    /// One of this node's sessions joined or left a presence room.
    Presence { room: Arc<str>, change: Change },
    /// Stop following this room (its mirror was evicted).
    Untrack(Arc<str>),
    /// Read what the room's mirror lacks from Redis now, then say so.
    CatchUp(Arc<str>),
    /// Ask every node; the answers are combined.
    Scatter {
        /// The request.
        op: ControlOp,
        /// Where the combined answer goes, once every node answered (or the
        /// wait ran out).
        reply: Gathered,
    },
}

/// The registry's handle on the Redis side. Cheap to clone.
#[derive(Clone)]
pub struct RedisBroker {
    publishers: Arc<[mpsc::Sender<PublishJob>]>,
    commands: mpsc::Sender<SubscriberRequest>,
    health: Arc<Health>,
    dynamic_ttl_ms: u64,
    leave: mpsc::Sender<oneshot::Sender<()>>,
}

/// What the subscriber and heartbeat tasks of a node work with.
#[derive(Clone)]
struct Link {
    /// Where the primary is (a URL, or found through Sentinel).
    endpoint: Arc<sentinel::Endpoint>,
    keys: Keys,
    node: String,
    timeouts: Timeouts,
    health: Arc<Health>,
    registry: RegistryHandle,
    /// What this node acknowledged, for the catch-up (`fence`).
    acked: Arc<fence::AckedHeads>,
}

/// The not yet started tasks behind a [`RedisBroker`].
pub struct BrokerTasks {
    endpoint: Arc<sentinel::Endpoint>,
    keys: Keys,
    node: String,
    timeouts: Timeouts,
    health: Arc<Health>,
    publishers: Vec<mpsc::Receiver<PublishJob>>,
    commands: mpsc::Receiver<SubscriberRequest>,
    leave: mpsc::Receiver<oneshot::Sender<()>>,
    lane: publisher::Lane,
}

fn unavailable(why: impl std::fmt::Display) -> HubError {
    HubError::Unavailable(format!("cluster store unavailable: {why}"))
}

impl RedisBroker {
    /// The handle and its tasks, to be started once the registry runs.
    pub fn new(
        config: &ClusterConfig,
        idempotency_ttl_s: u64,
        node: &str,
    ) -> Result<(RedisBroker, BrokerTasks), ClusterError> {
        let endpoint = Arc::new(sentinel::Endpoint::new(config)?);
        let health = Arc::new(Health::default());
        // Down until the links are up: scrapes see the gauge from the start.
        metrics::gauge!(crate::metrics::CLUSTER_REDIS_UP).set(0.0);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..config.pool_size)
            .map(|_| mpsc::channel(PUBLISH_QUEUE))
            .unzip();
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (leave, leave_rx) = mpsc::channel(1);
        let broker = RedisBroker {
            publishers: senders.into(),
            commands,
            health: health.clone(),
            dynamic_ttl_ms: config.dynamic_room_ttl_s.saturating_mul(1000),
            leave,
        };
        let tasks = BrokerTasks {
            endpoint,
            keys: Keys::new(&config.key_prefix),
            node: node.to_string(),
            timeouts: Timeouts::new(config),
            health,
            publishers: receivers,
            commands: command_rx,
            leave: leave_rx,
            lane: publisher::Lane {
                dynamic_ttl_ms: config.dynamic_room_ttl_s.saturating_mul(1000),
                idempotency_ttl_ms: idempotency_ttl_s.saturating_mul(1000),
                replicas: config.replicas_to_wait(),
            },
        };
        Ok((broker, tasks))
    }

    /// Removes this node's record (at shutdown), so it leaves `nodes` at once
    /// rather than when its TTL runs out. Waits at most `limit`.
    pub async fn leave(&self, limit: std::time::Duration) {
        let (tx, rx) = oneshot::channel();
        if self.leave.try_send(tx).is_ok() {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }

    /// Whether Redis is reachable; else why not (for `/readyz`).
    pub fn ready(&self) -> Result<(), String> {
        self.health.check()
    }

    /// Idle expiry of a room's keys in Redis: dynamic rooms only.
    pub fn ttl_ms(&self, dynamic: bool) -> u64 {
        if dynamic {
            self.dynamic_ttl_ms
        } else {
            0
        }
    }

    /// Queues a publish on its room's connection; its outcome reaches the
    /// registry as `Committed`. Refused at once (503) when that queue is full.
    pub fn publish(&self, job: PublishJob) -> Option<Committed> {
        let first = job.items.first()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        first.room.hash(&mut h);
        let lane = (h.finish() % self.publishers.len() as u64) as usize;
        match self.publishers[lane].try_send(job) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(job)) => Some(Committed::failed(
                job,
                &unavailable("too many publishes waiting"),
            )),
            Err(mpsc::error::TrySendError::Closed(job)) => {
                Some(Committed::failed(job, &unavailable("publisher stopped")))
            }
        }
    }

    /// Starts mirroring a room; the registry hears back with `RoomSynced` or
    /// `SyncFailed`.
    pub fn track(
        &self,
        room: Arc<str>,
        settings: &RoomSettings,
        dynamic: bool,
    ) -> Result<(), HubError> {
        self.commands
            .try_send(SubscriberRequest::Track {
                room,
                history: settings.history,
                ttl_ms: self.ttl_ms(dynamic),
                keyed: settings.keyed,
                presence: settings.presence,
            })
            .map_err(|_| unavailable("too many room syncs waiting"))
    }

    /// Asks for a mirrored room's missing events now; the registry hears back
    /// with `RoomCaughtUp`.
    pub fn catch_up(&self, room: Arc<str>) -> Result<(), HubError> {
        self.commands
            .try_send(SubscriberRequest::CatchUp(room))
            .map_err(|_| unavailable("too many room syncs waiting"))
    }

    /// Orders a change of a presence room's members among every node's; the
    /// registry counts it when it comes back (`PresenceChanged`).
    pub fn presence(&self, room: Arc<str>, change: Change) {
        if self
            .commands
            .try_send(SubscriberRequest::Presence { room, change })
            .is_err()
        {
            // The queue is full only when Redis is far behind: the change is
            // lost to the other nodes until this node's share is rewritten.
            log::warn!("cluster: presence change dropped, too many commands waiting");
        }
    }

    /// Stops mirroring a room.
    pub fn untrack(&self, room: Arc<str>) {
        let _ = self.commands.try_send(SubscriberRequest::Untrack(room));
    }

    /// Asks every node; `reply` gets their answers combined.
    pub fn scatter(&self, op: ControlOp, reply: Gathered) {
        if let Err(
            mpsc::error::TrySendError::Full(SubscriberRequest::Scatter { reply, .. })
            | mpsc::error::TrySendError::Closed(SubscriberRequest::Scatter { reply, .. }),
        ) = self
            .commands
            .try_send(SubscriberRequest::Scatter { op, reply })
        {
            reply.fail(unavailable("too many cluster requests waiting"));
        }
    }
}

impl BrokerTasks {
    /// Starts the publisher, subscriber and heartbeat tasks on a thread of their
    /// own; they live until that arbiter stops.
    pub fn start(self, registry: RegistryHandle) -> actix::Arbiter {
        let arbiter = actix::Arbiter::new();
        // The nodes counted live for presence, from the heartbeat to the
        // subscriber.
        let (live_tx, live_rx) = tokio::sync::watch::channel(None);
        let BrokerTasks {
            endpoint,
            keys,
            node,
            timeouts,
            health,
            publishers,
            commands,
            leave,
            lane,
        } = self;
        let acked = Arc::new(fence::AckedHeads::default());
        for jobs in publishers {
            let link = publisher::LaneLink {
                conn: conn::LazyConnection::new(endpoint.clone(), timeouts, health.clone()),
                keys: keys.clone(),
                timeouts,
                registry: registry.clone(),
                lane,
                health: health.clone(),
                acked: acked.clone(),
            };
            arbiter.spawn(publisher::run(jobs, link));
        }
        let link = Link {
            endpoint: endpoint.clone(),
            keys,
            node,
            timeouts,
            health,
            registry,
            acked,
        };
        arbiter.spawn(subscriber::Subscriber::new(link.clone(), commands, live_rx).run());
        arbiter.spawn(sentinel::watch(endpoint));
        arbiter.spawn(nodes::run(link, leave, live_tx));
        arbiter
    }
}
