//! The chain rules, as pure functions: segment file names, which full snapshot anchors the
//! chain, where a (re)started capture resumes, how far a chain is restorable, and when the
//! open segment is flushed.
//!
//! A chain is the full snapshot it starts from (the anchor, at its recorded revision `A`) and
//! segments `[A+1, t1]`, `[t1+1, t2]`, ... Each segment starts at the previous one's `to` + 1;
//! the restorable window ends at the last segment reached that way from the anchor. A segment
//! that does not continue the chain (a hole before it, or an overlap) is never counted.

use std::time::Duration;

/// Suffix of a plain published segment file (compressed and encrypted forms add to it:
/// `files::SegmentForm`).
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Digits of each revision in a segment file name (every `i64` revision fits).
pub(crate) const REVISION_DIGITS: usize = 20;

/// `<from>-<to>.seg`, each revision zero-padded to 20 digits, so names sort by revision: the
/// name of a plain segment (`files::SegmentName::file_name` names every form).
pub fn segment_file_name(from: i64, to: i64) -> String {
    format!("{from:020}-{to:020}{SEGMENT_SUFFIX}")
}

/// The `(from, to)` of a segment file name of any form (`files::parse_segment_name`, the one
/// parser); None for any other name.
pub fn parse_segment_file_name(name: &str) -> Option<(i64, i64)> {
    super::names::parse_segment_name(name).map(|n| (n.from, n.to))
}

/// A full snapshot a chain can start from: one with a recorded keyspace revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub file_name: String,
    pub revision: i64,
    pub created_unix: i64,
}

/// The newest snapshot (by creation time, then name) with a recorded revision; snapshots
/// without one (saved by RKE2, or when etcd did not answer) cannot anchor a chain.
pub fn choose_anchor(candidates: impl IntoIterator<Item = Anchor>) -> Option<Anchor> {
    candidates
        .into_iter()
        .max_by(|a, b| (a.created_unix, &a.file_name).cmp(&(b.created_unix, &b.file_name)))
}

/// How far a chain reaches without a hole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReach {
    /// The last revision covered by segments continuing the chain (the anchor's revision when
    /// there are none).
    pub contiguous_to: i64,
    /// The `(from, to)` of the segments on that path, in order.
    pub path: Vec<(i64, i64)>,
    /// Segments not on the path (after a hole, or overlapping it).
    pub stray: Vec<(i64, i64)>,
}

impl ChainReach {
    /// Where a capture resumes: the revision after the chain's contiguous end. Every revision
    /// before it is persisted exactly once on the path, so resuming here leaves no gap and
    /// writes no duplicate.
    pub fn resume_from(&self) -> i64 {
        self.contiguous_to.saturating_add(1)
    }
}

/// Walks from the anchor through segments that each start right after the previous `to`;
/// where two segments start at the same revision, the longer one is taken.
pub fn chain_reach(anchor_revision: i64, segments: &[(i64, i64)]) -> ChainReach {
    let mut sorted = segments.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut reach = ChainReach {
        contiguous_to: anchor_revision,
        path: Vec::new(),
        stray: Vec::new(),
    };
    let mut on_path = vec![false; sorted.len()];
    loop {
        let next = reach.contiguous_to.saturating_add(1);
        // Sorted by (from, to): the last entry starting at `next` is the longest.
        let end = sorted.partition_point(|s| s.0 <= next);
        let Some(i) = end.checked_sub(1).filter(|&i| sorted[i].0 == next) else {
            break;
        };
        on_path[i] = true;
        reach.path.push(sorted[i]);
        if sorted[i].1 == i64::MAX {
            reach.contiguous_to = i64::MAX;
            break;
        }
        reach.contiguous_to = sorted[i].1;
    }
    reach.stray = sorted
        .into_iter()
        .zip(on_path)
        .filter_map(|(segment, used)| (!used).then_some(segment))
        .collect();
    reach
}

/// When the open segment is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// `etcd-snapshot-delta-period`: the longest a segment stays open.
    pub period: Duration,
    /// `etcd-snapshot-delta-max-size`: the size at which it is closed at once.
    pub max_size: u64,
    /// `etcd-snapshot-delta-hashkv-interval`: the least time between recorded hashes.
    pub hashkv_interval: Duration,
}

/// Why a segment was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushReason {
    /// Open for a whole period.
    Period,
    /// Reached the maximum size.
    Size,
    /// The capture stops (shutdown, configuration change, a newer anchor, a compaction).
    Stop,
}

impl FlushReason {
    pub fn label(self) -> &'static str {
        match self {
            FlushReason::Period => "period",
            FlushReason::Size => "size",
            FlushReason::Stop => "stop",
        }
    }
}

impl FlushPolicy {
    /// Whether a segment of `size` bytes, open for `open_for`, is due.
    pub fn due(&self, size: u64, open_for: Duration) -> Option<FlushReason> {
        if size >= self.max_size {
            Some(FlushReason::Size)
        } else if open_for >= self.period {
            Some(FlushReason::Period)
        } else {
            None
        }
    }

    /// Whether the segment closing for `reason` records etcd's keyspace hash, `since` the last
    /// recorded one (`None`: none yet). A replay checks the last hash it passes, so hashes may
    /// be sparse; the segment written as the capture stops always gets one.
    pub fn hash_due(&self, reason: FlushReason, since: Option<Duration>) -> bool {
        self.hashkv_interval.is_zero()
            || reason == FlushReason::Stop
            || since.is_none_or(|elapsed| elapsed >= self.hashkv_interval)
    }
}

/// What one watch response means for the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchVerdict {
    /// Events (possibly none: a progress notification) at or after the expected revision.
    Continue,
    /// etcd compacted past what the chain has: the watch is over and the chain ends at its
    /// last persisted segment; a new full snapshot must re-anchor.
    Compacted { compact_revision: i64 },
    /// The watch was cancelled for another reason.
    Cancelled { reason: String },
    /// An event before the revision the chain expects: persisting it would duplicate.
    OutOfOrder { revision: i64, expected: i64 },
}

/// Judges a response from its compact revision, cancel flag and event revisions, given the
/// next revision the chain expects.
pub fn judge_response(
    expected: i64,
    compact_revision: i64,
    canceled: bool,
    cancel_reason: &str,
    first_event_revision: Option<i64>,
) -> WatchVerdict {
    if compact_revision > 0 {
        return WatchVerdict::Compacted { compact_revision };
    }
    if canceled {
        return WatchVerdict::Cancelled {
            reason: cancel_reason.chars().take(200).collect(),
        };
    }
    match first_event_revision {
        Some(revision) if revision < expected => WatchVerdict::OutOfOrder { revision, expected },
        _ => WatchVerdict::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_sort_by_revision_and_refuse_anything_else() {
        let name = segment_file_name(1001, 1042);
        assert_eq!(name, "00000000000000001001-00000000000000001042.seg");
        assert_eq!(parse_segment_file_name(&name), Some((1001, 1042)));
        assert!(segment_file_name(9, 9) < segment_file_name(10, 10));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(i64::MAX, i64::MAX)),
            Some((i64::MAX, i64::MAX))
        );
        for bad in [
            "",
            ".seg",
            "1-2.seg",
            "00000000000000000002-00000000000000000001.seg",
            "00000000000000000000-00000000000000000001.seg",
            "+0000000000000000001-00000000000000000001.seg",
            "00000000000000001001-00000000000000001042.seg.part",
            ".00000000000000001001.part",
            "99999999999999999999-99999999999999999999.seg",
            "00000000000000001001-00000000000000001042",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_newest_snapshot_with_a_revision_anchors() {
        let a = |name: &str, created| Anchor {
            file_name: name.into(),
            revision: 5,
            created_unix: created,
        };
        assert_eq!(choose_anchor([]), None);
        let chosen = choose_anchor([a("old", 10), a("new", 20), a("mid", 15)]);
        assert_eq!(chosen.unwrap().file_name, "new");
        // Same second: the name decides, so every run picks the same one.
        assert_eq!(
            choose_anchor([a("b", 1), a("a", 1)]).unwrap().file_name,
            "b"
        );
    }

    #[test]
    fn the_chain_reaches_through_contiguous_segments_only() {
        let reach = chain_reach(100, &[]);
        assert_eq!((reach.contiguous_to, reach.resume_from()), (100, 101));
        let reach = chain_reach(100, &[(131, 140), (101, 120), (121, 130), (150, 160)]);
        assert_eq!(reach.path, [(101, 120), (121, 130), (131, 140)]);
        assert_eq!(reach.contiguous_to, 140);
        assert_eq!(reach.stray, [(150, 160)], "after the hole at 141..149");
        // A first segment that does not start right after the anchor leaves nothing restorable.
        let reach = chain_reach(100, &[(102, 110)]);
        assert_eq!((reach.contiguous_to, reach.path.len()), (100, 0));
        // Two segments from one revision (a rewrite after a crash): the longer one continues.
        let reach = chain_reach(100, &[(101, 105), (101, 110), (106, 120), (111, 112)]);
        assert_eq!(reach.path, [(101, 110), (111, 112)]);
        assert_eq!(reach.stray, [(101, 105), (106, 120)]);
    }

    #[test]
    fn a_hash_is_recorded_at_every_end_or_once_per_interval_and_at_a_stop() {
        let every = |secs| FlushPolicy {
            period: Duration::from_secs(10),
            max_size: 1024,
            hashkv_interval: Duration::from_secs(secs),
        };
        let ago = |secs| Some(Duration::from_secs(secs));
        assert!(every(0).hash_due(FlushReason::Period, ago(1)));
        assert!(every(300).hash_due(FlushReason::Period, None));
        assert!(!every(300).hash_due(FlushReason::Period, ago(299)));
        assert!(!every(300).hash_due(FlushReason::Size, ago(10)));
        assert!(every(300).hash_due(FlushReason::Period, ago(300)));
        assert!(every(300).hash_due(FlushReason::Stop, ago(1)));
    }

    #[test]
    fn a_segment_flushes_at_its_size_or_its_period() {
        let policy = FlushPolicy {
            period: Duration::from_secs(10),
            max_size: 1024,
            hashkv_interval: Duration::ZERO,
        };
        assert_eq!(policy.due(10, Duration::from_secs(9)), None);
        assert_eq!(
            policy.due(10, Duration::from_secs(10)),
            Some(FlushReason::Period)
        );
        assert_eq!(policy.due(1024, Duration::ZERO), Some(FlushReason::Size));
    }

    #[test]
    fn a_compacted_or_cancelled_watch_ends_the_chain_and_old_events_are_refused() {
        assert_eq!(
            judge_response(10, 0, false, "", Some(10)),
            WatchVerdict::Continue
        );
        assert_eq!(
            judge_response(10, 0, false, "", None),
            WatchVerdict::Continue
        );
        assert_eq!(
            judge_response(10, 57, true, "", None),
            WatchVerdict::Compacted {
                compact_revision: 57
            }
        );
        assert!(matches!(
            judge_response(10, 0, true, "permission denied", None),
            WatchVerdict::Cancelled { reason } if reason == "permission denied"
        ));
        assert_eq!(
            judge_response(10, 0, false, "", Some(9)),
            WatchVerdict::OutOfOrder {
                revision: 9,
                expected: 10
            }
        );
    }
}
