//! The clock that publishers and subscribers of one process share.

use std::sync::OnceLock;
use std::time::Instant;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Monotonic nanoseconds since the first call in this process.
///
/// Publish timestamps and receive times are both taken from this clock, so a
/// subscriber's `now_ns() - t_ns` is the end-to-end latency of one event.
pub fn now_ns() -> u64 {
    let base = BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
