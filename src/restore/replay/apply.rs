//! What one revision group becomes in the replay member, as pure functions: the transaction
//! (every put and delete of the original revision, in its order, so etcd gives it the same
//! revision and each key the same create revision, mod revision and version), the leases to
//! grant first, and how a recorded `HashKV` compares with the member's.

use std::collections::BTreeSet;

use etcd_client::{PutOptions, Txn, TxnOp};

use crate::delta::segment::{Event, RevisionGroup, SegmentHash};

/// The TTL of a lease granted during a replay (a lease granted after the full snapshot: the
/// chain records its id, not its TTL). Short on purpose: Kubernetes binds only short-lived
/// objects to leases (Events, the API servers' endpoint leases), whose owners write them again;
/// a key that outlived its real lease would be worse (a stale API server endpoint). See
/// "Leases on replay" in `docs/delta-segments.md`.
pub const REGRANTED_LEASE_TTL_SECS: i64 = 60;

/// The leases `group` attaches keys to that the member does not have yet (each once, in id
/// order). Lease 0 means none.
pub fn leases_to_grant(group: &RevisionGroup, known: &BTreeSet<i64>) -> Vec<i64> {
    let wanted: BTreeSet<i64> = group
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Put(p) if p.lease != 0 && !known.contains(&p.lease) => Some(p.lease),
            _ => None,
        })
        .collect();
    wanted.into_iter().collect()
}

/// One transaction with every event of the group, unconditionally, in the recorded order.
pub fn group_txn(group: &RevisionGroup) -> Txn {
    let ops: Vec<TxnOp> = group
        .events
        .iter()
        .map(|event| match event {
            Event::Put(p) => {
                let options = (p.lease != 0).then(|| PutOptions::new().with_lease(p.lease));
                TxnOp::put(p.key.clone(), p.value.clone(), options)
            }
            Event::Delete { key } => TxnOp::delete(key.clone(), None),
        })
        .collect();
    Txn::new().and_then(ops)
}

/// How the member's `HashKV` at a segment end compares with the recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashVerdict {
    Match,
    /// The source had compacted further when it hashed: compact the member to that revision
    /// (a hash covers only what is after the compact revision) and hash again.
    CompactFirst(i64),
    Mismatch,
}

/// Compares `(hash, compact revision)`: a member that is less compacted than the source was
/// compacts first; then both must be equal.
pub fn judge_hash(recorded: SegmentHash, observed: SegmentHash) -> HashVerdict {
    if recorded.compact_revision > observed.compact_revision && recorded.compact_revision >= 1 {
        return HashVerdict::CompactFirst(recorded.compact_revision);
    }
    if recorded == observed {
        HashVerdict::Match
    } else {
        HashVerdict::Mismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::segment::PutEvent;

    fn put(key: &str, lease: i64) -> Event {
        Event::Put(PutEvent {
            key: key.into(),
            value: b"v".to_vec(),
            create_revision: 5,
            mod_revision: 5,
            version: 1,
            lease,
        })
    }

    #[test]
    fn only_unknown_leases_are_granted_each_once() {
        let group = RevisionGroup {
            revision: 5,
            arrived_unix_ms: 0,
            events: vec![
                put("/a", 7),
                put("/b", 0),
                put("/c", 9),
                put("/d", 7),
                Event::Delete { key: "/e".into() },
            ],
        };
        assert_eq!(leases_to_grant(&group, &BTreeSet::new()), [7, 9]);
        assert_eq!(leases_to_grant(&group, &BTreeSet::from([9])), [7]);
        assert!(leases_to_grant(&group, &BTreeSet::from([7, 9])).is_empty());
    }

    #[test]
    fn hashes_match_only_at_the_same_compaction() {
        let h = |hash, compact_revision| SegmentHash {
            hash,
            compact_revision,
        };
        // (recorded, observed, verdict)
        let cases = [
            (h(1, -1), h(1, -1), HashVerdict::Match),
            (h(1, 40), h(1, 40), HashVerdict::Match),
            (h(1, 40), h(2, 40), HashVerdict::Mismatch),
            (h(1, 40), h(1, -1), HashVerdict::CompactFirst(40)),
            (h(1, 40), h(1, 30), HashVerdict::CompactFirst(40)),
            (h(1, 30), h(1, 40), HashVerdict::Mismatch),
            (h(1, -1), h(1, 0), HashVerdict::Mismatch),
        ];
        for (recorded, observed, want) in cases {
            assert_eq!(
                judge_hash(recorded, observed),
                want,
                "{recorded:?} {observed:?}"
            );
        }
    }
}
