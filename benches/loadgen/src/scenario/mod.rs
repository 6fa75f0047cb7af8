//! The scenarios: those of the target table, `cluster` (single node vs
//! cluster mode), `restart` (a durable store across restarts) and `keyed`
//! (a keyed room's state replay).

pub mod churn;
pub mod cluster;
pub mod conns;
pub mod fanout;
pub mod keyed;
pub mod presence;
pub mod restart;
pub mod soak;
