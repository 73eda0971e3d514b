//! Save, list, delete, prune and verify: the one service behind the API, the scheduler and the
//! direct-mode CLI. `Operations::run` runs a planned request (the API's and the direct-mode
//! CLI's one dispatcher); the reports are domain types, turned into RKE2's wire shapes at the
//! edge (`api::wire`).
//!
//! Each call gets a fully resolved `DesiredConfig` (the caller evaluated the engine, with a
//! request layer when there is one) and runs against the stores and etcd. Writers are serialised
//! twice: an in-process mutex (so a scheduler tick can see a save is running and skip) and the
//! store's advisory lock file (so a direct-mode CLI and a server on the same node never race).
//!
//! Every store is reached through the `SnapshotStore` seam (`maintain::list_on`, `retain`'s
//! prune and delete), and an operation opens at most one S3 session (`replicate::session`),
//! which its later steps and the resource mirror reuse. Files: the save here (its standalone
//! steps, the recipients and the recorded revision and keyspace hash among them, in
//! `save_steps`); list, delete and prune in `maintain`; restore drills in `verify` and their verdicts in `drill_verdicts`; retention and deletion across stores in `retain`, the delta chains that follow local
//! snapshots in `chains` (and S3 copies in `chains_s3`) and their point-in-time windows in
//! `windows`; the S3 copy of a save in `replicate`; the reconcile's S3 backfill in `backfill`;
//! delta segments to S3 in `segments`; `ETCDSnapshotFile` resources in
//! `resources`; the reports in `report`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, OwnedMutexGuard};

mod backfill;
mod chains;
mod chains_s3;
mod drill_verdicts;
mod listing;
mod maintain;
pub mod pending;
mod replicate;
mod report;
mod resources;
mod retain;
mod s3_config;
mod save_sqlite;
mod save_steps;
mod segments;
mod verify;
mod windows;

use crate::errors::error_chain;
pub use drill_verdicts::reason as drill_reason;
pub use report::{
    ChainRemoval, CopyVerdict, DeleteReport, FailedItem, Listing, PlannedOperation, PruneReport,
    ReconcileReport, Removal, Report, SaveOutcome, VerifyReport,
};
use retain::RetentionRun;
use save_steps::{
    abandon_upload, begin_hashkv, current_recipients, encryption_entries, log_saved,
    merged_metadata_of, sync_bootstrap_before_save,
};
pub use segments::{SegmentUploadReport, SegmentsInS3};

use crate::config::DesiredConfig;
use crate::etcd::client::{ConnectError, connect_for_snapshot};
use crate::kube::KubeAccess;
use crate::snapshot::name::rounded_now_unix;
use crate::snapshot::observed::save_snapshot_observed;
use crate::snapshot::save::{DEFAULT_COMPRESSION_LEVEL, Output, SaveError, SavedSnapshot};
use crate::snapshot::tee::{self, Tee};
use crate::store::local::{LocalStore, StoreError};
use crate::store::s3::{S3Error, S3Store};
use crate::telemetry::metrics::{Metrics, Status};

/// Which kind of save, deciding the base name and whether retention runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveKind {
    /// Cron-triggered: base `etcd-snapshot-name`, retention applied afterwards.
    Scheduled,
    /// Requested by a user: base `name` (default `on-demand`), never pruned by the save itself.
    OnDemand,
}

/// Why an operation failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("failed to open snapshot store")]
    Store(#[source] StoreError),
    /// The snapshot `name` was not taken: etcd could not be reached (the source says which
    /// endpoints were tried).
    #[error("failed to save snapshot {name}")]
    Connect {
        name: String,
        #[source]
        source: ConnectError,
    },
    #[error("failed to save snapshot {name}")]
    Save {
        name: String,
        #[source]
        source: SaveError,
    },
    /// The snapshot `name` was not taken: the SQLite datastore could not be copied, or its
    /// copy failed its checks.
    #[error("failed to save snapshot {name}")]
    Datastore {
        name: String,
        /// Boxed: SQLite's errors are large and every operation result carries this enum.
        #[source]
        source: Box<crate::datastore::DatastoreError>,
    },
    #[error("invalid snapshot name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// The snapshot `name` was not taken: its encryption recipients could not be read.
    #[error("failed to save snapshot {name}")]
    Keys {
        name: String,
        #[source]
        source: Box<crate::kube::encryption_secret::EncryptionSecretError>,
    },
    #[error("failed to {action} S3 snapshots")]
    S3 {
        action: &'static str,
        /// Boxed: S3 errors are large and every operation result carries this enum.
        #[source]
        source: Box<S3Error>,
    },
}

impl OperationError {
    /// True for errors caused by the request rather than the server's state.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            OperationError::InvalidName { .. }
                | OperationError::Store(
                    StoreError::InvalidName { .. }
                        | StoreError::MissingDir { .. }
                        | StoreError::NotADir { .. }
                )
        )
    }
}

/// The snapshot service shared by every trigger.
pub struct Operations {
    metrics: Arc<Metrics>,
    writer: Arc<Mutex<()>>,
    /// Reads the S3 config Secret; disabled unless Kubernetes access is configured.
    kube: KubeAccess,
    /// One resource reconcile at a time: a pass listing the stores while a save or delete
    /// mirrors its own change would undo it (delete a just-created resource, or re-create one).
    mirror: Arc<Mutex<()>>,
    /// Set once a resource reconcile has fully succeeded; until then the reconcile loop comes
    /// back soon instead of after a whole interval (the apiserver or the CRD may be late).
    resources_synced: std::sync::atomic::AtomicBool,
    /// Who uploaded each S3 object, remembered across resource reconciles.
    s3_sources: crate::store::s3::SourceCache,
    /// Snapshots the reconcile is copying to S3 outside the writer lock (see `backfill.rs`).
    copies: backfill::InFlightCopies,
    /// Which departed-node and Node-mark conditions were already logged, so a lasting one
    /// (no RBAC, a node-name that is not the Node's) is said once, not every pass.
    node_notices: crate::kube::resources::NodeNotices,
    /// One restore drill at a time, whoever asks (API, verify schedule, verify-after-save);
    /// apart from `writer`, so a drill never delays a save.
    drills: Arc<Mutex<()>>,
    /// Snapshots waiting for their drill after save. One waiter drills them all, so saves that
    /// come faster than drills finish add names, not queued tasks.
    drills_after_save: std::sync::Mutex<Vec<String>>,
    /// True while a save runs. The writer mutex is also held, briefly, by the reconcile, the
    /// backfill and verdict recording; a scheduled tick skips only for a running save and
    /// waits out the others.
    saving: Arc<std::sync::atomic::AtomicBool>,
}

/// Marks a save as running until dropped (also when the save's future is dropped midway).
pub struct SaveRunning(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SaveRunning {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Operations {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            writer: Arc::new(Mutex::new(())),
            kube: KubeAccess::disabled(),
            mirror: Arc::new(Mutex::new(())),
            resources_synced: Default::default(),
            s3_sources: Default::default(),
            copies: Default::default(),
            node_notices: Default::default(),
            drills: Arc::new(Mutex::new(())),
            drills_after_save: Default::default(),
            saving: Default::default(),
        }
    }

    /// With Kubernetes access, for the S3 config Secret.
    pub fn with_kube(mut self, kube: KubeAccess) -> Self {
        self.kube = kube;
        self
    }

    /// The Kubernetes access (the delta capture reads the encryption Secret through it).
    pub fn kube(&self) -> &KubeAccess {
        &self.kube
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Takes the writer mutex only if free: the scheduler uses it to skip a tick while any save
    /// (scheduled or on-demand) is running.
    pub fn try_begin_write(&self) -> Option<OwnedMutexGuard<()>> {
        Arc::clone(&self.writer).try_lock_owned().ok()
    }

    /// True while a save runs (see `saving`).
    pub fn save_running(&self) -> bool {
        self.saving.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for the writer mutex (a scheduled tick that found only a brief holder).
    pub async fn begin_write(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.writer).lock_owned().await
    }

    /// Marks a save as running until the returned value is dropped.
    pub fn mark_save_running(&self) -> SaveRunning {
        self.saving.store(true, std::sync::atomic::Ordering::SeqCst);
        SaveRunning(Arc::clone(&self.saving))
    }

    /// Runs one planned request to completion (an on-demand save for `Save`): the one
    /// dispatcher of the API handler and the direct-mode CLI.
    pub async fn run(
        &self,
        config: &DesiredConfig,
        planned: &PlannedOperation,
    ) -> Result<Report, OperationError> {
        Ok(match planned {
            PlannedOperation::Save => Report::Saved(self.save(config, SaveKind::OnDemand).await?),
            PlannedOperation::List => Report::Listed(self.list(config).await?),
            PlannedOperation::Delete { names } => {
                Report::Deleted(self.delete(config, names).await?)
            }
            PlannedOperation::Prune { dry_run } => {
                Report::Pruned(self.prune(config, *dry_run).await?)
            }
            PlannedOperation::Verify { names } => {
                Report::Verified(self.verify(config, names).await?)
            }
        })
    }

    /// Takes a snapshot now. Waits for a running writer to finish first.
    pub async fn save(
        &self,
        config: &DesiredConfig,
        kind: SaveKind,
    ) -> Result<SaveOutcome, OperationError> {
        let guard = Arc::clone(&self.writer).lock_owned().await;
        self.save_locked(config, kind, guard).await
    }

    /// `save` for a caller that already holds the writer mutex (see `try_begin_write`).
    pub async fn save_locked(
        &self,
        config: &DesiredConfig,
        kind: SaveKind,
        guard: OwnedMutexGuard<()>,
    ) -> Result<SaveOutcome, OperationError> {
        let started = Instant::now();
        let running = self.mark_save_running();
        let effective = self.effective(config).await;
        let (result, session) = match self.save_inner(&effective, kind).await {
            Ok((outcome, session)) => (Ok(outcome), session),
            Err(e) => (Err(e), None),
        };
        let status = if result.is_ok() {
            Status::Success
        } else {
            Status::Error
        };
        self.metrics
            .observe_save(status, started.elapsed().as_secs_f64());
        // The resources follow outside the writer lock: a slow apiserver never holds up the
        // next snapshot.
        drop(running);
        drop(guard);
        match &result {
            Ok(outcome) => {
                let saved = outcome.created.first().map(String::as_str);
                self.mirror_resources(&effective, &outcome.deleted, saved, session)
                    .await;
            }
            Err(e @ (OperationError::Save { name, .. } | OperationError::Connect { name, .. })) => {
                self.record_failed_save(&effective, name, &error_chain(e))
                    .await;
                self.mirror_resources(&effective, &[], None, None).await;
            }
            Err(_) => self.mirror_resources(&effective, &[], None, None).await,
        }
        result
    }

    /// The save under the writer lock; hands back the operation's S3 session, if one is open.
    async fn save_inner(
        &self,
        config: &DesiredConfig,
        kind: SaveKind,
    ) -> Result<(SaveOutcome, Option<S3Store>), OperationError> {
        let settings = &config.snapshot;
        let store = open_store(config)?;
        let _file_lock = store.lock().await.map_err(OperationError::Store)?;
        let base = match kind {
            SaveKind::Scheduled => &settings.scheduled_name,
            SaveKind::OnDemand => &settings.on_demand_name,
        };
        let recipients = current_recipients(&self.kube, settings, base).await?;
        let name = store.allocate_name(
            base,
            rounded_now_unix(),
            settings.compress,
            recipients.is_some(),
        );
        let datastore = crate::datastore::select(config);
        if config.etcd.is_embedded() && datastore == crate::datastore::Datastore::Etcd {
            // The snapshot must carry the certificates of its moment (restore brings them back).
            sync_bootstrap_before_save(config).await;
        }
        // A SQLite datastore is copied (and checked) first; its figures are recorded.
        let copy = save_sqlite::copy_if_sqlite(&datastore, &store, &name).await?;
        // The revision before the stream and the upload start; the hash after the stream, before
        // the records that carry it are written (see `snapshot::hashkv`).
        let (mut recorded, late) = match &copy {
            Some(copy) => (copy.entries(), None),
            None => begin_hashkv(config, &name.file_name()).await,
        };
        recorded.extend(encryption_entries(recipients.as_ref()));
        let s3_started = Instant::now();
        let (tee, upload) = self.start_upload(config, &name, &recorded);
        let local_started = Instant::now();
        let saved = match &copy {
            Some(copy) => {
                self.image_to_store(&store, &name, copy, tee, recipients, &recorded)
                    .await
            }
            None => {
                let output = Output {
                    compression_level: DEFAULT_COMPRESSION_LEVEL,
                    tee,
                    recipients,
                    late,
                };
                self.stream_to_store(config, &store, &name, output, &recorded)
                    .await
            }
        };
        drop(copy);
        self.metrics
            .observe_save_local(Status::of(&saved), local_started.elapsed().as_secs_f64());
        let saved = match saved {
            Ok(saved) => saved,
            Err(e) => {
                abandon_upload(upload).await;
                return Err(e);
            }
        };
        log_saved(&saved);
        // The hash joins what a retried upload from the file carries.
        recorded.extend(saved.late_entries.clone());
        self.metrics.set_last_success(saved.name.unix);
        let mut outcome = SaveOutcome {
            created: vec![saved.name.file_name()],
            ..Default::default()
        };
        let mut session = None;
        if let Some(task) = upload {
            let (failure, store) = self
                .finish_upload(config, &saved, task, s3_started, &recorded)
                .await;
            session = store;
            outcome.failed.extend(failure);
        }
        if kind == SaveKind::Scheduled {
            session = self
                .apply_scheduled_retention(config, &store, base, &mut outcome, session)
                .await;
        }
        self.refresh_count(&store);
        Ok((outcome, session))
    }

    /// With S3 configured, starts the upload that streams the snapshot as it is written: the
    /// tee for the save pipeline and the upload's task.
    fn start_upload(
        &self,
        config: &DesiredConfig,
        name: &crate::snapshot::SnapshotName,
        recorded: &BTreeMap<String, String>,
    ) -> (
        Option<Tee>,
        Option<tokio::task::JoinHandle<replicate::Streamed>>,
    ) {
        let Some(s3) = &config.s3 else {
            return (None, None);
        };
        let (tee, feed) = tee::channel();
        let task = replicate::start_streamed_upload(
            &self.kube,
            config,
            s3,
            name.file_name(),
            feed,
            recorded.clone(),
        );
        (Some(tee), Some(task))
    }

    /// Waits for the streamed upload of a saved snapshot and records its time and outcome;
    /// a failed copy is the save's failed item, never its error. Hands back the upload's S3
    /// session for the retention that follows.
    async fn finish_upload(
        &self,
        config: &DesiredConfig,
        saved: &SavedSnapshot,
        task: tokio::task::JoinHandle<replicate::Streamed>,
        s3_started: Instant,
        recorded: &BTreeMap<String, String>,
    ) -> (Option<FailedItem>, Option<S3Store>) {
        let Some(s3) = config.s3.as_ref() else {
            return (None, None);
        };
        let (failure, store) =
            replicate::finish_upload(&self.kube, config, s3, saved, task.await, recorded).await;
        let status = if failure.is_none() {
            Status::Success
        } else {
            Status::Error
        };
        self.metrics
            .observe_save_s3(status, s3_started.elapsed().as_secs_f64());
        (failure, store)
    }

    /// Retention after a scheduled save, locally and in S3 (`retain`). Trouble here never
    /// fails a save that already produced a good snapshot; it is reported as a failed item. S3
    /// retention runs even when the upload failed, so a full bucket can be freed.
    async fn apply_scheduled_retention(
        &self,
        config: &DesiredConfig,
        store: &LocalStore,
        base: &str,
        outcome: &mut SaveOutcome,
        session: Option<S3Store>,
    ) -> Option<S3Store> {
        let run = RetentionRun::AfterSave;
        match self.retain(config, store, base, run, session).await {
            Ok((report, session)) => {
                outcome.deleted.extend(report.deleted);
                outcome.failed.extend(report.failed);
                session
            }
            // Not reached: after a save, a local failure is a failed item.
            Err(e) => {
                outcome.failed.push(retention_failure("retention", &e));
                None
            }
        }
    }

    async fn stream_to_store(
        &self,
        config: &DesiredConfig,
        store: &LocalStore,
        name: &crate::snapshot::SnapshotName,
        output: Output,
        recorded: &BTreeMap<String, String>,
    ) -> Result<SavedSnapshot, OperationError> {
        let mut client =
            connect_for_snapshot(&config.etcd)
                .await
                .map_err(|source| OperationError::Connect {
                    name: name.file_name(),
                    source,
                })?;
        let metadata = merged_metadata_of(&self.kube, recorded).await;
        let progress = crate::telemetry::progress::reporter();
        save_snapshot_observed(
            &mut client,
            store.layout(),
            name,
            metadata.as_ref(),
            output,
            progress,
        )
        .await
        .map_err(|source| OperationError::Save {
            name: name.file_name(),
            source,
        })
    }
}

fn retention_failure(what: &str, error: &dyn std::error::Error) -> FailedItem {
    tracing::warn!(error = %error_chain(error), "failed to apply {what}");
    FailedItem {
        name: what.to_string(),
        message: error_chain(error),
    }
}

/// Opens the snapshot dir for writing; only the default dir is created.
fn open_store(config: &DesiredConfig) -> Result<LocalStore, OperationError> {
    let s = &config.snapshot;
    LocalStore::open(&s.dir, &config.node_name, s.dir_is_default).map_err(OperationError::Store)
}

/// Opens the snapshot dir for delete/prune, which never create it.
fn open_existing_store(config: &DesiredConfig) -> Result<LocalStore, OperationError> {
    LocalStore::open(&config.snapshot.dir, &config.node_name, false).map_err(OperationError::Store)
}
