//! What the harness publishes and how it reads the frames the hub sends.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Size of every published event's `data` JSON, in bytes.
pub const PAYLOAD_BYTES: usize = 256;

/// The event `type` the harness publishes.
pub const EVENT_TYPE: &str = "bench";

/// The `data` of one event: `{"t_ns":T,"pad":"xx…"}`, exactly [`PAYLOAD_BYTES`] long.
pub fn event_data(t_ns: u64) -> String {
    data_with_head(format!("{{\"t_ns\":{t_ns},\"pad\":\""))
}

/// The `data` of one event published through hub node `origin` of a cluster:
/// `{"t_ns":T,"o":N,"pad":"xx…"}`, exactly [`PAYLOAD_BYTES`] long.
pub fn event_data_from(t_ns: u64, origin: u8) -> String {
    data_with_head(format!("{{\"t_ns\":{t_ns},\"o\":{origin},\"pad\":\""))
}

fn data_with_head(head: String) -> String {
    let pad = PAYLOAD_BYTES.saturating_sub(head.len() + 2);
    let mut out = String::with_capacity(PAYLOAD_BYTES);
    out.push_str(&head);
    out.extend(std::iter::repeat_n('x', pad));
    out.push_str("\"}");
    out
}

/// The HTTP publish body for an event stamped `t_ns`.
pub fn publish_body(t_ns: u64) -> String {
    format!(
        "{{\"type\":\"{EVENT_TYPE}\",\"data\":{}}}",
        event_data(t_ns)
    )
}

/// The HTTP publish body for an event stamped `t_ns`, published through node `origin`.
pub fn publish_body_from(t_ns: u64, origin: u8) -> String {
    format!(
        "{{\"type\":\"{EVENT_TYPE}\",\"data\":{}}}",
        event_data_from(t_ns, origin)
    )
}

/// The HTTP publish body of a keyed event: `data` (e.g. [`event_data`]) as
/// the latest state of `key` (a key of plain characters: it is not escaped).
pub fn keyed_publish_body(data: &str, key: &str) -> String {
    format!("{{\"type\":\"{EVENT_TYPE}\",\"key\":\"{key}\",\"data\":{data}}}")
}

/// One item of a `POST /api/events` batch: `data` as the latest state of
/// `key` in `room` (plain characters: neither is escaped).
pub fn keyed_batch_item(room: &str, key: &str, data: &str) -> String {
    format!("{{\"room\":\"{room}\",\"type\":\"{EVENT_TYPE}\",\"key\":\"{key}\",\"data\":{data}}}")
}

/// The frames of a subscription to a keyed room the harness tells apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedFrame {
    /// `welcome`.
    Welcome,
    /// `subscribed`: the room's head and, for a keyed room's fresh
    /// subscription, how many state frames follow.
    Subscribed {
        /// The room's head when the subscription started.
        seq: u64,
        /// `state`: the number of state frames that follow (absent: not keyed).
        state: Option<u64>,
    },
    /// A room event (a state frame while the replay lasts).
    Event {
        /// Its seq.
        seq: u64,
        /// Its state key, if any.
        key: Option<String>,
    },
    /// `pong`.
    Pong,
    /// An `error` frame.
    Error {
        /// The error code.
        code: String,
    },
    /// Anything else.
    Other,
}

#[derive(Deserialize)]
struct RawKeyedFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: Option<u64>,
    state: Option<u64>,
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

/// Reads one text frame of a keyed room's subscription.
pub fn parse_keyed_frame(text: &str) -> Result<KeyedFrame> {
    let raw: RawKeyedFrame<'_> =
        serde_json::from_str(text).context("frame is not a JSON object with a type")?;
    Ok(match raw.kind.as_ref() {
        "welcome" => KeyedFrame::Welcome,
        "subscribed" => KeyedFrame::Subscribed {
            seq: raw.seq.context("subscribed without seq")?,
            state: raw.state,
        },
        "pong" => KeyedFrame::Pong,
        "error" => KeyedFrame::Error {
            code: raw.code.map(Cow::into_owned).unwrap_or_default(),
        },
        "unsubscribed" | "published" | "status_update" => KeyedFrame::Other,
        _ => match raw.seq {
            Some(seq) => KeyedFrame::Event {
                seq,
                key: raw.key.map(Cow::into_owned),
            },
            None => KeyedFrame::Other,
        },
    })
}

/// The frames the harness tells apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `welcome`, the first frame of every socket.
    Welcome,
    /// `subscribed`, with the room's head seq at that moment.
    Subscribed {
        /// The room's head when the subscription started.
        seq: u64,
    },
    /// A room event.
    Event {
        /// The event's seq in its room.
        seq: u64,
        /// The publisher's send time, when `data` carries one.
        t_ns: Option<u64>,
        /// The hub node the event was published through, when `data` says.
        origin: Option<u8>,
    },
    /// An `error` frame.
    Error {
        /// The error code.
        code: String,
    },
    /// Anything else (`pong`, `status_update`, user messages, …).
    Other,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: Option<u64>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Stamp {
    t_ns: Option<u64>,
    o: Option<u8>,
}

/// Reads one text frame from the hub.
pub fn parse_frame(text: &str) -> Result<Frame> {
    let raw: RawFrame<'_> =
        serde_json::from_str(text).context("frame is not a JSON object with a type")?;
    Ok(match raw.kind.as_ref() {
        "welcome" => Frame::Welcome,
        "subscribed" => Frame::Subscribed {
            seq: raw.seq.context("subscribed without seq")?,
        },
        "error" => Frame::Error {
            code: raw.code.map(Cow::into_owned).unwrap_or_default(),
        },
        "unsubscribed" | "published" | "pong" | "status_update" => Frame::Other,
        _ => match raw.seq {
            Some(seq) => {
                let stamp = raw.data.and_then(stamp);
                Frame::Event {
                    seq,
                    t_ns: stamp.as_ref().and_then(|s| s.t_ns),
                    origin: stamp.and_then(|s| s.o),
                }
            }
            None => Frame::Other,
        },
    })
}

fn stamp(data: &RawValue) -> Option<Stamp> {
    // Only an object carries a stamp (serde would also read `[T]` as a `Stamp`).
    if !data.get().starts_with('{') {
        return None;
    }
    serde_json::from_str::<Stamp>(data.get()).ok()
}

/// A connection the hub's frames are read from, one JSON text at a time.
pub trait FrameSource {
    /// The text of the next frame; an error once the connection ended.
    fn next_frame_text(&mut self) -> impl Future<Output = Result<String>> + Send;
}

/// Reads frames until one satisfies `want`, for at most `timeout`; an `error`
/// frame fails the wait.
pub async fn wait_for_frame(
    source: &mut impl FrameSource,
    timeout: Duration,
    mut want: impl FnMut(&Frame) -> bool,
) -> Result<Frame> {
    let read = async {
        loop {
            let frame = parse_frame(&source.next_frame_text().await?)?;
            if let Frame::Error { code } = &frame {
                bail!("hub answered error `{code}`");
            }
            if want(&frame) {
                return Ok(frame);
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .context("timed out waiting for a frame")?
}

/// Waits for `welcome`.
pub async fn wait_welcome(source: &mut impl FrameSource, timeout: Duration) -> Result<()> {
    wait_for_frame(source, timeout, |f| matches!(f, Frame::Welcome)).await?;
    Ok(())
}

/// Waits for `subscribed`; returns the room head it reports.
pub async fn wait_subscribed(source: &mut impl FrameSource, timeout: Duration) -> Result<u64> {
    match wait_for_frame(source, timeout, |f| matches!(f, Frame::Subscribed { .. })).await? {
        Frame::Subscribed { seq } => Ok(seq),
        other => bail!("expected subscribed, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_exactly_the_payload_size() {
        for t in [0, 7, 123_456_789, u64::MAX] {
            let d = event_data(t);
            assert_eq!(d.len(), PAYLOAD_BYTES);
            let v: serde_json::Value = serde_json::from_str(&d).expect("valid JSON");
            assert_eq!(v["t_ns"].as_u64(), Some(t));
        }
    }

    #[test]
    fn reads_an_event_with_its_stamp() {
        let text = format!(
            "{{\"type\":\"bench\",\"room\":\"r\",\"seq\":42,\"ts\":\"x\",\"data\":{}}}",
            event_data(99)
        );
        assert_eq!(
            parse_frame(&text).ok(),
            Some(Frame::Event {
                seq: 42,
                t_ns: Some(99),
                origin: None
            })
        );
    }

    #[test]
    fn cluster_data_is_exactly_the_payload_size_and_names_its_origin() {
        for (t, o) in [(0, 0), (123_456_789, 1), (u64::MAX, 255)] {
            let d = event_data_from(t, o);
            assert_eq!(d.len(), PAYLOAD_BYTES);
            let text = format!("{{\"type\":\"bench\",\"room\":\"r\",\"seq\":7,\"data\":{d}}}");
            assert_eq!(
                parse_frame(&text).ok(),
                Some(Frame::Event {
                    seq: 7,
                    t_ns: Some(t),
                    origin: Some(o)
                })
            );
        }
        let body: serde_json::Value =
            serde_json::from_str(&publish_body_from(5, 1)).expect("valid JSON");
        assert_eq!(body["data"]["o"].as_u64(), Some(1));
    }

    #[test]
    fn reads_control_frames() {
        assert_eq!(
            parse_frame(r#"{"type":"welcome","session":"s"}"#).ok(),
            Some(Frame::Welcome)
        );
        assert_eq!(
            parse_frame(r#"{"type":"subscribed","room":"r","seq":3,"epoch":"e"}"#).ok(),
            Some(Frame::Subscribed { seq: 3 })
        );
        assert_eq!(
            parse_frame(r#"{"type":"published","room":"r","seq":3}"#).ok(),
            Some(Frame::Other)
        );
        assert_eq!(
            parse_frame(r#"{"type":"alert","room":"r","seq":5,"data":[1]}"#).ok(),
            Some(Frame::Event {
                seq: 5,
                t_ns: None,
                origin: None
            })
        );
    }

    #[test]
    fn keyed_bodies_and_frames() {
        let body: serde_json::Value =
            serde_json::from_str(&keyed_publish_body(&event_data(3), "k-7")).expect("JSON");
        assert_eq!(body["key"], "k-7");
        assert_eq!(body["data"]["t_ns"].as_u64(), Some(3));
        let item: serde_json::Value =
            serde_json::from_str(&keyed_batch_item("bench", "key-1", &event_data(4)))
                .expect("JSON");
        assert_eq!(
            (item["room"].as_str(), item["key"].as_str()),
            (Some("bench"), Some("key-1"))
        );
        assert_eq!(
            parse_keyed_frame(
                r#"{"type":"subscribed","room":"r","seq":9,"recovered":false,"state":2}"#
            )
            .ok(),
            Some(KeyedFrame::Subscribed {
                seq: 9,
                state: Some(2)
            })
        );
        assert_eq!(
            parse_keyed_frame(r#"{"type":"subscribed","room":"r","seq":9}"#).ok(),
            Some(KeyedFrame::Subscribed {
                seq: 9,
                state: None
            })
        );
        assert_eq!(
            parse_keyed_frame(r#"{"type":"bench","room":"r","seq":4,"key":"a","data":{}}"#).ok(),
            Some(KeyedFrame::Event {
                seq: 4,
                key: Some("a".to_owned())
            })
        );
        assert_eq!(
            parse_keyed_frame(r#"{"type":"pong"}"#).ok(),
            Some(KeyedFrame::Pong)
        );
        assert!(parse_keyed_frame("[]").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_frame("not json").is_err());
        assert!(parse_frame(r#"{"type":"subscribed"}"#).is_err());
        assert!(parse_frame(r#"{"seq":1}"#).is_err());
    }
}
