//! The node heartbeat: every `heartbeat_ms` this node writes its counters to
//! Redis with a TTL of three heartbeats, and reads every live node's record, so
//! each node can answer `/socket-status` for the whole cluster. A node that
//! dies stops writing, and its record expires: it drops out within its TTL.

use std::collections::HashSet;
use std::time::Duration;

use redis::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::conn::LazyConnection;
use super::deadline::{within, Timeouts};
use super::keys::Keys;
use super::presence::LiveNodes;
use super::{scripts, ClusterError, Link};
use crate::registry::{GetNodeRecord, NodeRecord, NodesView};

/// A node's record lives this many heartbeats.
pub const TTL_HEARTBEATS: u32 = 3;

/// Writes and reads node records until the registry goes, or until the node
/// leaves (its record is deleted, so it drops out of `nodes` at once).
pub async fn run(
    link: Link,
    mut leave: mpsc::Receiver<oneshot::Sender<()>>,
    live: watch::Sender<LiveNodes>,
) {
    let Link {
        endpoint,
        keys,
        node,
        timeouts,
        health,
        registry,
        acked: _,
    } = link;
    let mut conn = LazyConnection::new(endpoint, timeouts, health.clone());
    let mut tick = tokio::time::interval(timeouts.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut suspect = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            done = leave.recv() => {
                if let Ok(mut c) = conn.get().await {
                    let mut pipe = redis::pipe();
                    pipe.cmd("DEL").arg(keys.node(&node)).ignore()
                        .cmd("SREM").arg(keys.nodes()).arg(&node).ignore()
                        .cmd("HDEL").arg(keys.beats()).arg(&node).ignore();
                    if let Err(e) = within(timeouts.command, pipe.query_async::<()>(&mut c)).await {
                        log::warn!("cluster: could not remove this node's record: {e}");
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            }
        }
        let Ok(record) = registry.probe(GetNodeRecord).await else {
            return;
        };
        match beat(&mut conn, &keys, &node, &record, timeouts).await {
            Ok(nodes) => {
                let seen = impostor(&node, &record, &nodes);
                // Twice in a row: once may be this node's previous run's record.
                let twice = seen.is_some() && suspect;
                suspect = seen.is_some();
                if let (true, Some(other)) = (twice, seen) {
                    // Requests and answers of two such nodes would mix: refuse
                    // to be ready until the operator gives each its own id.
                    let why = format!(
                        "cluster.node_id {node:?} is also used by another process (instance {other}); give every node its own id"
                    );
                    log::error!("cluster: {why}");
                    health.set_heartbeat(false, Some(why));
                    failing = true;
                    continue;
                }
                if std::mem::replace(&mut failing, false) {
                    log::info!("cluster: node heartbeat works again");
                }
                health.set_heartbeat(true, None);
                let counted = live_for_presence(&node, &nodes, timeouts.heartbeat);
                live.send_if_modified(|was| {
                    let changed = was.as_ref() != Some(&counted);
                    *was = Some(counted);
                    changed
                });
                registry.do_send(NodesView { nodes });
            }
            Err(e) => {
                // Once per outage, not once per heartbeat.
                if !std::mem::replace(&mut failing, true) {
                    log::warn!("cluster: node heartbeat failed: {e}");
                }
                conn.failed(&e);
                health.set_heartbeat(false, Some(e.to_string()));
            }
        }
    }
}

/// The nodes whose members presence counts: this one, and every node whose
/// record has more than one heartbeat to live, i.e. that missed at most one
/// write. A node killed just after a write is counted out when a read finds
/// two of its writes missing: within three heartbeats of its death, where its
/// record takes three to expire and a read one more.
fn live_for_presence(
    node: &str,
    nodes: &[(String, NodeRecord, Duration)],
    heartbeat: Duration,
) -> HashSet<String> {
    nodes
        .iter()
        .filter(|(_, _, left)| *left > heartbeat)
        .map(|(id, _, _)| id.clone())
        .chain(std::iter::once(node.to_string()))
        .collect()
}

/// Another process's instance tag in the record under our id, if there is one.
/// Two processes with one id overwrite each other's record on every heartbeat,
/// so each soon reads the other's.
fn impostor<'a>(
    node: &str,
    mine: &NodeRecord,
    nodes: &'a [(String, NodeRecord, Duration)],
) -> Option<&'a str> {
    nodes
        .iter()
        .find(|(id, record, _)| id == node && record.instance != mine.instance)
        .map(|(_, record, _)| record.instance.as_str())
}

/// One heartbeat: write ours, read everyone's (with their remaining lifetime).
async fn beat(
    conn: &mut LazyConnection,
    keys: &Keys,
    node: &str,
    record: &NodeRecord,
    timeouts: Timeouts,
) -> Result<Vec<(String, NodeRecord, Duration)>, ClusterError> {
    let mut c = conn.get().await?;
    let json = serde_json::to_string(record)?;
    let ttl = timeouts.heartbeat * TTL_HEARTBEATS;
    // Read before writing: what is under our id then was written by us a
    // heartbeat ago, or by another process using the same id.
    let mut pipe = redis::pipe();
    pipe.cmd("EVAL")
        .arg(scripts::NODES)
        .arg(2)
        .arg(keys.nodes())
        .arg(keys.beats())
        .arg(keys.node(""))
        .arg(node)
        .arg(super::fence::grace(&timeouts).as_millis() as u64)
        .cmd("SET")
        .arg(keys.node(node))
        .arg(json)
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .ignore()
        .cmd("SADD")
        .arg(keys.nodes())
        .arg(node)
        .ignore();
    let answers: Vec<Value> = within(timeouts.command, pipe.query_async(&mut c)).await?;
    let listed = answers
        .first()
        .and_then(scripts::decode_nodes)
        .ok_or(ClusterError::Unexpected("node list"))?;
    Ok(listed
        .into_iter()
        .filter_map(|(id, json, ttl_ms)| match serde_json::from_str(&json) {
            Ok(record) => Some((id, record, Duration::from_millis(ttl_ms))),
            Err(e) => {
                log::warn!("cluster: node {id} has an unreadable record: {e}");
                None
            }
        })
        .collect())
}
