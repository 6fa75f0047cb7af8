//! The engine seam: what keeps a room's order and history for the registry.
//!
//! The registry owns sessions, subscriptions and a mirror of every room it
//! serves ([`crate::room::Room`]: epoch, head, recent history). What assigns a
//! room's seqs, remembers idempotency keys and keeps history across restarts or
//! nodes is an [`Engine`], chosen once when the hub starts:
//!
//! - [`memory::MemoryEngine`] (`storage.path = ""`): the v1 behaviour, state in
//!   this process only;
//! - [`durable::DurableEngine`] (the default): the same order, written to a
//!   local store (group commit, off the registry thread) before it is
//!   acknowledged or delivered, so a restart keeps epochs, history and keys;
//! - `cluster::RedisEngine` (`cluster.redis_url` or `cluster.sentinels`): Redis
//!   assigns seqs and keeps history for every node.
//!
//! Whatever the engine, a publish takes one road: the registry checks it and
//! hands the engine a [`PublishJob`]; the engine's outcome comes back as
//! [`Committed`] — returned at once by the memory engine, sent to the registry
//! by the others — and the registry applies its events to the room mirrors,
//! fans them out and answers the publishers, in that one place. Events the
//! engine learns of otherwise (another node's publishes, a resync) arrive as the
//! registry's engine-event messages (`RoomEvents`, `RoomSynced`, ...).

pub mod durable;
pub mod memory;
pub mod sequencer;

use std::sync::Arc;
use std::time::Instant;

use actix::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::config::RoomSettings;
use crate::error::HubError;
use crate::event::Event;
use crate::ids::SessionId;
use crate::keyed::StateWrite;
use crate::presence;
use crate::protocol::{EventFrameParts, Ref};
use crate::session_stats::SocketInfo;

/// What a publisher learns: where its event landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PublishAck {
    /// The room published to.
    pub room: String,
    /// The room's epoch the seq belongs to: a new epoch restarts seqs.
    pub epoch: String,
    /// The event's seq.
    pub seq: u64,
    /// Subscribers on this node it is being queued for (counted when it was
    /// accepted; a subscriber found to be a slow consumer during the fan-out is
    /// closed and resumes from history).
    pub delivered: usize,
    /// True when this answers a retry: the event was published before under
    /// the same `Idempotency-Key`, and was not published again (an extension).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Where an HTTP publish's answer goes: answered as soon as the engine has
/// committed it, before the fan-out, so a publisher never waits for that.
pub type PublishReply = oneshot::Sender<Result<PublishAck, HubError>>;

/// One checked event for the engine to publish.
#[derive(Debug)]
pub struct PublishItem {
    pub room: Arc<str>,
    /// The frame around its seq: encoded once, by the node that accepted it.
    pub parts: EventFrameParts,
    /// The room's history size.
    pub history: usize,
    /// Created on demand rather than declared (its keys may expire in Redis).
    pub dynamic: bool,
    /// Subscribers on this node when it was accepted (the ack's `delivered`).
    pub delivered: usize,
    /// When the publish entered the hub, for the enqueue-latency metric.
    pub received: Instant,
    /// The publisher's idempotency key.
    pub idempotency_key: Option<String>,
    /// A keyed publish (contract section 11): the engine refuses a new key
    /// past `max_keys` before giving a seq, and keeps the state with the seq.
    pub state: Option<StateWrite>,
}

/// Who is waiting for a publish's outcome.
#[derive(Debug)]
pub enum PublishAnswer {
    /// An HTTP request (one item).
    Http(PublishReply),
    /// A socket's `publish` command (one item): `published` (queued once the
    /// event itself is delivered on this node) or `error`.
    Socket {
        /// The publisher.
        session: SessionId,
        /// Its command's ref.
        reference: Option<Ref>,
    },
    /// `POST /api/events`: `slots` holds the items refused before the engine,
    /// in order; each `None` is filled by the next item's outcome.
    Batch {
        /// Outcomes so far.
        slots: Vec<Option<Result<PublishAck, HubError>>>,
        /// Where the whole answer goes.
        reply: oneshot::Sender<Vec<Result<PublishAck, HubError>>>,
    },
}

/// Items to publish in order, and who gets the outcomes.
#[derive(Debug)]
pub struct PublishJob {
    pub items: Vec<PublishItem>,
    /// The answer's destination.
    pub answer: PublishAnswer,
}

/// A room's event as an engine commits it: which epoch it belongs to.
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    pub room: Arc<str>,
    /// The room's epoch.
    pub epoch: Arc<str>,
    pub event: Event,
}

/// The outcome of a [`PublishJob`]: one result per item, in order, and the
/// events to deliver on this node (none from an engine that delivers through
/// its own channel, as Redis does through `RoomEvents`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Committed {
    /// The events committed, in order.
    pub events: Vec<CommittedEvent>,
    /// One outcome per item.
    pub results: Vec<Result<PublishAck, HubError>>,
    /// Who waits.
    pub answer: PublishAnswer,
    /// When the job's first publish entered the hub.
    pub received: Instant,
}

/// Where an engine that commits off the registry's thread sends each
/// outcome: the registry's handle. A trait, so the engine needs nothing of the
/// registry but this.
pub trait CommitSink: Send + 'static {
    /// Hands `outcome` to the registry.
    fn committed(&self, outcome: Committed);
}

impl Committed {
    /// Every item of `job` failed with `err`.
    pub fn failed(job: PublishJob, err: &HubError) -> Self {
        Committed {
            events: Vec::new(),
            results: job.items.iter().map(|_| Err(err.clone())).collect(),
            received: job.received(),
            answer: job.answer,
        }
    }
}

impl PublishJob {
    /// When its first publish entered the hub.
    pub fn received(&self) -> Instant {
        self.items.first().map_or_else(Instant::now, |i| i.received)
    }
}

/// A room's order, recent history and (keyed) state, as an engine holds it.
#[derive(Debug, Clone)]
pub struct RoomState {
    pub epoch: Arc<str>,
    /// Its head seq.
    pub seq: u64,
    /// Its last events, oldest first.
    pub events: Vec<Event>,
    /// A keyed room's state at `seq`: the latest event of each live key, in
    /// seq order (empty for other rooms).
    pub state: Vec<Event>,
}

/// A request to every node (cluster), answered from each node's own sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlOp {
    /// Queue this frame for every session of `user`.
    UserEvent {
        user: String,
        /// The encoded frame.
        frame: String,
    },
    /// Close this session with 4009, if it is here.
    Disconnect {
        /// Public session id.
        session: String,
    },
    /// List this node's sockets.
    ListSockets {
        /// Only sockets of this type.
        kind: Option<String>,
    },
}

/// Who waits for a request to every node, and how the answers combine.
#[derive(Debug)]
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

/// Whether the engine can take writes now, else why not (for `/readyz`).
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What keeps rooms' order and history; see the module docs. Called on the
/// registry's thread only, so no call may block on I/O.
pub trait Engine: Send {
    /// Whether rooms' order is shared with other nodes: the status then sums
    /// every node's counts and sockets name their node.
    fn is_cluster(&self) -> bool;

    /// The rooms the engine already holds when the hub starts (a durable
    /// store's), to be mirrored at once.
    fn restored(&mut self) -> Vec<(Arc<str>, RoomState)>;

    /// Opens `room` for this node: its state now, or `None` when it has to be
    /// read first (the registry hears back with `RoomSynced` or `SyncFailed`).
    fn open(
        &mut self,
        room: &Arc<str>,
        settings: &RoomSettings,
        dynamic: bool,
    ) -> Result<Option<RoomState>, HubError>;

    /// The room's mirror trails a resume point a client saw on another node:
    /// `Ok(true)` when the engine reads what is missing (`RoomCaughtUp` or
    /// `SyncFailed` follows), `Ok(false)` when it has nothing more to read,
    /// `Err` when it cannot ask now (the resume fails rather than answering
    /// with a head older than the one the client saw).
    fn catch_up(&mut self, room: &Arc<str>) -> Result<bool, HubError>;

    /// The room left this node (an evicted dynamic room): forget it, and
    /// where it was created on demand, drop what is stored of it.
    fn close(&mut self, room: &Arc<str>, dynamic: bool);

    /// Publishes `job`'s items in order. The outcome is returned when known at
    /// once; otherwise it reaches the registry as a [`Committed`] message.
    fn publish(&mut self, job: PublishJob) -> Option<Committed>;

    /// Asks the other nodes; `Err(reply)` back when there are none, so this
    /// node's own answer is the whole answer.
    fn ask_all(&mut self, op: ControlOp, reply: Gathered) -> Result<(), Gathered>;

    /// One of this node's sessions joined or left a presence room: the change
    /// back to be counted now, or `None` when the engine orders it among every
    /// node's changes first (`PresenceChanged` brings it back, in that order).
    fn presence(&mut self, room: &Arc<str>, change: presence::Change) -> Option<presence::Change> {
        let _ = room;
        Some(change)
    }
}
