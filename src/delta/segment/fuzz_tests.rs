//! Fuzz target `delta_segments`: delta segment files as a restore or a listing reads them back
//! from the delta dir or S3.
//!
//! Properties: any segment the writer accepts decodes to what was written; no mutated,
//! truncated, extended or random input panics; with the checksum recomputed after the
//! mutation (so the parser itself is reached), a segment that decodes re-encodes to exactly
//! the same bytes (one encoding per segment), and lengths and counts the file claims are never
//! allocated beyond the file's size (peak RSS in the long run).

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use sha2::Digest;

use super::tests::{header, sample_groups};
use super::*;
use crate::fuzz_support::{Fuzz, mutated};

fn event(revision: i64) -> impl Strategy<Value = Event> {
    let key = prop::collection::vec(any::<u8>(), 1..24);
    let value = prop::collection::vec(any::<u8>(), 0..48);
    prop_oneof![
        3 => (key.clone(), value, 1..=revision, 1i64..1_000, prop_oneof![Just(0i64), 0..i64::MAX])
            .prop_map(move |(key, value, create_revision, version, lease)| {
                Event::Put(PutEvent {
                    key,
                    value,
                    create_revision,
                    mod_revision: revision,
                    version,
                    lease,
                })
            }),
        1 => key.prop_map(|key| Event::Delete { key }),
    ]
}

/// A valid segment: a header from `from`, groups at increasing revisions (with gaps), any
/// footer times and hash.
fn segment() -> impl Strategy<Value = (SegmentHeader, Vec<RevisionGroup>, i64, Option<SegmentHash>)>
{
    let steps = prop::collection::vec((1i64..4, 1usize..5, any::<i64>()), 1..8);
    let hash = prop::option::of((any::<u32>(), -1i64..i64::MAX).prop_map(
        |(hash, compact_revision)| SegmentHash {
            hash,
            compact_revision,
        },
    ));
    (1i64..1 << 40, steps, any::<i64>(), hash, "[a-z0-9.-]{1,40}").prop_flat_map(
        |(from, steps, time, hash, anchor)| {
            let mut revision = from - 1;
            let groups: Vec<_> = steps
                .into_iter()
                .map(|(step, count, arrived_unix_ms)| {
                    revision += step;
                    let r = revision;
                    prop::collection::vec(event(r), count).prop_map(move |events| RevisionGroup {
                        revision: r,
                        arrived_unix_ms,
                        events,
                    })
                })
                .collect();
            let mut head = header(from);
            head.anchor = format!("s{anchor}");
            (Just(head), groups, Just(time), Just(hash))
        },
    )
}

fn write(
    header: &SegmentHeader,
    groups: &[RevisionGroup],
    (last, closed): (i64, i64),
    hash: Option<SegmentHash>,
) -> Vec<u8> {
    let mut writer = SegmentWriter::start(Vec::new(), header).expect("valid header");
    for group in groups {
        writer.push(group).expect("valid group");
    }
    writer.finish(last, closed, hash).expect("finish").0
}

fn round_trip(
    (header, groups, time, hash): (SegmentHeader, Vec<RevisionGroup>, i64, Option<SegmentHash>),
) -> TestCaseResult {
    let bytes = write(&header, &groups, (time, time), hash);
    let segment = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&segment.header, &header);
    prop_assert_eq!(&segment.groups, &groups);
    prop_assert_eq!(segment.footer.hashkv, hash);
    prop_assert_eq!(segment.footer.closed_unix_ms, time);
    Ok(())
}

/// Whatever decodes re-encodes to the same bytes.
fn canonical(bytes: &[u8]) -> TestCaseResult {
    if let Ok(segment) = decode(bytes) {
        let footer = &segment.footer;
        let times = (footer.last_event_unix_ms, footer.closed_unix_ms);
        let expected = write(&segment.header, &segment.groups, times, footer.hashkv);
        prop_assert_eq!(expected.as_slice(), bytes);
    }
    Ok(())
}

fn sample() -> Vec<u8> {
    super::tests::encode(&header(10), &sample_groups())
}

/// Replaces the trailer with the checksum of what precedes it (when there is room for one).
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= CHECKSUM_LEN {
        let body_len = bytes.len() - CHECKSUM_LEN;
        let sum = sha2::Sha256::digest(&bytes[..body_len]);
        bytes[body_len..].copy_from_slice(&sum);
    }
    bytes
}

#[test]
fn fuzz_delta_segments() {
    let mut fuzz = Fuzz::new("delta_segments", 4);
    fuzz.check("round_trip", 128, segment(), round_trip);
    fuzz.check("mutated", 512, mutated(sample()), |(bytes, _)| {
        let _ = decode(&bytes);
        Ok(())
    });
    fuzz.check(
        "mutated_resealed",
        1024,
        mutated(sample()).prop_map(|(bytes, _)| resealed(bytes)),
        |bytes| canonical(&bytes),
    );
    let random = prop::collection::vec(any::<u8>(), 0..256).prop_map(|tail| {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&tail);
        resealed(bytes)
    });
    fuzz.check("random_after_magic", 512, random, |bytes| canonical(&bytes));
    fuzz.finish();
}
