//! Delta chains in S3 follow the S3 copies of their full snapshots, as local chains follow the
//! local files (`chains`): an S3 copy that `delete` or retention removes takes its chain's
//! objects along, a dry run reports what they hold (count, bytes), and every retention run that
//! deletes in S3 removes the chains whose snapshot is no longer in the bucket.
//!
//! The snapshot object goes first and its chain second, so a failure in between leaves an
//! orphaned chain (never a chain without its snapshot presented as restorable: a restore needs
//! the snapshot), removed by the next retention run. A chain that cannot be removed is a failed
//! item; the snapshot's removal stands. A chain removed in part reports the objects that went,
//! and the ones the server refused (by key and code) are a failed item.

use std::collections::BTreeSet;

use super::{ChainRemoval, DeleteReport, FailedItem, PruneReport, Removal, error_chain};
use crate::delta::retention::orphaned_chains;
use crate::store::SnapshotStore;
use crate::store::s3::S3Store;
use crate::store::s3::deltas::ChainObject;

/// What a chain's objects hold, as a report shows it.
fn removal_of(remote: &S3Store, anchor: &str, objects: &[ChainObject]) -> ChainRemoval {
    ChainRemoval {
        location: remote.chain_location(anchor),
        segments: objects.len(),
        bytes: objects.iter().map(|o| o.size).sum(),
    }
}

fn failure(name: &str, e: &crate::store::s3::S3Error) -> FailedItem {
    failed_removal(name, &error_chain(e))
}

fn failed_removal(name: &str, problem: &str) -> FailedItem {
    FailedItem {
        name: name.to_string(),
        message: format!("S3 delta chain not removed: {problem}"),
    }
}

/// The objects a chain held (dry run) or that were deleted, and what went wrong.
async fn remove_or_describe(
    remote: &S3Store,
    anchor: &str,
    dry_run: bool,
) -> (Vec<ChainObject>, Option<String>) {
    if dry_run {
        return match remote.list_chain(anchor).await {
            Ok(objects) => (objects, None),
            Err(e) => (Vec::new(), Some(error_chain(&e))),
        };
    }
    let deletion = remote.delete_chain(anchor).await;
    let problem = deletion.problem();
    (deletion.deleted, problem)
}

/// Attaches to each S3 removal in `report` its chain: removed, or with `dry_run` only
/// described. Chains without objects are not mentioned.
pub(super) async fn follow_removals(remote: &S3Store, report: &mut PruneReport, dry_run: bool) {
    let mut failed = Vec::new();
    for removal in &mut report.removals {
        if removal.chain.is_some() || removal.location != remote.location(&removal.name) {
            continue;
        }
        let (objects, problem) = remove_or_describe(remote, &removal.name, dry_run).await;
        if !objects.is_empty() {
            removal.chain = Some(removal_of(remote, &removal.name, &objects));
        }
        if let Some(problem) = problem {
            failed.push(failed_removal(&removal.name, &problem));
        }
    }
    report.failed.extend(failed);
}

/// Removes the S3 chains whose full snapshot is not in the bucket; each is a removal in the
/// report. Nothing is removed when the bucket cannot be listed.
pub(super) async fn heal_orphans(remote: &S3Store, report: &mut PruneReport) {
    let listed = async {
        let chains = remote.list_chains().await?;
        let snapshots: BTreeSet<String> = remote
            .list()
            .await?
            .into_iter()
            .map(|r| r.file_name)
            .collect();
        Ok::<_, crate::store::s3::S3Error>((chains, snapshots))
    };
    let (chains, snapshots) = match listed.await {
        Ok(found) => found,
        Err(e) => {
            report.failed.push(failure("s3 delta retention", &e));
            return;
        }
    };
    let anchors: Vec<String> = chains.keys().cloned().collect();
    for anchor in orphaned_chains(&anchors, &snapshots) {
        let deletion = remote.delete_chain(anchor).await;
        if !deletion.deleted.is_empty() {
            let chain = removal_of(remote, anchor, &deletion.deleted);
            tracing::info!(snapshot = %anchor, chain = %chain.location, segments = chain.segments, "S3 delta chain removed: its full snapshot is gone");
            report.removals.push(Removal {
                name: anchor.to_string(),
                location: chain.location.clone(),
                reason: Some("its full snapshot is gone".into()),
                chain: Some(chain),
            });
        }
        if let Some(problem) = deletion.problem() {
            report.failed.push(failed_removal(anchor, &problem));
        }
    }
}

/// After `delete` of `name` in S3: its chain's objects go too (also when the snapshot object
/// was already gone). True when a chain was removed (objects the server refused are a failed
/// item; the ones it deleted are still reported).
pub(super) async fn follow_delete(remote: &S3Store, name: &str, report: &mut DeleteReport) -> bool {
    let deletion = remote.delete_chain(name).await;
    if let Some(problem) = deletion.problem() {
        report.failed.push(failed_removal(name, &problem));
    }
    if deletion.deleted.is_empty() {
        return false;
    }
    let chain = removal_of(remote, name, &deletion.deleted);
    super::chains::attach_chain(report, name, &remote.location(name), chain);
    true
}
