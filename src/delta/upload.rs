//! Which published segments go to S3: the decision, as pure functions over the local chains,
//! the segments known to be in the bucket, and the full snapshots the bucket holds. The
//! uploads themselves (and the listing that feeds this) are `operations::segments`.
//!
//! A chain goes to S3 only while its full snapshot is there: a segment without its snapshot
//! restores nothing, and S3 retention removing a snapshot removes its chain, which must not
//! come back at the next pass. A chain whose snapshot is still to be copied (an outage, S3
//! switched on later) waits for the snapshot's backfill and follows it.
//!
//! Idempotent: a segment already in S3 with the same size is never sent again; one with another
//! size (an upload cut short by something outside our control) is replaced. File names are
//! taken as they are on disk, whatever suffix the pipeline gives them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::files::{ChainDir, FilesError, SegmentFile};

/// Segments known to be in S3: anchor -> segment file name -> size.
pub type InS3 = BTreeMap<String, BTreeMap<String, u64>>;

/// One local chain: its anchor (the full snapshot's file name) and its published segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalChain {
    pub anchor: String,
    pub segments: Vec<SegmentFile>,
}

/// Every chain dir beside `snapshot_dir` with its published segments.
pub fn local_chains(snapshot_dir: &Path) -> Result<Vec<LocalChain>, FilesError> {
    let mut chains = Vec::new();
    for anchor in super::retention::chain_anchors(snapshot_dir)? {
        let segments = ChainDir::new(snapshot_dir, &anchor)?.list()?;
        chains.push(LocalChain { anchor, segments });
    }
    Ok(chains)
}

/// A segment's file name as it is on disk.
pub fn file_name(segment: &SegmentFile) -> &str {
    segment
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

/// What an upload pass does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadPlan<'a> {
    /// (anchor, segment) to upload, chain by chain, each chain in revision order.
    pub upload: Vec<(&'a str, &'a SegmentFile)>,
    /// Segments missing from S3 whose full snapshot is not there yet but is to be copied (the
    /// backfill's plan): they go once it is.
    pub waiting: usize,
}

/// Segments not known to be in S3 with their size.
pub fn missing<'a>(chains: &'a [LocalChain], known: &InS3) -> Vec<(&'a str, &'a SegmentFile)> {
    let mut missing = Vec::new();
    for chain in chains {
        let there = known.get(&chain.anchor);
        for segment in &chain.segments {
            let size = there.and_then(|names| names.get(file_name(segment)));
            if size != Some(&segment.size) {
                missing.push((chain.anchor.as_str(), segment));
            }
        }
    }
    missing
}

/// The chains whose S3 listing is needed before planning: a segment is missing, the full
/// snapshot is in S3, and the chain has not been listed yet.
pub fn chains_to_list<'a>(
    missing: &[(&'a str, &SegmentFile)],
    known: &InS3,
    snapshots_in_s3: &BTreeSet<String>,
) -> Vec<&'a str> {
    let anchors: BTreeSet<&str> = missing
        .iter()
        .map(|(anchor, _)| *anchor)
        .filter(|anchor| snapshots_in_s3.contains(*anchor) && !known.contains_key(*anchor))
        .collect();
    anchors.into_iter().collect()
}

/// The uploads of a pass: each missing segment of a chain whose full snapshot is in S3. Those
/// of a chain whose snapshot `awaited` (the backfill is to copy it) wait; the rest (a snapshot
/// S3 retention removed or would not keep) never go, and are not pending.
pub fn plan_uploads<'a>(
    chains: &'a [LocalChain],
    known: &InS3,
    snapshots_in_s3: &BTreeSet<String>,
    awaited: &BTreeSet<String>,
) -> UploadPlan<'a> {
    let mut plan = UploadPlan::default();
    for (anchor, segment) in missing(chains, known) {
        if snapshots_in_s3.contains(anchor) {
            plan.upload.push((anchor, segment));
        } else if awaited.contains(anchor) {
            plan.waiting += 1;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::chain::segment_file_name;
    use std::path::PathBuf;

    fn seg(from: i64, to: i64, size: u64) -> SegmentFile {
        SegmentFile {
            from,
            to,
            form: Default::default(),
            path: PathBuf::from("/d/.deltas/x").join(segment_file_name(from, to)),
            size,
        }
    }

    fn chain(anchor: &str, segments: Vec<SegmentFile>) -> LocalChain {
        LocalChain {
            anchor: anchor.into(),
            segments,
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_missing_or_different_segments_of_chains_whose_snapshot_is_in_s3_go() {
        let chains = vec![
            chain(
                "a-n1-1",
                vec![seg(11, 12, 100), seg(13, 15, 80), seg(16, 16, 9)],
            ),
            chain("b-n1-2", vec![seg(21, 22, 50)]),
        ];
        let mut known = InS3::new();
        known.insert(
            "a-n1-1".into(),
            BTreeMap::from([
                (segment_file_name(11, 12), 100),
                // Cut short elsewhere: replaced.
                (segment_file_name(13, 15), 3),
            ]),
        );
        let in_s3 = set(&["a-n1-1"]);
        let awaited = set(&["b-n1-2"]);
        let plan = plan_uploads(&chains, &known, &in_s3, &awaited);
        let ranges: Vec<(&str, i64)> = plan.upload.iter().map(|(a, s)| (*a, s.from)).collect();
        assert_eq!(ranges, [("a-n1-1", 13), ("a-n1-1", 16)]);
        assert_eq!(plan.waiting, 1, "b's snapshot is not in S3 yet");
        // Not to be copied (S3 retention removed it or would): neither sent nor pending.
        let none = BTreeSet::new();
        assert_eq!(plan_uploads(&chains, &known, &in_s3, &none).waiting, 0);

        // Once b's snapshot is backfilled, its chain needs listing first, then goes.
        let in_s3 = set(&["a-n1-1", "b-n1-2"]);
        let gaps = missing(&chains, &known);
        assert_eq!(chains_to_list(&gaps, &known, &in_s3), ["b-n1-2"]);
        known.insert("b-n1-2".into(), BTreeMap::new());
        assert!(chains_to_list(&gaps, &known, &in_s3).is_empty());
        let plan = plan_uploads(&chains, &known, &in_s3, &awaited);
        assert_eq!(plan.upload.len(), 3);
        assert_eq!(plan.waiting, 0);

        // Everything there: nothing to do, nothing to list.
        for (anchor, segment) in plan.upload {
            known
                .entry(anchor.to_string())
                .or_default()
                .insert(file_name(segment).to_string(), segment.size);
        }
        assert!(missing(&chains, &known).is_empty());
        assert_eq!(
            plan_uploads(&chains, &known, &in_s3, &awaited),
            UploadPlan::default()
        );
    }
}
