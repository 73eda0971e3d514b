//! Delta chains follow their full snapshots (`delta::retention`): a local snapshot that
//! `delete` or retention removes takes its chain with it, a dry run reports what the chain
//! holds, and every retention run that deletes removes the chains whose snapshot is gone.
//!
//! The snapshot goes first and its chain second, so a crash in between leaves an orphaned
//! chain (never a chain presented as restorable without its snapshot), healed by the next run.
//! A chain that cannot be removed is a failed item; the snapshot's removal stands.

use super::{
    ChainRemoval, DeleteReport, FailedItem, PruneReport, Removal, error_chain, retention_failure,
};
use crate::delta::retention::{remove_chain, remove_orphaned_chains, summarize};
use crate::store::{LocalStore, SnapshotStore};

/// Attaches to each local removal in `report` its chain: removed, or with `dry_run` only
/// described.
pub(super) fn follow_removals(local: &LocalStore, report: &mut PruneReport, dry_run: bool) {
    let mut failed = Vec::new();
    for removal in &mut report.removals {
        if removal.chain.is_some() || removal.location != local.location(&removal.name) {
            continue;
        }
        let chain = if dry_run {
            summarize(local.dir(), &removal.name)
        } else {
            remove_chain(local.dir(), &removal.name)
        };
        match chain {
            Ok(Some(summary)) => {
                if !dry_run {
                    log_removed(&removal.name, &summary, "its full snapshot was pruned");
                }
                removal.chain = Some(summary.into());
            }
            Ok(None) => {}
            Err(e) => failed.push(retention_failure("delta retention", &e)),
        }
    }
    report.failed.extend(failed);
}

/// Removes the chains whose full snapshot is gone; each is a removal in the report (not a
/// deleted snapshot: that went earlier).
pub(super) fn heal_orphans(local: &LocalStore, report: &mut PruneReport) {
    match remove_orphaned_chains(local.dir()) {
        Ok(removed) => {
            for (anchor, summary) in removed {
                log_removed(&anchor, &summary, "its full snapshot is gone");
                let chain: ChainRemoval = summary.into();
                report.removals.push(Removal {
                    name: anchor,
                    location: chain.location.clone(),
                    reason: Some("its full snapshot is gone".into()),
                    chain: Some(chain),
                });
            }
        }
        Err(e) => report.failed.push(retention_failure("delta retention", &e)),
    }
}

/// After `delete` of `name`: once the local snapshot is gone, its chain goes too. True when a
/// chain was removed.
pub(super) fn follow_delete(local: &LocalStore, name: &str, report: &mut DeleteReport) -> bool {
    if local.layout().snapshot_path(name).exists() {
        return false;
    }
    let summary = match remove_chain(local.dir(), name) {
        Ok(Some(summary)) => summary,
        Ok(None) => return false,
        Err(e) => {
            report.failed.push(FailedItem {
                name: name.to_string(),
                message: format!("delta chain not removed: {}", error_chain(&e)),
            });
            return false;
        }
    };
    log_removed(name, &summary, "its full snapshot was deleted");
    let chain: ChainRemoval = summary.into();
    attach_chain(report, name, &local.location(name), chain);
    true
}

/// Puts `chain` on the report's removal of `name` at `location` (the snapshot copy it went
/// with), or adds a removal for it when the copy itself was not in the report.
pub(super) fn attach_chain(
    report: &mut DeleteReport,
    name: &str,
    location: &str,
    chain: ChainRemoval,
) {
    match report
        .removed
        .iter_mut()
        .find(|r| r.name == name && r.location == location)
    {
        Some(removal) => removal.chain = Some(chain),
        None => report.removed.push(Removal {
            name: name.to_string(),
            location: chain.location.clone(),
            reason: None,
            chain: Some(chain),
        }),
    }
}

fn log_removed(anchor: &str, summary: &crate::delta::retention::ChainSummary, why: &str) {
    tracing::info!(
        snapshot = %anchor,
        chain = %summary.path.display(),
        segments = summary.segments,
        bytes = summary.bytes,
        "delta chain removed: {why}"
    );
}
