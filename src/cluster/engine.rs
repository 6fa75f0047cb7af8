//! The Redis engine: the registry's seam (`crate::engine::Engine`) onto the
//! cluster's publish lanes, subscriber task and control channel.

use std::sync::Arc;

use super::RedisBroker;
use crate::config::RoomSettings;
use crate::engine::{Committed, ControlOp, Engine, Gathered, PublishJob, RoomState};
use crate::error::HubError;
use crate::presence::Change;

/// See the module docs.
pub struct RedisEngine {
    broker: RedisBroker,
}

impl RedisEngine {
    /// The engine over a broker whose tasks are (to be) started.
    pub fn new(broker: RedisBroker) -> Self {
        RedisEngine { broker }
    }
}

impl Engine for RedisEngine {
    fn is_cluster(&self) -> bool {
        true
    }

    fn restored(&mut self) -> Vec<(Arc<str>, RoomState)> {
        // Rooms are read from Redis when first used, not at start.
        Vec::new()
    }

    fn open(
        &mut self,
        room: &Arc<str>,
        settings: &RoomSettings,
        dynamic: bool,
    ) -> Result<Option<RoomState>, HubError> {
        self.broker.track(room.clone(), settings, dynamic)?;
        Ok(None)
    }

    fn catch_up(&mut self, room: &Arc<str>) -> Result<bool, HubError> {
        self.broker.catch_up(room.clone()).map(|()| true)
    }

    fn close(&mut self, room: &Arc<str>, _: bool) {
        // Redis keeps the room for the other nodes (and expires idle dynamic
        // rooms itself); this node just stops following it.
        self.broker.untrack(room.clone());
    }

    fn publish(&mut self, job: PublishJob) -> Option<Committed> {
        self.broker.publish(job)
    }

    fn ask_all(&mut self, op: ControlOp, reply: Gathered) -> Result<(), Gathered> {
        self.broker.scatter(op, reply);
        Ok(())
    }

    fn presence(&mut self, room: &Arc<str>, change: Change) -> Option<Change> {
        self.broker.presence(room.clone(), change);
        None
    }
}
