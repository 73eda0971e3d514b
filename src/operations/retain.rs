//! Deleting and pruning across the configured stores, through the `SnapshotStore` seam: the
//! local dir always, the bucket when `etcd-s3` is on. One routine each, shared by `delete`,
//! `prune` and the retention after a scheduled save.
//!
//! S3 steps use the operation's session (`replicate::session`): a store an earlier step
//! connected is reused and handed back, so one operation connects once. Local work is never
//! undone by an S3 failure: the failure is reported per item.

use super::FailedItem;
use super::{
    DeleteReport, Operations, PruneReport, Removal, error_chain, replicate, retention_failure,
};
use crate::config::DesiredConfig;
use crate::store::s3::S3Store;
use crate::store::{DeleteOutcome, LocalStore, SnapshotStore, StoreError};

impl Operations {
    /// Keeps the newest `snapshot.retention` snapshots named `<base>-<this node>-<unix>` locally
    /// and the newest `etcd-s3-retention` of them in S3 (this cluster's only); with `dry_run`
    /// only reports what would go and why. A local failure fails the whole (nothing in S3 is
    /// pruned then); an S3 failure is a failed item named `s3 retention`. Returns the S3 store
    /// it used, for the rest of the operation.
    pub(super) async fn retain(
        &self,
        config: &DesiredConfig,
        local: &LocalStore,
        base: &str,
        dry_run: bool,
        remote: Option<S3Store>,
    ) -> Result<(PruneReport, Option<S3Store>), StoreError> {
        let mut report = PruneReport::default();
        let kept = config.snapshot.retention;
        for removal in prune_on(local, base, kept, dry_run, config).await? {
            report.add(removal);
        }
        let Some(s3) = config.s3.as_ref().filter(|s3| s3.retention > 0) else {
            return Ok((report, remote));
        };
        let remote = match replicate::session(&self.kube, config, s3, remote).await {
            Ok(remote) => remote,
            Err(e) => {
                report.failed.push(retention_failure("s3 retention", &e));
                return Ok((report, None));
            }
        };
        match prune_on(&remote, base, s3.retention, dry_run, config).await {
            Ok(removals) => removals.into_iter().for_each(|r| report.add(r)),
            Err(e) => report.failed.push(retention_failure("s3 retention", &e)),
        }
        Ok((report, Some(remote)))
    }
}

/// Retention on one store, as removals with the reason retention picked them.
async fn prune_on<S: SnapshotStore>(
    store: &S,
    base: &str,
    retention: u32,
    dry_run: bool,
    config: &DesiredConfig,
) -> Result<Vec<Removal>, S::Error> {
    let names = store.prune(base, retention, dry_run).await?;
    let reason = keep_reason(base, &config.node_name, retention);
    Ok(names
        .into_iter()
        .map(|name| Removal {
            location: store.location(&name),
            reason: Some(reason.clone()),
            name,
        })
        .collect())
}

/// Deletes one copy from one store; true when it existed and was deleted. Failures go into the
/// report, their message after `failure_prefix`.
pub(super) async fn delete_on<S: SnapshotStore>(
    store: &S,
    name: &str,
    failure_prefix: &str,
    report: &mut DeleteReport,
) -> bool {
    match store.delete(name).await {
        Ok(DeleteOutcome::Deleted) => {
            tracing::info!(snapshot = %name, location = %store.location(name), "snapshot deleted");
            report.removed.push(Removal {
                name: name.to_string(),
                location: store.location(name),
                reason: None,
            });
            true
        }
        Ok(DeleteOutcome::NotFound) => false,
        Err(e) => {
            report.failed.push(FailedItem {
                name: name.to_string(),
                message: format!("{failure_prefix}{}", error_chain(&e)),
            });
            false
        }
    }
}

/// Why retention picked a snapshot, for `prune --dry-run`.
fn keep_reason(base: &str, node: &str, kept: u32) -> String {
    format!("older than the newest {kept} \"{base}\" snapshots of node {node}")
}
