//! Cluster mode: several nodes sharing one Redis (contract section 9).
//!
//! The registry talks to a [`Broker`]; sessions never do. With the in-process
//! broker (the default) the registry orders each room itself. With the Redis
//! broker the order is Redis's:
//!
//! - **publish** ([`publisher`]): a Lua script assigns the room's next seq,
//!   appends the frame to the room's stream (capped at its history) and
//!   broadcasts it on one pub/sub channel, atomically; the publisher is answered
//!   from the script's result.
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
pub mod health;
pub mod keys;
mod nodes;
mod publisher;
pub mod scripts;
mod subscriber;
pub mod wire;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::config::{ClusterConfig, RoomSettings};
use crate::error::HubError;
use crate::outbound::OutboundQueue;
use crate::protocol::{EventFrameParts, Ref};
use crate::registry::{PublishAck, PublishReply, RegistryHandle, SocketInfo};

pub use conn::Timeouts;
pub use health::Health;
pub use keys::Keys;
pub use wire::ControlOp;

/// Publishes waiting for a Redis connection, per connection, before a publish
/// is refused with 503 rather than queued without bound.
const PUBLISH_QUEUE: usize = 16_384;
/// Room syncs and cluster requests waiting for the subscriber task.
const COMMAND_QUEUE: usize = 16_384;

/// The seam between the registry and whatever orders rooms.
#[derive(Clone)]
pub enum Broker {
    /// One node: the registry assigns seqs and keeps history itself.
    InProcess,
    /// Several nodes: Redis assigns seqs and keeps history.
    Redis(RedisBroker),
}

impl Broker {
    /// The Redis broker, if this node is in a cluster.
    pub fn redis(&self) -> Option<&RedisBroker> {
        match self {
            Broker::InProcess => None,
            Broker::Redis(r) => Some(r),
        }
    }
}

/// One event to publish through Redis, prepared by the registry.
#[derive(Debug)]
pub struct PublishItem {
    /// Room.
    pub room: Arc<str>,
    /// The frame around its seq.
    pub parts: EventFrameParts,
    /// The room's history size (the stream's cap).
    pub history: usize,
    /// Idle expiry of the room's keys (dynamic rooms), 0 = none.
    pub ttl_ms: u64,
    /// Subscribers on this node when it was accepted (the ack's `delivered`).
    pub delivered: usize,
    /// When the publish entered the hub.
    pub received: Instant,
    /// The publisher's idempotency key and how long Redis keeps it (ms).
    pub idempotency: Option<(String, u64)>,
}

/// Who is waiting for a publish's result.
pub enum PublishAnswer {
    /// An HTTP request (one item).
    Http(PublishReply),
    /// A socket's `publish` command (one item): `published` or `error` is queued.
    Socket {
        /// The publisher.
        session: crate::ids::SessionId,
        /// The publisher's queue.
        queue: OutboundQueue,
        /// Its command's ref.
        reference: Option<Ref>,
    },
    /// `POST /api/events`: `slots` holds the items refused before Redis, in
    /// order; each `None` is filled by the next item's result.
    Batch {
        /// Results so far.
        slots: Vec<Option<Result<PublishAck, HubError>>>,
        /// Where the whole answer goes.
        reply: oneshot::Sender<Vec<Result<PublishAck, HubError>>>,
    },
}

/// Items published in order, and who gets the results.
pub struct PublishJob {
    /// The items.
    pub items: Vec<PublishItem>,
    /// The answer's destination.
    pub answer: PublishAnswer,
}

/// What the registry asks of the subscriber task.
pub enum Command {
    /// Mirror this room: read it from Redis, then follow its events.
    Track {
        /// Room.
        room: Arc<str>,
        /// Its history size.
        history: usize,
        /// Idle expiry of its keys, 0 = none.
        ttl_ms: u64,
    },
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

/// Who waits for a cluster request, and how the nodes' answers combine.
pub enum Gathered {
    /// The sum of the nodes' counts.
    Count(oneshot::Sender<Result<usize, HubError>>),
    /// Every node's sockets, by node.
    Sockets(oneshot::Sender<Result<Vec<SocketInfo>, HubError>>),
}

impl Gathered {
    /// The request could not be asked.
    pub fn fail(self, err: HubError) {
        match self {
            Gathered::Count(tx) => {
                let _ = tx.send(Err(err));
            }
            Gathered::Sockets(tx) => {
                let _ = tx.send(Err(err));
            }
        }
    }

    /// Combines the answers' JSON bodies (malformed ones are left out).
    pub fn finish(self, bodies: &[String]) {
        match self {
            Gathered::Count(tx) => {
                let sum = bodies.iter().filter_map(|b| b.parse::<usize>().ok()).sum();
                let _ = tx.send(Ok(sum));
            }
            Gathered::Sockets(tx) => {
                let mut all: Vec<SocketInfo> = bodies
                    .iter()
                    .filter_map(|b| serde_json::from_str::<Vec<SocketInfo>>(b).ok())
                    .flatten()
                    .collect();
                all.sort_by(|a, b| a.node.cmp(&b.node));
                let _ = tx.send(Ok(all));
            }
        }
    }
}

/// The registry's handle on the Redis side. Cheap to clone.
#[derive(Clone)]
pub struct RedisBroker {
    publishers: Arc<[mpsc::Sender<PublishJob>]>,
    commands: mpsc::Sender<Command>,
    health: Arc<Health>,
    dynamic_ttl_ms: u64,
    leave: mpsc::Sender<oneshot::Sender<()>>,
}

/// The not yet started tasks behind a [`RedisBroker`].
pub struct BrokerTasks {
    client: redis::Client,
    keys: Keys,
    node: String,
    timeouts: Timeouts,
    health: Arc<Health>,
    publishers: Vec<mpsc::Receiver<PublishJob>>,
    commands: mpsc::Receiver<Command>,
    leave: mpsc::Receiver<oneshot::Sender<()>>,
}

fn unavailable(why: &str) -> HubError {
    HubError::Unavailable(format!("cluster store unavailable: {why}"))
}

impl RedisBroker {
    /// The handle and its tasks, to be started once the registry runs.
    pub fn new(config: &ClusterConfig, node: &str) -> Result<(RedisBroker, BrokerTasks), String> {
        let client = redis::Client::open(config.redis_url.as_str()).map_err(|e| e.to_string())?;
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
            client,
            keys: Keys::new(&config.key_prefix),
            node: node.to_string(),
            timeouts: Timeouts::new(config),
            health,
            publishers: receivers,
            commands: command_rx,
            leave: leave_rx,
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

    /// Queues a publish on its room's connection; refused at once (503) when
    /// that queue is full.
    pub fn publish(&self, job: PublishJob) {
        let Some(first) = job.items.first() else {
            publisher::answer(job, Vec::new(), None);
            return;
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        first.room.hash(&mut h);
        let lane = (h.finish() % self.publishers.len() as u64) as usize;
        if let Err(e) = self.publishers[lane].try_send(job) {
            let (why, job) = match e {
                mpsc::error::TrySendError::Full(j) => ("too many publishes waiting", j),
                mpsc::error::TrySendError::Closed(j) => ("publisher stopped", j),
            };
            let n = job.items.len();
            publisher::answer(job, vec![Err(why.to_string()); n], None);
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
            .try_send(Command::Track {
                room,
                history: settings.history,
                ttl_ms: self.ttl_ms(dynamic),
            })
            .map_err(|_| unavailable("too many room syncs waiting"))
    }

    /// Asks for a mirrored room's missing events now; the registry hears back
    /// with `RoomCaughtUp`.
    pub fn catch_up(&self, room: Arc<str>) -> Result<(), HubError> {
        self.commands
            .try_send(Command::CatchUp(room))
            .map_err(|_| unavailable("too many room syncs waiting"))
    }

    /// Stops mirroring a room.
    pub fn untrack(&self, room: Arc<str>) {
        let _ = self.commands.try_send(Command::Untrack(room));
    }

    /// Asks every node; `reply` gets their answers combined.
    pub fn scatter(&self, op: ControlOp, reply: Gathered) {
        if let Err(
            mpsc::error::TrySendError::Full(Command::Scatter { reply, .. })
            | mpsc::error::TrySendError::Closed(Command::Scatter { reply, .. }),
        ) = self.commands.try_send(Command::Scatter { op, reply })
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
        let BrokerTasks {
            client,
            keys,
            node,
            timeouts,
            health,
            publishers,
            commands,
            leave,
        } = self;
        for jobs in publishers {
            arbiter.spawn(publisher::run(
                jobs,
                conn::LazyConnection::new(client.clone(), timeouts, health.clone()),
                keys.clone(),
                timeouts,
                registry.clone(),
            ));
        }
        arbiter.spawn(
            subscriber::Subscriber::new(
                client.clone(),
                keys.clone(),
                node.clone(),
                timeouts,
                health.clone(),
                registry.clone(),
                commands,
            )
            .run(),
        );
        arbiter.spawn(nodes::run(
            conn::LazyConnection::new(client, timeouts, health.clone()),
            keys,
            node,
            timeouts,
            health,
            registry,
            leave,
        ));
        arbiter
    }
}
