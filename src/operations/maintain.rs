//! The operations that look after existing snapshots: list, delete, prune and startup
//! temp-file cleanup, on the local dir and, when `etcd-s3` is on, the bucket (the reconcile's
//! S3 backfill is in `backfill.rs`).
//!
//! Every S3 step connects afresh with the config of this very operation, so a changed bucket or
//! rotated credentials apply at once. Local work is never undone by an S3 failure: the failure
//! is reported per item.

use std::collections::BTreeSet;
use std::time::Instant;

use super::pending;
use super::{
    DeleteReport, Listing, OperationError, Operations, PruneReport, Removal, error_chain,
    open_existing_store, open_store, replicate,
};
use crate::api::wire::FailedItem;
use crate::config::DesiredConfig;
use crate::config::desired::S3Settings;
use crate::snapshot::name::{ZIP_SUFFIX, validate_user_name};
use crate::snapshot::prune::Pruned;
use crate::snapshot::retention::RetentionPolicy;
use crate::snapshot::{SnapshotRecord, Storage};
use crate::store::local::{DeleteOutcome, LocalStore};
use crate::store::s3::S3Store;
use crate::telemetry::metrics::Status;

impl Operations {
    /// Lists local snapshots and, with S3 on, this folder's objects plus a not-ready row for
    /// each snapshot whose upload failed and is still missing.
    /// An S3 listing failure does not hide the local snapshots: they are returned with the
    /// failure, so an operator sees what exists during an outage.
    pub async fn list(&self, config: &DesiredConfig) -> Result<Listing, OperationError> {
        let effective = self.effective(config).await;
        self.list_resolved(&effective).await
    }

    /// `list` with the S3 settings already resolved (the Secret read) by the caller.
    pub(super) async fn list_resolved(
        &self,
        config: &DesiredConfig,
    ) -> Result<Listing, OperationError> {
        Ok(self.list_keeping_store(config).await?.0)
    }

    /// `list_resolved`, also handing back the S3 store it listed (None when S3 is off or could
    /// not be listed), for callers that go on to read from the bucket.
    pub(super) async fn list_keeping_store(
        &self,
        config: &DesiredConfig,
    ) -> Result<(Listing, Option<S3Store>), OperationError> {
        let started = Instant::now();
        let local =
            open_store(config).and_then(|store| store.list().map_err(OperationError::Store));
        self.metrics
            .observe_reconcile_local(Status::of(&local), started.elapsed().as_secs_f64());
        let mut listing = Listing {
            records: local?,
            failed: Vec::new(),
        };
        self.metrics
            .set_snapshot_count(listing.records.len() as u64);
        self.set_newest("local", &listing.records);
        let mut listed_store = None;
        if let Some(s3) = &config.s3 {
            let remote = match self.list_s3(config, s3).await {
                Ok((remote, store)) => {
                    listed_store = Some(store);
                    remote
                }
                Err(e) => {
                    listing.failed.push(FailedItem {
                        name: replicate::target_location(s3, ""),
                        message: format!(
                            "{}; only local snapshots and recorded upload failures are shown",
                            error_chain(&e)
                        ),
                    });
                    Vec::new()
                }
            };
            let failed = failed_upload_rows(config, &listing.records, &remote);
            self.metrics.set_pending_upload_count(failed.len() as u64);
            listing.records.extend(remote);
            listing.records.extend(failed);
        }
        Ok((listing, listed_store))
    }

    async fn list_s3(
        &self,
        config: &DesiredConfig,
        s3: &S3Settings,
    ) -> Result<(Vec<SnapshotRecord>, S3Store), OperationError> {
        let started = Instant::now();
        match replicate::connect(&self.kube, config, s3).await {
            Ok(store) => Ok((self.list_on(&store, started).await?, store)),
            Err(source) => {
                self.metrics
                    .observe_reconcile_s3(Status::Error, started.elapsed().as_secs_f64());
                Err(OperationError::S3 {
                    action: "list",
                    source: Box::new(source),
                })
            }
        }
    }

    /// Lists a connected bucket, timed from `started` into the S3 listing metrics.
    pub(super) async fn list_on(
        &self,
        store: &S3Store,
        started: Instant,
    ) -> Result<Vec<SnapshotRecord>, OperationError> {
        let listed = store.list().await;
        self.metrics
            .observe_reconcile_s3(Status::of(&listed), started.elapsed().as_secs_f64());
        let listed = listed.map_err(|source| OperationError::S3 {
            action: "list",
            source: Box::new(source),
        })?;
        self.metrics.set_s3_snapshot_count(listed.len() as u64);
        self.set_newest("s3", &listed);
        Ok(listed)
    }

    /// Deletes snapshots by file name from the local dir and, with S3 on, from the bucket
    /// (object and metadata object). Every name is validated before anything is deleted.
    pub async fn delete(
        &self,
        config: &DesiredConfig,
        names: &[String],
    ) -> Result<DeleteReport, OperationError> {
        for name in names {
            validate_user_name(name).map_err(|reason| OperationError::InvalidName {
                name: name.clone(),
                reason,
            })?;
        }
        let guard = self.writer.lock().await;
        // Read the Secret only now: a delete queued behind a long save must not use
        // credentials rotated meanwhile.
        let effective = self.effective(config).await;
        let report = self.delete_locked(&effective, names).await?;
        drop(guard);
        self.mirror_resources(&effective, &report.deleted, None)
            .await;
        Ok(report)
    }

    async fn delete_locked(
        &self,
        config: &DesiredConfig,
        names: &[String],
    ) -> Result<DeleteReport, OperationError> {
        let store = open_existing_store(config)?;
        let _file_lock = store.lock().await.map_err(OperationError::Store)?;
        let remote = match &config.s3 {
            Some(s3) => Some(replicate::connect(&self.kube, config, s3).await),
            None => None,
        };
        let mut report = DeleteReport::default();
        for name in names {
            self.copies.note_deleted(name);
            let mut found = delete_local(&store, name, &mut report);
            match &remote {
                Some(Ok(remote)) => found |= delete_remote(remote, name, &mut report).await,
                Some(Err(e)) => report.failed.push(FailedItem {
                    name: name.clone(),
                    message: format!("not deleted from S3: {}", error_chain(e)),
                }),
                None => {}
            }
            if found {
                report.deleted.push(name.clone());
                let _ = pending::clear(store.dir(), name);
            } else if !report.failed.iter().any(|f| &f.name == name) {
                report.not_found.push(name.clone());
            }
        }
        self.refresh_count(&store);
        Ok(report)
    }

    /// Applies the local retention policy to the snapshots named `<name>-<this node>-<unix>`
    /// and the S3 policy to this cluster's copies in S3; with `dry_run` only reports what would
    /// go. Either way the report carries every snapshot's verdict and its deciding rule.
    pub async fn prune(
        &self,
        config: &DesiredConfig,
        dry_run: bool,
    ) -> Result<PruneReport, OperationError> {
        let guard = self.writer.lock().await;
        let effective = self.effective(config).await;
        let report = self.prune_locked(&effective, dry_run).await?;
        drop(guard);
        if !dry_run {
            self.mirror_resources(&effective, &report.deleted, None)
                .await;
        }
        Ok(report)
    }

    async fn prune_locked(
        &self,
        config: &DesiredConfig,
        dry_run: bool,
    ) -> Result<PruneReport, OperationError> {
        let store = open_existing_store(config)?;
        let _file_lock = store.lock().await.map_err(OperationError::Store)?;
        let base = &config.snapshot.on_demand_name;
        let mut report = PruneReport::default();
        let local = store
            .prune_policy(base, &local_policy(config), dry_run)
            .map_err(OperationError::Store)?;
        let local_location = |name: &str| store.dir().join(name).display().to_string();
        add_pruned(&mut report, local, Storage::Local, local_location);
        if let Some(s3) = &config.s3 {
            let policy = s3_policy(s3);
            if dry_run || !policy.keeps_all() {
                let pruned = match replicate::connect(&self.kube, config, s3).await {
                    Ok(remote) => remote.prune_policy(base, &policy, dry_run).await,
                    Err(e) => Err(e),
                };
                match pruned {
                    Ok(pruned) => {
                        let location = |name: &str| replicate::target_location(s3, name);
                        add_pruned(&mut report, pruned, Storage::S3, location);
                    }
                    Err(e) => report.failed.push(FailedItem {
                        name: "s3 retention".into(),
                        message: error_chain(&e),
                    }),
                }
            }
        }
        self.refresh_count(&store);
        Ok(report)
    }

    /// Removes this node's leftovers of interrupted saves (startup hygiene).
    pub async fn clean_temp_files(&self, config: &DesiredConfig) -> Result<usize, OperationError> {
        let _guard = self.writer.lock().await;
        let store = open_store(config)?;
        let _file_lock = store.lock().await.map_err(OperationError::Store)?;
        let removed = store.cleanup_temp_files().map_err(OperationError::Store)?;
        for path in &removed {
            tracing::info!(path = %path.display(), "removed leftover temp file of an interrupted save");
        }
        self.refresh_count(&store);
        Ok(removed.len())
    }

    pub(super) fn refresh_count(&self, store: &LocalStore) {
        if let Ok(records) = store.list() {
            self.metrics.set_snapshot_count(records.len() as u64);
            self.set_newest("local", &records);
        }
    }

    /// The freshness gauges of `storage` from its latest listing.
    fn set_newest(&self, storage: &'static str, records: &[SnapshotRecord]) {
        let newest = crate::scheduler::freshness::newest(records);
        self.metrics
            .set_newest(storage, newest.any, newest.verified);
    }
}

/// True when the local copy existed and was deleted; failures go into the report.
fn delete_local(store: &LocalStore, name: &str, report: &mut DeleteReport) -> bool {
    match store.delete(name) {
        Ok(DeleteOutcome::Deleted) => {
            tracing::info!(snapshot = %name, "snapshot deleted");
            report.removed.push(Removal {
                name: name.to_string(),
                location: store.dir().join(name).display().to_string(),
                reason: None,
            });
            true
        }
        Ok(DeleteOutcome::NotFound) => false,
        Err(e) => {
            report.failed.push(FailedItem {
                name: name.to_string(),
                message: error_chain(&e),
            });
            false
        }
    }
}

/// True when the S3 object existed and was deleted; failures go into the report.
async fn delete_remote(remote: &S3Store, name: &str, report: &mut DeleteReport) -> bool {
    match remote.delete(name).await {
        Ok(DeleteOutcome::Deleted) => {
            let key = remote.layout().object_key(name);
            report.removed.push(Removal {
                name: name.to_string(),
                location: crate::store::s3::keys::location(remote.client().bucket(), &key),
                reason: None,
            });
            true
        }
        Ok(DeleteOutcome::NotFound) => false,
        Err(e) => {
            report.failed.push(FailedItem {
                name: name.to_string(),
                message: format!("not deleted from S3: {}", error_chain(&e)),
            });
            false
        }
    }
}

/// Not-ready S3 rows for failed uploads whose local snapshot still exists and whose object is
/// still missing.
fn failed_upload_rows(
    config: &DesiredConfig,
    local: &[SnapshotRecord],
    remote: &[SnapshotRecord],
) -> Vec<SnapshotRecord> {
    let in_s3: BTreeSet<&str> = remote.iter().map(|r| r.file_name.as_str()).collect();
    pending::list(&config.snapshot.dir)
        .into_iter()
        .filter(|m| !in_s3.contains(m.name.as_str()))
        .filter_map(|marker| {
            let local = local.iter().find(|r| r.file_name == marker.name)?;
            Some(SnapshotRecord {
                file_name: marker.name.clone(),
                location: marker.location.clone(),
                node_name: config.node_name.clone(),
                storage: Storage::S3,
                size: 0,
                // The failure's time, as RKE2 records it: resources keep failures for 24 h
                // from it.
                created_unix: marker.failed_at.max(local.created_unix),
                compressed: marker.name.ends_with(ZIP_SUFFIX),
                ready: false,
                error: Some(format!(
                    "upload failed at {}: {}",
                    crate::snapshot::record::rfc3339(marker.failed_at),
                    marker.error
                )),
                token_hash: None,
                metadata: None,
            })
        })
        .collect()
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

/// Adds one store's prune result to the report: its removals (with the deciding rule as the
/// reason) and every verdict.
fn add_pruned(
    report: &mut PruneReport,
    pruned: Pruned,
    storage: Storage,
    location: impl Fn(&str) -> String,
) {
    for name in pruned.deleted {
        let reason = pruned
            .verdicts
            .iter()
            .find(|v| v.file_name == name)
            .map(|v| v.rule.to_string());
        report.add(Removal {
            location: location(&name),
            reason,
            name,
        });
    }
    report.verdicts.extend(
        pruned
            .verdicts
            .iter()
            .map(|v| v.to_wire(storage, location(&v.file_name))),
    );
}
