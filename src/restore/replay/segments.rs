//! Reading one segment of the chain for the replay: the whole segment in memory (segments are
//! bounded by `etcd-snapshot-delta-max-size`, at most 1 GiB plus the revision that crossed it,
//! counted before compression; one segment is in memory at a time), read through its storing
//! layers (`delta::stored`: age with the restore's identities, gzip), its checksum and every
//! field checked by the decoder, then its header against the name it was listed under and the
//! chain it is replayed in, so a renamed or misplaced file is refused by name.

use std::path::PathBuf;

use super::ReplayError;
use crate::crypt::Identities;
use crate::delta::chain::Anchor;
use crate::delta::files::SegmentFile;
use crate::delta::segment::{Segment, decode};
use crate::delta::stored::{StoredError, read_plaintext};

/// The largest segment read (its plaintext): the largest `etcd-snapshot-delta-max-size` and
/// room for the revision that crossed it.
const MAX_SEGMENT_FILE: u64 = (1 << 30) + (512 << 20);

/// Reads, verifies and checks segment `file` of `anchor`'s chain (blocking: call off the
/// runtime).
pub fn read_segment(
    file: &SegmentFile,
    anchor: &Anchor,
    identities: Option<&Identities>,
) -> Result<(PathBuf, Segment), ReplayError> {
    let (path, from, to) = (file.path.clone(), file.from, file.to);
    let bytes =
        read_plaintext(&path, file.form, identities, MAX_SEGMENT_FILE).map_err(|e| match e {
            StoredError::Io { source, .. } => ReplayError::SegmentRead {
                path: path.clone(),
                source,
            },
            other => ReplayError::Stored {
                path: path.clone(),
                from,
                source: Box::new(other),
            },
        })?;
    let segment = decode(&bytes).map_err(|source| ReplayError::Segment {
        path: path.clone(),
        from,
        source,
    })?;
    drop(bytes);
    check_placement(&segment, anchor, from, to).map_err(|(field, found, expected)| {
        ReplayError::Misplaced {
            path: path.clone(),
            field,
            found: found.chars().take(300).collect(),
            expected,
        }
    })?;
    Ok((path, segment))
}

/// The header's anchor and range against those the file was listed under: (field, found,
/// expected) of the first that differs.
fn check_placement(
    segment: &Segment,
    anchor: &Anchor,
    from: i64,
    to: i64,
) -> Result<(), (&'static str, String, String)> {
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
    match found.into_iter().find(|(_, f, e)| f != e) {
        Some(differs) => Err(differs),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::Recipients;
    use crate::delta::chain::segment_file_name;
    use crate::delta::files::{ChainDir, SegmentForm, publish_test_segment};
    use crate::delta::segment::{Event, PutEvent};

    const ANCHOR: &str = "etcd-snapshot-n1-1700000000";

    fn anchor() -> Anchor {
        Anchor {
            file_name: ANCHOR.into(),
            revision: 10,
            created_unix: 1_700_000_000,
        }
    }

    use crate::crypt::keys::generated_identities as identities;

    /// Publishes segment `[from, to]` of the test chain, one put of `/k` per revision, stored
    /// as asked.
    fn publish_as(
        chain: &ChainDir,
        from: i64,
        to: i64,
        compress: bool,
        recipients: Option<&Recipients>,
    ) -> PathBuf {
        let put = |revision: i64| {
            Event::Put(PutEvent {
                key: b"/k".to_vec(),
                value: b"v".to_vec(),
                create_revision: from,
                mod_revision: revision,
                version: revision - from + 1,
                lease: 0,
            })
        };
        publish_test_segment(chain, ANCHOR, (from, to), (compress, recipients), put)
    }

    fn publish(chain: &ChainDir, from: i64, to: i64) -> PathBuf {
        publish_as(chain, from, to, false, None)
    }

    /// Reads `(from, to)` as the replay does: the listed file of that range (a plain name when
    /// none is listed).
    fn read(
        chain: &ChainDir,
        anchor: &Anchor,
        (from, to): (i64, i64),
        ids: Option<&Identities>,
    ) -> Result<(PathBuf, Segment), ReplayError> {
        let listed = chain.list().unwrap();
        let file = listed
            .into_iter()
            .find(|f| (f.from, f.to) == (from, to))
            .unwrap_or(SegmentFile {
                from,
                to,
                form: SegmentForm::PLAIN,
                path: chain.path().join(segment_file_name(from, to)),
                size: 0,
            });
        read_segment(&file, anchor, ids)
    }

    #[test]
    fn a_segment_reads_back_and_a_corrupted_or_misplaced_one_is_refused_by_name() {
        let root = tempfile::tempdir().unwrap();
        let chain = ChainDir::new(&root.path().join("snapshots"), ANCHOR).unwrap();
        let path = publish(&chain, 11, 13);
        let (got, segment) = read(&chain, &anchor(), (11, 13), None).unwrap();
        assert_eq!((got, segment.groups.len()), (path.clone(), 3));

        // Renamed to claim another range: its header says otherwise.
        let renamed = chain.path().join(segment_file_name(11, 12));
        std::fs::rename(&path, &renamed).unwrap();
        let err = read(&chain, &anchor(), (11, 12), None).unwrap_err();
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
        let err = read(&chain, &other, (11, 12), None).unwrap_err();
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
        let err = read(&chain, &anchor(), (14, 15), None).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ReplayError::Segment { from: 14, .. }),
            "{text}"
        );
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("before 14"), "{text}");
        // A missing file is named too.
        let err = read(&chain, &anchor(), (16, 17), None).unwrap_err();
        assert!(matches!(err, ReplayError::SegmentRead { .. }), "{err}");
    }

    #[test]
    fn a_mixed_chain_reads_with_the_identities_of_each_segment() {
        let root = tempfile::tempdir().unwrap();
        let chain = ChainDir::new(&root.path().join("snapshots"), ANCHOR).unwrap();
        let (old, new) = (identities(), identities());
        // Plain, then compressed, then encrypted to the old key, then rotated to the new one.
        publish_as(&chain, 11, 12, false, None);
        publish_as(&chain, 13, 14, true, None);
        publish_as(&chain, 15, 16, true, Some(&old.recipients()));
        let rotated = publish_as(&chain, 17, 18, false, Some(&new.recipients()));
        let mut both = old.clone();
        both.extend(new.clone());
        for range in [(11, 12), (13, 14), (15, 16), (17, 18)] {
            let (_, segment) = read(&chain, &anchor(), range, Some(&both)).unwrap();
            assert_eq!(segment.groups.len(), 2, "{range:?}");
        }
        // The old key alone: the rotated segment is refused by name, with the key it needs.
        let err = read(&chain, &anchor(), (17, 18), Some(&old)).unwrap_err();
        let text = crate::errors::error_chain(&err);
        assert!(text.contains(&rotated.display().to_string()), "{text}");
        let needed = new.recipients().fingerprints()[0].clone();
        assert!(text.contains(needed.as_str()), "{text}");
        // Damage under the encryption is refused as damage, by name.
        let mut bytes = std::fs::read(&rotated).unwrap();
        let at = bytes.len() - 20;
        bytes[at] ^= 1;
        std::fs::write(&rotated, bytes).unwrap();
        let err = read(&chain, &anchor(), (17, 18), Some(&new)).unwrap_err();
        assert!(matches!(err, ReplayError::Stored { from: 17, .. }), "{err}");
    }
}
