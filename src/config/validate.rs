//! The rules a loaded [`Config`] must keep, checked once when it is loaded.
//!
//! Checks only: nothing here builds what the hub runs with (the TLS config,
//! the JWT verifier): [`crate::prepared`] does that, once, from a valid config.

use std::collections::HashSet;
use std::net::ToSocketAddrs;
use std::path::Path;

use super::{ClusterConfig, Config, ConfigError, MIN_JWT_SECRET_BYTES};
use crate::address;
use crate::protocol::is_valid_room_name;

impl Config {
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
            let bare = address::host_name(host);
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
        if address::host_port(addr).is_none() {
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
