//! The `Session` actor: one per WebSocket. It reads and parses the client's
//! frames, keeps the heartbeat, checks the socket's claims, and turns commands
//! into registry messages. It never writes to the socket itself: every frame it
//! or the registry produces goes through its [`OutboundQueue`] to the writer task.
//!
//! Lifecycle: `started` queues `welcome`, spawns the writer and registers;
//! anything that ends the session closes the queue (the writer sends the close
//! frame) and stops the actor; `stopped` unregisters and logs one line.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::num::NonZeroU32;

use actix::{Actor, ActorContext, AsyncContext, Handler, Message, StreamHandler};
use actix_web::web::BytesMut;
use actix_ws::{Item, MessageStream, ProtocolError};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::auth::Claims;
use crate::command::{self, Command, Envelope};
use crate::connections::ConnectionPermit;
use crate::error::HubError;
use crate::ids::SessionId;
use crate::outbound::{Outbound, OutboundQueue};
use crate::protocol::{
    encode, is_system_room, is_valid_room_name, CloseCode, DisconnectReason, ErrorFrame, Pong, Ref,
    Welcome, PROTOCOL_VERSION, STATUS_ROOM,
};
use crate::registry::{self, RegistryHandle};
use crate::session_stats::SessionStats;
use crate::writer::{self, WriterEnd};

/// The limits a session enforces, taken once from the config.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Server ping interval.
    pub heartbeat: Duration,
    /// Client silence before closing.
    pub client_timeout: Duration,
    /// Largest message, also across continuation frames.
    pub max_frame_bytes: usize,
    /// Outbound queue length.
    pub outbound_queue: usize,
    /// Outbound queue bytes.
    pub outbound_queue_bytes: usize,
    /// Longest a single socket write may stall.
    pub write_timeout: Duration,
    /// This node's id, for `welcome`.
    pub node: Arc<str>,
    /// Client commands per second (token bucket refill).
    pub rate_per_s: u32,
    /// Token bucket size; also the number of refused commands within
    /// [`ABUSE_WINDOW`] that closes the session with 1008.
    pub rate_burst: u32,
}

/// Window over which refused commands are counted towards a 1008 close.
pub const ABUSE_WINDOW: Duration = Duration::from_secs(10);

/// The room a `/ws/{room}` socket joins on connect.
#[derive(Debug, Clone)]
pub struct InitialSubscription {
    /// Room.
    pub room: String,
    /// Resume point from `?since=`.
    pub since: Option<u64>,
    /// Epoch from `?epoch=`.
    pub epoch: Option<String>,
}

/// Everything a session needs to start; consumed by `started`.
pub struct SessionStart {
    /// The socket's writing half, handed to the writer task.
    pub ws: actix_ws::Session,
    /// The socket's reading half, added to the actor as a stream.
    pub stream: MessageStream,
    /// Subscription made on connect (`/ws/{room}`).
    pub initial: Option<InitialSubscription>,
}

/// A message being assembled from continuation frames.
struct Fragments {
    /// Text (validated as UTF-8 at the end) or binary.
    text: bool,
    /// The bytes so far, at most `max_frame_bytes`.
    buf: BytesMut,
}

/// One WebSocket session; see the module docs.
pub struct Session {
    /// The session's id.
    id: SessionId,
    /// Socket type: `connect` or a room name.
    kind: Arc<str>,
    /// Peer address, for logs and the admin API.
    remote: Arc<str>,
    /// What the socket's credentials allow (boxed: mostly empty, rarely read).
    claims: Box<Claims>,
    /// The hub's state owner.
    registry: RegistryHandle,
    /// Frames to the writer.
    queue: OutboundQueue,
    /// Counters shared with the writer and the registry.
    stats: Arc<SessionStats>,
    /// Limits.
    settings: Arc<SessionSettings>,
    /// Connect time, for the duration in the disconnect log line.
    connected: Instant,
    /// Last frame from the client, for the client timeout.
    last_seen: Instant,
    /// A fragmented message in progress.
    fragments: Option<Fragments>,
    /// Why the session ended, once known.
    reason: Option<DisconnectReason>,
    /// The command rate limit (a well-kept token bucket, `governor`).
    limiter: DefaultDirectRateLimiter,
    /// Commands refused by the limiter in the current abuse window, and when
    /// that window started.
    strikes: (u32, Instant),
    /// Taken by `started`. Boxed: it is most of the struct's size and is empty
    /// for the whole life of the session after `started`.
    start: Option<Box<SessionStart>>,
    /// Holds one slot of `max_connections` until the session is dropped.
    _permit: ConnectionPermit,
}

/// Sent by the writer task when it ends.
#[derive(Message)]
#[rtype(result = "()")]
struct WriterDone(WriterEnd);

impl Session {
    /// A session for an upgraded socket.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Arc<str>,
        remote: Arc<str>,
        claims: Claims,
        registry: RegistryHandle,
        settings: Arc<SessionSettings>,
        start: SessionStart,
        permit: ConnectionPermit,
    ) -> Self {
        let now = Instant::now();
        let quota =
            Quota::per_second(NonZeroU32::new(settings.rate_per_s).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(settings.rate_burst).unwrap_or(NonZeroU32::MIN));
        Session {
            id: SessionId::next(),
            kind,
            remote,
            claims: Box::new(claims),
            registry,
            queue: OutboundQueue::new(settings.outbound_queue, settings.outbound_queue_bytes),
            stats: Arc::new(SessionStats::new()),
            settings,
            connected: now,
            last_seen: now,
            fragments: None,
            reason: None,
            limiter: RateLimiter::direct(quota),
            strikes: (0, now),
            start: Some(Box::new(start)),
            _permit: permit,
        }
    }

    /// Ends the session: the writer sends `code` (after what is queued when
    /// `flush`), and the actor stops reading.
    fn close(
        &mut self,
        reason: DisconnectReason,
        code: CloseCode,
        flush: bool,
        ctx: &mut <Self as Actor>::Context,
    ) {
        self.reason.get_or_insert(reason);
        self.queue.close(code, flush);
        ctx.stop();
    }

    fn push(&self, frame: bytestring::ByteString) {
        // A refused push means the session is already closing; nothing to do.
        let _ = self.queue.push(Outbound::Frame(frame));
    }

    fn send_error(&self, err: &HubError, reference: Option<&Ref>) {
        crate::metrics::error_frame(err.code());
        let message = err.to_string();
        self.push(encode(&ErrorFrame {
            kind: "error",
            code: err.code(),
            message: &message,
            reference,
        }));
    }

    /// Takes a token for one command. Refused: `error rate_limited`, and a
    /// session refused `rate_burst` times within [`ABUSE_WINDOW`] is closed
    /// with 1008. Returns whether the command may run.
    fn admit(&mut self, ctx: &mut <Self as Actor>::Context) -> bool {
        if self.limiter.check().is_ok() {
            return true;
        }
        let (count, since) = &mut self.strikes;
        if since.elapsed() > ABUSE_WINDOW {
            *count = 0;
            *since = Instant::now();
        }
        *count += 1;
        if *count >= self.settings.rate_burst {
            self.close(DisconnectReason::Policy, CloseCode::Policy, false, ctx);
        } else {
            self.send_error(
                &HubError::RateLimited(format!(
                    "over {} commands per second; command dropped",
                    self.settings.rate_per_s
                )),
                None,
            );
        }
        false
    }

    fn on_text(&mut self, text: &str) {
        match command::decode(text) {
            Ok(envelope) => self.on_command(envelope),
            Err(e) => self.send_error(&HubError::BadRequest(e.message), e.reference.as_ref()),
        }
    }

    fn on_command(&mut self, Envelope { command, reference }: Envelope) {
        // A full registry intake refuses the command at once; the reply names
        // the command's ref so the client can retry it.
        let refused = |this: &Self, reference: Option<Ref>| {
            this.send_error(&registry::Busy.into(), reference.as_ref())
        };
        match command {
            Command::Subscribe { room, since, epoch } => {
                if let Err(err) = self.check_room(&room, false) {
                    return self.send_error(&err, reference.as_ref());
                }
                let msg = registry::Subscribe {
                    id: self.id,
                    room,
                    since,
                    epoch,
                    reference,
                };
                if let Err(registry::Busy) = self.registry.offer(msg.clone()) {
                    refused(self, msg.reference);
                }
            }
            Command::Unsubscribe { room } => {
                let busy = self.registry.offer(registry::Unsubscribe {
                    id: self.id,
                    room,
                    reference: reference.clone(),
                });
                if busy.is_err() {
                    refused(self, reference);
                }
            }
            Command::Publish { room, kind, data } => {
                if let Err(err) = self.check_room(&room, true) {
                    return self.send_error(&err, reference.as_ref());
                }
                let busy = self.registry.offer(registry::Publish {
                    room,
                    kind,
                    data,
                    origin: Some(registry::PublishOrigin {
                        id: self.id,
                        reference: reference.clone(),
                    }),
                    reply: None,
                    received: Instant::now(),
                    idempotency_key: None,
                });
                if busy.is_err() {
                    refused(self, reference);
                }
            }
            Command::Ping => self.push(encode(&Pong {
                kind: "pong",
                reference: reference.as_ref(),
            })),
        }
    }

    /// Name and claims checks that need no registry state.
    fn check_room(&self, room: &str, publish: bool) -> Result<(), HubError> {
        if !(is_valid_room_name(room) || (!publish && room == STATUS_ROOM)) {
            return Err(if is_system_room(room) && publish {
                HubError::Forbidden(format!("{room} is written by the hub only"))
            } else {
                HubError::UnknownRoom(room.to_string())
            });
        }
        let allowed = if publish {
            self.claims.can_publish(room)
        } else {
            self.claims.can_subscribe(room)
        };
        if !allowed {
            let verb = if publish {
                "publish into"
            } else {
                "subscribe to"
            };
            return Err(HubError::Forbidden(format!(
                "token does not allow {verb} {room}"
            )));
        }
        Ok(())
    }

    fn on_continuation(&mut self, item: Item, ctx: &mut <Self as Actor>::Context) {
        let (start_text, chunk, last) = match item {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        match (start_text, self.fragments.is_some()) {
            (Some(text), false) => {
                self.fragments = Some(Fragments {
                    text,
                    buf: BytesMut::new(),
                })
            }
            (Some(_), true) | (None, false) => {
                return self.close(
                    DisconnectReason::ProtocolError,
                    CloseCode::ProtocolError,
                    false,
                    ctx,
                )
            }
            (None, true) => {}
        }
        let max = self.settings.max_frame_bytes;
        let Some(frag) = self.fragments.as_mut() else {
            return;
        };
        if frag.buf.len() + chunk.len() > max {
            return self.close(
                DisconnectReason::ProtocolError,
                CloseCode::TooBig,
                false,
                ctx,
            );
        }
        frag.buf.extend_from_slice(&chunk);
        if !last {
            return;
        }
        let Some(Fragments { text, buf }) = self.fragments.take() else {
            return;
        };
        if !text {
            return self.on_binary();
        }
        match std::str::from_utf8(&buf) {
            Ok(s) => self.on_text(s),
            Err(_) => self.close(
                DisconnectReason::ProtocolError,
                CloseCode::InvalidPayload,
                false,
                ctx,
            ),
        }
    }

    fn on_binary(&self) {
        self.send_error(
            &HubError::BadRequest("binary frames are not supported; send JSON text frames".into()),
            None,
        );
    }
}

impl Actor for Session {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(start) = self.start.take() else {
            return ctx.stop();
        };
        let start = *start;
        let public_id = self.id.to_string();
        self.push(encode(&Welcome {
            kind: "welcome",
            session: &public_id,
            node: &self.settings.node,
            protocol: PROTOCOL_VERSION,
            heartbeat_ms: self.settings.heartbeat.as_millis() as u64,
        }));

        let (queue, stats, timeout, me) = (
            self.queue.clone(),
            self.stats.clone(),
            self.settings.write_timeout,
            ctx.address(),
        );
        actix_rt::spawn(writer::run(start.ws, queue, stats, timeout, move |end| {
            me.do_send(WriterDone(end))
        }));
        ctx.add_stream(start.stream.max_frame_size(self.settings.max_frame_bytes));

        self.registry.do_send(registry::Register {
            id: self.id,
            kind: self.kind.clone(),
            user: self.claims.sub.clone(),
            remote: self.remote.clone(),
            queue: self.queue.clone(),
            stats: self.stats.clone(),
        });
        if let Some(initial) = start.initial {
            // Not shed like a command: a `/ws/{room}` socket has no way to
            // ask again, and admission already bounds these (one per socket).
            self.registry.do_send(registry::Subscribe {
                id: self.id,
                room: initial.room,
                since: initial.since,
                epoch: initial.epoch,
                reference: None,
            });
        }

        if let Some(exp) = self.claims.exp {
            let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
            let left = Duration::from_millis(exp.saturating_mul(1000).saturating_sub(now_ms));
            ctx.run_later(left, |act, ctx| {
                act.close(
                    DisconnectReason::TokenExpired,
                    CloseCode::TokenExpired,
                    true,
                    ctx,
                )
            });
        }
        ctx.run_interval(self.settings.heartbeat, |act, ctx| {
            if act.last_seen.elapsed() > act.settings.client_timeout {
                act.close(DisconnectReason::Timeout, CloseCode::Normal, false, ctx);
            } else {
                let _ = act.queue.push(Outbound::Ping);
            }
        });
        log::info!(
            "connect session={} type={} remote={}",
            public_id,
            self.kind,
            self.remote
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // If nothing closed the queue yet (the peer vanished), close it so the
        // writer ends and drops the socket.
        self.queue.close(CloseCode::Normal, false);
        self.registry.do_send(registry::Unregister { id: self.id });
        let reason = self.reason.unwrap_or(DisconnectReason::ClientClosed);
        crate::metrics::disconnect(reason);
        log::info!(
            "disconnect session={} type={} remote={} duration_ms={} reason={}",
            self.id,
            self.kind,
            self.remote,
            self.connected.elapsed().as_millis(),
            reason.as_str()
        );
    }
}

impl StreamHandler<Result<actix_ws::Message, ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<actix_ws::Message, ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        self.stats.touch();
        let msg = match msg {
            Ok(msg) => msg,
            Err(err) => {
                let (reason, code) = match &err {
                    ProtocolError::Overflow => (DisconnectReason::ProtocolError, CloseCode::TooBig),
                    ProtocolError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        (DisconnectReason::ProtocolError, CloseCode::InvalidPayload)
                    }
                    ProtocolError::Io(_) => (DisconnectReason::ClientClosed, CloseCode::Normal),
                    _ => (DisconnectReason::ProtocolError, CloseCode::ProtocolError),
                };
                log::debug!("session={} protocol error: {err}", self.id);
                return self.close(reason, code, false, ctx);
            }
        };
        let is_data = matches!(
            msg,
            actix_ws::Message::Text(_) | actix_ws::Message::Binary(_)
        );
        if is_data {
            self.stats.msgs_in.fetch_add(1, Ordering::Relaxed);
            if self.fragments.is_some() {
                // A new message may not start inside a fragmented one (RFC 6455 5.4).
                return self.close(
                    DisconnectReason::ProtocolError,
                    CloseCode::ProtocolError,
                    false,
                    ctx,
                );
            }
            if !self.admit(ctx) {
                return;
            }
        }
        match msg {
            actix_ws::Message::Text(text) => self.on_text(&text),
            actix_ws::Message::Binary(_) => self.on_binary(),
            actix_ws::Message::Continuation(item) => {
                if matches!(item, Item::Last(_)) {
                    self.stats.msgs_in.fetch_add(1, Ordering::Relaxed);
                    if self.fragments.is_some() && !self.admit(ctx) {
                        self.fragments = None;
                        return;
                    }
                }
                self.on_continuation(item, ctx);
            }
            actix_ws::Message::Ping(payload) => {
                let _ = self.queue.push(Outbound::Pong(payload));
            }
            actix_ws::Message::Pong(_) | actix_ws::Message::Nop => {}
            actix_ws::Message::Close(_) => {
                self.close(DisconnectReason::ClientClosed, CloseCode::Normal, true, ctx)
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The peer's half ended without a close frame (abrupt TCP close).
        self.reason.get_or_insert(DisconnectReason::ClientClosed);
        ctx.stop();
    }
}

impl Handler<WriterDone> for Session {
    type Result = ();

    fn handle(&mut self, WriterDone(end): WriterDone, ctx: &mut Self::Context) {
        let reason = match end {
            WriterEnd::Closed(CloseCode::SlowConsumer) => DisconnectReason::SlowConsumer,
            WriterEnd::Closed(CloseCode::Draining) => DisconnectReason::Drain,
            WriterEnd::Closed(CloseCode::AdminDisconnect) => DisconnectReason::Admin,
            WriterEnd::Closed(CloseCode::TokenExpired) => DisconnectReason::TokenExpired,
            WriterEnd::Closed(_) | WriterEnd::SocketGone => DisconnectReason::ClientClosed,
        };
        self.reason.get_or_insert(reason);
        ctx.stop();
    }
}
