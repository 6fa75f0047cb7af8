//! What travels over Redis pub/sub between nodes: room events (written by the
//! publish script) and cluster-wide requests with their answers.

use serde::{Deserialize, Serialize};

pub use crate::engine::ControlOp;

/// A room event as the publish script broadcasts it: `ROOM EPOCH SEQ FRAME`.
/// Room names and epochs hold no spaces, so the frame is the rest of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage<'a> {
    /// Room.
    pub room: &'a str,
    /// The room's epoch when the seq was assigned.
    pub epoch: &'a str,
    /// The event's seq.
    pub seq: u64,
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
        let frame = it.next()?;
        Some(EventMessage {
            room,
            epoch,
            seq,
            frame,
        })
    }
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
                frame: r#"{"data":"a b c"}"#
            }
        );
        assert!(EventMessage::parse("hotspots n1-3 x {}").is_none());
        assert!(EventMessage::parse("hotspots n1-3 4").is_none());
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
