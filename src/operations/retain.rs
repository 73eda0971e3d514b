//! Deleting and pruning across the configured stores, through the `SnapshotStore` seam: the
//! local dir always, the bucket when `etcd-s3` is on. One routine each, shared by `delete`,
//! `prune` and the retention after a scheduled save.
//!
//! S3 steps use the operation's session (`replicate::session`): a store an earlier step
//! connected is reused and handed back, so one operation connects once. Local work is never
//! undone by an S3 failure: the failure is reported per item.

use super::{
    CopyVerdict, DeleteReport, FailedItem, Operations, PruneReport, Removal, chains, chains_s3,
    error_chain, replicate, retention_failure,
};
use crate::config::DesiredConfig;
use crate::config::desired::S3Settings;
use crate::snapshot::retention::RetentionPolicy;
use crate::store::s3::S3Store;
use crate::store::{DeleteOutcome, LocalStore, SnapshotStore, StoreError};

/// Why retention runs, which decides which stores it looks at and what a failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RetentionRun {
    /// After a scheduled save: only stores whose policy removes anything; a local failure is a
    /// failed item named `retention`, and S3 retention still runs.
    AfterSave,
    /// `prune`: the local dir always (its verdicts are the report), S3 when it removes anything
    /// or for a dry run; a local failure fails the prune and nothing in S3 is pruned.
    Prune { dry_run: bool },
}

impl RetentionRun {
    fn dry_run(self) -> bool {
        self == RetentionRun::Prune { dry_run: true }
    }

    /// Whether a store with `policy` is looked at: one that keeps all has nothing to remove,
    /// but a prune still reports the local verdicts, and a dry run the S3 ones.
    fn visits(self, policy: &RetentionPolicy, local: bool) -> bool {
        match self {
            RetentionRun::AfterSave => !policy.keeps_all(),
            RetentionRun::Prune { dry_run } => local || dry_run || !policy.keeps_all(),
        }
    }
}

impl Operations {
    /// Applies the local retention policy to the snapshots named `<base>-<this node>-<unix>`
    /// (each local removal takes its delta chain along, and a run that deletes also removes
    /// chains whose snapshot is gone: `chains`) and the S3 policy to this cluster's copies in S3,
    /// whose chains in the bucket follow them the same way (`chains_s3`) (see `RetentionRun` for when each runs
    /// and what a failure means). An S3 failure is a failed item named `s3 retention`. Returns
    /// the report with every verdict, and the S3 store it used, for the rest of the operation.
    pub(super) async fn retain(
        &self,
        config: &DesiredConfig,
        local: &LocalStore,
        base: &str,
        run: RetentionRun,
        remote: Option<S3Store>,
    ) -> Result<(PruneReport, Option<S3Store>), StoreError> {
        let mut report = PruneReport::default();
        let policy = local_policy(config);
        if run.visits(&policy, true) {
            match prune_on(local, base, &policy, run.dry_run(), &mut report).await {
                Ok(()) => chains::follow_removals(local, &mut report, run.dry_run()),
                Err(e) if run == RetentionRun::AfterSave => {
                    report.failed.push(retention_failure("retention", &e));
                }
                Err(e) => return Err(e),
            }
        }
        if !run.dry_run() {
            chains::heal_orphans(local, &mut report);
        }
        let Some(s3) = &config.s3 else {
            return Ok((report, remote));
        };
        let policy = s3_policy(s3);
        if !run.visits(&policy, false) {
            return Ok((report, remote));
        }
        let remote = match replicate::session(&self.kube, config, s3, remote).await {
            Ok(remote) => remote,
            Err(e) => {
                report.failed.push(retention_failure("s3 retention", &e));
                return Ok((report, None));
            }
        };
        let pruned = prune_on(&remote, base, &policy, run.dry_run(), &mut report).await;
        match pruned {
            Ok(()) => chains_s3::follow_removals(&remote, &mut report, run.dry_run()).await,
            Err(e) => report.failed.push(retention_failure("s3 retention", &e)),
        }
        if !run.dry_run() {
            chains_s3::heal_orphans(&remote, &mut report).await;
        }
        Ok((report, Some(remote)))
    }
}

/// The local dir's retention policy.
pub(super) fn local_policy(config: &DesiredConfig) -> RetentionPolicy {
    RetentionPolicy {
        count: config.snapshot.retention,
        rules: config.snapshot.retention_rules.clone(),
    }
}

/// The S3 retention policy.
pub(super) fn s3_policy(s3: &S3Settings) -> RetentionPolicy {
    RetentionPolicy {
        count: s3.retention,
        rules: s3.retention_rules.clone(),
    }
}

/// Retention on one store, added to the report: its removals (the deciding rule as the reason)
/// and every verdict, each copy named by where it lives.
async fn prune_on<S: SnapshotStore>(
    store: &S,
    base: &str,
    policy: &RetentionPolicy,
    dry_run: bool,
    report: &mut PruneReport,
) -> Result<(), S::Error> {
    let pruned = store.prune(base, policy, dry_run).await?;
    for name in pruned.deleted {
        let reason = pruned
            .verdicts
            .iter()
            .find(|v| v.file_name == name)
            .map(|v| v.rule.to_string());
        report.add(Removal {
            location: store.location(&name),
            reason,
            name,
            chain: None,
        });
    }
    report
        .verdicts
        .extend(pruned.verdicts.into_iter().map(|verdict| CopyVerdict {
            storage: store.storage(),
            location: store.location(&verdict.file_name),
            verdict,
        }));
    Ok(())
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
                chain: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_stores_retention_visits() {
        let keeps_all = RetentionPolicy::count(0);
        let removes = RetentionPolicy::count(3);
        let dry = RetentionRun::Prune { dry_run: true };
        let real = RetentionRun::Prune { dry_run: false };
        // (run, policy, local store?) -> visited
        let cases = [
            (RetentionRun::AfterSave, &keeps_all, true, false),
            (RetentionRun::AfterSave, &keeps_all, false, false),
            (RetentionRun::AfterSave, &removes, true, true),
            (RetentionRun::AfterSave, &removes, false, true),
            (real, &keeps_all, true, true),
            (real, &keeps_all, false, false),
            (real, &removes, false, true),
            (dry, &keeps_all, false, true),
            (dry, &keeps_all, true, true),
        ];
        for (run, policy, local, visited) in cases {
            assert_eq!(
                run.visits(policy, local),
                visited,
                "{run:?} {policy:?} {local}"
            );
        }
        assert!(dry.dry_run() && !real.dry_run() && !RetentionRun::AfterSave.dry_run());
    }
}
