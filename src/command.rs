//! Decoding client commands (contract section 4) from text frames.
//!
//! Decoding happens in two steps so errors are precise: first a lenient envelope
//! (every field optional, so a `ref` is recovered even from a half-valid command),
//! then per-`op` checks that name the missing or mistyped field.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::protocol::Ref;

/// A client command, validated.
#[derive(Debug, Clone)]
pub enum Command {
    /// Join a room, optionally resuming after `since` in `epoch`.
    Subscribe {
        /// Room name (validated against config later).
        room: String,
        /// Last seq the client holds.
        since: Option<u64>,
        /// Epoch that `since` belongs to.
        epoch: Option<String>,
    },
    /// Leave a room.
    Unsubscribe {
        /// Room name.
        room: String,
    },
    /// Publish an event into a room from the socket.
    Publish {
        /// Room name.
        room: String,
        /// Event type.
        kind: String,
        /// Payload, passed through as written (`null` for a delete without one).
        data: Box<RawValue>,
        /// A keyed room's state key (contract section 11).
        key: Option<String>,
        /// The publish removes `key` from the state.
        delete: bool,
    },
    /// App-level ping, for browsers.
    Ping,
    /// Who is in a presence room the socket is subscribed to (section 13).
    Presence {
        /// Room name.
        room: String,
    },
    /// Swap the socket's token for a fresh one (contract section 14).
    Refresh {
        /// The new JWT; never logged.
        token: String,
    },
}

impl PartialEq for Command {
    fn eq(&self, other: &Self) -> bool {
        use Command::*;
        match (self, other) {
            (
                Subscribe { room, since, epoch },
                Subscribe {
                    room: r,
                    since: s,
                    epoch: e,
                },
            ) => room == r && since == s && epoch == e,
            (Unsubscribe { room }, Unsubscribe { room: r }) => room == r,
            (
                Publish {
                    room,
                    kind,
                    data,
                    key,
                    delete,
                },
                Publish {
                    room: r,
                    kind: k,
                    data: d,
                    key: kk,
                    delete: dd,
                },
            ) => room == r && kind == k && data.get() == d.get() && key == kk && delete == dd,
            (Ping, Ping) => true,
            (Refresh { token }, Refresh { token: t }) => token == t,
            (Presence { room }, Presence { room: r }) => room == r,
            _ => false,
        }
    }
}

/// A decode failure: the message for `error bad_request`, and the `ref` if one
/// could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// What was wrong, for the client.
    pub message: String,
    /// The command's ref, when it was readable.
    pub reference: Option<Ref>,
}

/// A command with its optional ref.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub command: Command,
    /// Echoed in the reply.
    pub reference: Option<Ref>,
}

/// Every field a command may carry, all optional; `serde_json` checks types.
#[derive(Deserialize)]
struct Raw {
    op: Option<Box<RawValue>>,
    #[serde(rename = "ref")]
    reference: Option<Box<RawValue>>,
    room: Option<Box<RawValue>>,
    since: Option<Box<RawValue>>,
    epoch: Option<Box<RawValue>>,
    #[serde(rename = "type")]
    kind: Option<Box<RawValue>>,
    data: Option<Box<RawValue>>,
    key: Option<Box<RawValue>>,
    delete: Option<Box<RawValue>>,
    token: Option<Box<RawValue>>,
}

fn field<'de, T: Deserialize<'de>>(
    raw: &'de Option<Box<RawValue>>,
    name: &str,
    expected: &str,
) -> Result<Option<T>, String> {
    match raw {
        None => Ok(None),
        Some(v) if v.get() == "null" => Ok(None),
        Some(v) => serde_json::from_str(v.get())
            .map(Some)
            .map_err(|_| format!("`{name}` must be {expected}")),
    }
}

fn required<'de, T: Deserialize<'de>>(
    raw: &'de Option<Box<RawValue>>,
    name: &str,
    expected: &str,
    op: &str,
) -> Result<T, String> {
    field(raw, name, expected)?.ok_or_else(|| format!("`{op}` needs `{name}` ({expected})"))
}

/// Decodes one text frame into a command.
pub fn decode(text: &str) -> Result<Envelope, DecodeError> {
    let mut raw: Raw = serde_json::from_str(text).map_err(|e| DecodeError {
        message: not_a_command(text, &e),
        reference: None,
    })?;
    let reference = match raw.reference.take() {
        Some(v) if v.get() != "null" => Some(Ref::from_raw(v).map_err(|_| DecodeError {
            message: "`ref` must be a string or a number".to_string(),
            reference: None,
        })?),
        _ => None,
    };
    decode_op(&raw)
        .map(|command| Envelope {
            command,
            reference: reference.clone(),
        })
        .map_err(|message| DecodeError { message, reference })
}

/// The message for text that is not a command: bad JSON, not an object, or an
/// object serde refused (every field is raw JSON, so that is a duplicate key).
fn not_a_command(text: &str, e: &serde_json::Error) -> String {
    if !e.is_data() {
        format!("malformed JSON: {e}")
    } else if text.trim_start().starts_with('{') {
        format!("invalid command: {e}")
    } else {
        "a command must be a JSON object".to_string()
    }
}

fn decode_op(raw: &Raw) -> Result<Command, String> {
    let op: String = required(&raw.op, "op", "a string", "a command")?;
    match op.as_str() {
        "subscribe" => Ok(Command::Subscribe {
            room: required(&raw.room, "room", "a string", &op)?,
            since: field(&raw.since, "since", "a non-negative integer")?,
            epoch: field(&raw.epoch, "epoch", "a string")?,
        }),
        "unsubscribe" => Ok(Command::Unsubscribe {
            room: required(&raw.room, "room", "a string", &op)?,
        }),
        "publish" => {
            let room = required(&raw.room, "room", "a string", &op)?;
            let kind = required(&raw.kind, "type", "a string", &op)?;
            let key = field(&raw.key, "key", "a string")?;
            let delete = field(&raw.delete, "delete", "a boolean")?.unwrap_or(false);
            let data = crate::protocol::event_data(raw.data.clone(), delete)
                .map_err(|_| "`publish` needs `data` (any JSON value)".to_string())?;
            Ok(Command::Publish {
                room,
                kind,
                data,
                key,
                delete,
            })
        }
        "ping" => Ok(Command::Ping),
        "presence" => Ok(Command::Presence {
            room: required(&raw.room, "room", "a string", &op)?,
        }),
        "refresh" => Ok(Command::Refresh {
            token: required(&raw.token, "token", "a string", &op)?,
        }),
        other => Err(format!(
            "unknown op `{}`: expected subscribe, unsubscribe, publish, ping, presence or refresh",
            other.chars().take(64).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_op() {
        let e = decode(r#"{"op":"subscribe","room":"alerts","since":4,"epoch":"e1","ref":7}"#)
            .expect("valid");
        assert_eq!(
            e.command,
            Command::Subscribe {
                room: "alerts".into(),
                since: Some(4),
                epoch: Some("e1".into())
            }
        );
        assert_eq!(e.reference.as_ref().map(Ref::get), Some("7"));
        assert!(matches!(
            decode(r#"{"op":"unsubscribe","room":"a"}"#).map(|e| e.command),
            Ok(Command::Unsubscribe { .. })
        ));
        assert!(matches!(
            decode(r#"{"op":"ping","ref":"x"}"#).map(|e| e.command),
            Ok(Command::Ping)
        ));
        match decode(r#"{"op":"publish","room":"a","type":"t","data":{"k":[1,2]}}"#) {
            Ok(Envelope {
                command: Command::Publish { data, .. },
                ..
            }) => assert_eq!(data.get(), r#"{"k":[1,2]}"#),
            other => panic!("{other:?}"),
        }
        match decode(r#"{"op":"publish","room":"a","type":"t","key":"k 1","delete":true}"#) {
            Ok(Envelope {
                command:
                    Command::Publish {
                        data, key, delete, ..
                    },
                ..
            }) => assert_eq!(
                (data.get(), key.as_deref(), delete),
                ("null", Some("k 1"), true)
            ),
            other => panic!("{other:?}"),
        }
        let err = decode(r#"{"op":"publish","room":"a","type":"t","data":1,"key":3}"#)
            .expect_err("key must be a string");
        assert!(err.message.contains("key"), "{}", err.message);
    }

    #[test]
    fn errors_name_the_problem_and_keep_the_ref() {
        let err = decode(r#"{"op":"subscribe","ref":"r1"}"#).expect_err("no room");
        assert!(err.message.contains("room"), "{}", err.message);
        assert_eq!(err.reference.as_ref().map(Ref::get), Some(r#""r1""#));

        let err = decode(r#"{"op":"fly","ref":2}"#).expect_err("unknown op");
        assert!(err.message.contains("unknown op"), "{}", err.message);
        assert_eq!(err.reference.as_ref().map(Ref::get), Some("2"));

        let err = decode(r#"{"op":"subscribe","room":"a","since":-1}"#).expect_err("since");
        assert!(err.message.contains("since"), "{}", err.message);

        let err = decode(r#"{"op":"publish","room":"a","type":"t"}"#).expect_err("data");
        assert!(err.message.contains("data"), "{}", err.message);

        assert!(decode("not json").is_err());
        assert!(decode("[1,2]").is_err());
        assert!(decode(r#"{"room":"a"}"#).is_err());
        assert!(decode(r#"{"op":"ping","ref":{"a":1}}"#).is_err());
    }

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        // `data` is skipped as raw JSON (iteratively) and passed through as written.
        let depth = 1_000_000;
        let data = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let text = format!(r#"{{"op":"publish","room":"a","type":"t","data":{data}}}"#);
        assert!(matches!(
            decode(&text),
            Ok(Envelope {
                command: Command::Publish { .. },
                ..
            })
        ));
        // Typed fields go through serde_json's recursion limit.
        let text = format!(
            r#"{{"op":"subscribe","room":{}"a"{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(decode(&text).is_err());
    }

    #[test]
    fn refs_are_kept_exactly_as_written() {
        for written in [
            "1e2",
            "18446744073709551616",
            "-0.50",
            "1.0",
            r#""caf\u00e9""#,
            r#""""#,
        ] {
            let e = decode(&format!(r#"{{"op":"ping","ref":{written}}}"#)).expect("valid");
            let reference = e.reference.expect("a ref");
            assert_eq!(reference.get(), written);
            assert_eq!(
                serde_json::to_string(&reference).expect("serializes"),
                written
            );
        }
        for bad in ["true", "[1]", r#"{"a":1}"#] {
            let err = decode(&format!(r#"{{"op":"ping","ref":{bad}}}"#)).expect_err(bad);
            assert_eq!(err.message, "`ref` must be a string or a number");
        }
        let e = decode(r#"{"op":"ping","ref":null}"#).expect("valid");
        assert_eq!(e.reference, None);
    }

    #[test]
    fn duplicate_keys_are_named() {
        let err = decode(r#"{"op":"subscribe","room":"a","room":"b"}"#).expect_err("dup");
        assert!(
            err.message.contains("duplicate field `room`"),
            "{}",
            err.message
        );
        let err = decode(r#" {"op":"ping","op":"ping"}"#).expect_err("dup");
        assert!(
            err.message.contains("duplicate field `op`"),
            "{}",
            err.message
        );
        let err = decode("[1,2]").expect_err("array");
        assert_eq!(err.message, "a command must be a JSON object");
        let err = decode("7").expect_err("number");
        assert_eq!(err.message, "a command must be a JSON object");
    }

    #[test]
    fn null_fields_count_as_absent() {
        let e =
            decode(r#"{"op":"subscribe","room":"a","since":null,"epoch":null}"#).expect("valid");
        assert_eq!(
            e.command,
            Command::Subscribe {
                room: "a".into(),
                since: None,
                epoch: None
            }
        );
    }
}
