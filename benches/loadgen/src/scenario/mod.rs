//! The scenarios: those of the target table, and `cluster` (single node vs cluster mode).

pub mod churn;
pub mod cluster;
pub mod conns;
pub mod fanout;
