//! Choosing what a point-in-time restore replays: the full snapshots of a snapshot dir that
//! anchor a chain (those with a recorded revision), their segments by name, and the plan
//! `delta::target::plan_target` makes of them. The segments are local: they are read from the
//! `.deltas` dir beside the snapshot dir the anchor lives in (for an S3 anchor, this node's
//! snapshot dir).

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
    /// The chain's segment files as listed when planned (every form; `segment` finds one).
    pub files: Vec<SegmentFile>,
    /// The snapshot the restore reads: as given, or the chosen anchor (its local path, or its
    /// object name with etcd-s3 on).
    pub restore_path: String,
}

/// Resolves `to` against the anchors of the snapshot dir: only `restore_path`'s snapshot when
/// it is given, else every local one.
pub fn plan_point_in_time(
    config: &DesiredConfig,
    restore_path: Option<&str>,
    to: &RestoreTo,
) -> Result<PointInTime, ReplayError> {
    let s3 = config.s3.is_some();
    let (dir, only) = match restore_path {
        None => (config.snapshot.dir.clone(), None),
        Some(given) if s3 => (config.snapshot.dir.clone(), Some(given.to_string())),
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
    };
    let mut chains = local_chains(config, &dir)?;
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
        restore_path,
    })
}

impl PointInTime {
    /// The file of segment `(from, to)` on the plan's path: any stored form (two files of one
    /// range hold the same segment; the first listed is taken).
    pub fn segment(&self, (from, to): (i64, i64)) -> Option<&SegmentFile> {
        self.files.iter().find(|f| (f.from, f.to) == (from, to))
    }

    /// The plan's segment files that are encrypted.
    pub fn encrypted_segments(&self) -> impl Iterator<Item = &SegmentFile> {
        let path = &self.plan.path;
        self.files
            .iter()
            .filter(|f| f.form.encrypted && path.contains(&(f.from, f.to)))
    }
}

/// Every full snapshot in `dir` with a recorded revision, with its chain's segments.
fn local_chains(config: &DesiredConfig, dir: &Path) -> Result<Vec<ChainView>, ReplayError> {
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
        let point = plan_point_in_time(&local, None, &RestoreTo::Revision(150)).unwrap();
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
        let err = plan_point_in_time(&local, Some(&newer), &RestoreTo::Revision(150)).unwrap_err();
        assert!(matches!(err, ReplayError::Target(_)), "{err}");
        let point = plan_point_in_time(&local, Some(&newer), &RestoreTo::Latest).unwrap();
        assert_eq!(
            (point.restore_path, point.plan.goal),
            (newer, Goal::Revision(260))
        );

        // A snapshot without a recorded revision anchors nothing: said, with what to do.
        let bare = dir.join("etcd-snapshot-n1-3000").display().to_string();
        let err = plan_point_in_time(&local, Some(&bare), &RestoreTo::Latest).unwrap_err();
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
        let point = plan_point_in_time(&s3, None, &RestoreTo::Latest).unwrap();
        assert_eq!(point.restore_path, "etcd-snapshot-n1-2000");
    }
}
