//! The memory engine (`storage.path = ""`): rooms' order and keys in this
//! process only, as in v1 — a restart starts every room in a new epoch.

use std::sync::Arc;
use std::time::Duration;

use super::sequencer::{Assigned, Sequencer};
use super::{Committed, ControlOp, Engine, Gathered, PublishJob, RoomState};
use crate::config::{Config, RoomSettings};
use crate::error::HubError;

/// See the module docs.
#[derive(Debug)]
pub struct MemoryEngine {
    order: Sequencer,
}

impl MemoryEngine {
    /// An engine with no rooms yet.
    pub fn new(config: &Config) -> Self {
        MemoryEngine {
            order: Sequencer::new(
                Duration::from_secs(config.rooms.idempotency_ttl_s),
                config.rooms.idempotency_keys_per_room,
            ),
        }
    }
}

/// Splits assignments into the events to deliver and each item's outcome.
pub(super) fn committed(assigned: Vec<Assigned>, job: PublishJob) -> Committed {
    let mut events = Vec::with_capacity(assigned.len());
    let results = assigned
        .into_iter()
        .map(|a| match a {
            Assigned::Event(event, ack) => {
                events.push(event);
                Ok(ack)
            }
            Assigned::Duplicate(ack) => Ok(ack),
            Assigned::Refused(err) => Err(err),
        })
        .collect();
    Committed {
        events,
        results,
        received: job.received(),
        answer: job.answer,
    }
}

impl Engine for MemoryEngine {
    fn is_cluster(&self) -> bool {
        false
    }

    fn restored(&mut self) -> Vec<(Arc<str>, RoomState)> {
        Vec::new()
    }

    fn open(
        &mut self,
        room: &Arc<str>,
        _: &RoomSettings,
        _: bool,
    ) -> Result<Option<RoomState>, HubError> {
        let order = self.order.open(room);
        Ok(Some(RoomState {
            epoch: order.epoch,
            seq: order.head,
            events: Vec::new(),
            state: Vec::new(),
        }))
    }

    fn catch_up(&mut self, _: &Arc<str>) -> Result<bool, HubError> {
        Ok(false)
    }

    fn close(&mut self, room: &Arc<str>, _: bool) {
        self.order.close(room);
    }

    fn publish(&mut self, job: PublishJob) -> Option<Committed> {
        let (assigned, _) = self.order.assign(&job.items);
        Some(committed(assigned, job))
    }

    fn ask_all(&mut self, _: ControlOp, reply: Gathered) -> Result<(), Gathered> {
        Err(reply)
    }
}
