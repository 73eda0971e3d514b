//! The rebuild over small anchors written here (etcd's own databases are covered by the replay's
//! integration tests, which compare every key, version and revision and etcd's keyspace hash).

use super::*;
use crate::delta::segment::{Event, PutEvent};
use crate::restore::replay::apply::{key_value, revision_key};
use crate::restore::replay::bolt_writer::tests::{Buckets, read_back};

fn read(path: &Path) -> Buckets {
    let (structure, buckets) = read_back(&File::open(path).unwrap());
    assert!(structure.problems.is_empty(), "{:?}", structure.problems);
    buckets
}

/// An etcd-shaped anchor: revisions 1..=`last` in the key bucket, one lease, a compaction at
/// `compacted` when given.
fn anchor(path: &Path, last: i64, compacted: Option<i64>) -> Buckets {
    let keys = (1..=last)
        .map(|r| {
            (
                revision_key(r, 0, false),
                key_value(b"/a", 1, r, r, b"v", 0),
            )
        })
        .collect();
    let mut meta = vec![(b"consistent_index".to_vec(), 9u64.to_be_bytes().to_vec())];
    if let Some(c) = compacted {
        meta.push((FINISHED_COMPACT.to_vec(), revision_key(c, 0, false)));
    }
    let buckets: Buckets = vec![
        (b"alarm".to_vec(), Vec::new()),
        (KEY_BUCKET.to_vec(), keys),
        (LEASE_BUCKET.to_vec(), vec![granted_lease(3)]),
        (b"members".to_vec(), vec![(b"1".to_vec(), b"{}".to_vec())]),
        (META_BUCKET.to_vec(), meta),
    ];
    let mut out = BoltWriter::create(path, 4096).unwrap();
    let roots: Vec<(Vec<u8>, u64)> = buckets
        .iter()
        .map(|(name, entries)| {
            let mut b = BucketBuilder::default();
            for (k, v) in entries {
                b.push(&mut out, k, v).unwrap();
            }
            (name.clone(), b.finish(&mut out).unwrap())
        })
        .collect();
    out.finish(&roots, 4).unwrap();
    buckets
}

fn put(key: &str, revision: i64, lease: i64) -> Event {
    Event::Put(PutEvent {
        key: key.into(),
        value: b"new".to_vec(),
        create_revision: revision,
        mod_revision: revision,
        version: 1,
        lease,
    })
}

fn group(revision: i64, events: Vec<Event>) -> RevisionGroup {
    RevisionGroup {
        revision,
        arrived_unix_ms: 0,
        events,
    }
}

#[test]
fn the_chain_lands_after_the_snapshot_with_granted_leases_and_every_other_bucket_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("anchor"), dir.path().join("rebuilt"));
    let before = anchor(&from, 500, None);
    let mut rebuild = Rebuild::copy_anchor(&from, &to, false).unwrap();
    assert_eq!(rebuild.snapshot_revision, 500);
    let seg = Path::new("seg");
    rebuild
        .apply(&group(501, vec![put("/b", 501, 7), put("/c", 501, 3)]), seg)
        .unwrap();
    rebuild
        .apply(&group(502, vec![Event::Delete { key: "/b".into() }]), seg)
        .unwrap();
    assert_eq!(rebuild.finish().unwrap(), to);

    let after = read(&to);
    let names: Vec<&[u8]> = after.iter().map(|(n, _)| n.as_slice()).collect();
    assert_eq!(
        names,
        [&b"alarm"[..], b"key", b"lease", b"members", b"meta"]
    );
    for (name, entries) in &before {
        let (_, now) = after.iter().find(|(n, _)| n == name).unwrap();
        assert!(
            now.starts_with(entries),
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    let keys = &after[1].1;
    assert_eq!(keys.len(), 503);
    assert_eq!(keys[500].0, revision_key(501, 0, false));
    assert_eq!(keys[501].1, key_value(b"/c", 501, 501, 1, b"new", 3));
    assert_eq!(
        keys[502],
        (
            revision_key(502, 0, true),
            key_value(b"/b", 0, 0, 0, &[], 0)
        )
    );
    assert_eq!(
        after[2].1,
        [granted_lease(3), granted_lease(7)],
        "lease 3 kept once, 7 added"
    );
}

#[test]
fn a_gap_or_a_put_recorded_at_another_revision_is_refused_by_segment() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("anchor");
    anchor(&from, 10, None);
    let seg = Path::new("/chain/11-20.seg");
    let mut rebuild = Rebuild::copy_anchor(&from, &dir.path().join("a"), false).unwrap();
    let err = rebuild
        .apply(&group(12, vec![put("/b", 12, 0)]), seg)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReplayError::RevisionGap {
                revision: 12,
                expected: 11,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("/chain/11-20.seg"), "{err}");
    let err = rebuild
        .apply(&group(11, vec![put("/b", 10, 0)]), seg)
        .unwrap_err();
    assert!(matches!(err, ReplayError::Misplaced { .. }), "{err:?}");
}

#[test]
fn a_compaction_past_the_last_key_sets_the_snapshot_revision() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("anchor");
    anchor(&from, 10, Some(25));
    let rebuild = Rebuild::copy_anchor(&from, &dir.path().join("a"), false).unwrap();
    assert_eq!(rebuild.snapshot_revision, 25);
}

#[test]
fn a_damaged_or_foreign_anchor_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("anchor");
    anchor(&from, 10, None);
    let mut bytes = std::fs::read(&from).unwrap();
    bytes[4096 * 3 + 8] = 0x40; // the first data page's type: none bbolt knows
    let damaged_path = dir.path().join("damaged");
    std::fs::write(&damaged_path, &bytes).unwrap();
    let err = Rebuild::copy_anchor(&damaged_path, &dir.path().join("b"), false)
        .err()
        .unwrap();
    assert!(matches!(err, ReplayError::Anchor { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&*damaged_path.to_string_lossy()),
        "{err}"
    );

    let foreign = dir.path().join("foreign");
    let mut out = BoltWriter::create(&foreign, 4096).unwrap();
    let root = BucketBuilder::default().finish(&mut out).unwrap();
    out.finish(&[(b"other".to_vec(), root)], 1).unwrap();
    let err = Rebuild::copy_anchor(&foreign, &dir.path().join("c"), false)
        .err()
        .unwrap();
    assert!(err.to_string().contains("no key bucket"), "{err}");
}

#[test]
fn the_trailer_of_an_unchecked_file_is_checked_during_the_copy() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    anchor(&db, 10, None);
    let image = std::fs::read(&db).unwrap();
    let mut whole = image.clone();
    whole.extend_from_slice(&Sha256::digest(&image));
    let good = dir.path().join("good");
    std::fs::write(&good, &whole).unwrap();
    let rebuild = Rebuild::copy_anchor(&good, &dir.path().join("a"), true).unwrap();
    assert_eq!(rebuild.snapshot_revision, 10);

    // One value bit flipped: the structure is still sound, only the trailer tells.
    let at = whole.windows(3).position(|w| w == b"\x2a\x01v").unwrap() + 2;
    whole[at] ^= 0x01;
    let bad = dir.path().join("bad");
    std::fs::write(&bad, &whole).unwrap();
    Rebuild::copy_anchor(&bad, &dir.path().join("b"), false).expect("not checked when told so");
    let err = Rebuild::copy_anchor(&bad, &dir.path().join("c"), true)
        .err()
        .unwrap();
    assert!(matches!(err, ReplayError::AnchorCheck(_)), "{err:?}");
}

#[test]
fn an_empty_key_bucket_is_revision_one_and_a_key_that_is_no_revision_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, keys: &[(&[u8], &[u8])]| {
        let path = dir.path().join(name);
        let mut out = BoltWriter::create(&path, 4096).unwrap();
        let mut bucket = BucketBuilder::default();
        for (k, v) in keys {
            bucket.push(&mut out, k, v).unwrap();
        }
        let root = bucket.finish(&mut out).unwrap();
        out.finish(&[(KEY_BUCKET.to_vec(), root)], 1).unwrap();
        path
    };
    let empty = write("empty", &[]);
    let rebuild = Rebuild::copy_anchor(&empty, &dir.path().join("a"), false).unwrap();
    assert_eq!(
        rebuild.snapshot_revision, 1,
        "etcd starts an empty store at revision 1"
    );

    let odd = write("odd", &[(b"not-a-revision", b"x")]);
    let err = Rebuild::copy_anchor(&odd, &dir.path().join("b"), false)
        .err()
        .unwrap();
    assert!(matches!(err, ReplayError::Anchor { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-revision"), "{err}");
}
