//! `verify`: restore drills of listed snapshot copies, and their verdicts recorded where users
//! look (`drill_verdicts.rs`).
//!
//! Every copy is drilled against its own bytes: the local file and the S3 object of one
//! snapshot are two drills. Drills run one at a time (the `drills` mutex, shared by the API,
//! the verify schedule and verify-after-save) and never hold the writer lock while they run, so
//! a drill never delays a save; only recording a verdict takes it, for a moment, so a verdict
//! is never written beside a snapshot a delete or prune just removed. A failed drill deletes
//! nothing.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedMutexGuard;

use super::{
    FailedItem, OperationError, Operations, VerifyReport, error_chain, open_existing_store,
};
use crate::config::DesiredConfig;
use crate::kube::encryption_secret::held_identities;
use crate::restore::drill::{DrillReport, DrillSetup, Keys, drill_local, drill_s3};
use crate::snapshot::name::validate_user_name;
use crate::snapshot::{SnapshotRecord, Storage};
use crate::store::s3::S3Store;
use crate::telemetry::progress::{Operation, reporter};

impl Operations {
    /// Drills `names` (every listed copy of each), or this node's copies when `names` is empty,
    /// one at a time after any drill already running, and records each verdict. Names are
    /// validated before anything runs.
    pub async fn verify(
        &self,
        config: &DesiredConfig,
        names: &[String],
    ) -> Result<VerifyReport, OperationError> {
        for name in names {
            validate_user_name(name).map_err(|reason| OperationError::InvalidName {
                name: name.clone(),
                reason,
            })?;
        }
        let guard = Arc::clone(&self.drills).lock_owned().await;
        self.verify_locked(config, names, guard).await
    }

    /// Waits for the drill mutex (verify-after-save queues behind a running drill).
    pub async fn begin_drill(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.drills).lock_owned().await
    }

    /// Adds `names` to the snapshots waiting for a drill after save. True when none were
    /// waiting, so the caller starts the one waiter; false when a waiter will take these too.
    pub fn queue_drill_after_save(&self, names: &[String]) -> bool {
        let mut waiting = self
            .drills_after_save
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let start_waiter = waiting.is_empty();
        waiting.extend(names.iter().cloned());
        start_waiter
    }

    /// Takes every snapshot waiting for a drill after save (the waiter, once it has the mutex).
    pub fn take_drills_after_save(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .drills_after_save
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Takes the drill mutex only if free: the verify schedule skips a tick while a drill runs.
    pub fn try_begin_drill(&self) -> Option<OwnedMutexGuard<()>> {
        Arc::clone(&self.drills).try_lock_owned().ok()
    }

    /// `verify` for a caller that holds the drill mutex.
    pub async fn verify_locked(
        &self,
        config: &DesiredConfig,
        names: &[String],
        _drill: OwnedMutexGuard<()>,
    ) -> Result<VerifyReport, OperationError> {
        let effective = self.effective(config).await;
        let (mut listing, session) = self.list_stores(&effective, None).await?;
        if let Some(store) = &session {
            // Who uploaded each S3 copy (read once per object and remembered).
            self.fill_listed_sources(store, &mut listing).await;
        }
        let mut report = VerifyReport {
            failed: listing.failed,
            ..Default::default()
        };
        let (copies, not_found) = select_copies(listing.records, names, &effective.node_name);
        report.not_found = not_found;
        let setup = self.drill_setup(&effective).await;
        for copy in &copies {
            match self
                .drill_one(&effective, &setup, copy, session.as_ref())
                .await
            {
                Ok(drilled) => report.drills.push(drilled),
                Err(message) => report.failed.push(FailedItem {
                    name: copy.location.clone(),
                    message,
                }),
            }
        }
        let (session, unrecorded) = self
            .record_verdicts(&effective, &report.drills, session)
            .await;
        report.failed.extend(unrecorded);
        let session = self.refresh_freshness(&effective, session).await;
        self.mirror_resources(&effective, &[], None, session).await;
        self.publish_drill_failures(&effective, &report.drills)
            .await;
        Ok(report)
    }

    /// Lists the stores again so the freshness gauges (newest verified copy per storage) see
    /// the verdicts just recorded; hands the S3 session back.
    async fn refresh_freshness(
        &self,
        config: &DesiredConfig,
        session: Option<S3Store>,
    ) -> Option<S3Store> {
        match self.list_stores(config, session).await {
            Ok((mut listing, Some(store))) => {
                self.fill_listed_sources(&store, &mut listing).await;
                self.set_s3_newest(&listing.records);
                Some(store)
            }
            _ => None,
        }
    }

    /// One drill, reported to `--progress` and the metrics; Err is why no verdict was reached.
    async fn drill_one(
        &self,
        config: &DesiredConfig,
        setup: &DrillSetup,
        copy: &SnapshotRecord,
        session: Option<&S3Store>,
    ) -> Result<DrillReport, String> {
        let step = reporter().start(Operation::Verify, &copy.file_name, Some(copy.size));
        let started = Instant::now();
        tracing::info!(snapshot = %copy.file_name, location = %copy.location, "restore drill started");
        let drilled = match copy.storage {
            Storage::Local => match open_existing_store(config) {
                Ok(store) => {
                    let path = store.layout().snapshot_path(&copy.file_name);
                    drill_local(setup, &path).await.map_err(|e| error_chain(&e))
                }
                Err(e) => Err(error_chain(&e)),
            },
            Storage::S3 => match session {
                Some(store) => drill_s3(setup, store, &copy.file_name)
                    .await
                    .map_err(|e| error_chain(&e)),
                None => Err("S3 could not be reached for this drill".into()),
            },
        };
        step.advance(copy.size);
        step.finish(drilled.as_ref().is_ok_and(|d| d.passed));
        let seconds = started.elapsed().as_secs_f64();
        match &drilled {
            Ok(d) => {
                self.metrics
                    .observe_drill(storage_label(d.storage), d.result.word(), seconds);
                log_drill(d);
            }
            Err(e) => {
                tracing::warn!(snapshot = %copy.file_name, location = %copy.location, error = %e, "restore drill could not run");
            }
        }
        drilled
    }
}

fn log_drill(d: &DrillReport) {
    let reason = crate::operations::drill_verdicts::reason(d);
    match d.result {
        crate::restore::drill::DrillResult::Passed => {
            tracing::info!(snapshot = %d.name, location = %d.location, seconds = d.duration_secs, "restore drill passed")
        }
        crate::restore::drill::DrillResult::Failed => {
            tracing::error!(snapshot = %d.name, location = %d.location, %reason, "restore drill failed")
        }
        crate::restore::drill::DrillResult::CannotVerify => {
            tracing::warn!(snapshot = %d.name, location = %d.location, %reason, "restore drill could not open the snapshot")
        }
    }
}

/// `local` / `s3`, the metrics' storage label.
pub(super) fn storage_label(storage: Storage) -> &'static str {
    match storage {
        Storage::Local => "local",
        Storage::S3 => "s3",
    }
}

impl Operations {
    /// The drill's settings from the configuration: the etcd binary, the data dir it must stay
    /// out of, and this host's keys for encrypted copies (the identity file's, and the
    /// encryption Secret's when one is configured, read now, as every operation reads it).
    async fn drill_setup(&self, config: &DesiredConfig) -> DrillSetup {
        let settings = &config.snapshot.encryption;
        let keys = match held_identities(Some(&self.kube), settings).await {
            Ok(Some(ids)) => Keys::Loaded(Arc::new(ids)),
            Ok(None) => Keys::None,
            Err(e) => Keys::Unreadable(error_chain(&e)),
        };
        DrillSetup {
            etcd_binary: config.etcd.binary.clone(),
            data_dir: config.data_dir.clone(),
            temp_dir: None,
            keys,
        }
    }
}

/// The copies to drill (ready ones only: a recorded failure has no bytes), and the asked names
/// no copy has. Named snapshots: every listed copy of each. No names: this node's own copies,
/// its local files and the S3 objects it uploaded, so servers sharing a bucket do not all
/// drill (and write verdicts for) every object in it. Pure.
pub(super) fn select_copies(
    records: Vec<SnapshotRecord>,
    names: &[String],
    node: &str,
) -> (Vec<SnapshotRecord>, Vec<String>) {
    let copies: Vec<SnapshotRecord> = records
        .into_iter()
        .filter(|r| r.ready)
        .filter(|r| {
            if names.is_empty() {
                r.storage == Storage::Local || r.node_name == node
            } else {
                names.contains(&r.file_name)
            }
        })
        .collect();
    let not_found = names
        .iter()
        .filter(|n| !copies.iter().any(|c| &c.file_name == *n))
        .cloned()
        .collect();
    (copies, not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ready_copy_of_a_named_snapshot_is_drilled_and_unknown_names_are_said() {
        let local = SnapshotRecord::example("a-n1-1", "file:///d/a-n1-1", "n1", Storage::Local);
        let s3 = SnapshotRecord::example("a-n1-1", "s3://b/a-n1-1", "n1", Storage::S3);
        let theirs = SnapshotRecord::example("d-n2-4", "s3://b/d-n2-4", "n2", Storage::S3);
        let failed_upload = SnapshotRecord {
            ready: false,
            ..SnapshotRecord::example("b-n1-2", "s3://b/b-n1-2", "s3", Storage::S3)
        };
        let other = SnapshotRecord::example("c-n1-3", "file:///d/c-n1-3", "n1", Storage::Local);
        let all = vec![
            local.clone(),
            s3.clone(),
            failed_upload,
            other.clone(),
            theirs.clone(),
        ];
        let names = [
            "a-n1-1".to_string(),
            "b-n1-2".to_string(),
            "d-n2-4".to_string(),
        ];
        let (copies, missing) = select_copies(all.clone(), &names, "n1");
        assert_eq!(copies, [local.clone(), s3.clone(), theirs]);
        assert_eq!(missing, ["b-n1-2"]);
        // Without names: this node's copies only (another node's upload is its own to drill).
        let (copies, missing) = select_copies(all, &[], "n1");
        assert_eq!(copies, [local, s3, other]);
        assert!(missing.is_empty());
    }

    #[test]
    fn saves_faster_than_drills_join_one_waiter() {
        let ops = Operations::new(Arc::new(crate::telemetry::metrics::Metrics::default()));
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            ops.queue_drill_after_save(&names(&["a"])),
            "the first starts the waiter"
        );
        assert!(
            !ops.queue_drill_after_save(&names(&["b"])),
            "the second joins it"
        );
        assert_eq!(ops.take_drills_after_save(), names(&["a", "b"]));
        assert!(
            ops.queue_drill_after_save(&names(&["c"])),
            "after the take, a new waiter"
        );
    }
}
