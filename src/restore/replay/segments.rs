//! Reading one segment of the chain for the replay: the whole file (segments are bounded by
//! `etcd-snapshot-delta-max-size`, at most 1 GiB plus the revision that crossed it; one segment
//! is in memory at a time), its checksum and every field checked by the decoder, then its
//! header against the name it was listed under and the chain it is replayed in, so a renamed or
//! misplaced file is refused by name.

use std::path::PathBuf;

use super::ReplayError;
use crate::delta::chain::{Anchor, segment_file_name};
use crate::delta::files::ChainDir;
use crate::delta::segment::{Segment, decode};

/// The largest segment file read: the largest `etcd-snapshot-delta-max-size` and room for the
/// revision that crossed it.
const MAX_SEGMENT_FILE: u64 = (1 << 30) + (512 << 20);

/// Reads, verifies and checks segment `(from, to)` of `chain` (blocking: call off the runtime).
pub fn read_segment(
    chain: &ChainDir,
    anchor: &Anchor,
    (from, to): (i64, i64),
) -> Result<(PathBuf, Segment), ReplayError> {
    let path = chain.path().join(segment_file_name(from, to));
    let bytes = crate::fsutil::read_capped(&path, MAX_SEGMENT_FILE).map_err(|source| {
        ReplayError::SegmentRead {
            path: path.clone(),
            source,
        }
    })?;
    let segment = decode(&bytes).map_err(|source| ReplayError::Segment {
        path: path.clone(),
        from,
        source,
    })?;
    drop(bytes);
    let header = &segment.header;
    let found = [
        ("anchor", header.anchor.clone(), anchor.file_name.clone()),
        (
            "anchor revision",
            header.anchor_revision.to_string(),
            anchor.revision.to_string(),
        ),
        (
            "from revision",
            header.from_revision.to_string(),
            from.to_string(),
        ),
        (
            "to revision",
            segment.footer.to_revision.to_string(),
            to.to_string(),
        ),
    ];
    if let Some((field, found, expected)) = found.into_iter().find(|(_, f, e)| f != e) {
        return Err(ReplayError::Misplaced {
            path,
            field,
            found: found.chars().take(300).collect(),
            expected,
        });
    }
    Ok((path, segment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::segment::{Event, PutEvent, RevisionGroup, SegmentHeader};

    const ANCHOR: &str = "etcd-snapshot-n1-1700000000";

    fn anchor() -> Anchor {
        Anchor {
            file_name: ANCHOR.into(),
            revision: 10,
            created_unix: 1_700_000_000,
        }
    }

    /// Publishes segment `[from, to]` of the test chain, one put per revision.
    fn publish(chain: &ChainDir, from: i64, to: i64) -> PathBuf {
        let header = SegmentHeader {
            cluster_id: 1,
            member_id: 2,
            anchor: ANCHOR.into(),
            anchor_revision: 10,
            from_revision: from,
            opened_unix: 1_700_000_001,
        };
        let mut open = chain.open(&header).unwrap();
        for revision in from..=to {
            open.push(&RevisionGroup {
                revision,
                arrived_unix_ms: 1_700_000_001_000 + revision,
                events: vec![Event::Put(PutEvent {
                    key: b"/k".to_vec(),
                    value: b"v".to_vec(),
                    create_revision: from,
                    mod_revision: revision,
                    version: revision - from + 1,
                    lease: 0,
                })],
            })
            .unwrap();
        }
        open.finish(0, 1, None).unwrap().file.path
    }

    #[test]
    fn a_segment_reads_back_and_a_corrupted_or_misplaced_one_is_refused_by_name() {
        let root = tempfile::tempdir().unwrap();
        let chain = ChainDir::new(&root.path().join("snapshots"), ANCHOR).unwrap();
        let path = publish(&chain, 11, 13);
        let (read, segment) = read_segment(&chain, &anchor(), (11, 13)).unwrap();
        assert_eq!((read, segment.groups.len()), (path.clone(), 3));

        // Renamed to claim another range: its header says otherwise.
        let renamed = chain.path().join(segment_file_name(11, 12));
        std::fs::rename(&path, &renamed).unwrap();
        let err = read_segment(&chain, &anchor(), (11, 12)).unwrap_err();
        assert!(
            matches!(
                &err,
                ReplayError::Misplaced {
                    field: "to revision",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains(&renamed.display().to_string()),
            "{err}"
        );
        // Another chain's anchor.
        let mut other = anchor();
        other.revision = 9;
        let err = read_segment(&chain, &other, (11, 12)).unwrap_err();
        assert!(
            matches!(
                &err,
                ReplayError::Misplaced {
                    field: "anchor revision",
                    ..
                }
            ),
            "{err}"
        );

        // One flipped byte: refused by its checksum, named, with the revision before it.
        let path = publish(&chain, 14, 15);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = read_segment(&chain, &anchor(), (14, 15)).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ReplayError::Segment { from: 14, .. }),
            "{text}"
        );
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("before 14"), "{text}");
        // A missing file is named too.
        let err = read_segment(&chain, &anchor(), (16, 17)).unwrap_err();
        assert!(matches!(err, ReplayError::SegmentRead { .. }), "{err}");
    }
}
