//! The operations that look after existing snapshots: list, delete, prune and startup
//! temp-file cleanup, on the local dir and, when `etcd-s3` is on, the bucket (the reconcile's
//! S3 backfill is in `backfill.rs`).
//!
//! Every operation connects to S3 afresh with its own config, so a changed bucket or rotated
//! credentials apply at once; its steps (delete, listing for the resources) share that one
//! session. Local work is never undone by an S3 failure: the failure is reported per item.

use std::collections::BTreeSet;
use std::time::Instant;

use super::FailedItem;
use super::chains;
use super::chains_s3;
use super::pending;
use super::retain::{RetentionRun, delete_on};
use super::{
    DeleteReport, Listing, OperationError, Operations, PruneReport, error_chain,
    open_existing_store, open_store, replicate,
};
use crate::config::DesiredConfig;
use crate::config::desired::S3Settings;
use crate::kube::resources::S3Spec;
use crate::snapshot::name::validate_user_name;
use crate::snapshot::{SnapshotRecord, Storage};
use crate::store::SnapshotStore;
use crate::store::local::LocalStore;
use crate::store::s3::S3Store;
use crate::telemetry::metrics::Status;

impl Operations {
    /// Lists local snapshots and, with S3 on, this folder's objects plus a not-ready row for
    /// each snapshot whose upload failed and is still missing.
    /// An S3 listing failure does not hide the local snapshots: they are returned with the
    /// failure, so an operator sees what exists during an outage.
    /// S3 rows carry their uploader and extra metadata, read from the bucket (see `listing`).
    pub async fn list(&self, config: &DesiredConfig) -> Result<Listing, OperationError> {
        let effective = self.effective(config).await;
        let (mut listing, session) = self.list_stores(&effective, None).await?;
        let mut s3_chains = None;
        if let Some(store) = session {
            self.fill_listed_sources(&store, &mut listing).await;
            self.set_s3_newest(&listing.records);
            s3_chains = super::windows::list_s3_chains(&store, &listing.records).await;
        }
        listing.s3 = effective.s3.as_ref().map(S3Spec::from_settings);
        let (dir, chains) = (&effective.snapshot.dir, s3_chains.as_ref());
        super::windows::attach_windows(dir, &mut listing.records, chains).await;
        Ok(listing)
    }

    /// The one listing of every configured store, with the S3 settings already resolved (the
    /// Secret read) by the caller and the operation's S3 session, if one is open. Hands the
    /// session back (None when S3 is off or could not be listed) for callers that go on to read
    /// from the bucket.
    pub(super) async fn list_stores(
        &self,
        config: &DesiredConfig,
        session: Option<S3Store>,
    ) -> Result<(Listing, Option<S3Store>), OperationError> {
        let started = Instant::now();
        let local = match open_store(config) {
            Ok(store) => self
                .list_on(&store, started)
                .await
                .map_err(OperationError::Store),
            Err(e) => {
                self.metrics
                    .observe_reconcile_local(Status::Error, started.elapsed().as_secs_f64());
                Err(e)
            }
        };
        let mut listing = Listing {
            records: local?,
            ..Default::default()
        };
        let Some(s3) = &config.s3 else {
            return Ok((listing, None));
        };
        let started = Instant::now();
        let (remote, session) = match replicate::session(&self.kube, config, s3, session).await {
            Ok(store) => match self.list_on(&store, started).await.map_err(s3_list_error) {
                Ok(remote) => (remote, Some(store)),
                Err(e) => (self.s3_unlisted(&mut listing, s3, &e), None),
            },
            Err(source) => {
                self.metrics
                    .observe_reconcile_s3(Status::Error, started.elapsed().as_secs_f64());
                let e = s3_list_error(source);
                (self.s3_unlisted(&mut listing, s3, &e), None)
            }
        };
        let failed = failed_upload_rows(config, &listing.records, &remote);
        self.metrics.set_pending_upload_count(failed.len() as u64);
        listing.records.extend(remote);
        listing.records.extend(failed);
        Ok((listing, session))
    }

    /// Notes in the listing that S3 could not be listed; no S3 rows but the failed uploads.
    fn s3_unlisted(
        &self,
        listing: &mut Listing,
        s3: &S3Settings,
        error: &OperationError,
    ) -> Vec<SnapshotRecord> {
        listing.failed.push(FailedItem {
            name: replicate::target_location(s3, ""),
            message: format!(
                "{}; only local snapshots and recorded upload failures are shown",
                error_chain(error)
            ),
        });
        Vec::new()
    }

    /// Lists one store through the seam, timed from `started` into that storage's listing
    /// metrics; a listing also sets the storage's snapshot count and freshness gauges.
    pub(super) async fn list_on<S: SnapshotStore>(
        &self,
        store: &S,
        started: Instant,
    ) -> Result<Vec<SnapshotRecord>, S::Error> {
        let listed = store.list().await;
        let (status, seconds) = (Status::of(&listed), started.elapsed().as_secs_f64());
        let records = listed.as_deref().unwrap_or_default();
        let count = records.len() as u64;
        match store.storage() {
            Storage::Local => {
                self.metrics.observe_reconcile_local(status, seconds);
                if listed.is_ok() {
                    self.metrics.set_snapshot_count(count);
                    self.set_listing_gauges("local", records);
                }
            }
            Storage::S3 => {
                self.metrics.observe_reconcile_s3(status, seconds);
                if listed.is_ok() {
                    self.metrics.set_s3_snapshot_count(count);
                    // The verdicts are in the metadata objects, read later (`set_s3_newest`).
                    let newest = crate::snapshot::freshness::newest(records);
                    self.metrics.set_newest_any("s3", newest.any);
                    self.set_encryption_gauges("s3", records);
                }
            }
        }
        listed
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
        let (report, session) = self.delete_locked(&effective, names).await?;
        drop(guard);
        self.mirror_resources(&effective, &report.deleted, None, session)
            .await;
        Ok(report)
    }

    async fn delete_locked(
        &self,
        config: &DesiredConfig,
        names: &[String],
    ) -> Result<(DeleteReport, Option<S3Store>), OperationError> {
        let store = open_existing_store(config)?;
        let _file_lock = store.lock().await.map_err(OperationError::Store)?;
        let remote = match &config.s3 {
            Some(s3) => Some(replicate::connect(&self.kube, config, s3).await),
            None => None,
        };
        let mut report = DeleteReport::default();
        for name in names {
            self.copies.note_deleted(name);
            let mut found = delete_on(&store, name, "", &mut report).await;
            found |= chains::follow_delete(&store, name, &mut report);
            match &remote {
                Some(Ok(remote)) => {
                    found |= delete_on(remote, name, "not deleted from S3: ", &mut report).await;
                    found |= chains_s3::follow_delete(remote, name, &mut report).await;
                }
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
        Ok((report, remote.and_then(Result::ok)))
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
        let store = open_existing_store(&effective)?;
        let file_lock = store.lock().await.map_err(OperationError::Store)?;
        let base = &effective.snapshot.on_demand_name;
        let run = RetentionRun::Prune { dry_run };
        let pruned = self.retain(&effective, &store, base, run, None).await;
        self.refresh_count(&store);
        drop((file_lock, guard));
        let (report, session) = pruned.map_err(OperationError::Store)?;
        if !dry_run {
            self.mirror_resources(&effective, &report.deleted, None, session)
                .await;
        }
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
            self.set_listing_gauges("local", &records);
        }
    }

    /// The S3 freshness gauges from listed S3 rows whose metadata objects were read.
    pub(super) fn set_s3_newest(&self, records: &[SnapshotRecord]) {
        let s3: Vec<SnapshotRecord> = records
            .iter()
            .filter(|r| r.storage == Storage::S3)
            .cloned()
            .collect();
        self.set_newest("s3", &s3);
    }

    /// The freshness and encryption gauges of `storage` from its latest listing.
    fn set_listing_gauges(&self, storage: &'static str, records: &[SnapshotRecord]) {
        self.set_newest(storage, records);
        self.set_encryption_gauges(storage, records);
    }

    /// The freshness gauges of `storage` from its latest listing.
    fn set_newest(&self, storage: &'static str, records: &[SnapshotRecord]) {
        let newest = crate::snapshot::freshness::newest(records);
        self.metrics
            .set_newest(storage, newest.any, newest.verified);
    }

    /// The encryption gauges of `storage` from its latest listing.
    fn set_encryption_gauges(&self, storage: &'static str, records: &[SnapshotRecord]) {
        let counts = encryption_counts(records);
        self.metrics
            .set_encrypted_counts(storage, counts.encrypted, counts.plain);
        // An S3 listing has no metadata yet: its keys are counted once it is read
        // (`set_s3_recipient_gauge`).
        if storage == "local" {
            self.metrics
                .set_recipient_counts(storage, &counts.by_recipient);
        }
    }

    /// The S3 copies' per-key gauge, from rows whose metadata was read from the bucket.
    pub(super) fn set_s3_recipient_gauge(&self, records: &[SnapshotRecord]) {
        let s3: Vec<SnapshotRecord> = records
            .iter()
            .filter(|r| r.storage == crate::snapshot::Storage::S3 && r.ready)
            .cloned()
            .collect();
        let counts = encryption_counts(&s3);
        self.metrics
            .set_recipient_counts("s3", &counts.by_recipient);
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
                compressed: crate::snapshot::name::is_compressed_name(&marker.name),
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

/// An S3 listing failure as an operation error.
pub(super) fn s3_list_error(source: crate::store::s3::S3Error) -> OperationError {
    OperationError::S3 {
        action: "list",
        source: Box::new(source),
    }
}

/// How many listed copies are encrypted, plaintext, and encrypted to each key fingerprint.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct EncryptionCounts {
    pub encrypted: u64,
    pub plain: u64,
    /// Fingerprint -> encrypted copies naming it; `unrecorded` counts those that name none.
    pub by_recipient: std::collections::BTreeMap<String, u64>,
}

/// Counts a listing's copies by encryption (the two counts add up to `etcd_snapshot_files`).
/// Pure.
pub(super) fn encryption_counts(records: &[SnapshotRecord]) -> EncryptionCounts {
    let mut counts = EncryptionCounts::default();
    for record in records {
        let Some(keys) = record.encrypted_to() else {
            counts.plain += 1;
            continue;
        };
        counts.encrypted += 1;
        let names: Vec<String> = match keys.is_empty() {
            true => vec!["unrecorded".to_string()],
            false => keys.iter().map(|k| k.to_string()).collect(),
        };
        for name in names {
            *counts.by_recipient.entry(name).or_default() += 1;
        }
    }
    counts
}

#[cfg(test)]
mod encryption_count_tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::snapshot::Storage;

    fn record(name: &str, keys: Option<&str>) -> SnapshotRecord {
        let mut r = SnapshotRecord::example(name, name, "n1", Storage::Local);
        r.metadata = keys.map(|k| {
            BTreeMap::from([(
                "Etcd-Snapshot-Encryption-Fingerprints".to_string(),
                k.to_string(),
            )])
        });
        r
    }

    #[test]
    fn copies_are_counted_by_encryption_and_by_key() {
        let (a, b) = ("age1:000000000000000a", "age1:000000000000000b");
        let records = [
            record("s-n1-1", None),
            record("s-n1-2.zip.age", Some(&format!("{a},{b}"))),
            record("s-n1-3.age", Some(a)),
            record("s-n1-4.age", None),
        ];
        let counts = encryption_counts(&records);
        assert_eq!((counts.encrypted, counts.plain), (3, 1));
        let want = BTreeMap::from([
            (a.to_string(), 2),
            (b.to_string(), 1),
            ("unrecorded".to_string(), 1),
        ]);
        assert_eq!(counts.by_recipient, want);
    }
}
