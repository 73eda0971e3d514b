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
use crate::delta::files::ChainDir;
use crate::delta::target::{ChainView, TargetPlan, plan_target};
use crate::store::local::LocalStore;

/// A resolved point-in-time restore.
#[derive(Debug, Clone)]
pub struct PointInTime {
    /// As asked.
    pub to: RestoreTo,
    pub plan: TargetPlan,
    pub chain: ChainDir,
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
    let restore_path = match restore_path {
        Some(given) => given.to_string(),
        None if s3 => plan.anchor.file_name.clone(),
        None => dir.join(&plan.anchor.file_name).display().to_string(),
    };
    Ok(PointInTime {
        to: to.clone(),
        plan,
        chain,
        restore_path,
    })
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
