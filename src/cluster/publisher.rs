//! The publish lane: takes the registry's publish jobs in order, sends whatever
//! has queued up as one Redis pipeline of publish scripts (one round trip, order
//! kept), and hands the scripts' results to the registry, which answers.

use redis::{RedisResult, Value};
use tokio::sync::mpsc;

use super::conn::{within, LazyConnection, Timeouts};
use super::keys::Keys;
use super::scripts::{self, Landed};
use super::unavailable;
use crate::engine::{Committed, PublishJob};
use crate::keyed::over_max_keys;
use crate::registry::{PublishAck, RegistryHandle};

/// What a lane needs of the config.
#[derive(Debug, Clone, Copy)]
pub struct Lane {
    /// Idle expiry of dynamic rooms' keys (ms), 0 = none.
    pub dynamic_ttl_ms: u64,
    /// How long Redis keeps an idempotency key (ms), 0 = keys are not kept.
    pub idempotency_ttl_ms: u64,
}

/// Most scripts in one pipeline.
const MAX_PIPELINE: usize = 512;

/// Runs one lane until the registry goes away.
pub async fn run(
    mut jobs: mpsc::Receiver<PublishJob>,
    mut conn: LazyConnection,
    keys: Keys,
    timeouts: Timeouts,
    registry: RegistryHandle,
    lane: Lane,
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
        let mut results = send(&mut conn, &keys, &channel, &batch, timeouts, lane)
            .await
            .into_iter();
        for job in batch {
            let mine = results.by_ref().take(job.items.len()).collect();
            answer(job, mine, &registry);
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
    lane: Lane,
) -> Vec<Result<Landed, String>> {
    let count: usize = batch.iter().map(|j| j.items.len()).sum();
    let mut c = match conn.get().await {
        Ok(c) => c,
        Err(e) => return vec![Err(e); count],
    };
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for item in batch.iter().flat_map(|j| &j.items) {
        let (idem_key, idem_ttl) = match &item.idempotency_key {
            Some(key) if lane.idempotency_ttl_ms > 0 => (key.as_str(), lane.idempotency_ttl_ms),
            _ => ("", 0),
        };
        let ttl_ms = if item.dynamic { lane.dynamic_ttl_ms } else { 0 };
        let (state_key, delete, max_keys) = match &item.state {
            Some(w) => (
                &*w.change.key,
                if w.change.delete { "1" } else { "0" },
                w.max_keys,
            ),
            None => ("", "0", 0),
        };
        pipe.cmd("EVAL")
            .arg(scripts::PUBLISH)
            .arg(4)
            .arg(keys.room_meta(&item.room))
            .arg(keys.room_log(&item.room))
            .arg(keys.room_idempotency(&item.room, idem_key))
            .arg(keys.room_state(&item.room))
            .arg(crate::ids::new_epoch())
            .arg(item.history)
            .arg(&item.parts.head)
            .arg(&item.parts.tail)
            .arg(channel)
            .arg(&*item.room)
            .arg(ttl_ms)
            .arg(idem_key)
            .arg(idem_ttl)
            .arg(state_key)
            .arg(delete)
            .arg(max_keys);
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

/// Hands the lane's results to the registry, which answers the publishers
/// (events arrive separately, through the subscriber task).
fn answer(job: PublishJob, results: Vec<Result<Landed, String>>, registry: &RegistryHandle) {
    let results = job
        .items
        .iter()
        .zip(results)
        .map(|(item, r)| {
            let ack = |epoch, seq, duplicate| PublishAck {
                room: item.room.to_string(),
                epoch,
                seq,
                delivered: if duplicate { 0 } else { item.delivered },
                duplicate,
            };
            match r.map_err(|e| unavailable(&e))? {
                Landed::Published(epoch, seq) => Ok(ack(epoch, seq, false)),
                Landed::Duplicate(epoch, seq) => Ok(ack(epoch, seq, true)),
                Landed::OverMaxKeys => Err(over_max_keys(
                    &item.room,
                    item.state.as_ref().map_or(0, |w| w.max_keys),
                )),
            }
        })
        .collect();
    registry.do_send(Committed {
        events: Vec::new(),
        results,
        received: job.received(),
        answer: job.answer,
    });
}
