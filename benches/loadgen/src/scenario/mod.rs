//! The scenarios of the target table.

pub mod churn;
pub mod conns;
pub mod fanout;
