//! The publish lane: takes the registry's publish jobs in order, sends whatever
//! has queued up as one Redis pipeline of publish scripts (one round trip, order
//! kept), and answers each publisher from the scripts' results.

use redis::{RedisResult, Value};
use tokio::sync::mpsc;

use super::conn::{within, LazyConnection, Timeouts};
use super::keys::Keys;
use super::scripts;
use super::{unavailable, PublishAnswer, PublishJob};
use crate::error::HubError;
use crate::outbound::Outbound;
use crate::protocol::{encode, ErrorFrame, Published};
use crate::registry::{PublishAck, RegistryHandle, SocketPublished};

/// Most scripts in one pipeline.
const MAX_PIPELINE: usize = 512;

/// Runs one lane until the registry goes away.
pub async fn run(
    mut jobs: mpsc::Receiver<PublishJob>,
    mut conn: LazyConnection,
    keys: Keys,
    timeouts: Timeouts,
    registry: RegistryHandle,
) {
    let channel = keys.events_channel();
    while let Some(first) = jobs.recv().await {
        let mut items = first.items.len();
        let mut batch = vec![first];
        while items < MAX_PIPELINE {
            match jobs.try_recv() {
                Ok(job) => {
                    items += job.items.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let mut results = send(&mut conn, &keys, &channel, &batch, timeouts)
            .await
            .into_iter();
        for job in batch {
            let mine = results.by_ref().take(job.items.len()).collect();
            answer(job, mine, Some(&registry));
        }
    }
}

/// One pipeline: a result per item, in order.
async fn send(
    conn: &mut LazyConnection,
    keys: &Keys,
    channel: &str,
    batch: &[PublishJob],
    timeouts: Timeouts,
) -> Vec<Result<(String, u64, bool), String>> {
    let count: usize = batch.iter().map(|j| j.items.len()).sum();
    let mut c = match conn.get().await {
        Ok(c) => c,
        Err(e) => return vec![Err(e); count],
    };
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for item in batch.iter().flat_map(|j| &j.items) {
        let (idem_key, idem_ttl) = match &item.idempotency {
            Some((key, ttl)) => (key.as_str(), *ttl),
            None => ("", 0),
        };
        pipe.cmd("EVAL")
            .arg(scripts::PUBLISH)
            .arg(3)
            .arg(keys.room_meta(&item.room))
            .arg(keys.room_log(&item.room))
            .arg(keys.room_idempotency(&item.room, idem_key))
            .arg(crate::ids::new_epoch())
            .arg(item.history)
            .arg(&item.parts.head)
            .arg(&item.parts.tail)
            .arg(channel)
            .arg(&*item.room)
            .arg(item.ttl_ms)
            .arg(idem_key)
            .arg(idem_ttl);
    }
    let answers: Vec<RedisResult<Value>> =
        match within(timeouts.command, pipe.query_async(&mut c)).await {
            Ok(a) => a,
            Err(e) => {
                log::warn!("cluster: publishing {count} events failed: {e}");
                conn.failed();
                return vec![Err(e); count];
            }
        };
    let mut out: Vec<_> = answers
        .into_iter()
        .map(|r| match r {
            Ok(v) => scripts::decode_publish(&v).ok_or_else(|| "unexpected script answer".into()),
            Err(e) => Err(e.to_string()),
        })
        .collect();
    out.resize(count, Err("missing script answer".into()));
    out
}

/// Hands each item's result to whoever waits for it. A socket's `published`
/// goes through the registry (when there is one), which queues it once the
/// event itself has been delivered on this node, as on a single node.
pub fn answer(
    job: PublishJob,
    results: Vec<Result<(String, u64, bool), String>>,
    registry: Option<&RegistryHandle>,
) {
    let mut acks = job.items.iter().zip(results).map(|(item, r)| {
        r.map(|(epoch, seq, duplicate)| {
            crate::metrics::publish_enqueued(item.received);
            PublishAck {
                room: item.room.to_string(),
                epoch,
                seq,
                delivered: if duplicate { 0 } else { item.delivered },
                duplicate,
            }
        })
        .map_err(|e| unavailable(&e))
    });
    let missing = || Err(HubError::Internal("publish result missing".into()));
    match job.answer {
        PublishAnswer::Http(reply) => {
            let _ = reply.send(acks.next().unwrap_or_else(missing));
        }
        PublishAnswer::Socket {
            session,
            queue,
            reference,
        } => {
            let frame = match acks.next().unwrap_or_else(missing) {
                Ok(ack) => {
                    let frame = encode(&Published {
                        kind: "published",
                        room: &ack.room,
                        seq: ack.seq,
                        reference: reference.as_ref(),
                    });
                    if let Some(registry) = registry {
                        registry.do_send(SocketPublished {
                            session,
                            room: ack.room.as_str().into(),
                            epoch: ack.epoch,
                            seq: ack.seq,
                            frame,
                        });
                        return;
                    }
                    frame
                }
                Err(err) => {
                    crate::metrics::error_frame(err.code());
                    encode(&ErrorFrame {
                        kind: "error",
                        code: err.code(),
                        message: &err.to_string(),
                        reference: reference.as_ref(),
                    })
                }
            };
            let _ = queue.push(Outbound::Frame(frame));
        }
        PublishAnswer::Batch { slots, reply } => {
            let filled = slots
                .into_iter()
                .map(|slot| slot.unwrap_or_else(|| acks.next().unwrap_or_else(missing)))
                .collect();
            let _ = reply.send(filled);
        }
    }
}
