//! The publish lane: takes the registry's publish jobs in order, sends whatever
//! has queued up as one Redis pipeline of publish scripts (one round trip, order
//! kept), and hands the scripts' results to the registry, which answers.
//!
//! With `cluster.min_replicas_acked` > 0 the pipeline ends with `WAIT`: a
//! publish is acknowledged only once that many replicas hold it, so a failover
//! cannot take an acknowledged event back. Before that, the script itself
//! refuses (writing and delivering nothing) on a primary with fewer online
//! replicas: a primary that lost its replicas, or one a Sentinel failover has
//! already replaced but not yet demoted, would deliver events it cannot keep. Fewer acks within
//! `command_timeout_ms`: every publish of the pipeline answers 503 (the event
//! may still be in Redis; a retry with its idempotency key is answered with
//! its first seq).

use std::sync::Arc;

use redis::{RedisResult, Value};
use tokio::sync::mpsc;

use super::conn::LazyConnection;
use super::deadline::{within, Timeouts};
use super::fence::{AckedHeads, Fence};
use super::keys::Keys;
use super::scripts::{self, Landed};
use super::{unavailable, ClusterError, Health};
use crate::engine::PublishAck;
use crate::engine::{Committed, PublishJob};
use crate::keyed::over_max_keys;
use crate::registry::RegistryHandle;

/// What a lane needs of the config.
#[derive(Debug, Clone, Copy)]
pub struct Lane {
    /// Idle expiry of dynamic rooms' keys (ms), 0 = none.
    pub dynamic_ttl_ms: u64,
    /// How long Redis keeps an idempotency key (ms), 0 = keys are not kept.
    pub idempotency_ttl_ms: u64,
    /// Replicas that must hold a publish before it is acknowledged (`WAIT`).
    pub replicas: u32,
}

/// Most scripts in one pipeline.
const MAX_PIPELINE: usize = 512;

/// What a lane works with besides its jobs.
pub struct LaneLink {
    /// Its own connection.
    pub conn: LazyConnection,
    pub keys: Keys,
    pub timeouts: Timeouts,
    pub registry: RegistryHandle,
    pub lane: Lane,
    pub health: Arc<Health>,
    /// Where acknowledged seqs are recorded for the subscriber's catch-up.
    pub acked: Arc<AckedHeads>,
}

/// Runs one lane until the registry goes away.
pub async fn run(mut jobs: mpsc::Receiver<PublishJob>, link: LaneLink) {
    let LaneLink {
        mut conn,
        keys,
        timeouts,
        registry,
        lane,
        health,
        acked,
    } = link;
    let mut fence = Fence::default();
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
        let mut results = if conn.endpoint().is_sentinel() && !health.subscribed() {
            // After a failover the new primary is first checked against what
            // this node delivered (the subscription's catch-up): publishing
            // before that could hand out a seq subscribers already saw.
            let count = batch.iter().map(|j| j.items.len()).sum();
            vec![Err(ClusterError::NotCaughtUp); count]
        } else {
            let out = Pipeline {
                keys: &keys,
                channel: &channel,
                timeouts,
                lane,
            };
            out.send(&mut conn, &mut fence, &batch, &acked).await
        }
        .into_iter();
        for job in batch {
            let mine = results.by_ref().take(job.items.len()).collect();
            answer(job, mine, &registry);
        }
    }
}

/// What one pipeline is sent with.
struct Pipeline<'a> {
    keys: &'a Keys,
    channel: &'a str,
    timeouts: Timeouts,
    lane: Lane,
}

impl Pipeline<'_> {
    /// A result per item, in order. Acknowledged seqs are recorded in
    /// `acked` before they are answered; a pipeline that ends after the
    /// primary was given up answers none (see `cluster::fence`).
    async fn send(
        &self,
        conn: &mut LazyConnection,
        fence: &mut Fence,
        batch: &[PublishJob],
        acked: &AckedHeads,
    ) -> Vec<Result<Landed, ClusterError>> {
        let count: usize = batch.iter().map(|j| j.items.len()).sum();
        let primary = conn.endpoint().changes();
        let (mut c, replid) = match conn.get_at_primary().await {
            Ok(c) => c,
            Err(e) => return vec![Err(e); count],
        };
        let cleared = match fence
            .cleared(&mut c, self.keys, &replid, self.timeouts)
            .await
        {
            Ok(cleared) => cleared,
            Err(e) => {
                conn.failed(&e);
                return vec![Err(e); count];
            }
        };
        let results = self.pipeline(conn, c, batch, (&replid, cleared)).await;
        let endpoint = conn.endpoint();
        let published = batch
            .iter()
            .flat_map(|j| &j.items)
            .zip(&results)
            .filter_map(|(item, r)| match r {
                Ok(Landed::Published(epoch, seq)) => Some((&item.room, epoch.as_str(), *seq)),
                _ => None,
            });
        if !acked.record_if(|| endpoint.changes() == primary, published) {
            return vec![Err(ClusterError::PrimaryChanged("during the publish")); count];
        }
        results
    }

    async fn pipeline(
        &self,
        conn: &mut LazyConnection,
        mut c: redis::aio::MultiplexedConnection,
        batch: &[PublishJob],
        (replid, cleared): (&str, bool),
    ) -> Vec<Result<Landed, ClusterError>> {
        let (keys, channel, timeouts, lane) = (self.keys, self.channel, self.timeouts, self.lane);
        let count: usize = batch.iter().map(|j| j.items.len()).sum();
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
                .arg(max_keys)
                .arg(lane.replicas)
                .arg(replid)
                .arg(if cleared { "1" } else { "0" });
        }
        let mut limit = timeouts.command;
        if lane.replicas > 0 {
            pipe.cmd("WAIT")
                .arg(lane.replicas)
                .arg(timeouts.command.as_millis() as u64);
            limit += timeouts.command;
        }
        let mut answers: Vec<RedisResult<Value>> =
            match within(limit, pipe.query_async(&mut c)).await {
                Ok(a) => a,
                Err(e) => {
                    log::warn!("cluster: publishing {count} events failed: {e}");
                    conn.failed(&e);
                    return vec![Err(e); count];
                }
            };
        if lane.replicas > 0 {
            let acked = match answers.pop() {
                Some(Ok(Value::Int(n))) => n,
                Some(Ok(_)) | None => -1,
                Some(Err(e)) => {
                    conn.failed(&e.into());
                    -1
                }
            };
            if acked < i64::from(lane.replicas) {
                let why = ClusterError::Unreplicated {
                    acked,
                    wanted: lane.replicas,
                    within: timeouts.command,
                };
                log::warn!("cluster: {count} publishes not acknowledged: {why}");
                metrics::counter!(crate::metrics::CLUSTER_UNREPLICATED).increment(count as u64);
                return vec![Err(why); count];
            }
        }
        // A demoted primary answers each script READONLY: move to the new one.
        if let Some(e) = answers
            .iter()
            .filter_map(|a| a.as_ref().err().map(|e| ClusterError::Redis(e.to_string())))
            .find(ClusterError::demoted)
        {
            conn.failed(&e);
        }
        let mut out: Vec<_> = answers
            .into_iter()
            .map(|r| match r {
                Ok(v) => {
                    scripts::decode_publish(&v).ok_or(ClusterError::Unexpected("publish script"))
                }
                Err(e) => Err(e.into()),
            })
            .collect();
        out.resize(count, Err(ClusterError::Unexpected("short pipeline")));
        out
    }
}

/// Hands the lane's results to the registry, which answers the publishers
/// (events arrive separately, through the subscriber task).
fn answer(job: PublishJob, results: Vec<Result<Landed, ClusterError>>, registry: &RegistryHandle) {
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
            match r? {
                Landed::Published(epoch, seq) => Ok(ack(epoch, seq, false)),
                Landed::Duplicate(epoch, seq) => Ok(ack(epoch, seq, true)),
                Landed::OverMaxKeys => Err(over_max_keys(
                    &item.room,
                    item.state.as_ref().map_or(0, |w| w.max_keys),
                )),
                Landed::Fenced => Err(unavailable(
                    "the primary changed; this room takes publishes once every node has caught up at the new one; nothing was published",
                )),
                Landed::TooFewReplicas(online) => {
                    metrics::counter!(crate::metrics::CLUSTER_UNREPLICATED).increment(1);
                    Err(unavailable(format!(
                        "{online} replicas online at the primary, fewer than cluster.min_replicas_acked; nothing was published"
                    )))
                }
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
