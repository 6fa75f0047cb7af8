//! Cluster requests (a user event, a disconnect, the socket list): the asking
//! node publishes the request on the control channel and gathers the other
//! nodes' answers from its reply channel until all have answered or
//! `command_timeout_ms` has passed; every node answers what it hears.
//!
//! The subscriber task owns the pub/sub connection and hands this module what
//! arrives on those two channels; this module owns the requests in flight.

use std::collections::HashMap;
use std::time::Instant;

use redis::aio::MultiplexedConnection;

use super::deadline::{within, Timeouts};
use super::keys::Keys;
use super::wire::{self, ControlOp, ControlRequest};
use super::{unavailable, ClusterError, Gathered};
use crate::registry::{RegistryHandle, RemoteDisconnect, RemoteListSockets, RemoteUserEvent};

/// A request waiting for the nodes' answers.
struct Gathering {
    expected: usize,
    answers: Vec<String>,
    deadline: Instant,
    reply: Gathered,
}

/// This node's requests in flight, and how to answer the others'.
pub struct Control {
    keys: Keys,
    node: String,
    timeouts: Timeouts,
    registry: RegistryHandle,
    gathering: HashMap<u64, Gathering>,
    next_request: u64,
}

impl Control {
    pub fn new(keys: Keys, node: String, timeouts: Timeouts, registry: RegistryHandle) -> Self {
        Control {
            keys,
            node,
            timeouts,
            registry,
            gathering: HashMap::new(),
            next_request: 1,
        }
    }

    /// Sends `op` to every other node over `conn`; `reply` hears their
    /// answers (none at once when no other node listens). A failure fails
    /// `reply` too and is returned, so the caller reconnects.
    pub async fn scatter(
        &mut self,
        conn: Result<MultiplexedConnection, ClusterError>,
        op: ControlOp,
        reply: Gathered,
    ) -> Result<(), ClusterError> {
        let id = self.next_request;
        self.next_request += 1;
        let request = ControlRequest {
            id,
            from: self.node.clone(),
            op,
        };
        let sent = match (serde_json::to_string(&request), conn) {
            (Ok(json), Ok(mut c)) => {
                within(
                    self.timeouts.command,
                    redis::cmd("PUBLISH")
                        .arg(self.keys.control_channel())
                        .arg(json)
                        .query_async::<usize>(&mut c),
                )
                .await
            }
            (Err(e), _) => Err(e.into()),
            (_, Err(e)) => Err(e),
        };
        let receivers = match sent {
            Ok(n) => n,
            Err(e) => {
                reply.fail(unavailable(&e));
                return Err(e);
            }
        };
        if receivers == 0 {
            reply.finish(&[]);
            return Ok(());
        }
        self.gathering.insert(
            id,
            Gathering {
                expected: receivers,
                answers: Vec::with_capacity(receivers),
                deadline: Instant::now() + self.timeouts.command,
                reply,
            },
        );
        Ok(())
    }

    /// A message on this node's reply channel: one node's answer.
    pub fn on_reply(&mut self, payload: &str) {
        let Some((id, body)) = wire::parse_reply(payload) else {
            log::warn!("cluster: malformed reply {payload:?}");
            return;
        };
        let Some(g) = self.gathering.get_mut(&id) else {
            return; // answered already, or given up on
        };
        g.answers.push(body.to_string());
        if g.answers.len() >= g.expected {
            if let Some(g) = self.gathering.remove(&id) {
                g.reply.finish(&g.answers);
            }
        }
    }

    /// A message on the control channel: does what it asks on this node, then
    /// answers its sender over `conn`, in a task of its own so the event
    /// stream never waits for it.
    pub fn on_request(&self, conn: MultiplexedConnection, payload: &str) {
        let req = match serde_json::from_str::<ControlRequest>(payload) {
            Ok(req) => req,
            Err(e) => {
                log::warn!("cluster: malformed control request: {e}");
                return;
            }
        };
        let registry = self.registry.clone();
        let channel = self.keys.reply_channel(&req.from);
        let limit = self.timeouts.command;
        let mut c = conn;
        actix_rt::spawn(async move {
            let body = match req.op {
                ControlOp::UserEvent { user, frame } => registry
                    .send(RemoteUserEvent {
                        user,
                        frame: frame.into(),
                    })
                    .await
                    .unwrap_or(0)
                    .to_string(),
                ControlOp::Disconnect { session } => registry
                    .send(RemoteDisconnect { session })
                    .await
                    .map_or(0, usize::from)
                    .to_string(),
                ControlOp::ListSockets { kind } => {
                    let list = registry
                        .send(RemoteListSockets { kind })
                        .await
                        .unwrap_or_default();
                    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
                }
            };
            let reply = wire::encode_reply(req.id, &body);
            if let Err(e) = within(
                limit,
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(reply)
                    .query_async::<i64>(&mut c),
            )
            .await
            {
                log::warn!("cluster: answering request {} failed: {e}", req.id);
            }
        });
    }

    /// Answers requests whose wait ran out with what came in.
    pub fn expire(&mut self) {
        let now = Instant::now();
        let late: Vec<u64> = self
            .gathering
            .iter()
            .filter(|(_, g)| g.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(g) = self.gathering.remove(&id) {
                log::warn!(
                    "cluster: request {id}: {} of {} nodes answered in time",
                    g.answers.len(),
                    g.expected
                );
                g.reply.finish(&g.answers);
            }
        }
    }

    /// The subscription dropped: no answer can arrive for what is in flight.
    pub fn fail_all(&mut self) {
        for (_, g) in self.gathering.drain() {
            g.reply.fail(unavailable("redis connection lost"));
        }
    }
}
