//! HDR histograms of latencies in nanoseconds, and their summaries in milliseconds.

use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The highest value a histogram tracks: one hour in nanoseconds.
const HIGHEST_NS: u64 = 3_600 * 1_000_000_000;

/// Samples a [`LocalRecorder`] keeps before it takes the shared lock.
const LOCAL_BATCH: usize = 1024;

/// A new histogram for nanosecond latencies with three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("constant histogram bounds are valid")
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// Summarises `h` (nanoseconds) in milliseconds, rounded to microseconds.
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    let ms = |ns: u64| round3(ns as f64 / 1e6);
    LatencySummary {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: round3(h.mean() / 1e6),
    }
}

/// Rounds to three decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A histogram many tasks record into through [`LocalRecorder`]s.
#[derive(Debug, Clone)]
pub struct SharedHistogram(Arc<Mutex<Histogram<u64>>>);

impl Default for SharedHistogram {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(new_histogram())))
    }
}

impl SharedHistogram {
    /// A recorder for one task, which batches samples before taking the lock.
    pub fn recorder(&self) -> LocalRecorder {
        LocalRecorder {
            shared: self.clone(),
            batch: Vec::with_capacity(64),
        }
    }

    /// The summary of everything flushed so far.
    pub fn summary(&self) -> LatencySummary {
        summarize(&self.lock())
    }

    /// Records one sample directly.
    pub fn record(&self, ns: u64) {
        self.lock().saturating_record(ns.max(1));
    }

    fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Buffers one task's samples; flushes when full and when dropped.
#[derive(Debug)]
pub struct LocalRecorder {
    shared: SharedHistogram,
    batch: Vec<u64>,
}

impl LocalRecorder {
    /// Records one latency in nanoseconds.
    pub fn record(&mut self, ns: u64) {
        self.batch.push(ns.max(1));
        if self.batch.len() >= LOCAL_BATCH {
            self.flush();
        }
    }

    /// Moves the buffered samples into the shared histogram.
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut h = self.shared.lock();
        for &ns in &self.batch {
            h.saturating_record(ns);
        }
        self.batch.clear();
    }
}

impl Drop for LocalRecorder {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_in_milliseconds() {
        let shared = SharedHistogram::default();
        {
            let mut r = shared.recorder();
            for ms in 1..=100u64 {
                r.record(ms * 1_000_000);
            }
        }
        let s = shared.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(
            SharedHistogram::default().summary(),
            LatencySummary::default()
        );
    }
}
