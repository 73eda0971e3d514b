//! The reconcile pass's S3 backfill: this node's local snapshots missing from the bucket (an
//! outage, a save that could not upload) are verified and copied, oldest first and only those
//! S3 retention would keep; failure markers of snapshots now in S3 or gone are forgotten.
//!
//! Backfill runs outside the writer lock, so a long upload never makes the scheduler skip a
//! snapshot. The price is one race, closed here: a `delete` of a snapshot while it is being
//! copied would see the copy appear in S3 after it had deleted it. Deletes note such names in
//! [`InFlightCopies`]; when the upload ends, the backfill takes the writer lock and removes the
//! copy it just made. Local retention removing a file mid-copy is not a delete: S3 keeps its
//! copy, as its own retention decides.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::FailedItem;
use super::pending::{self, PendingUpload};
use super::{OperationError, Operations, ReconcileReport, error_chain, open_store, replicate};
use crate::config::DesiredConfig;
use crate::restore::verify::verify_stored_snapshot;
use crate::snapshot::backfill::plan_backfill;
use crate::store::s3::retry::RetryPolicy;
use crate::store::s3::{ObjectMetadata, S3Store};
use crate::telemetry::metrics::Status;

/// What became of one snapshot the backfill meant to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copied {
    Uploaded,
    /// Removed locally before or while it was copied: nothing to report.
    Gone,
}

/// How one copy ends, once it is known whether a delete removed the snapshot meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settled {
    /// Nobody deleted it: the copy's own result stands.
    AsCopied(Result<Copied, String>),
    /// Deleted meanwhile: nothing is reported (nor left marked as pending), and a copy that
    /// reached S3 is removed again.
    Withdrawn { remove_copy: bool },
}

fn settle(copied: Result<Copied, String>, deleted_meanwhile: bool) -> Settled {
    if !deleted_meanwhile {
        return Settled::AsCopied(copied);
    }
    Settled::Withdrawn {
        remove_copy: copied == Ok(Copied::Uploaded),
    }
}

/// The snapshots being copied by a backfill right now, and whether a delete removed each
/// meanwhile.
#[derive(Debug, Default)]
pub(super) struct InFlightCopies {
    deleted: Mutex<BTreeMap<String, bool>>,
}

impl InFlightCopies {
    // Each change is one map operation, so a poisoned lock still holds a consistent map.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, bool>> {
        self.deleted.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self, name: &str) {
        self.lock().insert(name.to_string(), false);
    }

    /// Called by a delete for each snapshot it removes; a no-op unless one is being copied.
    pub(super) fn note_deleted(&self, name: &str) {
        if let Some(deleted) = self.lock().get_mut(name) {
            *deleted = true;
        }
    }

    /// Ends the copy; true when a delete removed the snapshot meanwhile.
    fn finish(&self, name: &str) -> bool {
        self.lock().remove(name).unwrap_or(false)
    }
}

impl Operations {
    /// One reconcile pass: with S3 on, uploads this node's local snapshots that are missing
    /// from the bucket (oldest first, only those S3 retention would keep) and forgets failure
    /// markers of snapshots that are in S3 or gone.
    pub async fn reconcile(
        &self,
        config: &DesiredConfig,
    ) -> Result<ReconcileReport, OperationError> {
        let started = Instant::now();
        let effective = self.effective(config).await;
        let mut session = None;
        let result = self.reconcile_inner(&effective, &mut session).await;
        self.mirror_resources(&effective, &[], None, session).await;
        self.metrics
            .observe_reconcile(Status::of(&result), started.elapsed().as_secs_f64());
        result
    }

    /// The pass; leaves the S3 store it connected in `session` for the resource mirror.
    async fn reconcile_inner(
        &self,
        config: &DesiredConfig,
        session: &mut Option<S3Store>,
    ) -> Result<ReconcileReport, OperationError> {
        let mut report = ReconcileReport::default();
        let Some(s3) = &config.s3 else {
            return Ok(report);
        };
        let store = open_store(config)?;
        let local = store.list().map_err(OperationError::Store)?;
        let remote = match replicate::connect(&self.kube, config, s3).await {
            Ok(remote) => remote,
            Err(source) => {
                self.metrics
                    .set_pending_upload_count(pending::list(store.dir()).len() as u64);
                return Err(OperationError::S3 {
                    action: "reach",
                    source: Box::new(source),
                });
            }
        };
        let remote_names: Vec<String> = self
            .list_on(&remote, Instant::now())
            .await
            .map_err(super::maintain::s3_list_error)?
            .into_iter()
            .map(|r| r.file_name)
            .collect();
        let local_names: Vec<String> = local.iter().map(|r| r.file_name.clone()).collect();
        forget_settled_markers(store.dir(), &local_names, &remote_names);
        let policy = super::retain::s3_policy(s3);
        let now = crate::store::local::now_unix();
        let plan = plan_backfill(&local_names, &remote_names, &config.node_name, &policy, now);
        for name in plan {
            self.copies.begin(&name);
            let copied = backfill_one(config, &remote, store.dir(), &name).await;
            match self.settle_copy(&remote, store.dir(), &name, copied).await {
                Ok(Copied::Uploaded) => report.uploaded.push(name),
                Ok(Copied::Gone) => {}
                Err(message) => report.failed.push(FailedItem { name, message }),
            }
        }
        self.metrics
            .set_pending_upload_count(pending::list(store.dir()).len() as u64);
        *session = Some(remote);
        Ok(report)
    }

    /// Ends one copy under the writer lock, so no delete runs between the check and the
    /// clean-up: when a delete removed the snapshot meanwhile, the copy just made goes too.
    async fn settle_copy(
        &self,
        remote: &S3Store,
        dir: &Path,
        name: &str,
        copied: Result<Copied, String>,
    ) -> Result<Copied, String> {
        let _writer = self.writer.lock().await;
        let deleted_meanwhile = self.copies.finish(name);
        let remove_copy = match settle(copied, deleted_meanwhile) {
            Settled::AsCopied(copied) => return copied,
            Settled::Withdrawn { remove_copy } => remove_copy,
        };
        if remove_copy {
            match remote.delete(name).await {
                Ok(_) => {
                    tracing::info!(snapshot = %name, "the snapshot was deleted while it was being copied to S3; its copy was removed")
                }
                Err(e) => {
                    tracing::warn!(snapshot = %name, error = %error_chain(&e), "the snapshot was deleted while it was being copied to S3, and removing its copy failed; delete it again")
                }
            }
        }
        let _ = pending::clear(dir, name);
        Ok(Copied::Gone)
    }
}

/// Verifies one local snapshot and uploads it with retries; clears or refreshes its failure
/// marker. A file gone since the listing (deleted or pruned) is skipped.
async fn backfill_one(
    config: &DesiredConfig,
    remote: &S3Store,
    dir: &Path,
    name: &str,
) -> Result<Copied, String> {
    let metadata = ObjectMetadata {
        sha256: None,
        ..replicate::object_metadata(config, remote)
    };
    let path = dir.join(name);
    if !path.exists() {
        return Ok(Copied::Gone);
    }
    // The save checked the bytes as it wrote them; the disk may have damaged them since, and a
    // copy made now would carry the damage into S3 with a checksum vouching for it.
    let checked = path.clone();
    let verified = tokio::task::spawn_blocking(move || verify_stored_snapshot(&checked)).await;
    let failure = match verified {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!(
            "not copied to S3: the local file failed its integrity check: {}",
            error_chain(&e)
        )),
        Err(join) => Some(format!(
            "not copied to S3: the integrity check failed: {join}"
        )),
    };
    if let Some(message) = failure {
        tracing::error!(snapshot = %name, error = %message, "a local snapshot missing from S3 is damaged; it is not uploaded");
        record_backfill_failure(remote, dir, name, &message);
        return Err(message);
    }
    match remote
        .upload_file_with_retry(&path, name, &metadata, RetryPolicy::default())
        .await
    {
        Ok(uploaded) => {
            tracing::info!(snapshot = %name, location = %uploaded.location, "uploaded a local snapshot missing from S3");
            let _ = pending::clear(dir, name);
            Ok(Copied::Uploaded)
        }
        Err(e) => {
            let message = error_chain(&e);
            tracing::warn!(snapshot = %name, error = %message, "failed to upload a local snapshot missing from S3");
            record_backfill_failure(remote, dir, name, &message);
            Err(message)
        }
    }
}

/// The failure marker `ls` and the resources show for a snapshot backfill could not copy.
fn record_backfill_failure(remote: &S3Store, dir: &Path, name: &str, message: &str) {
    let marker = PendingUpload {
        name: name.to_string(),
        location: crate::store::s3::keys::location(
            remote.client().bucket(),
            &remote.layout().object_key(name),
        ),
        error: message.to_string(),
        failed_at: super::rounded_now_unix(),
    };
    let _ = pending::record(dir, &marker);
}

/// Drops markers of snapshots that reached S3 or no longer exist locally.
fn forget_settled_markers(dir: &Path, local: &[String], remote: &[String]) {
    let local: BTreeSet<&str> = local.iter().map(String::as_str).collect();
    let remote: BTreeSet<&str> = remote.iter().map(String::as_str).collect();
    for marker in pending::list(dir) {
        if remote.contains(marker.name.as_str()) || !local.contains(marker.name.as_str()) {
            let _ = pending::clear(dir, &marker.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_during_a_copy_withdraws_it_and_nothing_else() {
        let copies = InFlightCopies::default();
        copies.note_deleted("a");
        copies.begin("a");
        copies.begin("b");
        assert!(
            !copies.finish("a"),
            "a delete before the copy began is not this copy's"
        );
        copies.note_deleted("b");
        copies.note_deleted("c");
        assert!(copies.finish("b"));
        assert!(!copies.finish("b"), "finishing forgets the copy");
        assert!(
            !copies.finish("c"),
            "deleting what is not being copied records nothing"
        );
    }

    #[test]
    fn settling_removes_only_copies_that_reached_s3() {
        let uploaded = Ok(Copied::Uploaded);
        let failed: Result<Copied, String> = Err("timeout".into());
        assert_eq!(
            settle(uploaded.clone(), false),
            Settled::AsCopied(uploaded.clone())
        );
        assert_eq!(
            settle(failed.clone(), false),
            Settled::AsCopied(failed.clone())
        );
        assert_eq!(
            settle(uploaded, true),
            Settled::Withdrawn { remove_copy: true }
        );
        assert_eq!(
            settle(failed, true),
            Settled::Withdrawn { remove_copy: false }
        );
        assert_eq!(
            settle(Ok(Copied::Gone), true),
            Settled::Withdrawn { remove_copy: false }
        );
    }
}
