//! The hub's configuration: one typed struct with the contract's defaults, loaded
//! from TOML, overridden by `HUB_<SECTION>__<KEY>` variables, validated once.
//!
//! A bad config never starts a half-working server: every failure is a
//! [`ConfigError`] that names the key, and the binary exits 2 on it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::protocol::is_valid_room_name;

mod env;
mod error;
#[cfg(test)]
mod tests;
mod validate;

pub use error::ConfigError;

/// The configuration file compiled into the binary: what runs with no arguments.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.toml");

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "HUB_";

/// The whole configuration (contract section 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listener, origins, TLS, HTTP limits.
    pub server: ServerConfig,
    /// Per-socket behaviour and limits.
    pub websocket: WebSocketConfig,
    /// JWT for sockets, API keys for the HTTP write/admin API.
    pub auth: AuthConfig,
    /// Which rooms exist and how much history they keep.
    pub rooms: RoomsConfig,
    /// Redis cluster mode.
    pub cluster: ClusterConfig,
    /// The durable store of a single node.
    pub storage: StorageConfig,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Browser `Origin`s allowed on sockets and read-API CORS (empty = any),
    /// and the only ones the write/admin API answers (empty = none).
    pub allowed_origins: Vec<String>,
    /// Host names, besides loopback ones, that the write/admin API answers
    /// under when `auth.api_keys` is empty (a local proxy's public name); any
    /// other `Host` is refused, so DNS rebinding cannot reach that API.
    pub public_hosts: Vec<String>,
    /// Seconds a drain may take before the process exits anyway.
    pub shutdown_grace_s: u64,
    /// PEM certificate chain for wss/https.
    pub tls_cert: String,
    /// PEM private key for wss/https.
    pub tls_key: String,
    /// Largest HTTP request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Client commands and HTTP requests waiting for the registry at most;
    /// more are answered `unavailable` / 503 at once instead of queueing.
    pub registry_mailbox: usize,
    /// Socket commands are refused (`unavailable`) while the registry's
    /// mailbox delays messages longer than this, so a flood of commands cannot
    /// delay other rooms' events by more.
    pub registry_max_lag_ms: u64,
    /// Seconds a request body may take to arrive (408 after, and the
    /// connection is closed), so slow senders cannot pin connections.
    pub body_timeout_s: u64,
}

/// `[websocket]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// Seconds between server pings.
    pub heartbeat_interval_s: u64,
    /// Seconds of client silence before the session is closed.
    pub client_timeout_s: u64,
    /// Largest client frame or message (close 1009 above), checked against
    /// what a frame header declares, before its payload is read.
    pub max_frame_bytes: usize,
    /// Most frames one fragmented client message may take (close 1008 above),
    /// so a message that never ends cannot cost frames for free.
    pub max_fragments: usize,
    /// Frames queued for one socket before it is closed as a slow consumer.
    pub outbound_queue: usize,
    /// Bytes of live frames queued for one socket before it is closed as a slow
    /// consumer, so large events cannot multiply the frame bound into gigabytes.
    pub outbound_queue_bytes: usize,
    /// Seconds one socket write may stall before the session is closed as slow.
    pub write_timeout_s: u64,
    /// Client commands per second (token bucket refill).
    pub rate_per_s: u32,
    /// Token bucket size.
    pub rate_burst: u32,
    /// Sockets held at once by this node.
    pub max_connections: usize,
    /// Sockets per client IP; 0 = unlimited.
    pub max_connections_per_ip: usize,
    /// Serve `/ws/_echo` for conformance runs.
    pub echo_endpoint: bool,
    /// Rooms one session may be in at once (`$status` aside); 0 = unlimited.
    pub max_rooms_per_session: usize,
    /// SO_SNDBUF of every accepted socket, in bytes; 0 = the OS default (on
    /// Linux, autotuned up to `net.ipv4.tcp_wmem`'s maximum). Bounds the
    /// kernel memory a stalled client can pin beyond `outbound_queue_bytes`.
    pub socket_send_buffer: usize,
    /// The `retry:` an SSE stream opens with: how long EventSource waits
    /// before it reconnects. Each stream gets it with up to 25% jitter added,
    /// so a drain or restart is not followed by every browser at once.
    pub sse_retry_ms: u64,
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret (at least [`MIN_JWT_SECRET_BYTES`]); empty = not used.
    pub jwt_secret: String,
    /// RS256/ES256 public key (PEM file); empty = not used.
    pub jwt_public_key_file: String,
    /// When set, tokens must carry this `aud`.
    pub jwt_audience: String,
    /// When set, tokens must carry this `iss`.
    pub jwt_issuer: String,
    /// Bearer keys for the write/admin API; empty = loopback only.
    pub api_keys: Vec<String>,
    /// History and room lists are public (the v1 contract); false = they need
    /// an API key (loopback when there are none) or a token allowing the room.
    pub public_reads: bool,
}

/// Shortest HS256 secret accepted: the hash's own size (RFC 7518 3.2).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            jwt_public_key_file: String::new(),
            jwt_audience: String::new(),
            jwt_issuer: String::new(),
            api_keys: Vec::new(),
            public_reads: true,
        }
    }
}

/// `[rooms]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Any valid room name may be used, not only declared ones.
    pub allow_dynamic: bool,
    /// Events kept per room for recovery.
    pub history: usize,
    /// Events replayed to a fresh subscriber.
    pub snapshot: usize,
    /// Clients may publish from the socket.
    pub client_publish: bool,
    /// Rooms held at once, so dynamic rooms cannot grow memory without bound.
    pub max_rooms: usize,
    /// Dynamic rooms the sessions of one client IP may be in together, so a
    /// few sockets cannot hold every room slot; 0 = unlimited.
    pub max_rooms_per_ip: usize,
    /// Bytes of event frames a room's history keeps at most (besides
    /// `history` events), so large events cannot multiply it into gigabytes.
    pub history_bytes: usize,
    /// Idempotency keys one room remembers at most, so one writer's keys
    /// cannot push out another room's.
    pub idempotency_keys_per_room: usize,
    /// How long an HTTP publish's `Idempotency-Key` is remembered (0 = keys
    /// are ignored): a retry within it gets the first publish's seq.
    pub idempotency_ttl_s: u64,
    /// Rooms keep their state, the latest event of every key (contract
    /// section 11), unless a declaration says otherwise.
    pub keyed: bool,
    /// Keys a keyed room holds at most, so a writer cannot grow a room's
    /// state without bound: a new key beyond it is refused (409).
    pub max_keys: usize,
    /// Rooms track who is subscribed (contract section 13), unless a
    /// declaration says otherwise. Single node only for now.
    pub presence: bool,
    /// Declared rooms and their overrides.
    pub declare: Vec<RoomDecl>,
}

/// One `[[rooms.declare]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomDecl {
    /// The room's name.
    pub name: String,
    /// Overrides `rooms.history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<usize>,
    /// Overrides `rooms.snapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<usize>,
    /// Overrides `rooms.client_publish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_publish: Option<bool>,
    /// Overrides `rooms.keyed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed: Option<bool>,
    /// Overrides `rooms.max_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<usize>,
    /// Overrides `rooms.presence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<bool>,
}

impl RoomDecl {
    /// A declaration with no overrides.
    pub fn named(name: &str) -> Self {
        RoomDecl {
            name: name.to_string(),
            history: None,
            snapshot: None,
            client_publish: None,
            keyed: None,
            max_keys: None,
            presence: None,
        }
    }
}

/// `[storage]`: where a single node keeps its rooms (contract section 10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The store's directory, relative to the working directory; `""` keeps
    /// everything in memory (a restart starts every room in a new epoch).
    /// Not used in cluster mode, where Redis is the store.
    pub path: String,
    /// Sync every commit to disk before acknowledging it: a power loss then
    /// loses nothing acknowledged. Off, a crash of the hub still loses
    /// nothing, but a power loss may, and the rooms it touched get new epochs.
    pub fsync: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: "data".into(),
            fsync: true,
        }
    }
}

/// `[cluster]`: several nodes sharing one Redis (contract section 9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Redis URL (`redis://`, `rediss://`, `unix://`); empty = single node
    /// (unless `sentinels` is set).
    pub redis_url: String,
    /// Redis Sentinels (`host:port`) to ask for the primary instead of one
    /// fixed `redis_url`; set = cluster mode with failover.
    pub sentinels: Vec<String>,
    /// The name the Sentinels monitor the primary under (`sentinel monitor NAME`).
    pub sentinel_master: String,
    /// Password of the Sentinels, and of the primary and replicas they name
    /// (`requirepass` / `sentinel auth-pass`); empty = none.
    pub sentinel_password: String,
    /// TLS to the Sentinels and the data nodes they name.
    pub sentinel_tls: bool,
    /// Replicas that must hold a publish before it is acknowledged (Redis
    /// `WAIT`); -1 = 1 with `sentinels`, else 0.
    pub min_replicas_acked: i64,
    /// This node's id; empty = hostname-pid.
    pub node_id: String,
    /// Prefix of every Redis key and channel, so several hubs can share a Redis.
    pub key_prefix: String,
    /// How often a node writes its counters; its record lives 3 heartbeats.
    pub heartbeat_ms: u64,
    /// Longest wait to open a Redis connection.
    pub connect_timeout_ms: u64,
    /// Longest wait for a Redis answer; a publish waiting longer answers 503.
    pub command_timeout_ms: u64,
    /// Longest pause between reconnect attempts (the backoff doubles up to it).
    pub reconnect_max_ms: u64,
    /// Redis connections that publishes are spread over (by room).
    pub pool_size: usize,
    /// Idle time after which a dynamic room's Redis keys expire (0 = never).
    pub dynamic_room_ttl_s: u64,
}

impl ClusterConfig {
    /// Cluster mode: a Redis URL or Sentinels are set.
    pub fn is_on(&self) -> bool {
        !self.redis_url.is_empty() || !self.sentinels.is_empty()
    }

    /// Replicas a publish waits for (`min_replicas_acked`, -1 resolved).
    pub fn replicas_to_wait(&self) -> u32 {
        match u32::try_from(self.min_replicas_acked) {
            Ok(n) => n,
            Err(_) => u32::from(!self.sentinels.is_empty()),
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: String::new(),
            sentinels: Vec::new(),
            sentinel_master: String::new(),
            sentinel_password: String::new(),
            sentinel_tls: false,
            min_replicas_acked: -1,
            node_id: String::new(),
            key_prefix: "rthub".into(),
            heartbeat_ms: 1000,
            connect_timeout_ms: 2000,
            command_timeout_ms: 1000,
            reconnect_max_ms: 5000,
            pool_size: 2,
            dynamic_room_ttl_s: 86_400,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "0.0.0.0:8080".into(),
            workers: 0,
            allowed_origins: Vec::new(),
            public_hosts: Vec::new(),
            shutdown_grace_s: 10,
            tls_cert: String::new(),
            tls_key: String::new(),
            max_body_bytes: 1_048_576,
            registry_mailbox: 10_000,
            registry_max_lag_ms: 25,
            body_timeout_s: 10,
        }
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            heartbeat_interval_s: 15,
            client_timeout_s: 45,
            max_frame_bytes: 65_536,
            max_fragments: 64,
            outbound_queue: 1024,
            outbound_queue_bytes: 8 * 1024 * 1024,
            write_timeout_s: 10,
            rate_per_s: 100,
            rate_burst: 200,
            max_connections: 100_000,
            max_connections_per_ip: 0,
            echo_endpoint: false,
            max_rooms_per_session: 100,
            socket_send_buffer: 0,
            sse_retry_ms: 2000,
        }
    }
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            allow_dynamic: false,
            history: 100,
            snapshot: 20,
            client_publish: false,
            max_rooms: 10_000,
            max_rooms_per_ip: 2_500,
            history_bytes: 1_048_576,
            idempotency_keys_per_room: 10_000,
            idempotency_ttl_s: 300,
            keyed: false,
            max_keys: 10_000,
            presence: false,
            declare: ["hotspots", "alerts", "recommendations"]
                .into_iter()
                .map(RoomDecl::named)
                .collect(),
        }
    }
}

/// A room's effective settings, after overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomSettings {
    /// Events kept.
    pub history: usize,
    /// Events replayed to a fresh subscriber.
    pub snapshot: usize,
    /// Clients may publish from the socket.
    pub client_publish: bool,
    /// Bytes of frames history keeps at most (`rooms.history_bytes`).
    pub history_bytes: usize,
    /// The room keeps its state (latest event per key) besides its history.
    pub keyed: bool,
    /// Keys its state may hold at most (meaningful when `keyed`).
    pub max_keys: usize,
    /// The room tracks who is subscribed (contract section 13).
    pub presence: bool,
}

impl Config {
    /// Loads `path` (or the embedded default), applies `HUB_*` overrides from
    /// `env`, and validates.
    pub fn load<I>(path: Option<&Path>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let (origin, text) = match path {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
            ),
            None => ("embedded default".to_string(), EMBEDDED_DEFAULT.to_string()),
        };
        Config::from_toml(&origin, &text, env)
    }

    /// Parses TOML text, applies overrides from `env`, validates.
    pub fn from_toml<I>(origin: &str, text: &str, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
        env::apply_env(&mut table, env)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().message().to_string();
                ConfigError::key(key, message)
            })?;
        config.validate()?;
        Ok(config)
    }

    fn declared_settings(&self, decl: &RoomDecl) -> RoomSettings {
        let history = decl.history.unwrap_or(self.rooms.history);
        RoomSettings {
            history,
            snapshot: decl.snapshot.unwrap_or(self.rooms.snapshot).min(history),
            client_publish: decl.client_publish.unwrap_or(self.rooms.client_publish),
            history_bytes: self.rooms.history_bytes,
            keyed: decl.keyed.unwrap_or(self.rooms.keyed),
            max_keys: decl.max_keys.unwrap_or(self.rooms.max_keys),
            presence: decl.presence.unwrap_or(self.rooms.presence),
        }
    }

    /// The settings of `room`, or `None` when the room may not be used.
    pub fn room_settings(&self, room: &str) -> Option<RoomSettings> {
        if let Some(decl) = self.rooms.declare.iter().find(|d| d.name == room) {
            return Some(self.declared_settings(decl));
        }
        (self.rooms.allow_dynamic && is_valid_room_name(room)).then(|| RoomSettings {
            history: self.rooms.history,
            snapshot: self.rooms.snapshot.min(self.rooms.history),
            client_publish: self.rooms.client_publish,
            history_bytes: self.rooms.history_bytes,
            keyed: self.rooms.keyed,
            max_keys: self.rooms.max_keys,
            presence: self.rooms.presence,
        })
    }

    /// This node's id: `cluster.node_id`, or hostname-pid.
    pub fn node_id(&self) -> String {
        if !self.cluster.node_id.is_empty() {
            return self.cluster.node_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "hub".to_string());
        format!("{host}-{}", std::process::id())
    }

    /// HTTP worker threads to start.
    pub fn worker_count(&self) -> usize {
        if self.server.workers > 0 {
            self.server.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}
