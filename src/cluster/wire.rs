//! What travels over Redis pub/sub between nodes: room events (written by the
//! publish script) and cluster-wide requests with their answers.

use serde::{Deserialize, Serialize};

use super::presence::{self, Heard};

pub use crate::engine::ControlOp;

/// A room event as the publish script broadcasts it: `ROOM EPOCH SEQ FRAME`,
/// or for a keyed event `ROOM EPOCH SEQ kLEN KEY FRAME` (`d` instead of `k`
/// for a delete; LEN is the key's length in bytes, so a key may hold spaces).
/// Room names and epochs hold no spaces and a frame starts with `{`, so the
/// frame is the rest of the line, and a plain event reads as it always did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage<'a> {
    pub room: &'a str,
    /// The room's epoch when the seq was assigned.
    pub epoch: &'a str,
    /// The event's seq.
    pub seq: u64,
    /// A keyed event's state key and whether it deletes it.
    pub key: Option<(&'a str, bool)>,
    /// The encoded event frame.
    pub frame: &'a str,
}

impl<'a> EventMessage<'a> {
    /// Parses a message from the events channel; `None` if it is malformed.
    pub fn parse(payload: &'a str) -> Option<Self> {
        let mut it = payload.splitn(4, ' ');
        let room = it.next()?;
        let epoch = it.next()?;
        let seq = it.next()?.parse().ok()?;
        let rest = it.next()?;
        let (key, frame) = match rest.as_bytes().first()? {
            b'{' => (None, rest),
            flag @ (b'k' | b'd') => {
                let (len, tail) = rest[1..].split_once(' ')?;
                let len: usize = len.parse().ok()?;
                let key = tail.get(..len)?;
                let frame = tail.get(len..)?.strip_prefix(' ')?;
                (Some((key, *flag == b'd')), frame)
            }
            _ => return None,
        };
        Some(EventMessage {
            room,
            epoch,
            seq,
            key,
            frame,
        })
    }
}

/// A presence write as the presence script broadcasts it (see
/// `cluster::presence`): `ROOM NODE INSTANCE VERSION =` for a whole share,
/// `ROOM NODE INSTANCE VERSION DELTA FIELD` for one field, FIELD (`u<user>`
/// or `a`) being the rest of the line, so a user may hold spaces.
pub fn parse_presence(payload: &str) -> Option<(&str, Heard)> {
    let mut it = payload.splitn(6, ' ');
    let room = it.next()?;
    let node = it.next()?;
    let instance = it.next()?;
    let version = it.next()?.parse().ok()?;
    let change = match it.next()? {
        "=" => None,
        delta => {
            let delta: i64 = delta.parse().ok()?;
            Some((presence::parse_field(it.next()?)?, delta))
        }
    };
    Some((
        room,
        Heard {
            node: node.to_string(),
            instance: instance.to_string(),
            version,
            change,
        },
    ))
}

/// A request every node answers, on the control channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    /// Request id, unique on the asking node.
    pub id: u64,
    /// The asking node: answers go to its reply channel.
    pub from: String,
    /// What to do.
    #[serde(flatten)]
    pub op: ControlOp,
}

/// An answer on a reply channel: `ID BODY`, the body being JSON (a count, or
/// a list of sockets).
pub fn encode_reply(id: u64, body: &str) -> String {
    format!("{id} {body}")
}

/// Parses an answer into its request id and body; `None` if it is malformed.
pub fn parse_reply(payload: &str) -> Option<(u64, &str)> {
    let (id, body) = payload.split_once(' ')?;
    Some((id.parse().ok()?, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_messages_keep_spaces_inside_the_frame() {
        let m = EventMessage::parse(r#"hotspots n1-3 42 {"data":"a b c"}"#).expect("parses");
        assert_eq!(
            m,
            EventMessage {
                room: "hotspots",
                epoch: "n1-3",
                seq: 42,
                key: None,
                frame: r#"{"data":"a b c"}"#
            }
        );
        assert!(EventMessage::parse("hotspots n1-3 x {}").is_none());
        assert!(EventMessage::parse("hotspots n1-3 4").is_none());
    }

    #[test]
    fn keyed_event_messages_carry_keys_with_spaces() {
        let m = EventMessage::parse(r#"recs e1 7 k5 a b c {"key":"a b c"}"#).expect("parses");
        assert_eq!(
            (m.seq, m.key, m.frame),
            (7, Some(("a b c", false)), r#"{"key":"a b c"}"#)
        );
        let m = EventMessage::parse("recs e1 8 d2 é {}").expect("multi-byte key");
        assert_eq!((m.key, m.frame), (Some(("é", true)), "{}"));
        for bad in [
            "recs e1 7 k9 short {}",
            "recs e1 7 k1 ab{}",
            "recs e1 7 kx a {}",
            "recs e1 7 x1 a {}",
            "recs e1 7 d1 é {}",
        ] {
            assert!(EventMessage::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn presence_messages_carry_users_with_spaces() {
        let (room, h) = parse_presence("ops n1 ab12 7 -1 uann lee").expect("parses");
        assert_eq!(room, "ops");
        assert_eq!(
            (h.node.as_str(), h.instance.as_str(), h.version),
            ("n1", "ab12", 7)
        );
        assert_eq!(h.change, Some((Some(std::sync::Arc::from("ann lee")), -1)));
        let (_, h) = parse_presence("ops n1 ab12 8 1 a").expect("anonymous");
        assert_eq!(h.change, Some((None, 1)));
        let (_, h) = parse_presence("ops n1 ab12 9 =").expect("whole");
        assert_eq!(h.change, None);
        for bad in [
            "ops n1 ab12 x =",
            "ops n1 ab12 7 1",
            "ops n1 ab12 7 1 v",
            "ops n1 ab12 7 z ua",
        ] {
            assert!(parse_presence(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn control_requests_round_trip() {
        let r = ControlRequest {
            id: 7,
            from: "a".into(),
            op: ControlOp::Disconnect {
                session: "s-1".into(),
            },
        };
        let json = serde_json::to_string(&r).expect("encodes");
        assert_eq!(
            serde_json::from_str::<ControlRequest>(&json).expect("decodes"),
            r
        );
        assert_eq!(parse_reply(&encode_reply(9, "3")), Some((9, "3")));
        assert_eq!(
            parse_reply(&encode_reply(9, "[{\"a\": 1}]")),
            Some((9, "[{\"a\": 1}]"))
        );
        assert_eq!(parse_reply("9"), None);
        assert_eq!(parse_reply("x 3"), None);
    }
}
