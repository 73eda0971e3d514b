//! Save, list, delete and prune: the one service behind the API, the scheduler and the
//! direct-mode CLI.
//!
//! Each call gets a fully resolved `DesiredConfig` (the caller evaluated the engine, with a
//! request layer when there is one) and runs against the stores and etcd. Writers are serialised
//! twice: an in-process mutex (so a scheduler tick can see a save is running and skip) and the
//! store's advisory lock file (so a direct-mode CLI and a server on the same node never race).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, OwnedMutexGuard};

mod backfill;
mod error_text;
mod maintain;
pub mod pending;
mod replicate;
mod resources;
mod response;
mod s3_config;

pub use error_text::error_chain;

use crate::api::wire::{FailedItem, RemovedCopy};
use crate::config::DesiredConfig;
use crate::etcd::client::{ConnectError, connect};
use crate::kube::KubeAccess;
use crate::snapshot::SnapshotRecord;
use crate::snapshot::save::{SaveError, SavedSnapshot, save_snapshot};
use crate::snapshot::tee::{self, Tee};
use crate::store::local::{LocalStore, StoreError};
use crate::store::s3::S3Error;
use crate::telemetry::metrics::{Metrics, Status};

/// Which kind of save, deciding the base name and whether retention runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveKind {
    /// Cron-triggered: base `etcd-snapshot-name`, retention applied afterwards.
    Scheduled,
    /// Requested by a user: base `name` (default `on-demand`), never pruned by the save itself.
    OnDemand,
}

/// What a save did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveOutcome {
    pub created: Vec<String>,
    /// Removed by retention after a scheduled save.
    pub deleted: Vec<String>,
    /// Parts that failed although the snapshot itself was kept.
    pub failed: Vec<FailedItem>,
}

/// What a delete did, per requested name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteReport {
    /// Names deleted from at least one place.
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
    pub failed: Vec<FailedItem>,
    /// Every copy removed.
    pub removed: Vec<RemovedCopy>,
}

/// One copy delete or retention removed (or would remove, in a dry run), and why.
pub type Removal = RemovedCopy;

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PruneReport {
    /// Names removed from at least one place, each once, oldest first.
    pub deleted: Vec<String>,
    pub removals: Vec<Removal>,
    pub failed: Vec<FailedItem>,
    /// Every snapshot retention considered, per store, newest first.
    pub verdicts: Vec<crate::api::wire::RetentionVerdict>,
}

impl PruneReport {
    fn add(&mut self, removal: Removal) {
        if !self.deleted.contains(&removal.name) {
            self.deleted.push(removal.name.clone());
        }
        self.removals.push(removal);
    }
}

/// What a listing found: every copy, plus the stores that could not be listed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub records: Vec<SnapshotRecord>,
    pub failed: Vec<FailedItem>,
}

/// What a reconcile pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcileReport {
    /// Local snapshots uploaded because S3 lacked them.
    pub uploaded: Vec<String>,
    pub failed: Vec<FailedItem>,
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
    #[error("invalid snapshot name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
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
        }
    }

    /// With Kubernetes access, for the S3 config Secret.
    pub fn with_kube(mut self, kube: KubeAccess) -> Self {
        self.kube = kube;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Takes the writer mutex only if free: the scheduler uses it to skip a tick while any save
    /// (scheduled or on-demand) is running.
    pub fn try_begin_write(&self) -> Option<OwnedMutexGuard<()>> {
        Arc::clone(&self.writer).try_lock_owned().ok()
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
        let effective = self.effective(config).await;
        let result = self.save_inner(&effective, kind).await;
        let status = if result.is_ok() {
            Status::Success
        } else {
            Status::Error
        };
        self.metrics
            .observe_save(status, started.elapsed().as_secs_f64());
        // The resources follow outside the writer lock: a slow apiserver never holds up the
        // next snapshot.
        drop(guard);
        match &result {
            Ok(outcome) => {
                let saved = outcome.created.first().map(String::as_str);
                self.mirror_resources(&effective, &outcome.deleted, saved)
                    .await;
            }
            Err(e @ (OperationError::Save { name, .. } | OperationError::Connect { name, .. })) => {
                self.record_failed_save(&effective, name, &error_chain(e))
                    .await;
                self.mirror_resources(&effective, &[], None).await;
            }
            Err(_) => self.mirror_resources(&effective, &[], None).await,
        }
        result
    }

    async fn save_inner(
        &self,
        config: &DesiredConfig,
        kind: SaveKind,
    ) -> Result<SaveOutcome, OperationError> {
        let settings = &config.snapshot;
        let store = open_store(config)?;
        let _file_lock = store.lock().await.map_err(OperationError::Store)?;
        let base = match kind {
            SaveKind::Scheduled => &settings.scheduled_name,
            SaveKind::OnDemand => &settings.on_demand_name,
        };
        let name = store.allocate_name(base, rounded_now_unix(), settings.compress);
        if config.etcd.is_embedded() {
            // The snapshot must carry the certificates of its moment (restore brings them back).
            sync_bootstrap_before_save(config).await;
        }
        // Before the stream and the upload start: both carry it (see `snapshot::hashkv`).
        let recorded = record_hashkv(config, &name.file_name()).await;
        let s3_started = Instant::now();
        let (tee, upload) = match &config.s3 {
            Some(s3) => {
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
            None => (None, None),
        };
        let local_started = Instant::now();
        let saved = self
            .stream_to_store(config, &store, &name, tee, &recorded)
            .await;
        self.metrics
            .observe_save_local(Status::of(&saved), local_started.elapsed().as_secs_f64());
        let saved = match saved {
            Ok(saved) => saved,
            Err(e) => {
                // The upload saw its feed close without `Done` and throws its parts away; give
                // it a moment to do so, without letting an unreachable S3 delay the error.
                if let Some(task) = upload {
                    let _ = tokio::time::timeout(ABANDON_GRACE, task).await;
                }
                return Err(e);
            }
        };
        tracing::info!(
            snapshot = %saved.name.file_name(),
            path = %saved.path.display(),
            size = saved.size,
            sha256 = %saved.file_sha256,
            "snapshot saved"
        );
        self.metrics.set_last_success(saved.name.unix);
        let mut outcome = SaveOutcome {
            created: vec![saved.name.file_name()],
            ..Default::default()
        };
        if let (Some(s3), Some(task)) = (&config.s3, upload) {
            let failure =
                replicate::finish_upload(&self.kube, config, s3, &saved, task.await, &recorded)
                    .await;
            let status = if failure.is_none() {
                Status::Success
            } else {
                Status::Error
            };
            self.metrics
                .observe_save_s3(status, s3_started.elapsed().as_secs_f64());
            outcome.failed.extend(failure);
        }
        if kind == SaveKind::Scheduled {
            self.apply_scheduled_retention(config, &store, base, &mut outcome)
                .await;
        }
        self.refresh_count(&store);
        Ok(outcome)
    }

    /// Retention after a scheduled save, locally and in S3. Trouble here never fails a save
    /// that already produced a good snapshot; it is reported as a failed item. S3 retention
    /// runs even when the upload failed, so a full bucket can be freed.
    async fn apply_scheduled_retention(
        &self,
        config: &DesiredConfig,
        store: &LocalStore,
        base: &str,
        outcome: &mut SaveOutcome,
    ) {
        let policy = maintain::local_policy(config);
        if !policy.keeps_all() {
            match store.prune_policy(base, &policy, false) {
                Ok(pruned) => outcome.deleted.extend(pruned.deleted),
                Err(e) => outcome.failed.push(retention_failure("retention", &e)),
            }
        }
        let Some(s3) = &config.s3 else { return };
        let policy = maintain::s3_policy(s3);
        if policy.keeps_all() {
            return;
        }
        let pruned = match replicate::connect(&self.kube, config, s3).await {
            Ok(remote) => remote.prune_policy(base, &policy, false).await,
            Err(e) => Err(e),
        };
        match pruned {
            Ok(pruned) => {
                for name in pruned.deleted {
                    if !outcome.deleted.contains(&name) {
                        outcome.deleted.push(name);
                    }
                }
            }
            Err(e) => outcome.failed.push(retention_failure("s3 retention", &e)),
        }
    }

    async fn stream_to_store(
        &self,
        config: &DesiredConfig,
        store: &LocalStore,
        name: &crate::snapshot::SnapshotName,
        tee: Option<Tee>,
        recorded: &BTreeMap<String, String>,
    ) -> Result<SavedSnapshot, OperationError> {
        let mut client = connect(&config.etcd)
            .await
            .map_err(|source| OperationError::Connect {
                name: name.file_name(),
                source,
            })?;
        let mut metadata = crate::kube::extra_metadata::read_extra_metadata(&self.kube).await;
        if !recorded.is_empty() {
            // Ours never override the ConfigMap's entries.
            let map = metadata.get_or_insert_with(BTreeMap::new);
            for (key, value) in recorded {
                map.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        save_snapshot(&mut client, store.dir(), name, metadata.as_ref(), tee)
            .await
            .map_err(|source| OperationError::Save {
                name: name.file_name(),
                source,
            })
    }
}

/// The keyspace hash to record with the snapshot about to be taken, as metadata entries; empty
/// (with a warning) when etcd cannot give it: the snapshot is still taken, and a drill says
/// that no hash was recorded.
async fn record_hashkv(config: &DesiredConfig, snapshot: &str) -> BTreeMap<String, String> {
    let recorded = match connect(&config.etcd).await {
        Ok(mut client) => crate::snapshot::hashkv::record(&mut client).await,
        Err(e) => {
            tracing::warn!(%snapshot, error = %error_chain(&e), "failed to connect to etcd for the keyspace hash; saving without it");
            return BTreeMap::new();
        }
    };
    match recorded {
        Ok(record) => {
            tracing::debug!(%snapshot, hash = record.hash, revision = record.revision, "recorded the keyspace hash");
            record.entries()
        }
        Err(e) => {
            tracing::warn!(%snapshot, error = %error_chain(&e), "failed to record the keyspace hash; saving without it");
            BTreeMap::new()
        }
    }
}

async fn sync_bootstrap_before_save(config: &DesiredConfig) {
    let Ok(token) = crate::token::existing_server_token(config) else {
        return;
    };
    if let Err(e) = crate::bootstrap::sync::sync_from_disk(config, &token).await {
        tracing::warn!(error = %error_chain(&e), "failed to store the bootstrap data in etcd before the snapshot");
    }
}

/// How long a failed save waits for its upload task to discard what it streamed.
const ABANDON_GRACE: Duration = Duration::from_secs(30);

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

/// Now in unix seconds, rounded to the nearest second as RKE2 names snapshots.
pub fn rounded_now_unix() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_millis() as i64 + 500) / 1000
}
