//! Save, list, delete and prune: the one service behind the API, the scheduler and the
//! direct-mode CLI.
//!
//! Each call gets a fully resolved `DesiredConfig` (the caller evaluated the engine, with a
//! request layer when there is one) and runs against the stores and etcd. Writers are serialised
//! twice: an in-process mutex (so a scheduler tick can see a save is running and skip) and the
//! store's advisory lock file (so a direct-mode CLI and a server on the same node never race).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::api::wire::FailedItem;
use crate::config::DesiredConfig;
use crate::etcd::client::{ConnectError, connect};
use crate::snapshot::SnapshotRecord;
use crate::snapshot::name::validate_user_name;
use crate::snapshot::save::{SaveError, SavedSnapshot, save_snapshot};
use crate::store::local::{DeleteOutcome, LocalStore, StoreError};
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
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
    pub failed: Vec<FailedItem>,
}

/// Why an operation failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("failed to open snapshot store")]
    Store(#[source] StoreError),
    /// Already says which endpoints could not be reached; nothing to add.
    #[error(transparent)]
    Connect(ConnectError),
    #[error("failed to save snapshot {name}")]
    Save {
        name: String,
        #[source]
        source: SaveError,
    },
    #[error("invalid snapshot name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
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
}

impl Operations {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            writer: Arc::new(Mutex::new(())),
        }
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
        _guard: OwnedMutexGuard<()>,
    ) -> Result<SaveOutcome, OperationError> {
        let started = Instant::now();
        let result = self.save_inner(config, kind).await;
        let status = if result.is_ok() {
            Status::Success
        } else {
            Status::Error
        };
        self.metrics
            .observe_save(status, started.elapsed().as_secs_f64());
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
        let local_started = Instant::now();
        let saved = self.stream_to_store(config, &store, &name).await;
        let status = if saved.is_ok() {
            Status::Success
        } else {
            Status::Error
        };
        self.metrics
            .observe_save_local(status, local_started.elapsed().as_secs_f64());
        let saved = saved?;
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
        if kind == SaveKind::Scheduled && settings.retention > 0 {
            // Retention trouble never fails a save that already produced a good snapshot.
            match store.prune(base, settings.retention, false) {
                Ok(deleted) => outcome.deleted = deleted,
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "failed to apply snapshot retention");
                    outcome.failed.push(FailedItem {
                        name: "retention".into(),
                        message: error_chain(&e),
                    });
                }
            }
        }
        self.refresh_count(&store);
        Ok(outcome)
    }

    async fn stream_to_store(
        &self,
        config: &DesiredConfig,
        store: &LocalStore,
        name: &crate::snapshot::SnapshotName,
    ) -> Result<SavedSnapshot, OperationError> {
        let mut client = connect(&config.etcd)
            .await
            .map_err(OperationError::Connect)?;
        let metadata: Option<&BTreeMap<String, String>> = None;
        save_snapshot(&mut client, store.dir(), name, metadata, None)
            .await
            .map_err(|source| OperationError::Save {
                name: name.file_name(),
                source,
            })
    }

    /// Lists local snapshots.
    pub async fn list(
        &self,
        config: &DesiredConfig,
    ) -> Result<Vec<SnapshotRecord>, OperationError> {
        let started = Instant::now();
        let result =
            open_store(config).and_then(|store| store.list().map_err(OperationError::Store));
        let status = if result.is_ok() {
            Status::Success
        } else {
            Status::Error
        };
        self.metrics
            .observe_reconcile_local(status, started.elapsed().as_secs_f64());
        if let Ok(records) = &result {
            self.metrics.set_snapshot_count(records.len() as u64);
        }
        result
    }

    /// Deletes snapshots by file name. Every name is validated before anything is deleted.
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
        let _guard = self.writer.lock().await;
        let store = open_existing_store(config)?;
        let _file_lock = store.lock().await.map_err(OperationError::Store)?;
        let mut report = DeleteReport::default();
        for name in names {
            match store.delete(name) {
                Ok(DeleteOutcome::Deleted) => {
                    tracing::info!(snapshot = %name, "snapshot deleted");
                    report.deleted.push(name.clone());
                }
                Ok(DeleteOutcome::NotFound) => report.not_found.push(name.clone()),
                Err(e) => report.failed.push(FailedItem {
                    name: name.clone(),
                    message: error_chain(&e),
                }),
            }
        }
        self.refresh_count(&store);
        Ok(report)
    }

    /// Keeps the newest `retention` snapshots named `<name>-<this node>-<unix>`; with `dry_run`
    /// only reports what would go.
    pub async fn prune(
        &self,
        config: &DesiredConfig,
        dry_run: bool,
    ) -> Result<Vec<String>, OperationError> {
        let _guard = self.writer.lock().await;
        let store = open_existing_store(config)?;
        let _file_lock = store.lock().await.map_err(OperationError::Store)?;
        let settings = &config.snapshot;
        let deleted = store
            .prune(&settings.on_demand_name, settings.retention, dry_run)
            .map_err(OperationError::Store)?;
        self.refresh_count(&store);
        Ok(deleted)
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

    fn refresh_count(&self, store: &LocalStore) {
        if let Ok(records) = store.list() {
            self.metrics.set_snapshot_count(records.len() as u64);
        }
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

/// An error and all its sources joined with ": ", for logs and client-facing messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
