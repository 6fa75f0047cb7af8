//! The scenarios: those of the target table, `cluster` (single node vs
//! cluster mode), and `restart` (a durable store across restarts).

pub mod churn;
pub mod cluster;
pub mod conns;
pub mod fanout;
pub mod restart;
