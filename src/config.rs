//! The hub's configuration: one typed struct with the contract's defaults, loaded
//! from TOML, overridden by `HUB_<SECTION>__<KEY>` variables, validated once.
//!
//! A bad config never starts a half-working server: every failure is a
//! [`ConfigError`] that names the key, and the binary exits 2 on it.

use std::collections::HashSet;
use std::net::ToSocketAddrs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::protocol::is_valid_room_name;

/// The configuration file compiled into the binary: what runs with no arguments.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/default.toml");

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "HUB_";

/// Why a configuration was refused; each variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error.
    #[error("config syntax error in {origin}: {message}")]
    Syntax {
        /// File name or "embedded default".
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key with a wrong type, an unknown key, or a value out of range.
    #[error("invalid config key `{key}`: {message}")]
    Key {
        /// Dotted key path, e.g. `server.workers`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

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
        crate::config_env::apply_env(&mut table, env)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().message().to_string();
                ConfigError::key(key, message)
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every cross-field rule; the first violation is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        let resolves = s
            .bind
            .to_socket_addrs()
            .is_ok_and(|mut a| a.next().is_some());
        match resolves {
            true => {}
            false => {
                return Err(ConfigError::key(
                    "server.bind",
                    format!("`{}` is not a host:port address", s.bind),
                ))
            }
        }
        for origin in &s.allowed_origins {
            if origin.is_empty() || origin.ends_with('/') || !origin.contains("://") {
                return Err(ConfigError::key(
                    "server.allowed_origins",
                    format!("`{origin}` is not an origin like https://app.example.com"),
                ));
            }
        }
        for host in &s.public_hosts {
            let bare = crate::http::host_name(host);
            if host.is_empty() || bare != host || host.contains(['/', ' ']) {
                return Err(ConfigError::key(
                    "server.public_hosts",
                    format!("`{host}` is not a host name without port, like hub.example.com"),
                ));
            }
        }
        match (s.tls_cert.is_empty(), s.tls_key.is_empty()) {
            (true, true) => {}
            (false, false) => {
                require_file("server.tls_cert", &s.tls_cert)?;
                require_file("server.tls_key", &s.tls_key)?;
                crate::tls::server_config(&s.tls_cert, &s.tls_key)?;
            }
            (true, false) => {
                return Err(ConfigError::key(
                    "server.tls_cert",
                    "tls_key is set but tls_cert is not; set both or neither",
                ))
            }
            (false, true) => {
                return Err(ConfigError::key(
                    "server.tls_key",
                    "tls_cert is set but tls_key is not; set both or neither",
                ))
            }
        }
        at_least("server.max_body_bytes", s.max_body_bytes as u64, 64)?;
        at_least("server.registry_mailbox", s.registry_mailbox as u64, 16)?;
        at_least("server.registry_max_lag_ms", s.registry_max_lag_ms, 1)?;
        at_least("server.body_timeout_s", s.body_timeout_s, 1)?;

        let w = &self.websocket;
        at_least("websocket.heartbeat_interval_s", w.heartbeat_interval_s, 1)?;
        if w.client_timeout_s <= w.heartbeat_interval_s {
            return Err(ConfigError::key(
                "websocket.client_timeout_s",
                format!(
                    "must be greater than heartbeat_interval_s ({})",
                    w.heartbeat_interval_s
                ),
            ));
        }
        at_least("websocket.max_frame_bytes", w.max_frame_bytes as u64, 256)?;
        at_least("websocket.max_fragments", w.max_fragments as u64, 1)?;
        if w.socket_send_buffer != 0 && !(4096..=1 << 30).contains(&w.socket_send_buffer) {
            return Err(ConfigError::key(
                "websocket.socket_send_buffer",
                format!(
                    "must be 0 (the OS default) or 4096 to 1073741824 bytes (got {})",
                    w.socket_send_buffer
                ),
            ));
        }
        at_least("websocket.outbound_queue", w.outbound_queue as u64, 1)?;
        at_least("websocket.sse_retry_ms", w.sse_retry_ms, 1)?;
        at_least(
            "websocket.outbound_queue_bytes",
            w.outbound_queue_bytes as u64,
            1024,
        )?;
        at_least("websocket.write_timeout_s", w.write_timeout_s, 1)?;
        at_least("websocket.rate_per_s", u64::from(w.rate_per_s), 1)?;
        at_least("websocket.rate_burst", u64::from(w.rate_burst), 1)?;
        at_least("websocket.max_connections", w.max_connections as u64, 1)?;

        let a = &self.auth;
        if !a.jwt_secret.is_empty() && !a.jwt_public_key_file.is_empty() {
            return Err(ConfigError::key(
                "auth.jwt_public_key_file",
                "both jwt_secret and jwt_public_key_file are set; choose one JWT method",
            ));
        }
        if !a.jwt_secret.is_empty() && a.jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::key(
                "auth.jwt_secret",
                format!(
                    "must be at least {MIN_JWT_SECRET_BYTES} bytes (got {}): a short HS256 secret can be brute-forced from one token",
                    a.jwt_secret.len()
                ),
            ));
        }
        if !a.jwt_public_key_file.is_empty() {
            require_file("auth.jwt_public_key_file", &a.jwt_public_key_file)?;
        }
        let jwt_on = !a.jwt_secret.is_empty() || !a.jwt_public_key_file.is_empty();
        for (key, value) in [
            ("auth.jwt_audience", &a.jwt_audience),
            ("auth.jwt_issuer", &a.jwt_issuer),
        ] {
            if !value.is_empty() && !jwt_on {
                return Err(ConfigError::key(
                    key,
                    "is set but no JWT method is (auth.jwt_secret or auth.jwt_public_key_file)",
                ));
            }
        }
        // Parses the key file (or secret) exactly as the running hub will.
        crate::auth::Authenticator::new(a)?;
        if a.api_keys.iter().any(|k| k.trim().len() < 8) {
            return Err(ConfigError::key(
                "auth.api_keys",
                "every API key must be at least 8 characters",
            ));
        }

        self.validate_rooms()?;

        self.validate_cluster()
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        if !c.is_on() {
            for (key, set) in [
                ("cluster.sentinel_master", !c.sentinel_master.is_empty()),
                ("cluster.sentinel_password", !c.sentinel_password.is_empty()),
                ("cluster.sentinel_tls", c.sentinel_tls),
            ] {
                if set {
                    return Err(ConfigError::key(
                        key,
                        "is set but cluster.sentinels is not (list the Sentinels as host:port)",
                    ));
                }
            }
            return Ok(());
        }
        if c.sentinels.is_empty() {
            check_redis_url(&c.redis_url)?;
        } else {
            check_sentinels(c)?;
        }
        if !(-1..=MAX_REPLICAS_ACKED).contains(&c.min_replicas_acked) {
            return Err(ConfigError::key(
                "cluster.min_replicas_acked",
                format!(
                    "must be -1 (auto: 1 with sentinels, else 0) or 0..={MAX_REPLICAS_ACKED} (got {})",
                    c.min_replicas_acked
                ),
            ));
        }
        if c.key_prefix.is_empty()
            || !c
                .key_prefix
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-.:".contains(ch))
        {
            return Err(ConfigError::key(
                "cluster.key_prefix",
                "must be non-empty ASCII letters, digits or _-.:",
            ));
        }
        if c.node_id
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            return Err(ConfigError::key(
                "cluster.node_id",
                "must not contain whitespace",
            ));
        }
        at_least("cluster.heartbeat_ms", c.heartbeat_ms, 50)?;
        at_least("cluster.connect_timeout_ms", c.connect_timeout_ms, 10)?;
        at_least("cluster.command_timeout_ms", c.command_timeout_ms, 10)?;
        at_least("cluster.reconnect_max_ms", c.reconnect_max_ms, 10)?;
        at_least("cluster.pool_size", c.pool_size as u64, 1)?;
        if c.pool_size > 64 {
            return Err(ConfigError::key("cluster.pool_size", "must be at most 64"));
        }
        Ok(())
    }

    fn validate_rooms(&self) -> Result<(), ConfigError> {
        let r = &self.rooms;
        check_history("rooms", r.history)?;
        check_max_keys("rooms", r.max_keys)?;
        at_least("rooms.max_rooms", r.max_rooms as u64, 1)?;
        at_least("rooms.history_bytes", r.history_bytes as u64, 1024)?;
        at_least(
            "rooms.idempotency_keys_per_room",
            r.idempotency_keys_per_room as u64,
            1,
        )?;
        if r.declare.len() > r.max_rooms {
            return Err(ConfigError::key(
                "rooms.max_rooms",
                format!(
                    "{} rooms are declared but max_rooms is {}",
                    r.declare.len(),
                    r.max_rooms
                ),
            ));
        }
        let mut seen = HashSet::new();
        for (i, decl) in r.declare.iter().enumerate() {
            let key = format!("rooms.declare[{i}].name");
            if !is_valid_room_name(&decl.name) {
                return Err(ConfigError::key(
                    key,
                    format!(
                        "`{}` is not a valid room name (^[a-z0-9][a-z0-9_.:-]{{0,63}}$)",
                        decl.name
                    ),
                ));
            }
            if !seen.insert(decl.name.as_str()) {
                return Err(ConfigError::key(
                    key,
                    format!("`{}` is declared twice", decl.name),
                ));
            }
            let settings = self.declared_settings(decl);
            check_history(&format!("rooms.declare[{i}]"), settings.history)?;
            check_max_keys(&format!("rooms.declare[{i}]"), settings.max_keys)?;
        }
        Ok(())
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

/// Highest `cluster.min_replicas_acked`: more replicas than any deployment runs.
const MAX_REPLICAS_ACKED: i64 = 16;

fn check_redis_url(url: &str) -> Result<(), ConfigError> {
    let scheme_ok = ["redis://", "rediss://", "unix://", "redis+unix://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !scheme_ok {
        return Err(ConfigError::key(
            "cluster.redis_url",
            "must start with redis://, rediss:// or unix://",
        ));
    }
    if let Err(e) = redis::Client::open(url) {
        return Err(ConfigError::key(
            "cluster.redis_url",
            format!("not a usable Redis URL: {e}"),
        ));
    }
    Ok(())
}

/// `cluster.sentinels` and the keys that go with them (`redis_url` is the
/// other way to name the primary: both is a contradiction, refused).
fn check_sentinels(c: &ClusterConfig) -> Result<(), ConfigError> {
    if !c.redis_url.is_empty() {
        return Err(ConfigError::key(
            "cluster.sentinels",
            "both cluster.redis_url and cluster.sentinels are set; choose one (Sentinels find the primary themselves)",
        ));
    }
    if c.sentinel_master.is_empty() {
        return Err(ConfigError::key(
            "cluster.sentinel_master",
            "must be set with cluster.sentinels: the name the Sentinels monitor the primary under",
        ));
    }
    if c.sentinel_master
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        return Err(ConfigError::key(
            "cluster.sentinel_master",
            "must not contain whitespace",
        ));
    }
    for (i, addr) in c.sentinels.iter().enumerate() {
        if crate::cluster::sentinel::parse_addr(addr).is_none() {
            return Err(ConfigError::key(
                format!("cluster.sentinels[{i}]"),
                format!("`{addr}` is not host:port"),
            ));
        }
    }
    Ok(())
}

fn at_least(key: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::key(
            key,
            format!("must be at least {min} (got {value})"),
        ));
    }
    Ok(())
}

/// History is bounded; a snapshot over history is not an error (it is served
/// from history, so `room_settings` caps it).
fn check_history(prefix: &str, history: usize) -> Result<(), ConfigError> {
    if history > 1_000_000 {
        return Err(ConfigError::key(
            format!("{prefix}.history"),
            "must be at most 1000000",
        ));
    }
    Ok(())
}

/// A keyed room holds at least one key; at most a million, like history.
fn check_max_keys(prefix: &str, max_keys: usize) -> Result<(), ConfigError> {
    if !(1..=1_000_000).contains(&max_keys) {
        return Err(ConfigError::key(
            format!("{prefix}.max_keys"),
            format!("must be 1 to 1000000 (got {max_keys})"),
        ));
    }
    Ok(())
}

fn require_file(key: &str, path: &str) -> Result<(), ConfigError> {
    if Path::new(path).is_file() {
        Ok(())
    } else {
        Err(ConfigError::key(
            key,
            format!("file `{path}` does not exist"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn embedded_default_matches_code_defaults() {
        let from_file = Config::from_toml("embedded", EMBEDDED_DEFAULT, no_env()).expect("valid");
        assert_eq!(from_file, Config::default());
    }

    #[test]
    fn missing_keys_keep_defaults_and_declare_defaults_to_three_feeds() {
        let c =
            Config::from_toml("t", "[server]\nbind = \"127.0.0.1:0\"\n", no_env()).expect("valid");
        assert_eq!(c.server.bind, "127.0.0.1:0");
        assert_eq!(c.websocket, WebSocketConfig::default());
        let names: Vec<_> = c.rooms.declare.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["hotspots", "alerts", "recommendations"]);
    }

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Key { key, .. } => key,
            other => panic!("expected a key error, got {other}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        let err = Config::from_toml("t", "[server]\nworkers = \"x\"\n", no_env()).unwrap_err();
        assert_eq!(key_of(err), "server.workers");
        let err = Config::from_toml("t", "[server]\nbindx = 1\n", no_env()).unwrap_err();
        assert!(err.to_string().contains("bindx"), "{err}");
        let err = Config::from_toml("t", "[[rooms.declare]]\nname = \"Bad Name\"\n", no_env())
            .unwrap_err();
        assert_eq!(key_of(err), "rooms.declare[0].name");
        let err = Config::from_toml(
            "t",
            "[auth]\njwt_secret = \"a-secret-of-at-least-32-bytes-ok\"\njwt_public_key_file = \"/etc/hostname\"\n",
            no_env(),
        )
        .unwrap_err();
        assert_eq!(key_of(err), "auth.jwt_public_key_file");
        let err = Config::from_toml(
            "t",
            "[server]\ntls_cert = \"/nope.pem\"\ntls_key = \"/nope.key\"\n",
            no_env(),
        )
        .unwrap_err();
        assert_eq!(key_of(err), "server.tls_cert");
        for bad in ["max_fragments = 0", "socket_send_buffer = 100"] {
            let err =
                Config::from_toml("t", &format!("[websocket]\n{bad}\n"), no_env()).unwrap_err();
            let key = format!("websocket.{}", bad.split(' ').next().unwrap_or(""));
            assert_eq!(key_of(err), key);
        }
        let err = Config::from_toml("t", "[rooms]\nhistory = 2000000\n", no_env()).unwrap_err();
        assert_eq!(key_of(err), "rooms.history");
        let capped = Config::from_toml("t", "[rooms]\nhistory = 5\nsnapshot = 6\n", no_env())
            .expect("a snapshot over history is capped, not refused");
        assert_eq!(capped.room_settings("alerts").map(|s| s.snapshot), Some(5));
        assert!(matches!(
            Config::from_toml("t", "[server\n", no_env()),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn hardening_keys_are_checked() {
        let check = |text: &str| Config::from_toml("t", text, no_env());
        let short = check("[auth]\njwt_secret = \"0123456789abcdef0123456789abcde\"\n");
        assert_eq!(key_of(short.unwrap_err()), "auth.jwt_secret");
        check("[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n")
            .expect("32 bytes are enough");
        for key in ["jwt_audience", "jwt_issuer"] {
            let err = check(&format!("[auth]\n{key} = \"x\"\n")).unwrap_err();
            assert_eq!(key_of(err), format!("auth.{key}"), "without a JWT method");
        }
        for bad in ["hub.example.com:8080", "http://hub.example.com", "", "a b"] {
            let err = check(&format!("[server]\npublic_hosts = [\"{bad}\"]\n")).unwrap_err();
            assert_eq!(key_of(err), "server.public_hosts", "{bad:?}");
        }
        let ok =
            check("[server]\npublic_hosts = [\"hub.internal\", \"[fd00::1]\"]\n").expect("valid");
        assert_eq!(ok.server.public_hosts.len(), 2);
        let err = check("[server]\nbody_timeout_s = 0\n").unwrap_err();
        assert_eq!(key_of(err), "server.body_timeout_s");
        assert!(
            Config::default().auth.public_reads,
            "the v1 contract: public reads"
        );
    }

    #[test]
    fn cluster_keys_are_checked_only_when_redis_is_on() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // Off: the other keys may be anything.
        Config::from_toml("t", "", env(&[("HUB_CLUSTER__POOL_SIZE", "0")])).expect("off");
        let on = |extra: &[(&str, &str)]| {
            let mut vars = vec![("HUB_CLUSTER__REDIS_URL", "redis://127.0.0.1:6390/")];
            vars.extend_from_slice(extra);
            Config::from_toml("t", "", env(&vars))
        };
        let c = on(&[("HUB_CLUSTER__HEARTBEAT_MS", "250")]).expect("valid cluster");
        assert_eq!(c.cluster.heartbeat_ms, 250);
        for (var, key) in [
            ("HUB_CLUSTER__REDIS_URL", "cluster.redis_url"),
            ("HUB_CLUSTER__KEY_PREFIX", "cluster.key_prefix"),
            ("HUB_CLUSTER__NODE_ID", "cluster.node_id"),
            ("HUB_CLUSTER__POOL_SIZE", "cluster.pool_size"),
            ("HUB_CLUSTER__HEARTBEAT_MS", "cluster.heartbeat_ms"),
        ] {
            let bad = match var {
                "HUB_CLUSTER__REDIS_URL" => "http://x/",
                "HUB_CLUSTER__KEY_PREFIX" => "a b",
                "HUB_CLUSTER__NODE_ID" => "node 1",
                "HUB_CLUSTER__POOL_SIZE" => "0",
                _ => "1",
            };
            let err = if var == "HUB_CLUSTER__REDIS_URL" {
                Config::from_toml("t", "", env(&[(var, bad)])).unwrap_err()
            } else {
                on(&[(var, bad)]).unwrap_err()
            };
            assert_eq!(key_of(err), key, "{var}={bad}");
        }
    }

    #[test]
    fn sentinel_keys_turn_cluster_mode_on_and_are_checked() {
        let check = |text: &str| Config::from_toml("t", text, no_env());
        let c = check(
            "[cluster]\nsentinels = [\"s1:26379\", \"[::1]:26380\"]\nsentinel_master = \"mymaster\"\n",
        )
        .expect("valid sentinel cluster");
        assert!(c.cluster.is_on());
        assert_eq!(c.cluster.replicas_to_wait(), 1, "default 1 with sentinels");
        let plain = check("[cluster]\nredis_url = \"redis://127.0.0.1:6390/\"\n").expect("valid");
        assert_eq!(plain.cluster.replicas_to_wait(), 0, "default 0 without");
        assert!(!Config::default().cluster.is_on());
        let zero = check(
            "[cluster]\nsentinels = [\"s1:26379\"]\nsentinel_master = \"m\"\nmin_replicas_acked = 0\n",
        )
        .expect("valid");
        assert_eq!(zero.cluster.replicas_to_wait(), 0);
        for (text, key) in [
            (
                "[cluster]\nredis_url = \"redis://h/\"\nsentinels = [\"s1:26379\"]\nsentinel_master = \"m\"\n",
                "cluster.sentinels",
            ),
            ("[cluster]\nsentinels = [\"s1:26379\"]\n", "cluster.sentinel_master"),
            (
                "[cluster]\nsentinels = [\"s1\"]\nsentinel_master = \"m\"\n",
                "cluster.sentinels[0]",
            ),
            ("[cluster]\nsentinel_master = \"m\"\n", "cluster.sentinel_master"),
            ("[cluster]\nsentinel_tls = true\n", "cluster.sentinel_tls"),
            (
                "[cluster]\nsentinels = [\"s1:1\"]\nsentinel_master = \"m\"\nmin_replicas_acked = -2\n",
                "cluster.min_replicas_acked",
            ),
            (
                "[cluster]\nredis_url = \"redis://h/\"\nmin_replicas_acked = 17\n",
                "cluster.min_replicas_acked",
            ),
        ] {
            assert_eq!(key_of(check(text).unwrap_err()), key, "{text}");
        }
        let both = check(
            "[cluster]\nredis_url = \"redis://h/\"\nsentinels = [\"s1:26379\"]\nsentinel_master = \"m\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            both.contains("redis_url") && both.contains("sentinels"),
            "{both}"
        );
        let env = vec![
            ("HUB_CLUSTER__SENTINELS".to_string(), "a:1, b:2".to_string()),
            ("HUB_CLUSTER__SENTINEL_MASTER".to_string(), "m".to_string()),
        ];
        let c = Config::from_toml("t", "", env).expect("from the environment");
        assert_eq!(c.cluster.sentinels, ["a:1", "b:2"]);
    }

    #[test]
    fn room_settings_apply_overrides_and_dynamic_rule() {
        let c = Config::from_toml(
            "t",
            "[rooms]\nhistory = 50\n[[rooms.declare]]\nname = \"a\"\nhistory = 7\nsnapshot = 3\nclient_publish = true\n",
            no_env(),
        )
        .expect("valid");
        let a = c.room_settings("a").expect("declared");
        assert_eq!((a.history, a.snapshot, a.client_publish), (7, 3, true));
        assert_eq!((a.keyed, a.max_keys), (false, 10_000));
        assert!(
            c.room_settings("hotspots").is_none(),
            "declare replaces the defaults"
        );
        assert!(c.room_settings("b").is_none());
        let mut dynamic = c.clone();
        dynamic.rooms.allow_dynamic = true;
        assert_eq!(dynamic.room_settings("b").map(|s| s.history), Some(50));
        assert!(dynamic.room_settings("B!").is_none());
    }

    #[test]
    fn presence_is_per_room_in_both_modes() {
        for cluster in ["", "[cluster]\nredis_url = \"redis://127.0.0.1:1\"\n"] {
            let c = Config::from_toml(
                "t",
                &format!("{cluster}[[rooms.declare]]\nname = \"ops\"\npresence = true\n[[rooms.declare]]\nname = \"p\"\n"),
                no_env(),
            )
            .expect("valid");
            assert!(c.room_settings("ops").is_some_and(|s| s.presence));
            assert!(c.room_settings("p").is_some_and(|s| !s.presence));
        }
    }

    #[test]
    fn keyed_rooms_take_declared_overrides_and_defaults() {
        let c = Config::from_toml(
            "t",
            "[rooms]\nallow_dynamic = true\nmax_keys = 9\n[[rooms.declare]]\nname = \"k\"\nkeyed = true\nmax_keys = 2\n[[rooms.declare]]\nname = \"p\"\n",
            no_env(),
        )
        .expect("valid");
        let k = c.room_settings("k").expect("declared");
        assert_eq!((k.keyed, k.max_keys), (true, 2));
        let p = c.room_settings("p").expect("declared");
        assert_eq!((p.keyed, p.max_keys), (false, 9));
        let env = vec![("HUB_ROOMS__KEYED".to_string(), "true".to_string())];
        let c = Config::from_toml("t", "[rooms]\nallow_dynamic = true\n", env).expect("valid");
        assert!(c.room_settings("any").is_some_and(|s| s.keyed));
        for bad in [
            "[rooms]\nmax_keys = 0\n",
            "[[rooms.declare]]\nname = \"k\"\nmax_keys = 2000000\n",
        ] {
            let key = key_of(Config::from_toml("t", bad, no_env()).unwrap_err());
            assert!(key.ends_with("max_keys"), "{key}");
        }
    }
}
