//! Exact per-subscriber accounting of the seqs a subscriber receives.
//!
//! A [`SeqTracker`] is fed every event seq one subscriber receives, in arrival
//! order. [`SeqTracker::finish`] then compares what arrived with the seqs the
//! publisher was told it got (the `seq` of every successful publish) and counts:
//!
//! - **lost**: expected seqs that never arrived;
//! - **duplicates**: arrivals of a seq already seen (a seq seen three times is
//!   two duplicates);
//! - **out of order**: arrivals whose seq is lower than the one received just
//!   before it;
//! - **unexpected**: distinct seqs that arrived but were never published by us.
//!
//! Seqs at or below the subscriber's starting point (`subscribed.seq`) are
//! replayed history, not part of the run: they are counted as `replayed` and take
//! part only in the order check.

use std::ops::AddAssign;

use serde::Serialize;

/// The widest seq range one tracker will hold (one byte per seq).
pub const MAX_SPAN: u64 = 16 * 1024 * 1024;

/// What [`SeqTracker::record`] made of one arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first arrival of a seq after the starting point.
    New,
    /// A seq already seen.
    Duplicate,
    /// A seq at or below the starting point (replayed history).
    Replay,
    /// A seq too far past the starting point to be tracked.
    OutOfRange,
}

/// Records the seqs one subscriber receives from one room.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    base: u64,
    seen: Vec<bool>,
    last: Option<u64>,
    received: u64,
    distinct: u64,
    duplicates: u64,
    out_of_order: u64,
    replayed: u64,
    out_of_range: u64,
}

/// Totals of one or more subscribers' accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeqCounts {
    /// Expected deliveries: expected seqs past the starting point, per subscriber, summed.
    pub expected: u64,
    /// Expected seqs that arrived at least once.
    pub delivered: u64,
    /// Expected seqs that never arrived.
    pub lost: u64,
    /// Arrivals of a seq already seen.
    pub duplicates: u64,
    /// Arrivals with a seq lower than the previous arrival's.
    pub out_of_order: u64,
    /// Distinct seqs that arrived but were not expected.
    pub unexpected: u64,
    /// Arrivals at or below the starting point (replayed history).
    pub replayed: u64,
    /// Every event frame that arrived after the starting point, duplicates included.
    pub frames: u64,
}

impl SeqTracker {
    /// A tracker for a subscriber whose `subscribed` frame reported head `base`.
    pub fn new(base: u64) -> Self {
        Self {
            base,
            seen: Vec::new(),
            last: None,
            received: 0,
            distinct: 0,
            duplicates: 0,
            out_of_order: 0,
            replayed: 0,
            out_of_range: 0,
        }
    }

    /// Records one arrival of `seq`.
    pub fn record(&mut self, seq: u64) -> Arrival {
        if self.last.is_some_and(|last| seq < last) {
            self.out_of_order += 1;
        }
        self.last = Some(seq);
        if seq <= self.base {
            self.replayed += 1;
            return Arrival::Replay;
        }
        self.received += 1;
        let offset = seq - self.base - 1;
        if offset >= MAX_SPAN {
            self.out_of_range += 1;
            return Arrival::OutOfRange;
        }
        let index = usize::try_from(offset).unwrap_or(usize::MAX);
        if index >= self.seen.len() {
            self.seen.resize(index + 1, false);
        }
        if self.seen[index] {
            self.duplicates += 1;
            Arrival::Duplicate
        } else {
            self.seen[index] = true;
            self.distinct += 1;
            Arrival::New
        }
    }

    /// Compares the arrivals with `expected`, the seqs the publisher got back.
    ///
    /// `expected` may be in any order, contain duplicates and contain seqs at or
    /// below the starting point (they are ignored). A strictly increasing slice
    /// is used as it is; anything else is sorted into a copy first.
    pub fn finish(&self, expected: &[u64]) -> SeqCounts {
        let sorted;
        let expected = if expected.is_sorted_by(|a, b| a < b) {
            expected
        } else {
            sorted = sorted_unique(expected);
            &sorted
        };
        let wanted = &expected[expected.partition_point(|&s| s <= self.base)..];
        let delivered = wanted.iter().filter(|&&seq| self.has_seen(seq)).count() as u64;
        let wanted_len = wanted.len() as u64;
        SeqCounts {
            expected: wanted_len,
            delivered,
            lost: wanted_len - delivered,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            unexpected: self.distinct - delivered + self.out_of_range,
            replayed: self.replayed,
            frames: self.received,
        }
    }

    fn has_seen(&self, seq: u64) -> bool {
        let Some(offset) = seq.checked_sub(self.base + 1) else {
            return false;
        };
        usize::try_from(offset)
            .ok()
            .and_then(|i| self.seen.get(i))
            .copied()
            .unwrap_or(false)
    }
}

/// `seqs` sorted with repeats removed: the form [`SeqTracker::finish`] uses as is.
pub fn sorted_unique(seqs: &[u64]) -> Vec<u64> {
    let mut out = seqs.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

impl AddAssign for SeqCounts {
    fn add_assign(&mut self, other: Self) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        self.replayed += other.replayed;
        self.frames += other.frames;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(base: u64, arrivals: &[u64], expected: &[u64]) -> SeqCounts {
        let mut t = SeqTracker::new(base);
        for &s in arrivals {
            t.record(s);
        }
        t.finish(expected)
    }

    #[test]
    fn perfect_stream_counts_nothing_wrong() {
        let c = run(0, &[1, 2, 3, 4], &[1, 2, 3, 4]);
        assert_eq!(c.delivered, 4);
        assert_eq!(
            (c.lost, c.duplicates, c.out_of_order, c.unexpected),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn missing_seqs_are_lost() {
        let c = run(0, &[1, 3], &[1, 2, 3, 4]);
        assert_eq!((c.delivered, c.lost), (2, 2));
        assert_eq!(c.out_of_order, 0);
    }

    #[test]
    fn repeats_are_duplicates_not_reorders() {
        let c = run(0, &[1, 1, 2, 2, 2], &[1, 2]);
        assert_eq!(c.duplicates, 3);
        assert_eq!(c.out_of_order, 0);
        assert_eq!(c.frames, 5);
    }

    #[test]
    fn a_lower_seq_after_a_higher_one_is_out_of_order() {
        let c = run(0, &[1, 3, 2, 4, 6, 5], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(c.out_of_order, 2);
        assert_eq!((c.lost, c.duplicates), (0, 0));
    }

    #[test]
    fn a_late_duplicate_is_both() {
        let c = run(0, &[1, 2, 3, 1], &[1, 2, 3]);
        assert_eq!((c.duplicates, c.out_of_order), (1, 1));
    }

    #[test]
    fn replayed_history_is_not_expected() {
        let c = run(10, &[9, 10, 11, 12], &[12, 11, 3, 12]);
        assert_eq!(c.replayed, 2);
        assert_eq!((c.expected, c.delivered, c.lost), (2, 2, 0));
    }

    #[test]
    fn unpublished_seqs_are_unexpected() {
        let c = run(0, &[1, 2, 7, 7], &[1, 2]);
        assert_eq!(c.unexpected, 1);
        assert_eq!(c.duplicates, 1);
    }

    #[test]
    fn far_seqs_are_unexpected_without_growing() {
        let mut t = SeqTracker::new(0);
        assert_eq!(t.record(MAX_SPAN + 5), Arrival::OutOfRange);
        assert_eq!(t.finish(&[1]).unexpected, 1);
        assert_eq!(t.finish(&[1]).lost, 1);
    }

    #[test]
    fn counts_add_up() {
        let mut total = run(0, &[1], &[1, 2]);
        total += run(0, &[2, 1, 1], &[1, 2]);
        assert_eq!(
            (
                total.expected,
                total.lost,
                total.duplicates,
                total.out_of_order
            ),
            (4, 1, 1, 1)
        );
    }
}
