//! What one revision group becomes in the replay member, as pure functions: the transaction
//! (every put and delete of the original revision, in its order, so etcd gives it the same
//! revision and each key the same create revision, mod revision and version), the condition
//! that keeps it behind the group before it, the leases to grant first, how an answer is
//! judged, and how a recorded `HashKV` compares with the member's.

use std::collections::BTreeSet;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

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

/// The condition under which a transaction may follow `group` while `group` is still in
/// flight: a key `group` puts is at `group`'s revision. No other state has that mod revision,
/// so the condition holds only once `group` landed (and until a later revision changes the
/// key), and a transaction etcd received out of order fails it instead of taking another
/// revision. A group that only deletes has no such condition (a key is also absent before it
/// was ever created), so `None`: what follows it waits until it landed and then needs none.
pub fn guard_after(group: &RevisionGroup) -> Option<Compare> {
    group.events.iter().find_map(|e| match e {
        Event::Put(p) => Some(Compare::mod_revision(
            p.key.clone(),
            CompareOp::Equal,
            group.revision,
        )),
        Event::Delete { .. } => None,
    })
}

/// How many bytes a group's transaction carries (keys and values): what bounds the pipeline.
pub fn group_bytes(group: &RevisionGroup) -> usize {
    group
        .events
        .iter()
        .map(|e| match e {
            Event::Put(p) => p.key.len() + p.value.len(),
            Event::Delete { key } => key.len(),
        })
        .sum()
}

/// What the member's answer to a group's transaction means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// Applied at the group's own revision.
    Landed,
    /// Its condition failed: the group before it had not landed yet.
    NotYet,
    /// Applied at another revision: the chain does not continue the member's state.
    Elsewhere(i64),
}

/// Judges an answer: `succeeded` is the condition's result, `revision` the member's revision
/// after it, `wanted` the group's original revision.
pub fn judge_landing(succeeded: bool, revision: i64, wanted: i64) -> Landing {
    match (succeeded, revision == wanted) {
        (false, _) => Landing::NotYet,
        (true, true) => Landing::Landed,
        (true, false) => Landing::Elsewhere(revision),
    }
}

/// One transaction with every event of the group in the recorded order, under `guard` (none
/// when nothing is in flight ahead of it).
pub fn group_txn(group: &RevisionGroup, guard: Option<Compare>) -> Txn {
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
    let txn = Txn::new();
    let txn = match guard {
        Some(guard) => txn.when(vec![guard]),
        None => txn,
    };
    txn.and_then(ops)
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

    fn group(revision: i64, events: Vec<Event>) -> RevisionGroup {
        RevisionGroup {
            revision,
            arrived_unix_ms: 0,
            events,
        }
    }

    #[test]
    fn the_guard_names_a_key_the_group_before_put_and_a_delete_only_group_has_none() {
        let mod_at = |key: &str, revision| {
            format!(
                "{:?}",
                Compare::mod_revision(key, CompareOp::Equal, revision)
            )
        };
        let puts = guard_after(&group(9, vec![put("/a", 0), put("/b", 0)])).unwrap();
        assert_eq!(format!("{puts:?}"), mod_at("/a", 9));
        let delete = || Event::Delete { key: "/d".into() };
        let mixed = guard_after(&group(9, vec![delete(), put("/b", 0)])).unwrap();
        assert_eq!(format!("{mixed:?}"), mod_at("/b", 9));
        assert!(guard_after(&group(9, vec![delete()])).is_none());
        assert!(guard_after(&group(9, vec![])).is_none());
    }

    #[test]
    fn an_answer_lands_only_when_its_condition_held_at_its_own_revision() {
        assert_eq!(judge_landing(true, 12, 12), Landing::Landed);
        assert_eq!(judge_landing(false, 11, 12), Landing::NotYet);
        assert_eq!(judge_landing(false, 12, 12), Landing::NotYet);
        assert_eq!(judge_landing(true, 13, 12), Landing::Elsewhere(13));
    }

    #[test]
    fn a_group_weighs_its_keys_and_values() {
        let g = group(3, vec![put("/ab", 0), Event::Delete { key: "/xyz".into() }]);
        assert_eq!(group_bytes(&g), 3 + 1 + 4);
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
