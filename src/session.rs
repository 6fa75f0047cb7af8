//! The `Session` actor: one per WebSocket or SSE stream. It reads and parses
//! the client's frames (WebSocket only: an SSE client sends nothing), keeps the
//! heartbeat, checks the socket's claims, and turns commands into registry
//! messages. It never writes to the socket itself: every frame it or the
//! registry produces goes through its [`OutboundQueue`] to the writer task,
//! whose [`writer::Sink`] is the one place the two transports differ.
//!
//! Lifecycle: `started` queues `welcome`, spawns the writer and registers;
//! anything that ends the session closes the queue (the writer sends the close
//! frame) and stops the actor; `stopped` unregisters and logs one line.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::num::NonZeroU32;

use actix::{Actor, ActorContext, AsyncContext, Handler, Message, SpawnHandle, StreamHandler};
use actix_ws::AggregatedMessage;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::auth::{Authenticator, Claims};
use crate::command::{self, Command, Envelope};
use crate::connections::ConnectionPermit;
use crate::error::HubError;
use crate::ids::SessionId;
use crate::outbound::{Outbound, OutboundQueue};
use crate::protocol::frame_type;
use crate::protocol::{
    encode, is_system_room, is_valid_room_name, CloseCode, DisconnectReason, ErrorFrame, Pong, Ref,
    Refreshed, Welcome, PROTOCOL_VERSION, STATUS_ROOM,
};
use crate::reader::{FrameReader, ReadError, ReadLimits};
use crate::registry::{self, RegistryHandle};
use crate::session_stats::SessionStats;
use crate::sse::SseSink;
use crate::writer::{self, WriterEnd};

/// The limits a session enforces, taken once from the config.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Verifies a token sent with `refresh`, as at the upgrade.
    pub auth: Arc<Authenticator>,
    /// Server ping interval.
    pub heartbeat: Duration,
    /// Client silence before closing: time since the last whole message or
    /// control frame (a frame or fragmented message in progress is silence).
    pub client_timeout: Duration,
    /// What one client message may take; the reader enforces it.
    pub read_limits: ReadLimits,
    /// Outbound queue length.
    pub outbound_queue: usize,
    pub outbound_queue_bytes: usize,
    /// Longest a single socket write may stall.
    pub write_timeout: Duration,
    /// This node's id, for `welcome`.
    pub node: Arc<str>,
    /// Client messages and control frames per second (token bucket refill).
    pub rate_per_s: u32,
    /// Token bucket size; also the number of refusals within [`ABUSE_WINDOW`]
    /// that closes the session with 1008.
    pub rate_burst: u32,
}

/// Window over which refused commands are counted towards a 1008 close.
pub const ABUSE_WINDOW: Duration = Duration::from_secs(10);

/// The room a `/ws/{room}` socket joins on connect.
#[derive(Debug, Clone)]
pub struct InitialSubscription {
    pub room: String,
    /// Resume point from `?since=`.
    pub since: Option<u64>,
    /// Epoch from `?epoch=`.
    pub epoch: Option<String>,
}

/// What a session's frames travel over.
pub enum Transport {
    /// A WebSocket: frames both ways.
    WebSocket {
        /// The socket's writing half, handed to the writer task.
        ws: actix_ws::Session,
        /// The socket's reading half, added to the actor as a stream.
        stream: FrameReader,
        /// The plain TCP socket under it, ended right after the close
        /// handshake (src/socket_end.rs).
        socket: Option<crate::socket_end::PeerSocket>,
    },
    /// An SSE stream: frames to the client only; it publishes over HTTP.
    Sse(SseSink),
}

/// Everything a session needs to start; consumed by `started`.
pub struct SessionStart {
    /// The transport, handed to the writer task (and its reader to the actor).
    pub transport: Transport,
    /// Subscriptions made on connect (`/ws/{room}`: one; `/sse`: its rooms).
    pub initial: Vec<InitialSubscription>,
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
    /// What every session of this node shares: limits, heartbeat, auth.
    settings: Arc<SessionSettings>,
    /// Connect time, for the duration in the disconnect log line.
    connected: Instant,
    /// Last whole message or control frame from the client, for the client
    /// timeout.
    last_seen: Instant,
    /// Whether the client can speak (WebSocket): only then does its silence
    /// end the session. A dead SSE peer is found by the keep-alive write.
    reads: bool,
    /// Why the session ended, once known.
    reason: Option<DisconnectReason>,
    /// The command rate limit (a well-kept token bucket, `governor`).
    limiter: DefaultDirectRateLimiter,
    /// Commands refused by the limiter in the current abuse window, and when
    /// that window started.
    strikes: (u32, Instant),
    /// The 4001 close at the token's `exp`, moved by a `refresh`.
    expiry: Option<SpawnHandle>,
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
            reads: matches!(start.transport, Transport::WebSocket { .. }),
            reason: None,
            limiter: RateLimiter::direct(quota),
            strikes: (0, now),
            expiry: None,
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
            kind: frame_type::ERROR,
            code: err.code(),
            message: &message,
            reference,
        }));
    }

    /// Takes a token for one message or control frame. Refused: a command
    /// gets `error rate_limited` (a control frame is dropped silently), and a
    /// session refused `rate_burst` times within [`ABUSE_WINDOW`] is closed
    /// with 1008. Returns whether it may be handled.
    fn admit(&mut self, command: bool, ctx: &mut <Self as Actor>::Context) -> bool {
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
        } else if command {
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

    fn on_text(&mut self, text: &str, ctx: &mut <Self as Actor>::Context) {
        match command::decode(text) {
            Ok(envelope) => self.on_command(envelope, ctx),
            Err(e) => self.send_error(&HubError::BadRequest(e.message), e.reference.as_ref()),
        }
    }

    fn on_command(
        &mut self,
        Envelope { command, reference }: Envelope,
        ctx: &mut <Self as Actor>::Context,
    ) {
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
            Command::Publish {
                room,
                kind,
                data,
                key,
                delete,
            } => {
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
                    key,
                    delete,
                });
                if busy.is_err() {
                    refused(self, reference);
                }
            }
            Command::Ping => self.push(encode(&Pong {
                kind: frame_type::PONG,
                reference: reference.as_ref(),
            })),
            Command::Presence { room } => {
                let busy = self.registry.offer(registry::AskPresence {
                    id: self.id,
                    room,
                    reference: reference.clone(),
                });
                if busy.is_err() {
                    refused(self, reference);
                }
            }
            Command::Refresh { token } => self.refresh(&token, reference.as_ref(), ctx),
        }
    }

    /// Schedules the 4001 close at the claims' `exp`, replacing an earlier one.
    fn arm_expiry(&mut self, ctx: &mut <Self as Actor>::Context) {
        if let Some(old) = self.expiry.take() {
            ctx.cancel_future(old);
        }
        let Some(exp) = self.claims.exp else {
            return;
        };
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let left = Duration::from_millis(exp.saturating_mul(1000).saturating_sub(now_ms));
        self.expiry = Some(ctx.run_later(left, |act, ctx| {
            act.close(
                DisconnectReason::TokenExpired,
                CloseCode::TokenExpired,
                true,
                ctx,
            )
        }));
    }

    /// `refresh` (contract section 14): a valid token for the same `sub`
    /// replaces the claims and moves the 4001 close; anything else is refused
    /// and the old claims and `exp` stay.
    fn refresh(
        &mut self,
        token: &str,
        reference: Option<&Ref>,
        ctx: &mut <Self as Actor>::Context,
    ) {
        let claims = self.settings.auth.verify_token(token).and_then(|claims| {
            match claims.sub == self.claims.sub {
                true => Ok(claims),
                false => Err(HubError::Unauthorized(
                    "the new token is for another user (`sub`)".into(),
                )),
            }
        });
        let claims = match claims {
            Ok(claims) => claims,
            Err(err) => {
                crate::metrics::token_refresh(false);
                return self.send_error(&err, reference);
            }
        };
        crate::metrics::token_refresh(true);
        // The registry leaves the rooms the new claims do not allow (and
        // checks subscribes still in flight) before anything sent after this.
        self.registry.do_send(registry::Reclaim {
            id: self.id,
            claims: claims.clone(),
        });
        *self.claims = claims;
        self.arm_expiry(ctx);
        self.push(encode(&Refreshed {
            kind: frame_type::REFRESHED,
            exp: self.claims.exp.unwrap_or(0),
            reference,
        }));
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
            kind: frame_type::WELCOME,
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
        let on_end = move |end| me.do_send(WriterDone(end));
        match start.transport {
            Transport::WebSocket { ws, stream, socket } => {
                let sink = writer::WebSocketSink {
                    ws,
                    socket,
                    stats: stats.clone(),
                };
                actix_rt::spawn(writer::run(sink, queue, stats, timeout, on_end));
                ctx.add_stream(stream);
            }
            Transport::Sse(sink) => {
                actix_rt::spawn(writer::run(sink, queue, stats, timeout, on_end));
            }
        }

        self.registry.do_send(registry::Register {
            id: self.id,
            kind: self.kind.clone(),
            user: self.claims.sub.clone(),
            remote: self.remote.clone(),
            queue: self.queue.clone(),
            stats: self.stats.clone(),
        });
        for initial in start.initial {
            // Not shed like a command: a `/ws/{room}` socket or an SSE stream
            // has no way to ask again, and admission already bounds these
            // (one per socket; an SSE stream's rooms are capped by
            // `max_rooms_per_session`).
            self.registry.do_send(registry::Subscribe {
                id: self.id,
                room: initial.room,
                since: initial.since,
                epoch: initial.epoch,
                reference: None,
            });
        }

        self.arm_expiry(ctx);
        ctx.run_interval(self.settings.heartbeat, |act, ctx| {
            if act.reads && act.last_seen.elapsed() > act.settings.client_timeout {
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

impl StreamHandler<Result<AggregatedMessage, ReadError>> for Session {
    /// Every message and control frame takes a rate-limit token, so neither
    /// pings nor fragments (capped per message by the reader) come free.
    fn handle(&mut self, msg: Result<AggregatedMessage, ReadError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        self.stats.touch();
        let msg = match msg {
            Ok(msg) => msg,
            Err(err) => {
                log::debug!("session={} read error: {err}", self.id);
                return self.close(err.reason(), err.close_code(), false, ctx);
            }
        };
        match msg {
            AggregatedMessage::Text(text) => {
                self.stats.msgs_in.fetch_add(1, Ordering::Relaxed);
                if self.admit(true, ctx) {
                    self.on_text(&text, ctx);
                }
            }
            AggregatedMessage::Binary(_) => {
                self.stats.msgs_in.fetch_add(1, Ordering::Relaxed);
                if self.admit(true, ctx) {
                    self.on_binary();
                }
            }
            AggregatedMessage::Ping(payload) => {
                if self.admit(false, ctx) {
                    let _ = self.queue.push(Outbound::Pong(payload));
                }
            }
            AggregatedMessage::Pong(_) => {
                self.admit(false, ctx);
            }
            AggregatedMessage::Close(_) => {
                self.stats.peer_closed.store(true, Ordering::Release);
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
