//! What `ls --deltas` shows: every chain dir beside a snapshot dir and, with S3 on, every chain
//! in the bucket, its segments, and how far each chain reaches from its full snapshot without a
//! hole (`chain::chain_reach`), each with where it lives.
//!
//! It reads file and object names and the anchors' recorded revisions, never a segment's
//! content, so listing is cheap whatever the segments weigh. The bucket's side is pure
//! (`list_remote_chains`, over objects listed by `store::s3::deltas`); its caller does the I/O.

use std::collections::BTreeMap;
use std::path::Path;

use super::chain::{Anchor, ChainReach, chain_reach};
use super::files::{ChainDir, FilesError, SegmentFile};
use super::names::parse_segment_name;
use crate::store::s3::deltas::ChainObject;

/// One chain as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainListing {
    /// The full snapshot the chain starts from (its chain dir's name).
    pub anchor: String,
    /// Where the chain lives: `file://<chain dir>` or `s3://<bucket>/<chain prefix>`.
    pub location: String,
    /// Its recorded revision; None when the snapshot is gone or has none (nothing restorable).
    pub anchor_revision: Option<i64>,
    /// The last revision reachable from the anchor without a hole.
    pub restorable_to: Option<i64>,
    pub segments: Vec<SegmentListing>,
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentListing {
    pub from: i64,
    pub to: i64,
    /// Bytes on disk (after compression and encryption).
    pub size: u64,
    /// On the chain's walk from its anchor (false: after a hole, or overlapping).
    pub on_chain: bool,
    /// Stored gzip-compressed (`.gz` in its name).
    pub compressed: bool,
    /// Stored age-encrypted (`.age` in its name).
    pub encrypted: bool,
}

/// Every chain beside `snapshot_dir`, by anchor name; `anchors` are the full snapshots with a
/// recorded revision.
pub fn list_chains(
    snapshot_dir: &Path,
    anchors: &[Anchor],
) -> Result<Vec<ChainListing>, FilesError> {
    let root = crate::layout::deltas_dir_for(snapshot_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(FilesError::Io {
                action: "list delta chains in",
                path: root,
                source,
            });
        }
    };
    let mut chains = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Ok(chain) = ChainDir::new(snapshot_dir, &name) else {
            continue;
        };
        let files = chain.list()?;
        let revision = revision_of(anchors, &name);
        let location = format!("file://{}", chain.path().display());
        chains.push(describe(name, location, revision, &files));
    }
    chains.sort_by(|a, b| a.anchor.cmp(&b.anchor));
    Ok(chains)
}

/// The bucket's chains (anchor -> its objects, as `S3Store::list_chains` gives them), by anchor;
/// `anchors` are the S3 copies with a recorded revision, `location` names a chain's prefix.
/// Objects whose names are not segment names are left out. Pure.
pub fn list_remote_chains(
    chains: &BTreeMap<String, Vec<ChainObject>>,
    anchors: &[Anchor],
    location: impl Fn(&str) -> String,
) -> Vec<ChainListing> {
    chains
        .iter()
        .map(|(anchor, objects)| {
            let files: Vec<SegmentFile> = objects
                .iter()
                .filter_map(|o| {
                    let name = parse_segment_name(&o.name)?;
                    Some(SegmentFile {
                        from: name.from,
                        to: name.to,
                        form: name.form,
                        path: o.name.clone().into(),
                        size: o.size,
                    })
                })
                .collect();
            let revision = revision_of(anchors, anchor);
            describe(anchor.clone(), location(anchor), revision, &files)
        })
        .collect()
}

fn revision_of(anchors: &[Anchor], name: &str) -> Option<i64> {
    anchors
        .iter()
        .find(|a| a.file_name == name)
        .map(|a| a.revision)
}

/// A chain's listing from its files (in revision order): pure.
pub fn describe(
    anchor: String,
    location: String,
    anchor_revision: Option<i64>,
    files: &[SegmentFile],
) -> ChainListing {
    let pairs: Vec<(i64, i64)> = files.iter().map(|f| (f.from, f.to)).collect();
    let reach: Option<ChainReach> = anchor_revision.map(|r| chain_reach(r, &pairs));
    let segments = files
        .iter()
        .map(|f| SegmentListing {
            from: f.from,
            to: f.to,
            size: f.size,
            on_chain: reach
                .as_ref()
                .is_some_and(|r| r.path.contains(&(f.from, f.to))),
            compressed: f.form.compressed,
            encrypted: f.form.encrypted,
        })
        .collect();
    ChainListing {
        anchor,
        location,
        anchor_revision,
        restorable_to: reach.map(|r| r.contiguous_to),
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::chain::segment_file_name;
    use crate::delta::files::{SegmentForm, SegmentName};

    fn file(from: i64, to: i64) -> SegmentFile {
        SegmentFile {
            from,
            to,
            form: SegmentForm::PLAIN,
            path: segment_file_name(from, to).into(),
            size: 10,
        }
    }

    #[test]
    fn a_chain_is_restorable_up_to_its_first_hole() {
        let files = [file(101, 120), file(121, 130), file(140, 150)];
        let chain = describe("s-n1-1".into(), "file:///d".into(), Some(100), &files);
        assert_eq!(chain.restorable_to, Some(130));
        let on: Vec<bool> = chain.segments.iter().map(|s| s.on_chain).collect();
        assert_eq!(on, [true, true, false]);
        // Without the anchor's revision (the snapshot is gone) nothing is restorable.
        let orphan = describe("gone".into(), "file:///d".into(), None, &files);
        assert_eq!(orphan.restorable_to, None);
        assert!(orphan.segments.iter().all(|s| !s.on_chain));
    }

    #[test]
    fn every_chain_dir_beside_the_snapshot_dir_is_listed_by_name() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join("snapshots");
        assert!(
            list_chains(&snapshots, &[]).unwrap().is_empty(),
            "no .deltas yet"
        );
        for (anchor, from, to) in [("b-n1-2", 11, 12), ("a-n1-1", 5, 9)] {
            let dir = crate::layout::chain_dir_for(&snapshots, anchor);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(segment_file_name(from, to)), b"x").unwrap();
        }
        // Compressed and encrypted segments continue the chain like plain ones.
        let form = SegmentForm {
            compressed: true,
            encrypted: true,
        };
        let stored = SegmentName {
            from: 10,
            to: 14,
            form,
        }
        .file_name();
        let dir = crate::layout::chain_dir_for(&snapshots, "a-n1-1");
        std::fs::write(dir.join(&stored), b"stored").unwrap();
        let anchors = [Anchor {
            file_name: "a-n1-1".into(),
            revision: 4,
            created_unix: 1,
        }];
        let chains = list_chains(&snapshots, &anchors).unwrap();
        let names: Vec<&str> = chains.iter().map(|c| c.anchor.as_str()).collect();
        assert_eq!(names, ["a-n1-1", "b-n1-2"]);
        assert_eq!(chains[0].restorable_to, Some(14));
        let last = &chains[0].segments[1];
        assert_eq!((last.from, last.size, last.on_chain), (10, 6, true));
        assert!(last.compressed && last.encrypted);
        assert_eq!(chains[1].restorable_to, None, "b has no known revision");
        let dir = crate::layout::chain_dir_for(&snapshots, "a-n1-1");
        assert_eq!(chains[0].location, format!("file://{}", dir.display()));
    }

    #[test]
    fn the_buckets_chains_are_described_from_their_object_names() {
        let object = |name: String, size| ChainObject {
            key: format!("f/.deltas/x/.metadata/{name}"),
            name,
            size,
        };
        let stored = SegmentName {
            from: 21,
            to: 30,
            form: SegmentForm {
                compressed: true,
                encrypted: false,
            },
        };
        let chains = BTreeMap::from([
            (
                "a-n1-1".to_string(),
                vec![
                    object(segment_file_name(11, 20), 5),
                    object(stored.file_name(), 7),
                    object(segment_file_name(40, 50), 9),
                    object("notes.txt".into(), 1),
                ],
            ),
            (
                "gone-n1-2".to_string(),
                vec![object(segment_file_name(3, 4), 2)],
            ),
        ]);
        let anchors = [Anchor {
            file_name: "a-n1-1".into(),
            revision: 10,
            created_unix: 1,
        }];
        let listed = list_remote_chains(&chains, &anchors, |a| {
            format!("s3://b/f/.deltas/{a}/.metadata/")
        });
        assert_eq!(listed.len(), 2);
        let a = &listed[0];
        assert_eq!(a.location, "s3://b/f/.deltas/a-n1-1/.metadata/");
        assert_eq!((a.anchor_revision, a.restorable_to), (Some(10), Some(30)));
        let ranges: Vec<(i64, i64, bool)> = a
            .segments
            .iter()
            .map(|s| (s.from, s.to, s.on_chain))
            .collect();
        assert_eq!(ranges, [(11, 20, true), (21, 30, true), (40, 50, false)]);
        assert!(a.segments[1].compressed);
        assert_eq!(a.segments[1].size, 7);
        assert_eq!(listed[1].restorable_to, None, "no S3 copy with a revision");
    }
}
