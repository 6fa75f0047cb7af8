//! # realtime-hub
//!
//! A realtime WebSocket hub: backend services publish events over HTTP, the hub
//! fans them out to browsers in rooms, over WebSocket, in order, without losing
//! any that are still in history. The wire contract is `docs/PROTOCOL.md`.
//!
//! ## The data path, top to bottom
//!
//! One published event travels **socket → session actor → registry → engine →
//! registry → room → sessions**:
//!
//! - [`http`] receives `POST /api/rooms/{room}/events` (or a [`session`] receives
//!   a client `publish` command: its [`reader`] turns the socket's frames into
//!   whole messages, refusing a frame from its header when it declares more than
//!   the limits allow, and [`command`] decodes them) and sends the registry a
//!   `Publish` message — refused at once when the registry's intake is full.
//! - [`registry`] — the `RegistryActor`, on its own thread — owns every session,
//!   subscription and a mirror of every room it serves. Its `publish` module
//!   checks the event once and hands it to the [`engine`].
//! - The engine gives the event its seq and keeps it — in memory, in the local
//!   durable store (one fsync per batch, on its own thread), or in Redis — and
//!   hands back `Committed`. The registry answers the publisher, applies the
//!   event to the [`room`]'s mirror and pushes the frame, **encoded once**, into
//!   each subscriber's [`outbound`] queue. The push never waits: a full queue
//!   closes that session with 4008 instead.
//! - Each session's [`writer`] task drains its queue into the socket under a
//!   write timeout, and ends it with the close frame. The socket is a
//!   WebSocket or an [`sse`] stream (`GET /sse`): the writer's `Sink` seam is
//!   the only place they differ, and an SSE message wraps the same shared
//!   bytes in a fixed prefix and suffix, plus an `id:` resume cursor.
//!
//! Subscribing takes the same road the other way: the session actor forwards
//! `subscribe` to the registry, which queues `subscribed` plus the replay and
//! adds the subscriber in one step, so replay and live events meet with no gap
//! and no duplicate.
//!
//! ## The other modules
//!
//! - [`protocol`]: every code, close code, reserved name and frame shape of the
//!   contract, in one place. [`error`] maps failures onto those codes once.
//! - [`config`]: the typed configuration as plain data, its defaults, the
//!   `HUB_SECTION__KEY` overrides and validation; [`prepared`] builds what a
//!   valid config needs at runtime (JWT verifier, TLS), once.
//! - [`address`]: host and `host:port` parsing shared by config, HTTP and Sentinel.
//! - [`auth`]: the claims seam — what a socket may subscribe to and publish; the
//!   JWT verifier plugs in there.
//! - [`connections`]: admission against `max_connections` (per node, per IP);
//!   [`fd_limit`] caps it to what `RLIMIT_NOFILE` allows.
//! - [`event`]: an event as history, mirrors and queues hold it (seq, frame
//!   encoded once, and a keyed publish's change).
//! - [`idempotency`]: the bounded per-room memory of `Idempotency-Key`s.
//! - [`store`]: the durable engine's local store (redb, one file under
//!   `storage.path`): every room's epoch, head, last events, keyed state and
//!   idempotency keys, written by one thread with group commit, checked when
//!   read back.
//! - [`keyed`]: keyed rooms' state (the latest event per key): the engines'
//!   `max_keys` check before a seq is given, and the mirror's state that a
//!   fresh subscriber gets instead of a snapshot.
//! - [`presence`]: who is subscribed to a presence room, by user, and the
//!   `presence_join` / `presence_leave` on first in, last out.
//! - [`tls`]: wss/https with rustls.
//! - [`server`]: choosing the engine, binding, running, signal handling and the
//!   graceful drain.
//! - [`cli`]: the binary's `status`/`rooms`/`publish`/`healthcheck` commands
//!   against a running hub, and its log format (`HUB_LOG_FORMAT=json`).
//! - [`ids`], [`session_stats`]: session ids and epochs; per-session counters.
//! - [`metrics`]: Prometheus metric names, the recorder and `/metrics`.
//!
//! ## Cluster mode
//!
//! With `cluster.redis_url` (or `cluster.sentinels`) set, the engine is [`cluster`]'s `RedisEngine`: a Lua
//! script in Redis assigns `seq`, appends to the room's stream and broadcasts the
//! frame; every node hands its registry the events strictly in seq order (filling
//! gaps from the stream), and they take the same `apply_events` → `fan_out` path
//! as on one node. Sessions never see the difference. With `cluster.sentinels`
//! instead, the primary is the one Redis Sentinel names (`cluster::sentinel`),
//! followed through failovers, and publishes are acknowledged once
//! `min_replicas_acked` replicas hold them.

pub mod address;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod command;
pub mod config;
pub mod connections;
pub mod engine;
pub mod error;
pub mod event;
pub mod fd_limit;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod keyed;
pub mod metrics;
pub mod outbound;
pub mod prepared;
pub mod presence;
pub mod protocol;
pub mod reader;
pub mod registry;
pub mod room;
pub mod server;
pub mod session;
pub mod session_stats;
pub mod socket_end;
pub mod sse;
pub mod store;
pub mod tls;
pub mod writer;

pub use config::Config;
pub use error::HubError;
pub use prepared::Prepared;
pub use server::{spawn, Hub, HubHandle, SpawnedHub};
