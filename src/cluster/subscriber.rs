//! The delivery side of a node: one pub/sub connection that hears every room
//! event and cluster request (those are `control`'s), and turns the event
//! stream into each mirrored room's events in strict seq order for the
//! registry.
//!
//! Per room it remembers the epoch and the last seq handed over. The next seq
//! goes straight through; an older one is a duplicate and dropped; a jump, an
//! unknown epoch, or a reconnect means "read Redis first": the missing events
//! come from the room's stream, and if the stream no longer has them (or the
//! epoch changed) the room is resynced as a whole. Reads happen in this task,
//! between messages, so nothing overtakes them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::{Msg, Value};
use tokio::sync::{mpsc, watch};

use super::conn::LazyConnection;
use super::control::Control;
use super::deadline::{within, Timeouts};
use super::fence::{self, AckedHeads};
use super::keys::Keys;
use super::presence::{self, LiveNodes, Outcome, Write};
use super::scripts::{self, RoomRead};
use super::sentinel::Endpoint;
use super::wire::{self, EventMessage};
use super::{unavailable, ClusterError, Health, Link, SubscriberRequest};
use crate::event::Event;
use crate::event::KeyChange;
use crate::registry::{
    PresenceChanged, RegistryHandle, RoomCaughtUp, RoomEvents, RoomSynced, SyncFailed,
};

/// First pause after a lost connection; doubles up to `reconnect_max_ms`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// How often unanswered cluster requests are checked for their deadline.
const TICK: Duration = Duration::from_millis(50);

/// A room this node mirrors.
struct Tracked {
    /// Epoch of the last event handed over; `None` until first read.
    epoch: Option<String>,
    /// Last seq handed over.
    seq: u64,
    /// Its history size.
    history: usize,
    /// Idle expiry of its keys.
    ttl_ms: u64,
    /// A keyed room: a sync reads its state too.
    keyed: bool,
}

/// The task's state; see the module docs.
pub struct Subscriber {
    /// Where the primary is; its `changes` make the subscription move.
    endpoint: Arc<Endpoint>,
    keys: Keys,
    node: String,
    timeouts: Timeouts,
    health: Arc<Health>,
    registry: RegistryHandle,
    commands: mpsc::Receiver<SubscriberRequest>,
    reader: LazyConnection,
    tracked: HashMap<Arc<str>, Tracked>,
    /// Cluster requests: this node's in flight, and answering the others'.
    control: Control,
    /// Presence rooms: this node's and every node's shares.
    presence: presence::Rooms,
    /// The nodes presence counts as live (from the heartbeat task).
    live: watch::Receiver<LiveNodes>,
    /// What this node's publish lanes acknowledged.
    acked: Arc<AckedHeads>,
}

impl Subscriber {
    /// A task not yet connected.
    pub fn new(
        link: Link,
        commands: mpsc::Receiver<SubscriberRequest>,
        live: watch::Receiver<LiveNodes>,
    ) -> Self {
        let Link {
            endpoint,
            keys,
            node,
            timeouts,
            health,
            registry,
            acked,
        } = link;
        Subscriber {
            control: Control::new(keys.clone(), node.clone(), timeouts, registry.clone()),
            acked,
            presence: presence::Rooms::new(&node),
            live,
            reader: LazyConnection::new(endpoint.clone(), timeouts, health.clone()),
            endpoint,
            keys,
            node,
            timeouts,
            health,
            registry,
            commands,
            tracked: HashMap::new(),
        }
    }

    /// Connects, follows, and reconnects with backoff, until the registry goes.
    pub async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.connected(&mut backoff).await {
                Ok(()) => return,
                Err(e) => {
                    log::warn!("cluster: redis subscription lost: {e}; reconnecting");
                    // With Sentinel, a lost link may be a failover: ask again
                    // where the primary is.
                    self.endpoint.lost(&e.to_string());
                    self.reader.failed(&e);
                    self.health.set_subscribed(false, Some(e.to_string()));
                    self.control.fail_all();
                }
            }
            let pause = tokio::time::sleep(backoff);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    cmd = self.commands.recv() => match cmd {
                        None => return,
                        Some(cmd) => self.offline(cmd).await,
                    },
                }
            }
            backoff = (backoff * 2).min(self.timeouts.reconnect_max);
        }
    }

    /// One connection's life: subscribe, catch up, then follow. `Ok` only when
    /// the registry is gone.
    async fn connected(&mut self, backoff: &mut Duration) -> Result<(), ClusterError> {
        let t = self.timeouts;
        let primary = self.endpoint.changes();
        let client = self.endpoint.client().await?;
        let mut pubsub = within(t.connect, client.get_async_pubsub()).await?;
        let channels = [
            self.keys.events_channel(),
            self.keys.control_channel(),
            self.keys.reply_channel(&self.node),
            self.keys.presence_channel(),
        ];
        within(t.command, pubsub.subscribe(&channels)).await?;
        let (mut sink, mut stream) = pubsub.split();
        // Subscribed first, then caught up: whatever is published meanwhile is
        // buffered on the connection and deduplicated by seq afterwards.
        let (_, replid) = self.reader.get_at_primary().await?;
        let rooms: Vec<Arc<str>> = self.tracked.keys().cloned().collect();
        for room in rooms {
            self.catch_up(&room).await?;
        }
        // Rooms this node acknowledged publishes into but no longer mirrors:
        // checked against what it saw, like the others (`fence`).
        for (room, epoch, seq) in self.acked.untracked(|r| self.tracked.contains_key(r)) {
            self.check_seen(&room, &epoch, seq).await?;
        }
        let mut c = self.reader.get().await?;
        fence::check_in(&mut c, &self.keys, &self.node, &replid, t).await?;
        // Writes made while Redis was away are lost, and so are the other
        // nodes' messages: this node's shares are written whole, every
        // room's are read again.
        for room in self.presence.to_rewrite(true) {
            self.write_share(&room, None).await?;
        }
        for room in self.presence.names() {
            self.read_presence(&room).await?;
        }
        self.health.set_subscribed(true, None);
        log::info!(
            "cluster: subscribed to redis, {} rooms caught up",
            self.tracked.len()
        );
        *backoff = FIRST_BACKOFF;
        let mut tick = tokio::time::interval(TICK);
        let mut last_ping = Instant::now();
        let mut heartbeat_alive = true;
        loop {
            tokio::select! {
                changed = self.live.changed(), if heartbeat_alive => match changed {
                    Ok(()) => self.live_changed().await?,
                    Err(_) => heartbeat_alive = false,
                },
                msg = stream.next() => match msg {
                    Some(msg) => self.on_message(msg).await?,
                    None => return Err(ClusterError::Closed("subscription")),
                },
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.online(cmd).await?,
                    None => return Ok(()),
                },
                _ = tick.tick() => {
                    self.control.expire();
                    if self.endpoint.changes() != primary {
                        return Err(ClusterError::PrimaryChanged("(failover)"));
                    }
                    if last_ping.elapsed() >= t.heartbeat {
                        last_ping = Instant::now();
                        within(t.command, sink.ping::<Value>()).await?;
                        self.keep_shares().await?;
                    }
                }
            }
        }
    }

    /// Starts following a room, not read yet.
    fn remember(
        &mut self,
        room: Arc<str>,
        history: usize,
        ttl_ms: u64,
        (keyed, presence): (bool, bool),
    ) {
        if presence {
            self.presence.track(room.clone());
        }
        let fresh = Tracked {
            epoch: None,
            seq: 0,
            history,
            ttl_ms,
            keyed,
        };
        self.tracked.insert(room, fresh);
    }

    /// A registry request while the subscription is down. If Redis answers
    /// (only the subscription dropped), rooms are read as usual: what arrives
    /// before the subscription is back is caught up then. Otherwise syncs are
    /// remembered for the reconnect and refused now; cluster requests, whose
    /// answers come over the subscription, are refused.
    async fn offline(&mut self, cmd: SubscriberRequest) {
        match cmd {
            SubscriberRequest::Scatter { reply, .. } => {
                reply.fail(unavailable("redis subscription is down"));
            }
            cmd if self.health.heartbeat_ok() => {
                // Failures are reported to the registry by `online` itself.
                let _ = self.online(cmd).await;
            }
            SubscriberRequest::Track {
                room,
                history,
                ttl_ms,
                keyed,
                presence,
            } => {
                self.remember(room.clone(), history, ttl_ms, (keyed, presence));
                self.registry.do_send(SyncFailed {
                    room,
                    error: "redis unreachable".into(),
                });
            }
            SubscriberRequest::Untrack(room) => {
                self.tracked.remove(&room);
                self.presence.untrack(&room);
            }
            SubscriberRequest::Presence { room, change } => {
                // Written whole once Redis is back.
                if self.presence.local(&room, change).is_some() {
                    self.presence.failed(&room);
                }
            }
            SubscriberRequest::CatchUp(room) => {
                // The client saw events this mirror lacks: answering from the
                // mirror would hand it an older head, so the resume fails and
                // the client tries again once Redis is back.
                self.registry.do_send(SyncFailed {
                    room,
                    error: "redis unreachable".into(),
                });
            }
        }
    }

    async fn online(&mut self, cmd: SubscriberRequest) -> Result<(), ClusterError> {
        match cmd {
            SubscriberRequest::Track {
                room,
                history,
                ttl_ms,
                keyed,
                presence,
            } => {
                self.remember(room.clone(), history, ttl_ms, (keyed, presence));
                if let Err(e) = self.sync(&room, false).await {
                    self.registry.do_send(SyncFailed {
                        room,
                        error: e.to_string(),
                    });
                    return Err(e);
                }
                if presence {
                    self.read_presence(&room).await?;
                }
            }
            SubscriberRequest::Untrack(room) => {
                self.tracked.remove(&room);
                self.presence.untrack(&room);
            }
            SubscriberRequest::Presence { room, change } => {
                if let Some(write) = self.presence.local(&room, change) {
                    self.write_share(&room, Some(write)).await?;
                }
            }
            SubscriberRequest::CatchUp(room) => {
                if let Err(e) = self.catch_up(&room).await {
                    self.registry.do_send(SyncFailed {
                        room,
                        error: e.to_string(),
                    });
                    return Err(e);
                }
                self.registry.do_send(RoomCaughtUp { room });
            }
            SubscriberRequest::Scatter { op, reply } => {
                let conn = self.reader.get().await;
                self.control.scatter(conn, op, reply).await?;
            }
        }
        Ok(())
    }

    async fn on_message(&mut self, msg: Msg) -> Result<(), ClusterError> {
        let Ok(payload) = std::str::from_utf8(msg.get_payload_bytes()) else {
            log::warn!("cluster: non-UTF-8 message on {}", msg.get_channel_name());
            return Ok(());
        };
        let channel = msg.get_channel_name();
        if channel == self.keys.events_channel() {
            return self.on_event(payload).await;
        }
        if channel == self.keys.presence_channel() {
            return self.on_presence(payload).await;
        }
        if channel == self.keys.control_channel() {
            if let Ok(c) = self.reader.get().await {
                self.control.on_request(c, payload);
            } // else the asker's wait runs out
            return Ok(());
        }
        self.control.on_reply(payload);
        Ok(())
    }

    async fn on_event(&mut self, payload: &str) -> Result<(), ClusterError> {
        let Some(ev) = EventMessage::parse(payload) else {
            log::warn!("cluster: malformed event message");
            return Ok(());
        };
        let Some(t) = self.tracked.get_mut(ev.room) else {
            return Ok(()); // a room this node does not mirror
        };
        let room: Arc<str> = Arc::from(ev.room);
        if t.epoch.as_deref() == Some(ev.epoch) {
            if ev.seq <= t.seq {
                return Ok(()); // already handed over (caught up from the stream)
            }
            if ev.seq == t.seq + 1 {
                t.seq = ev.seq;
                self.registry.do_send(RoomEvents {
                    room,
                    epoch: ev.epoch.to_string(),
                    events: vec![Event {
                        seq: ev.seq,
                        frame: ev.frame.into(),
                        key: ev.key.map(|(key, delete)| KeyChange {
                            key: Arc::from(key),
                            delete,
                        }),
                    }],
                });
                return Ok(());
            }
        }
        // A gap, or another epoch: Redis has the truth.
        self.catch_up(&room).await
    }

    /// Hands over everything after the last seq, from the room's stream; a
    /// resync when that is not possible.
    async fn catch_up(&mut self, room: &Arc<str>) -> Result<(), ClusterError> {
        let Some(t) = self.tracked.get(room) else {
            return Ok(());
        };
        let Some(epoch) = t.epoch.clone() else {
            return self.sync(room, false).await;
        };
        let last = t.seq;
        let seen = self.acked.seen(room, &epoch, last);
        let read = self
            .read(
                room,
                Some(last),
                t.history.max(1),
                (t.ttl_ms, false),
                Some((&epoch, seen)),
            )
            .await?;
        if read.epoch != epoch || read.seq < last {
            metrics::counter!(crate::metrics::CLUSTER_RESYNCS, "reason" => "epoch_changed")
                .increment(1);
            log::warn!(
                "cluster: room {room} lost its history in redis (epoch {epoch} -> {}); resyncing",
                read.epoch
            );
            return self.sync(room, true).await;
        }
        if read.seq == last {
            return Ok(());
        }
        let contiguous = read.events.first().is_some_and(|e| e.seq == last + 1)
            && read.events.last().is_some_and(|e| e.seq == read.seq)
            && read.events.windows(2).all(|w| w[1].seq == w[0].seq + 1);
        if !contiguous {
            metrics::counter!(crate::metrics::CLUSTER_RESYNCS, "reason" => "history_gap")
                .increment(1);
            log::warn!(
                "cluster: room {room} missed {} events, more than its history holds; resyncing",
                read.seq - last
            );
            return self.sync(room, true).await;
        }
        if let Some(t) = self.tracked.get_mut(room) {
            t.seq = read.seq;
        }
        metrics::counter!(crate::metrics::CLUSTER_GAP_FILLED).increment(read.events.len() as u64);
        self.registry.do_send(RoomEvents {
            room: room.clone(),
            epoch,
            events: read.events,
        });
        Ok(())
    }

    /// Reads the room's order, last events and (keyed) state and hands them
    /// to the registry.
    async fn sync(&mut self, room: &Arc<str>, reset: bool) -> Result<(), ClusterError> {
        let Some(t) = self.tracked.get(room) else {
            return Ok(());
        };
        let seen = t
            .epoch
            .clone()
            .map(|e| (self.acked.seen(room, &e, t.seq), e))
            .map(|(seq, e)| (e, seq));
        let read = self
            .read(
                room,
                None,
                t.history,
                (t.ttl_ms, t.keyed),
                seen.as_ref().map(|(e, s)| (e.as_str(), *s)),
            )
            .await?;
        if let Some(t) = self.tracked.get_mut(room) {
            t.epoch = Some(read.epoch.clone());
            t.seq = read.seq;
        }
        self.registry.do_send(RoomSynced {
            room: room.clone(),
            epoch: read.epoch,
            seq: read.seq,
            events: read.events,
            state: read.state,
            reset,
        });
        Ok(())
    }

    /// Gives `room` a new epoch if Redis has it behind `(epoch, seq)`, as a
    /// read would, without creating it when missing.
    async fn check_seen(&mut self, room: &str, epoch: &str, seq: u64) -> Result<(), ClusterError> {
        let mut c = self.reader.get().await?;
        let _: Value = within(
            self.timeouts.command,
            self.read_script(room, -1, 0, 0, Some((epoch, seq)))
                .arg("0")
                .arg("1")
                .query_async(&mut c),
        )
        .await?;
        Ok(())
    }

    /// [`scripts::READ`] up to its last two arguments (with state, only if
    /// it exists).
    fn read_script(
        &self,
        room: &str,
        after: i64,
        count: usize,
        ttl_ms: u64,
        seen: Option<(&str, u64)>,
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(scripts::READ)
            .arg(3)
            .arg(self.keys.room_meta(room))
            .arg(self.keys.room_log(room))
            .arg(self.keys.room_state(room))
            .arg(crate::ids::new_epoch())
            .arg(after)
            .arg(count)
            .arg(ttl_ms)
            .arg(seen.map_or("", |s| s.0))
            .arg(seen.map_or(0, |s| s.1));
        cmd
    }

    /// The read script: events after `after` (or the last `count`), and the
    /// state when `with_state`.
    async fn read(
        &mut self,
        room: &str,
        after: Option<u64>,
        count: usize,
        (ttl_ms, with_state): (u64, bool),
        seen: Option<(&str, u64)>,
    ) -> Result<RoomRead, ClusterError> {
        let mut c = self.reader.get().await?;
        let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
        let v: Value = within(
            self.timeouts.command,
            self.read_script(room, after, count, ttl_ms, seen)
                .arg(if with_state { "1" } else { "0" })
                .arg("0")
                .query_async(&mut c),
        )
        .await?;
        scripts::decode_read(&v).ok_or(ClusterError::Unexpected("read script"))
    }
}

/// Presence (see `cluster::presence`): this node's writes, every node's
/// messages, reads of a room's shares, and the live nodes.
impl Subscriber {
    /// Writes `write` of this node's share of `room` (`None`: the whole share,
    /// from what this node holds). A failure leaves the share to be written
    /// whole after the reconnect it causes.
    async fn write_share(
        &mut self,
        room: &Arc<str>,
        write: Option<Write>,
    ) -> Result<(), ClusterError> {
        let Some(write) = write.or_else(|| self.presence.whole(room)) else {
            return Ok(());
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(scripts::PRESENCE_WRITE)
            .arg(2)
            .arg(self.keys.presence_share(room, &self.node))
            .arg(self.keys.presence_nodes(room))
            .arg(&**room)
            .arg(&self.node)
            .arg(crate::ids::instance());
        match &write {
            Write::Delta {
                version,
                field,
                delta,
            } => {
                cmd.arg(version)
                    .arg(self.share_ttl_ms())
                    .arg(self.keys.presence_channel())
                    .arg(delta)
                    .arg(presence::field_name(field));
            }
            Write::Whole { version, counts } => {
                cmd.arg(version)
                    .arg(self.share_ttl_ms())
                    .arg(self.keys.presence_channel())
                    .arg("=");
                for (field, n) in counts {
                    cmd.arg(presence::field_name(field)).arg(n);
                }
            }
        }
        let result = match self.reader.get().await {
            Ok(mut c) => within(self.timeouts.command, cmd.query_async::<i64>(&mut c))
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.presence.failed(room);
        }
        result
    }

    /// A share lives three heartbeats after its node last pushed it back.
    fn share_ttl_ms(&self) -> u64 {
        let ttl = self.timeouts.heartbeat * super::nodes::TTL_HEARTBEATS;
        u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Every heartbeat: pushes back the expiry of this node's shares; one
    /// that expired meanwhile (or whose write failed) is written whole.
    async fn keep_shares(&mut self) -> Result<(), ClusterError> {
        let occupied = self.presence.occupied();
        if !occupied.is_empty() {
            let mut pipe = redis::pipe();
            for room in &occupied {
                pipe.cmd("EVAL")
                    .arg(scripts::PRESENCE_KEEP)
                    .arg(2)
                    .arg(self.keys.presence_share(room, &self.node))
                    .arg(self.keys.presence_nodes(room))
                    .arg(&self.node)
                    .arg(self.share_ttl_ms());
            }
            let mut c = self.reader.get().await?;
            let kept: Vec<i64> = within(self.timeouts.command, pipe.query_async(&mut c)).await?;
            for (room, kept) in occupied.iter().zip(kept) {
                if kept == 0 {
                    log::warn!(
                        "cluster: this node's presence in {room} had expired; writing it again"
                    );
                    self.presence.failed(room);
                }
            }
        }
        for room in self.presence.to_rewrite(false) {
            self.write_share(&room, None).await?;
        }
        Ok(())
    }

    /// A node's write, heard on the presence channel.
    async fn on_presence(&mut self, payload: &str) -> Result<(), ClusterError> {
        let Some((room, heard)) = wire::parse_presence(payload) else {
            log::warn!("cluster: malformed presence message");
            return Ok(());
        };
        match self.presence.heard(room, heard) {
            None => Ok(()),
            Some(Outcome::Count(changes)) => {
                self.registry.do_send(PresenceChanged {
                    room: Arc::from(room),
                    changes,
                });
                Ok(())
            }
            Some(Outcome::Reread) => self.read_presence(&Arc::from(room)).await,
        }
    }

    /// Reads every node's share of `room`; the registry counts the difference.
    async fn read_presence(&mut self, room: &Arc<str>) -> Result<(), ClusterError> {
        if !self.presence.tracks(room) {
            return Ok(());
        }
        let mut c = self.reader.get().await?;
        let v: Value = within(
            self.timeouts.command,
            redis::cmd("EVAL")
                .arg(scripts::PRESENCE_READ)
                .arg(1)
                .arg(self.keys.presence_nodes(room))
                .arg(self.keys.presence_share(room, ""))
                .query_async(&mut c),
        )
        .await?;
        let shares =
            scripts::decode_presence(&v).ok_or(ClusterError::Unexpected("presence read"))?;
        let changes = self.presence.read(room, shares);
        if !changes.is_empty() {
            self.registry.do_send(PresenceChanged {
                room: room.clone(),
                changes,
            });
        }
        Ok(())
    }

    /// The live nodes changed: the users of nodes gone leave, and every room
    /// is read again when a node came (back).
    async fn live_changed(&mut self) -> Result<(), ClusterError> {
        let Some(nodes) = self.live.borrow_and_update().clone() else {
            return Ok(());
        };
        let (gone, came) = self.presence.set_live(nodes);
        for (room, changes) in gone {
            self.registry.do_send(PresenceChanged { room, changes });
        }
        if came {
            for room in self.presence.names() {
                self.read_presence(&room).await?;
            }
        }
        Ok(())
    }
}
