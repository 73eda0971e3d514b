//! Choosing what a point-in-time restore replays: the full snapshots of a snapshot dir that
//! anchor a chain (those with a recorded revision), their segments by name, and the plan
//! `delta::target::plan_target` makes of them. Local segments are read from the `.deltas` dir
//! beside the snapshot dir the anchor lives in (for an S3 anchor, this node's snapshot dir);
//! with `etcd-s3` on, the bucket's anchors and chains (`s3`) join them: a segment on disk is
//! read from disk, one only in S3 is downloaded when the replay reaches it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::ReplayError;
use crate::config::DesiredConfig;
use crate::config::restore_to::RestoreTo;
use crate::delta::capture::anchor_of;
use crate::delta::files::{ChainDir, SegmentFile};
use crate::delta::target::{ChainView, TargetPlan, plan_target};
use crate::store::local::LocalStore;

/// A resolved point-in-time restore.
#[derive(Debug, Clone)]
pub struct PointInTime {
    /// As asked.
    pub to: RestoreTo,
    pub plan: TargetPlan,
    pub chain: ChainDir,
    /// The chain's segment files on disk as listed when planned (every form; `segment` finds
    /// one).
    pub files: Vec<SegmentFile>,
    /// Segments of the plan that are not on disk, by range: their object names in the chain's
    /// S3 prefix (downloaded by the replay, one at a time).
    pub from_s3: BTreeMap<(i64, i64), String>,
    /// The snapshot the restore reads: as given, or the chosen anchor (its local path, or its
    /// object name with etcd-s3 on).
    pub restore_path: String,
}

/// A chain in S3: its anchor (the S3 copy's recorded revision) and its segment objects by range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteChain {
    pub anchor: crate::delta::chain::Anchor,
    pub segments: BTreeMap<(i64, i64), String>,
}

/// Resolves `to` against the anchors of the snapshot dir and `remote` (the bucket's, with S3
/// on): only `restore_path`'s snapshot when it is given, else every one. A snapshot on disk
/// and in S3 is one anchor, its segments the union of both, disk first.
pub fn plan_point_in_time(
    config: &DesiredConfig,
    restore_path: Option<&str>,
    to: &RestoreTo,
    remote: Vec<RemoteChain>,
) -> Result<PointInTime, ReplayError> {
    let s3 = config.s3.is_some();
    let (dir, only) = where_to_look(config, restore_path);
    let mut chains = local_chains(config, &dir, s3)?;
    let on_disk: BTreeMap<String, BTreeSet<(i64, i64)>> = chains
        .iter()
        .map(|c| {
            (
                c.anchor.file_name.clone(),
                c.segments.iter().copied().collect(),
            )
        })
        .collect();
    let remote = merge_remote(&mut chains, remote);
    if let Some(name) = &only {
        chains.retain(|c| &c.anchor.file_name == name);
        if chains.is_empty() {
            return Err(ReplayError::NoRecordedRevision {
                snapshot: restore_path.unwrap_or_default().to_string(),
                dir,
            });
        }
    }
    let plan = plan_target(to, &chains)?;
    let chain = ChainDir::new(&dir, &plan.anchor.file_name)?;
    let files = chain.list()?;
    let local = on_disk.get(&plan.anchor.file_name);
    let objects = remote.get(&plan.anchor.file_name);
    let from_s3 = plan
        .path
        .iter()
        .filter(|range| !local.is_some_and(|l| l.contains(*range)))
        .filter_map(|range| Some((*range, objects?.get(range)?.clone())))
        .collect();
    let restore_path = match restore_path {
        Some(given) => given.to_string(),
        None if s3 => plan.anchor.file_name.clone(),
        None => dir.join(&plan.anchor.file_name).display().to_string(),
    };
    Ok(PointInTime {
        to: to.clone(),
        plan,
        chain,
        files,
        from_s3,
        restore_path,
    })
}

impl PointInTime {
    /// The file on disk of segment `(from, to)` on the plan's path: any stored form (two files
    /// of one range hold the same segment; the first listed is taken).
    pub fn segment(&self, (from, to): (i64, i64)) -> Option<&SegmentFile> {
        self.files.iter().find(|f| (f.from, f.to) == (from, to))
    }

    /// The plan's segment files on disk that are encrypted.
    pub fn encrypted_segments(&self) -> impl Iterator<Item = &SegmentFile> {
        let path = &self.plan.path;
        self.files
            .iter()
            .filter(|f| f.form.encrypted && path.contains(&(f.from, f.to)))
    }

    /// Whether a segment of the plan that only the bucket holds is encrypted (its name says).
    pub fn encrypted_in_s3(&self) -> bool {
        self.from_s3.values().any(|name| {
            crate::delta::names::parse_segment_name(name).is_some_and(|n| n.form.encrypted)
        })
    }
}

/// The snapshot dir whose chains count, and the one snapshot that counts when one is given
/// (with S3 on, by object name: the snapshot dir; else by path: its dir).
fn where_to_look(
    config: &DesiredConfig,
    restore_path: Option<&str>,
) -> (std::path::PathBuf, Option<String>) {
    match restore_path {
        None => (config.snapshot.dir.clone(), None),
        Some(given) if config.s3.is_some() => {
            (config.snapshot.dir.clone(), Some(given.to_string()))
        }
        Some(given) => {
            let path = Path::new(given);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (parent.to_path_buf(), Some(name))
        }
    }
}

/// Adds the S3 chains to the local ones (an anchor in both keeps its local record and gains
/// the S3 segments it lacks); returns the S3 segment names by anchor and range.
fn merge_remote(
    chains: &mut Vec<ChainView>,
    remote: Vec<RemoteChain>,
) -> BTreeMap<String, BTreeMap<(i64, i64), String>> {
    let mut names = BTreeMap::new();
    for chain in remote {
        let ranges: Vec<(i64, i64)> = chain.segments.keys().copied().collect();
        match chains
            .iter_mut()
            .find(|c| c.anchor.file_name == chain.anchor.file_name)
        {
            Some(local) => {
                let have: BTreeSet<(i64, i64)> = local.segments.iter().copied().collect();
                local
                    .segments
                    .extend(ranges.into_iter().filter(|r| !have.contains(r)));
            }
            None => chains.push(ChainView {
                anchor: chain.anchor.clone(),
                segments: ranges,
            }),
        }
        names.insert(chain.anchor.file_name, chain.segments);
    }
    names
}

/// Every full snapshot in `dir` with a recorded revision, with its chain's segments. With S3
/// on, a missing dir (a new host) holds none.
fn local_chains(
    config: &DesiredConfig,
    dir: &Path,
    s3: bool,
) -> Result<Vec<ChainView>, ReplayError> {
    if s3 && !dir.exists() {
        return Ok(Vec::new());
    }
    let listing = |source| ReplayError::Listing {
        dir: dir.to_path_buf(),
        source: Box::new(source),
    };
    let store = LocalStore::open(dir, &config.node_name, false).map_err(listing)?;
    let mut chains = Vec::new();
    for record in store.list().map_err(listing)? {
        let Some(anchor) = anchor_of(&record) else {
            continue;
        };
        let Ok(chain) = ChainDir::new(dir, &anchor.file_name) else {
            continue;
        };
        let segments = chain.list()?.iter().map(|s| (s.from, s.to)).collect();
        chains.push(ChainView { anchor, segments });
    }
    Ok(chains)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Layer, RawValue, Source, resolve::resolve};
    use crate::delta::chain::segment_file_name;
    use crate::delta::target::Goal;
    use crate::snapshot::hashkv::HashKvRecord;

    fn config(data_dir: &Path, s3: bool) -> DesiredConfig {
        let mut flags = Layer::new();
        let mut set = |key: &str, value: &str| {
            let source = Source::Flag(format!("--{key}"));
            flags.set(key, RawValue::String(value.into()), source);
        };
        set("data-dir", &data_dir.display().to_string());
        set("node-name", "n1");
        if s3 {
            set("etcd-s3", "true");
            set("etcd-s3-bucket", "backups");
        }
        resolve(&[&flags]).expect("test config resolves").config
    }

    /// A full snapshot with a recorded revision (or none) and the segments of its chain.
    fn snapshot(dir: &Path, name: &str, revision: Option<i64>, segments: &[(i64, i64)]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), b"not read by the planning").unwrap();
        if let Some(revision) = revision {
            let record = HashKvRecord {
                hash: 1,
                revision,
                compact_revision: -1,
            };
            let metadata = crate::layout::metadata_dir_for(dir);
            std::fs::create_dir_all(&metadata).unwrap();
            let json = serde_json::to_vec(&record.entries()).unwrap();
            std::fs::write(metadata.join(name), json).unwrap();
        }
        let chain = ChainDir::new(dir, name).unwrap();
        std::fs::create_dir_all(chain.path()).unwrap();
        for &(from, to) in segments {
            std::fs::write(chain.path().join(segment_file_name(from, to)), b"").unwrap();
        }
    }

    #[test]
    fn the_anchor_comes_from_the_snapshot_dir_or_the_given_snapshot_alone() {
        let data = tempfile::tempdir().unwrap();
        let local = config(data.path(), false);
        let dir = local.snapshot.dir.clone();
        snapshot(&dir, "etcd-snapshot-n1-1000", Some(100), &[(101, 200)]);
        snapshot(&dir, "etcd-snapshot-n1-2000", Some(250), &[(251, 260)]);
        snapshot(&dir, "etcd-snapshot-n1-3000", None, &[]);

        // Chosen: the newest anchor whose chain reaches revision 150, by its local path.
        let point =
            plan_point_in_time(&local, None, &RestoreTo::Revision(150), Vec::new()).unwrap();
        assert_eq!(point.plan.anchor.file_name, "etcd-snapshot-n1-1000");
        assert_eq!(
            (point.plan.goal, point.plan.path.clone()),
            (Goal::Revision(150), vec![(101, 200)])
        );
        let path = dir.join("etcd-snapshot-n1-1000");
        assert_eq!(point.restore_path, path.display().to_string());
        assert_eq!(
            point.chain.path(),
            crate::layout::chain_dir_for(&dir, "etcd-snapshot-n1-1000")
        );

        // Given: only that snapshot's chain counts, and the path stays as given.
        let newer = dir.join("etcd-snapshot-n1-2000").display().to_string();
        let err = plan_point_in_time(&local, Some(&newer), &RestoreTo::Revision(150), Vec::new())
            .unwrap_err();
        assert!(matches!(err, ReplayError::Target(_)), "{err}");
        let point =
            plan_point_in_time(&local, Some(&newer), &RestoreTo::Latest, Vec::new()).unwrap();
        assert_eq!(
            (point.restore_path, point.plan.goal),
            (newer, Goal::Revision(260))
        );

        // A snapshot without a recorded revision anchors nothing: said, with what to do.
        let bare = dir.join("etcd-snapshot-n1-3000").display().to_string();
        let err =
            plan_point_in_time(&local, Some(&bare), &RestoreTo::Latest, Vec::new()).unwrap_err();
        assert!(
            matches!(err, ReplayError::NoRecordedRevision { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("without --cluster-reset-restore-to"),
            "{err}"
        );

        // With S3 on, the chosen snapshot is named as the object the restore downloads.
        let s3 = config(data.path(), true);
        let point = plan_point_in_time(&s3, None, &RestoreTo::Latest, Vec::new()).unwrap();
        assert_eq!(point.restore_path, "etcd-snapshot-n1-2000");
    }

    #[test]
    fn segments_on_disk_are_read_from_disk_and_the_bucket_fills_the_rest() {
        use crate::delta::chain::Anchor;
        let data = tempfile::tempdir().unwrap();
        let s3 = config(data.path(), true);
        let dir = s3.snapshot.dir.clone();
        snapshot(&dir, "etcd-snapshot-n1-1000", Some(100), &[(101, 200)]);
        let remote = |name: &str, revision: i64, ranges: &[(i64, i64)]| RemoteChain {
            anchor: Anchor {
                file_name: name.into(),
                revision,
                // As the name says.
                created_unix: name.rsplit('-').next().unwrap().parse().unwrap(),
            },
            segments: ranges
                .iter()
                .map(|&(f, t)| ((f, t), segment_file_name(f, t)))
                .collect(),
        };
        let chains = vec![
            remote("etcd-snapshot-n1-1000", 100, &[(101, 200), (201, 300)]),
            // Only in S3 (a new host, or removed here): chosen by the bucket's record alone.
            remote("etcd-snapshot-n1-2000", 400, &[(401, 450)]),
        ];
        let point =
            plan_point_in_time(&s3, None, &RestoreTo::Revision(250), chains.clone()).unwrap();
        assert_eq!(point.plan.anchor.file_name, "etcd-snapshot-n1-1000");
        assert_eq!(point.plan.path, [(101, 200), (201, 300)]);
        let wanted = BTreeMap::from([((201, 300), segment_file_name(201, 300))]);
        assert_eq!(point.from_s3, wanted, "the local segment is not downloaded");

        let point = plan_point_in_time(&s3, None, &RestoreTo::Latest, chains.clone()).unwrap();
        assert_eq!(point.plan.anchor.file_name, "etcd-snapshot-n1-2000");
        assert_eq!(point.restore_path, "etcd-snapshot-n1-2000");
        assert_eq!(point.from_s3.len(), 1);

        // A new host: no snapshot dir at all, everything from the bucket.
        let fresh = tempfile::tempdir().unwrap();
        let new_host = config(fresh.path(), true);
        let given = "etcd-snapshot-n1-1000";
        let point =
            plan_point_in_time(&new_host, Some(given), &RestoreTo::Revision(300), chains).unwrap();
        assert_eq!(point.restore_path, given);
        assert_eq!(point.from_s3.len(), 2);
    }
}
