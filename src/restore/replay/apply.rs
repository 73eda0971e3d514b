//! What one revision group becomes in the restored database, as pure functions: the `key`
//! bucket entries etcd itself would have written for the original transaction (each event at
//! its revision and sub-revision, as a `mvccpb.KeyValue` encoded as etcd encodes it, a delete
//! as a tombstone), the `lease` bucket entries of leases the chain binds keys to, and how a
//! recorded `HashKV` compares with the member's.

use crate::delta::segment::{Event, RevisionGroup, SegmentHash};

/// The TTL of a lease granted during a replay (a lease granted after the full snapshot: the
/// chain records its id, not its TTL). Short on purpose: Kubernetes binds only short-lived
/// objects to leases (Events, the API servers' endpoint leases), whose owners write them again;
/// a key that outlived its real lease would be worse (a stale API server endpoint). See
/// "Leases on replay" in `docs/delta-segments.md`.
pub const REGRANTED_LEASE_TTL_SECS: i64 = 60;

/// A `key` bucket key: main revision and sub-revision (8 bytes big-endian each, joined by `_`),
/// then `t` for a tombstone (etcd's `revToBytes` and `appendMarkTombstone`).
pub fn revision_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.extend_from_slice(&main.to_be_bytes());
    key.push(b'_');
    key.extend_from_slice(&sub.to_be_bytes());
    if tombstone {
        key.push(b't');
    }
    key
}

/// A bucket entry: key and value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A recorded event that cannot be the group's: a put whose mod revision is not the group's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misrecorded {
    pub mod_revision: i64,
}

/// The `key` bucket entries of `group`, in the order etcd writes them: the n-th event of the
/// transaction is sub-revision n. A put is stored with the create revision, version and lease
/// the source cluster reported; a delete as a tombstone holding only the key.
pub fn group_entries(group: &RevisionGroup) -> Result<Vec<Entry>, Misrecorded> {
    let mut entries = Vec::with_capacity(group.events.len());
    for (sub, event) in group.events.iter().enumerate() {
        let sub = sub as i64;
        entries.push(match event {
            Event::Put(p) if p.mod_revision != group.revision => {
                return Err(Misrecorded {
                    mod_revision: p.mod_revision,
                });
            }
            Event::Put(p) => (
                revision_key(group.revision, sub, false),
                key_value(
                    &p.key,
                    p.create_revision,
                    p.mod_revision,
                    p.version,
                    &p.value,
                    p.lease,
                ),
            ),
            Event::Delete { key } => (
                revision_key(group.revision, sub, true),
                key_value(key, 0, 0, 0, &[], 0),
            ),
        });
    }
    Ok(entries)
}

/// The leases `group` binds keys to (lease 0 means none), in event order, repeats included.
pub fn leases_of(group: &RevisionGroup) -> impl Iterator<Item = i64> + '_ {
    group.events.iter().filter_map(|e| match e {
        Event::Put(p) if p.lease != 0 => Some(p.lease),
        _ => None,
    })
}

/// A `lease` bucket entry for a lease granted by the replay: the id as 8 big-endian bytes, and
/// a `leasepb.Lease` with that id and `REGRANTED_LEASE_TTL_SECS`.
pub fn granted_lease(id: i64) -> Entry {
    let mut value = Vec::with_capacity(12);
    varint_field(&mut value, 1, id);
    varint_field(&mut value, 2, REGRANTED_LEASE_TTL_SECS);
    (id.to_be_bytes().to_vec(), value)
}

/// `mvccpb.KeyValue` as etcd's generated code marshals it: fields in number order (1 key,
/// 2 create_revision, 3 mod_revision, 4 version, 5 value, 6 lease), zero and empty ones left
/// out (proto3), integers as varints (a negative one in ten bytes).
pub fn key_value(
    key: &[u8],
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value: &[u8],
    lease: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + value.len() + 40);
    bytes_field(&mut out, 1, key);
    varint_field(&mut out, 2, create_revision);
    varint_field(&mut out, 3, mod_revision);
    varint_field(&mut out, 4, version);
    bytes_field(&mut out, 5, value);
    varint_field(&mut out, 6, lease);
    out
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    if !bytes.is_empty() {
        varint(out, field << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

fn varint_field(out: &mut Vec<u8>, field: u64, value: i64) {
    if value != 0 {
        varint(out, field << 3);
        varint(out, value as u64);
    }
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
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
    fn a_transactions_events_become_sub_revisions_with_tombstones_for_deletes() {
        let group = RevisionGroup {
            revision: 5,
            arrived_unix_ms: 0,
            events: vec![
                put("/a", 7),
                Event::Delete { key: "/e".into() },
                put("/c", 0),
            ],
        };
        let entries = group_entries(&group).unwrap();
        let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(
            keys,
            [
                &b"\0\0\0\0\0\0\0\x05_\0\0\0\0\0\0\0\0"[..],
                b"\0\0\0\0\0\0\0\x05_\0\0\0\0\0\0\0\x01t",
                b"\0\0\0\0\0\0\0\x05_\0\0\0\0\0\0\0\x02",
            ]
        );
        // Byte for byte what etcd stores (read back with the inspect decoder too).
        assert_eq!(
            entries[0].1,
            b"\x0a\x02/a\x10\x05\x18\x05\x20\x01\x2a\x01v\x30\x07"
        );
        assert_eq!(entries[1].1, b"\x0a\x02/e");
        let decoded = crate::inspect::mvcc::decode_key_value(&entries[0].1).unwrap();
        assert_eq!(
            (
                decoded.key,
                decoded.value,
                decoded.mod_revision,
                decoded.lease
            ),
            (&b"/a"[..], &b"v"[..], 5, 7)
        );
        assert_eq!(leases_of(&group).collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn a_put_recorded_at_another_revision_is_refused() {
        let group = RevisionGroup {
            revision: 6,
            arrived_unix_ms: 0,
            events: vec![put("/a", 0)],
        };
        assert_eq!(group_entries(&group), Err(Misrecorded { mod_revision: 5 }));
    }

    #[test]
    fn integers_are_varints_with_negatives_in_ten_bytes_and_leases_big_endian() {
        let kv = key_value(b"k", 300, -1, 0, &[], 0);
        assert_eq!(
            kv,
            [
                0x0a, 1, b'k', 0x10, 0xac, 0x02, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0x01
            ]
        );
        let (key, value) = granted_lease(0x0102_0304_0506);
        assert_eq!(key, [0, 0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(value, [0x08, 0x86, 0x8a, 0x90, 0x98, 0xa0, 0x20, 0x10, 60]);
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
