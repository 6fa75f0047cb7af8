//! The messages the registry answers: from session actors (membership, commands)
//! and from HTTP handlers (publish, status, admin).

use std::sync::Arc;

use actix::Message;
use bytestring::ByteString;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::HubError;
use crate::ids::SessionId;
use crate::outbound::OutboundQueue;
use crate::protocol::Ref;
use crate::session_stats::SessionStats;

/// A session joined: the registry starts routing to its queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    /// The session.
    pub id: SessionId,
    /// Socket type: `connect` or the room of `/ws/{room}`.
    pub kind: Arc<str>,
    /// The token's `sub`, for user-targeted messages.
    pub user: Option<String>,
    /// Peer address, for the admin API (shared with the session).
    pub remote: Arc<str>,
    /// Where its frames go.
    pub queue: OutboundQueue,
    /// Its counters.
    pub stats: Arc<SessionStats>,
}

/// A session ended: forget it everywhere.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    /// The session.
    pub id: SessionId,
}

/// `subscribe` from a session; the reply goes to its queue.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Subscribe {
    /// The session.
    pub id: SessionId,
    /// Room (already checked against the session's claims).
    pub room: String,
    /// Resume point.
    pub since: Option<u64>,
    /// Epoch of the resume point.
    pub epoch: Option<String>,
    /// Echoed in the reply.
    pub reference: Option<Ref>,
}

/// `unsubscribe` from a session; the reply goes to its queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// The session.
    pub id: SessionId,
    /// Room.
    pub room: String,
    /// Echoed in the reply.
    pub reference: Option<Ref>,
}

/// Who published from a socket, so the reply reaches it.
#[derive(Debug, Clone)]
pub struct PublishOrigin {
    /// The publishing session.
    pub id: SessionId,
    /// Echoed in `published` or `error`.
    pub reference: Option<Ref>,
}

/// Where a publish's answer goes: the registry answers *before* it fans the
/// event out, so a publisher never waits for the fan-out.
pub type PublishReply = tokio::sync::oneshot::Sender<Result<PublishAck, HubError>>;

/// Publish an event into a room (HTTP or client publish).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    /// Room.
    pub room: String,
    /// Event type (checked by the caller).
    pub kind: String,
    /// Payload.
    pub data: Box<RawValue>,
    /// Set for client publish: the room must allow it, and the reply is queued.
    pub origin: Option<PublishOrigin>,
    /// Set for HTTP publish: the answer, sent as soon as the seq is assigned.
    pub reply: Option<PublishReply>,
    /// When the publish entered the hub, for the enqueue-latency metric.
    pub received: std::time::Instant,
    /// The publisher's `Idempotency-Key` (HTTP; checked by the caller): a
    /// retry with the same key gets the first publish's seq.
    pub idempotency_key: Option<String>,
}

impl Publish {
    /// An HTTP publish and the receiver of its answer.
    pub fn http(
        room: String,
        kind: String,
        data: Box<RawValue>,
        idempotency_key: Option<String>,
    ) -> (
        Self,
        tokio::sync::oneshot::Receiver<Result<PublishAck, HubError>>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let msg = Publish {
            room,
            kind,
            data,
            origin: None,
            reply: Some(tx),
            received: std::time::Instant::now(),
            idempotency_key,
        };
        (msg, rx)
    }
}

/// Several publishes, applied in order in one registry turn; answered before
/// the fan-out, like [`Publish`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishBatch {
    /// The items (their own `reply` fields are not used).
    pub items: Vec<Publish>,
    /// One result per item, in order.
    pub reply: tokio::sync::oneshot::Sender<Vec<Result<PublishAck, HubError>>>,
}

/// What a publisher learns: where its event landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PublishAck {
    /// Room.
    pub room: String,
    /// Room epoch.
    pub epoch: String,
    /// The event's seq.
    pub seq: u64,
    /// Subscribers on this node it is being queued for (counted when the seq
    /// is assigned; a subscriber found to be a slow consumer during the fan-out
    /// is closed and resumes from history).
    pub delivered: usize,
    /// True when this answers a retry: the event was published before under
    /// the same `Idempotency-Key`, and was not published again (an extension).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// An answer the registry gives now (one node) or later (after asking Redis
/// or the other nodes).
pub enum Answer<T> {
    /// Known at once.
    Now(Result<T, HubError>),
    /// Arrives on this channel.
    Later(tokio::sync::oneshot::Receiver<Result<T, HubError>>),
}

impl<T> Answer<T> {
    /// Waits for the answer.
    pub async fn get(self) -> Result<T, HubError> {
        match self {
            Answer::Now(r) => r,
            Answer::Later(rx) => rx
                .await
                .unwrap_or_else(|_| Err(HubError::Internal("answer dropped".into()))),
        }
    }
}

/// A message to every session of one user (on every node).
#[derive(Message)]
#[rtype(result = "Answer<usize>")]
pub struct PublishUser {
    /// The user (`sub`).
    pub user: String,
    /// Event type.
    pub kind: String,
    /// Payload.
    pub data: Box<RawValue>,
}

/// The `/socket-status` body, encoded (shared, cached; see `status_snapshot`).
#[derive(Message)]
#[rtype(result = "actix_web::web::Bytes")]
pub struct GetStatus;

/// The admin socket list (of every node, in a cluster).
#[derive(Message)]
#[rtype(result = "Answer<Vec<SocketInfo>>")]
pub struct ListSockets {
    /// Only sockets of this type.
    pub kind: Option<String>,
}

/// One socket, for the admin API.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SocketInfo {
    /// Session id.
    pub id: String,
    /// Socket type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The token's `sub`.
    pub user: Option<String>,
    /// Subscribed rooms, sorted.
    pub rooms: Vec<String>,
    /// Peer address.
    pub remote: String,
    /// When it connected (RFC 3339).
    pub connected_at: String,
    /// Last frame from the client (RFC 3339).
    pub last_seen: String,
    /// Frames from the client.
    pub msgs_in: u64,
    /// Frames to the client.
    pub msgs_out: u64,
    /// Frames queued and not yet written (an extension).
    pub queued: usize,
    /// In a cluster: the node the socket is connected to (an extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The room list, encoded as the `/api/rooms` body (cached like the status).
#[derive(Message)]
#[rtype(result = "actix_web::web::Bytes")]
pub struct ListRooms;

/// One room, for `GET /api/rooms`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoomInfo {
    /// Name.
    pub room: String,
    /// Subscribers (on every node, in a cluster).
    pub subscribers: usize,
    /// Epoch.
    pub epoch: String,
    /// Head seq.
    pub seq: u64,
    /// Events held in history.
    pub history: usize,
}

/// A page of a room's history.
#[derive(Message)]
#[rtype(result = "Answer<HistoryPage>")]
pub struct GetHistory {
    /// Room.
    pub room: String,
    /// Events after this seq.
    pub since: u64,
    /// At most this many.
    pub limit: usize,
}

/// History events as their encoded frames.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// Room.
    pub room: String,
    /// Epoch.
    pub epoch: String,
    /// Head seq.
    pub seq: u64,
    /// Encoded event frames, oldest first.
    pub events: Vec<ByteString>,
}

impl HistoryPage {
    /// The JSON body, splicing the stored frames in without re-encoding them.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Head<'a> {
            room: &'a str,
            epoch: &'a str,
            seq: u64,
        }
        let head = serde_json::to_string(&Head {
            room: &self.room,
            epoch: &self.epoch,
            seq: self.seq,
        })
        .unwrap_or_else(|_| "{}".to_string());
        let events_len: usize = self.events.iter().map(|e| e.len() + 1).sum();
        let mut out = String::with_capacity(head.len() + events_len + 16);
        out.push_str(&head[..head.len() - 1]);
        out.push_str(",\"events\":[");
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(e);
        }
        out.push_str("]}");
        out
    }
}

/// Close one session with 4009 (on whichever node it is); answers how many
/// sessions were closed (0 or 1).
#[derive(Message)]
#[rtype(result = "Answer<usize>")]
pub struct Disconnect {
    /// Public session id.
    pub id: String,
}

/// Close every session with 1001; answers how many were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Drain;

/// From the cluster broker: a room as Redis has it. Creates the mirror, or
/// replaces it when `reset` (history lost or too much missed): its subscribers
/// then get `subscribed` with `recovered:false` again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomSynced {
    /// Room.
    pub room: Arc<str>,
    /// Its epoch.
    pub epoch: String,
    /// Its head seq.
    pub seq: u64,
    /// Its last events, oldest first.
    pub events: Vec<crate::room::Event>,
    /// The mirror is out of date and must be replaced.
    pub reset: bool,
}

/// From the cluster broker: the next events of a mirrored room, in seq order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomEvents {
    /// Room.
    pub room: Arc<str>,
    /// Their epoch.
    pub epoch: String,
    /// The events, consecutive seqs.
    pub events: Vec<crate::room::Event>,
}

/// From the cluster broker: a socket's publish got its seq. The `published`
/// reply is queued once this node has delivered that seq, so the publisher sees
/// its event before the reply, as on a single node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SocketPublished {
    /// The publisher.
    pub session: SessionId,
    /// Room.
    pub room: Arc<str>,
    /// The room's epoch when the seq was assigned.
    pub epoch: String,
    /// The event's seq.
    pub seq: u64,
    /// The encoded `published` reply.
    pub frame: ByteString,
}

/// From the cluster broker: a mirrored room has every event Redis had when
/// asked (`RoomEvents` before this one carried them); waiting resumes go on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomCaughtUp {
    /// Room.
    pub room: Arc<str>,
}

/// From the cluster broker: a room could not be read; whoever waits for it
/// gets `unavailable`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SyncFailed {
    /// Room.
    pub room: Arc<str>,
    /// Why.
    pub error: String,
}

/// From the cluster broker: every live node's record and remaining lifetime.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodesView {
    /// `(node id, record, time left before it expires)`.
    pub nodes: Vec<(String, crate::registry::NodeRecord, std::time::Duration)>,
}

/// From the cluster broker: this node's record, for its heartbeat.
#[derive(Message)]
#[rtype(result = "crate::registry::NodeRecord")]
pub struct GetNodeRecord;

/// From the cluster broker: another node's user event, for this node's sessions.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct RemoteUserEvent {
    /// The user.
    pub user: String,
    /// The encoded frame.
    pub frame: ByteString,
}

/// From the cluster broker: this node's sockets, for another node's list.
#[derive(Message)]
#[rtype(result = "Vec<SocketInfo>")]
pub struct RemoteListSockets {
    /// Only sockets of this type.
    pub kind: Option<String>,
}

/// From the cluster broker: close this session if it is here; true if it was.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct RemoteDisconnect {
    /// Public session id.
    pub session: String,
}

/// Liveness probe: answered when the registry's mailbox is moving.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ping;
