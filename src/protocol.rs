//! The wire contract's numbers and strings: error codes, close codes, room-name
//! rules, reserved event types and the shapes of every frame.
//!
//! Everything a client can observe is defined here, once, so the rest of the code
//! never writes a literal code or close number of its own.

use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;

/// Protocol version announced in `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Prefix of system rooms such as `$status`.
pub const SYSTEM_ROOM_PREFIX: char = '$';

/// The system room that carries `status_update` events.
pub const STATUS_ROOM: &str = "$status";

/// Event type of the frames pushed in [`STATUS_ROOM`].
pub const STATUS_UPDATE: &str = "status_update";

/// The socket type SSE sessions count as in `/socket-status` (section 12).
pub const SSE_TYPE: &str = "sse";

/// The `type` of each frame the server sends of its own (contract section 3;
/// v2 sections 13 and 14). Frames are built from these, never from literals.
pub mod frame_type {
    pub const WELCOME: &str = "welcome";
    pub const SUBSCRIBED: &str = "subscribed";
    pub const UNSUBSCRIBED: &str = "unsubscribed";
    pub const PUBLISHED: &str = "published";
    pub const PONG: &str = "pong";
    pub const ERROR: &str = "error";
    pub const PRESENCE: &str = "presence";
    pub const PRESENCE_JOIN: &str = "presence_join";
    pub const PRESENCE_LEAVE: &str = "presence_leave";
    pub const REFRESHED: &str = "refreshed";
}

/// Event types a publisher may not use: they are the server's own frame types.
pub const RESERVED_TYPES: [&str; 11] = [
    frame_type::WELCOME,
    frame_type::SUBSCRIBED,
    frame_type::UNSUBSCRIBED,
    frame_type::PUBLISHED,
    frame_type::PONG,
    frame_type::ERROR,
    STATUS_UPDATE,
    frame_type::PRESENCE,
    frame_type::PRESENCE_JOIN,
    frame_type::PRESENCE_LEAVE,
    frame_type::REFRESHED,
];

/// Longest event type accepted from a publisher, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 128;

/// Longest user id accepted for user-targeted messages, in bytes.
pub const MAX_USER_BYTES: usize = 256;

/// Error codes of error frames and HTTP error bodies (contract sections 3 and 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed input: bad JSON, unknown op, missing or mistyped fields.
    BadRequest,
    /// The room is neither declared nor allowed dynamically.
    UnknownRoom,
    /// No such session (admin API).
    UnknownSession,
    /// The caller's token does not allow this room or action.
    Forbidden,
    /// The Origin header is not in `server.allowed_origins`.
    ForbiddenOrigin,
    /// Missing, invalid or expired credentials.
    Unauthorized,
    /// Over the command rate limit.
    RateLimited,
    /// Body or frame over the configured limit.
    TooLarge,
    /// Client publish is not enabled for the room.
    PublishDisabled,
    /// The hub cannot take this now (draining, backend down).
    Unavailable,
    /// Connection limits reached.
    OverCapacity,
    /// A per-session, per-IP or per-room limit would be passed (contract
    /// section 11; also the room limits of a session and of a client IP).
    LimitExceeded,
    /// No such HTTP route (an extension of the contract's list).
    NotFound,
    /// A known route with another method (an extension).
    MethodNotAllowed,
    /// A write body that is not `application/json` (an extension).
    UnsupportedMediaType,
    /// A request body that did not arrive within `server.body_timeout_s` (an
    /// extension).
    RequestTimeout,
    /// A bug or an unexpected failure on our side.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownRoom => "unknown_room",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ForbiddenOrigin => "forbidden_origin",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::PublishDisabled => "publish_disabled",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::OverCapacity => "over_capacity",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code (contract section 6).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::ForbiddenOrigin | ErrorCode::PublishDisabled => 403,
            ErrorCode::UnknownRoom | ErrorCode::UnknownSession | ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::LimitExceeded => 409,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::TooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable | ErrorCode::OverCapacity => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Close codes the hub sends (contract section 8), with their reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the session ended normally (client left, client timed out).
    Normal,
    /// 1001: the server is draining; reconnect elsewhere.
    Draining,
    /// 1002: the peer broke the WebSocket protocol.
    ProtocolError,
    /// 1007: a text frame that is not valid UTF-8.
    InvalidPayload,
    /// 1008: repeated rate-limit abuse.
    Policy,
    /// 1009: a frame or message over `websocket.max_frame_bytes`.
    TooBig,
    /// 1011: an internal failure.
    Internal,
    /// 4001: the token's `exp` has passed.
    TokenExpired,
    /// 4008: the outbound queue overflowed.
    SlowConsumer,
    /// 4009: an admin closed the session.
    AdminDisconnect,
}

impl CloseCode {
    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::Draining => 1001,
            CloseCode::ProtocolError => 1002,
            CloseCode::InvalidPayload => 1007,
            CloseCode::Policy => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::Internal => 1011,
            CloseCode::TokenExpired => 4001,
            CloseCode::SlowConsumer => 4008,
            CloseCode::AdminDisconnect => 4009,
        }
    }

    /// The reason text sent in the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::Draining => "server draining",
            CloseCode::ProtocolError => "protocol error",
            CloseCode::InvalidPayload => "invalid utf-8",
            CloseCode::Policy => "policy violation",
            CloseCode::TooBig => "frame too big",
            CloseCode::Internal => "internal error",
            CloseCode::TokenExpired => "token expired",
            CloseCode::SlowConsumer => "slow consumer",
            CloseCode::AdminDisconnect => "disconnected by admin",
        }
    }
}

/// Why a session ended: the label used in logs and the disconnect metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client closed the socket or sent a close frame.
    ClientClosed,
    /// No frame from the client within `client_timeout_s`.
    Timeout,
    /// The outbound queue overflowed or a write stalled.
    SlowConsumer,
    TokenExpired,
    /// An admin asked for it.
    Admin,
    /// The server is draining.
    Drain,
    /// The peer broke the protocol (bad UTF-8, bad frames, too big).
    ProtocolError,
    /// Rate-limit abuse.
    Policy,
}

impl DisconnectReason {
    /// Stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientClosed => "normal",
            DisconnectReason::Timeout => "timeout",
            DisconnectReason::SlowConsumer => "slow_consumer",
            DisconnectReason::TokenExpired => "token_expired",
            DisconnectReason::Admin => "admin",
            DisconnectReason::Drain => "drain",
            DisconnectReason::ProtocolError => "protocol_error",
            DisconnectReason::Policy => "policy",
        }
    }
}

/// Whether `name` is a valid user room name: `^[a-z0-9][a-z0-9_.:-]{0,63}$`.
pub fn is_valid_room_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 64 {
        return false;
    }
    let first_ok = bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit();
    first_ok
        && bytes[1..].iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

/// Whether `name` names a system room (`$status`, ...).
pub fn is_system_room(name: &str) -> bool {
    name.starts_with(SYSTEM_ROOM_PREFIX)
}

/// Checks a publisher's event type; `Err` carries the message for `bad_request`.
pub fn check_event_type(kind: &str) -> Result<(), String> {
    if kind.is_empty() {
        return Err("`type` must be a non-empty string".into());
    }
    if kind.len() > MAX_EVENT_TYPE_BYTES {
        return Err(format!(
            "`type` is longer than {MAX_EVENT_TYPE_BYTES} bytes"
        ));
    }
    if kind.chars().any(char::is_control) {
        return Err("`type` must not contain control characters".into());
    }
    if RESERVED_TYPES.contains(&kind) {
        return Err(format!("`type` \"{kind}\" is reserved by the protocol"));
    }
    Ok(())
}

/// A command's `ref`: a string or a number, kept as the raw JSON the client
/// wrote so the echo is byte for byte what was sent (`1e2` stays `1e2`, 2^64
/// stays `18446744073709551616`, a string keeps its escapes).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Ref(Box<RawValue>);

impl Ref {
    /// The ref in `raw`, which must be a JSON string or number.
    pub fn from_raw(raw: Box<RawValue>) -> Result<Ref, Box<RawValue>> {
        match raw.get().as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => Ok(Ref(raw)),
            _ => Err(raw),
        }
    }

    /// The ref as written.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Ref {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// Current time as the contract's `ts`: RFC 3339, UTC, milliseconds.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `welcome`, always the first frame of a session.
#[derive(Debug, Serialize)]
pub struct Welcome<'a> {
    #[serde(rename = "type")]
    /// Always `welcome`.
    pub kind: &'static str,
    /// The session id, as used by the admin API.
    pub session: &'a str,
    /// The node that holds the session.
    pub node: &'a str,
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// How often the server pings, so clients can size their own timeouts.
    pub heartbeat_ms: u64,
}

/// `subscribed`: sent before the replayed events of a subscription.
#[derive(Debug, Serialize)]
pub struct Subscribed<'a> {
    #[serde(rename = "type")]
    /// Always `subscribed`.
    pub kind: &'static str,
    pub room: &'a str,
    /// The room's current epoch.
    pub epoch: &'a str,
    /// The room's head seq at the moment of subscription.
    pub seq: u64,
    /// True when the resume was exact (every missed event follows).
    pub recovered: bool,
    /// A keyed room's state follows instead of a snapshot: this many frames,
    /// the latest event of each live key (contract section 11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<usize>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    /// The command's ref, echoed.
    pub reference: Option<&'a Ref>,
}

/// A reply that only names a room: `unsubscribed`.
#[derive(Debug, Serialize)]
pub struct RoomReply<'a> {
    #[serde(rename = "type")]
    /// The reply type.
    pub kind: &'static str,
    pub room: &'a str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    /// The command's ref, echoed.
    pub reference: Option<&'a Ref>,
}

/// `unsubscribed` the hub sends on its own: a refreshed token no longer
/// allows the room (contract section 14).
#[derive(Debug, Serialize)]
pub struct Revoked<'a> {
    #[serde(rename = "type")]
    /// Always `unsubscribed`.
    pub kind: &'static str,
    /// The room left.
    pub room: &'a str,
    /// Why: `forbidden`.
    pub reason: ErrorCode,
}

/// `presence_join` / `presence_leave`: a user's first session in a room
/// subscribed, or its last one left (contract section 13).
#[derive(Debug, Serialize)]
pub struct PresenceFrame<'a> {
    #[serde(rename = "type")]
    /// `presence_join` or `presence_leave`.
    pub kind: &'static str,
    pub room: &'a str,
    /// The user (the token's `sub`).
    pub user: &'a str,
}

/// `refreshed`: the new token's claims apply, the session ends at `exp`.
#[derive(Debug, Serialize)]
pub struct Refreshed<'a> {
    #[serde(rename = "type")]
    /// Always `refreshed`.
    pub kind: &'static str,
    /// The new token's `exp`, Unix seconds.
    pub exp: u64,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    /// The command's ref, echoed.
    pub reference: Option<&'a Ref>,
}

/// `published`: the seq a client publish was given.
#[derive(Debug, Serialize)]
pub struct Published<'a> {
    #[serde(rename = "type")]
    /// Always `published`.
    pub kind: &'static str,
    pub room: &'a str,
    /// The seq given to the event.
    pub seq: u64,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    /// The command's ref, echoed.
    pub reference: Option<&'a Ref>,
}

/// `pong`: the reply to an app-level `ping`.
#[derive(Debug, Serialize)]
pub struct Pong<'a> {
    #[serde(rename = "type")]
    /// Always `pong`.
    pub kind: &'static str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    /// The command's ref, echoed.
    pub reference: Option<&'a Ref>,
}

/// `error`: a command failed; the connection stays open.
#[derive(Debug, Serialize)]
pub struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    /// Always `error`.
    pub kind: &'static str,
    /// One of the contract's codes.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: &'a str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    /// The command's ref, echoed.
    pub reference: Option<&'a Ref>,
}

/// A room event as it goes on the wire; serialized once per publish.
#[derive(Debug, Serialize)]
pub struct EventFrame<'a> {
    #[serde(rename = "type")]
    /// The publisher's event type.
    pub kind: &'a str,
    pub room: &'a str,
    /// Position in the room's order.
    pub seq: u64,
    /// When the hub accepted it.
    pub ts: &'a str,
    /// A keyed publish's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    /// The keyed publish removes its key from the state.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
    /// The publisher's payload, passed through without re-encoding.
    pub data: &'a RawValue,
}

/// Longest state key of a keyed publish, in bytes (contract section 11).
pub const MAX_STATE_KEY_BYTES: usize = 256;

/// A keyed publish's key and whether it deletes it, checked: a key of 1 to
/// 256 bytes, and no delete without one. `Err` carries the `bad_request` message.
pub fn check_state_key(key: Option<&str>, delete: bool) -> Result<(), String> {
    match key {
        None if delete => Err("`delete` needs the `key` to delete".into()),
        Some(k) if k.is_empty() || k.len() > MAX_STATE_KEY_BYTES => Err(format!(
            "`key` must be a string of 1 to {MAX_STATE_KEY_BYTES} bytes"
        )),
        _ => Ok(()),
    }
}

/// A publish's `data`: required, except for a delete, whose absent `data`
/// is `null`. `Err` carries the `bad_request` message.
pub fn event_data(data: Option<Box<RawValue>>, delete: bool) -> Result<Box<RawValue>, String> {
    match data {
        Some(data) => Ok(data),
        None if delete => RawValue::from_string("null".into()).map_err(|e| e.to_string()),
        None => Err("`data` is required (any JSON value)".into()),
    }
}

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// An idempotency key is 1 to 128 visible ASCII characters (no spaces), so it
/// can sit in a Redis key name and a log line as it is.
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(format!(
            "an idempotency key has 1 to {MAX_IDEMPOTENCY_KEY} characters"
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("an idempotency key is visible ASCII, without spaces".into());
    }
    Ok(())
}

/// An event frame cut around its seq: whoever assigns the seq (the room on a
/// single node, Redis in a cluster) splices the number in, and the payload is
/// encoded once, by the node that accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFrameParts {
    /// `{"type":…,"room":…,"seq":`
    pub head: String,
    /// `,"ts":…[,"key":…[,"delete":true]],"data":…}`
    pub tail: String,
}

impl EventFrameParts {
    /// The two halves of the frame [`EventFrame`] would encode.
    pub fn new(kind: &str, room: &str, ts: &str, data: &RawValue) -> Self {
        Self::keyed(kind, room, ts, None, data)
    }

    /// The same for a keyed publish: `key` and whether it deletes it.
    pub fn keyed(
        kind: &str,
        room: &str,
        ts: &str,
        key: Option<(&str, bool)>,
        data: &RawValue,
    ) -> Self {
        let json = |s: &str| serde_json::Value::from(s).to_string();
        let key = match key {
            None => String::new(),
            Some((k, false)) => format!(",\"key\":{}", json(k)),
            Some((k, true)) => format!(",\"key\":{},\"delete\":true", json(k)),
        };
        EventFrameParts {
            head: format!("{{\"type\":{},\"room\":{},\"seq\":", json(kind), json(room)),
            tail: format!(",\"ts\":{}{key},\"data\":{}}}", json(ts), data.get()),
        }
    }

    /// The whole frame with `seq` in place.
    pub fn with_seq(&self, seq: u64) -> bytestring::ByteString {
        let mut out = String::with_capacity(self.head.len() + self.tail.len() + 20);
        out.push_str(&self.head);
        out.push_str(&seq.to_string());
        out.push_str(&self.tail);
        out.into()
    }
}

/// A message to one user's sessions: no room, no seq.
#[derive(Debug, Serialize)]
pub struct UserFrame<'a> {
    #[serde(rename = "type")]
    /// The publisher's event type.
    pub kind: &'a str,
    /// The target user.
    pub user: &'a str,
    /// When the hub accepted it.
    pub ts: &'a str,
    /// The publisher's payload.
    pub data: &'a RawValue,
}

/// A `status_update` in the `$status` room; `data` is the `/socket-status` body.
#[derive(Debug, Serialize)]
pub struct StatusFrame<'a, T: Serialize> {
    #[serde(rename = "type")]
    /// Always `status_update`.
    pub kind: &'static str,
    /// Always `$status`.
    pub room: &'static str,
    /// When the snapshot was taken.
    pub ts: &'a str,
    /// The status body.
    pub data: &'a T,
}

/// Serializes a frame to a shared string; frames are plain structs, so this cannot
/// fail short of a bug, which we turn into an `internal` error frame.
pub fn encode<T: Serialize>(frame: &T) -> bytestring::ByteString {
    match serde_json::to_string(frame) {
        Ok(s) => s.into(),
        Err(e) => {
            log::error!("frame serialization failed: {e}");
            bytestring::ByteString::from_static(
                r#"{"type":"error","code":"internal","message":"serialization failed"}"#,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_parts_splice_to_the_encoded_frame() {
        let data = RawValue::from_string(r#"{"a":[1,"\u00e9"]}"#.into()).expect("json");
        for (kind, room, ts) in [
            ("t", "r", "x"),
            ("q\"uote", "a.b:c", "2026-11-22T00:00:00.000Z"),
        ] {
            for key in [None, Some(("k \"1\"", false)), Some(("k", true))] {
                let whole = encode(&EventFrame {
                    kind,
                    room,
                    seq: 42,
                    ts,
                    key: key.map(|k| k.0),
                    delete: key.is_some_and(|k| k.1),
                    data: &data,
                });
                let parts = EventFrameParts::keyed(kind, room, ts, key, &data);
                assert_eq!(parts.with_seq(42), whole);
            }
        }
    }

    #[test]
    fn state_keys_and_delete_data_are_checked() {
        assert!(check_state_key(None, false).is_ok());
        assert!(check_state_key(Some("a b/é"), true).is_ok());
        assert!(check_state_key(Some(&"k".repeat(MAX_STATE_KEY_BYTES)), false).is_ok());
        let long = "k".repeat(MAX_STATE_KEY_BYTES + 1);
        for (key, delete) in [
            (None, true),
            (Some(""), false),
            (Some(long.as_str()), false),
        ] {
            assert!(check_state_key(key, delete).is_err(), "{key:?} {delete}");
        }
        assert_eq!(
            event_data(None, true).map(|d| d.get().to_string()),
            Ok("null".into())
        );
        assert!(event_data(None, false).is_err());
    }

    use super::*;

    #[test]
    fn room_names_follow_the_contract_pattern() {
        for ok in ["a", "hotspots", "0", "a_b.c:d-e", &"x".repeat(64)] {
            assert!(is_valid_room_name(ok), "{ok} should be valid");
        }
        for bad in [
            "",
            "A",
            "_a",
            "-a",
            "a b",
            "a/b",
            "$status",
            &"x".repeat(65),
            "é",
        ] {
            assert!(!is_valid_room_name(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn reserved_and_odd_event_types_are_refused() {
        assert!(check_event_type("alert_raised").is_ok());
        for bad in ["", "welcome", "status_update", "a\nb"] {
            assert!(check_event_type(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(check_event_type(&"t".repeat(MAX_EVENT_TYPE_BYTES + 1)).is_err());
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let ts = timestamp_now();
        assert!(ts.ends_with('Z'), "{ts}");
        assert_eq!(ts.len(), "2026-01-01T00:00:00.000Z".len(), "{ts}");
    }

    #[test]
    fn error_codes_map_to_contract_statuses() {
        assert_eq!(ErrorCode::UnknownRoom.http_status(), 404);
        assert_eq!(ErrorCode::TooLarge.http_status(), 413);
        assert_eq!(ErrorCode::OverCapacity.as_str(), "over_capacity");
        assert_eq!(CloseCode::SlowConsumer.code(), 4008);
    }
}
