//! The entry points the server (`--cluster-reset`) and the `restore` command use: reset with or
//! without a snapshot, roll the last restore back, list the backups restores left.
//!
//! A reset without a snapshot keeps the member's data and only forces a new single-member
//! cluster (etcd's `--force-new-cluster`, loopback only); the data dir is copied aside first so
//! even that is reversible.

use std::path::PathBuf;

use super::checks::{expectation, member_options, refuse_unusable_setup, stop};
use super::datadir::{self, Backup, BackupKind, LIVE_DIR, rollback};
use super::flow::{RestoreOutcome, prune_backups, restore_snapshot};
use super::replay::plan_with_bucket;
use super::reset_flag::{
    decide_start, remove_reset_flag, reset_flag_exists, reset_flag_path, write_reset_flag,
};
use super::{ResetError, StartDecision, last_restore};
use crate::config::DesiredConfig;
use crate::etcd::standalone::{StandaloneEtcd, check_member};
use crate::snapshot::name::rounded_now_unix;

/// What a reset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetOutcome {
    Restored(RestoreOutcome),
    /// Membership reset in place; the data as it was is kept at `backup`.
    MembershipReset {
        backup: PathBuf,
    },
}

/// `--cluster-reset [--cluster-reset-restore-path=X] [--cluster-reset-restore-to=T]`: refuses a
/// second reset while the reset-flag exists, then resets. With a restore-to point (from the
/// configuration) the snapshot's delta chain is replayed up to it, and the snapshot may be
/// left to choose.
pub async fn cluster_reset(
    config: &DesiredConfig,
    restore_path: Option<&str>,
) -> Result<ResetOutcome, ResetError> {
    if let Some(db) = crate::datastore::select(config).sqlite_path() {
        // No etcd to find stopped: the database's own locks say whether k3s still runs.
        let _lock = server_lock(config)?;
        if config.reset.restore_to.is_some() {
            return Err(ResetError::SqlitePointInTime);
        }
        let path = restore_path.ok_or(ResetError::SqliteResetWithoutSnapshot)?;
        let token = crate::token::existing_server_token(config)?;
        crate::child::mask::remember_token(&token);
        let restored = super::sqlite::restore_sqlite(config, db, path, &token).await?;
        return Ok(ResetOutcome::Restored(restored));
    }
    refuse_unusable_setup(config)?;
    let _lock = server_lock(config)?;
    let flag = reset_flag_path(&config.data_dir);
    let restore_to = config.reset.restore_to.as_ref();
    // A point-in-time restore restores even when its snapshot is still to be chosen.
    let asked = restore_path.or(restore_to.map(|_| "(chosen for --cluster-reset-restore-to)"));
    let decision = decide_start(true, asked, reset_flag_exists(&flag)?);
    if let Some(refusal) = decision.refusal(&flag) {
        return Err(refusal.into());
    }
    if !matches!(decision, StartDecision::ResetAndRestore { .. }) {
        return reset_membership(config).await;
    }
    let point = match restore_to {
        Some(to) => Some(
            plan_with_bucket(config, restore_path, to)
                .await
                .map_err(|e| ResetError::Replay(Box::new(e)))?,
        ),
        None => None,
    };
    let path = match (&point, restore_path) {
        (Some(point), _) => point.restore_path.clone(),
        (None, Some(path)) => path.to_string(),
        (None, None) => return reset_membership(config).await,
    };
    let token = crate::token::existing_server_token(config)?;
    crate::child::mask::remember_token(&token);
    Ok(ResetOutcome::Restored(
        restore_snapshot(config, &path, point.as_ref(), &token).await?,
    ))
}

/// Copies the live data aside, then runs the member once with `--force-new-cluster` on
/// loopback, checks it is alone and healthy, and writes the reset-flag.
async fn reset_membership(config: &DesiredConfig) -> Result<ResetOutcome, ResetError> {
    refuse_unusable_setup(config)?;
    let live = config.etcd_data_dir();
    if !live.join("member").is_dir() {
        return Err(ResetError::NoData { path: live });
    }
    last_restore::remove(&config.db_dir());
    let backup = config
        .db_dir()
        .join(format!("{}{}", datadir::OLD_PREFIX, rounded_now_unix()));
    // Copied under a hidden name first: a copy cut short (disk full) must never look like a
    // complete backup that rollback would install.
    let partial = config.db_dir().join(format!(
        ".{}.partial",
        backup.file_name().unwrap_or_default().to_string_lossy()
    ));
    let copied = crate::bootstrap::backup::copy_tree(&live, &partial)
        .and_then(|()| std::fs::rename(&partial, &backup))
        .and_then(|()| crate::fsutil::sync_dir(&config.db_dir()));
    if let Err(source) = copied {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(ResetError::Io {
            action: "back up the etcd data to",
            path: backup,
            source,
        });
    }
    let made = last_restore::LastRestore {
        etcd_old: Some(backup.clone()),
        tls: None,
    };
    last_restore::record(&config.db_dir(), &made);
    tracing::info!(path = %backup.display(), "etcd data copied aside before the membership reset");
    let failed = |source| ResetError::MembershipResetFailed {
        backup: backup.clone(),
        source: Box::new(source),
    };
    let etcd = StandaloneEtcd::start(member_options(config, &live, true))
        .await
        .map_err(failed)?;
    let mut client = etcd.client();
    let checked = check_member(&mut client, &expectation(config, None)).await;
    stop(etcd).await;
    checked.map_err(failed)?;
    write_reset_flag(&reset_flag_path(&config.data_dir))?;
    prune_backups(config, &made);
    Ok(ResetOutcome::MembershipReset { backup })
}

/// What `restore --rollback` put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackOutcome {
    pub restored: PathBuf,
    /// The data the rollback replaced, kept as `etcd-failed-<unix>`.
    pub replaced: Option<PathBuf>,
    pub tls_restored: Option<PathBuf>,
}

/// Puts back what the last restore or reset replaced: the backups its record names (see
/// `last_restore`), or without a record the newest `etcd-old-*` and, when at least as recent,
/// the newest `tls-*`. The current data dir is kept as `etcd-failed-*`. Then removes the
/// reset-flag and the record. The server must be stopped.
pub fn rollback_last(config: &DesiredConfig) -> Result<RollbackOutcome, ResetError> {
    if let Some(db) = crate::datastore::select(config).sqlite_path() {
        let _lock = server_lock(config)?;
        return rollback_sqlite_last(config, db);
    }
    refuse_unusable_setup(config)?;
    let _lock = server_lock(config)?;
    let (old, tls) = rollback_sources(config)?;
    let replaced = rollback(&config.db_dir(), &old)?;
    let tls_restored = match tls {
        Some(tls) => Some(swap_tls_back(config, &tls)?),
        None => None,
    };
    last_restore::remove(&config.db_dir());
    let _ = remove_reset_flag(&reset_flag_path(&config.data_dir));
    Ok(RollbackOutcome {
        restored: config.db_dir().join(LIVE_DIR),
        replaced,
        tls_restored,
    })
}

/// `rollback_last` on a SQLite datastore: the newest `state.db-old-<unix>` set back, and the
/// newest `tls-*` backup when it is at least as recent (the restore's own).
fn rollback_sqlite_last(
    config: &DesiredConfig,
    db: &std::path::Path,
) -> Result<RollbackOutcome, ResetError> {
    let (restored, replaced, old_unix) = super::sqlite::rollback_sqlite(db)?;
    let backups = datadir::list_backups(&config.db_dir(), &config.server_dir())?;
    let tls = backups
        .iter()
        .filter(|b| b.kind == BackupKind::TlsOld && b.unix >= u64::try_from(old_unix).unwrap_or(0))
        .max_by_key(|b| (b.unix, b.seq))
        .map(|b| b.path.clone());
    let tls_restored = match tls {
        Some(tls) => Some(swap_tls_back(config, &tls)?),
        None => None,
    };
    Ok(RollbackOutcome {
        restored,
        replaced: Some(replaced),
        tls_restored,
    })
}

/// The data dir and certificates to put back: the recorded ones when there is a record,
/// otherwise the newest by name.
fn rollback_sources(config: &DesiredConfig) -> Result<(PathBuf, Option<PathBuf>), ResetError> {
    if let Some(record) = last_restore::read(&config.db_dir(), &config.server_dir()) {
        // The last run's own backups, or nothing: any other backup would be some earlier
        // state the operator did not ask for.
        let old = record
            .etcd_old
            .ok_or_else(|| ResetError::NothingToRollBack {
                dir: config.db_dir(),
            })?;
        if !old.is_dir() {
            return Err(ResetError::RecordedBackupMissing { path: old });
        }
        return Ok((old, record.tls.filter(|p| p.is_dir())));
    }
    let backups = datadir::list_backups(&config.db_dir(), &config.server_dir())?;
    let newest = |kind: BackupKind| -> Option<&Backup> {
        backups
            .iter()
            .filter(|b| b.kind == kind)
            .max_by_key(|b| (b.unix, b.seq))
    };
    let old = newest(BackupKind::EtcdOld).ok_or_else(|| ResetError::NothingToRollBack {
        dir: config.db_dir(),
    })?;
    let tls = newest(BackupKind::TlsOld).filter(|tls| tls.unix >= old.unix);
    Ok((old.path.clone(), tls.map(|t| t.path.clone())))
}

/// `tls` -> `tls-replaced-<unix>` and `cred` -> `cred-replaced-<unix>`, then the backup's
/// `.cred` -> `cred` and the backup -> `tls`.
fn swap_tls_back(config: &DesiredConfig, backup: &std::path::Path) -> Result<PathBuf, ResetError> {
    let tls = config.tls_dir();
    let io = |action: &'static str, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| ResetError::Io {
            action,
            path,
            source,
        }
    };
    let now = rounded_now_unix();
    if tls.exists() {
        let aside = config.server_dir().join(format!("tls-replaced-{now}"));
        std::fs::rename(&tls, &aside).map_err(io("move aside", &tls))?;
    }
    // The credentials copied with the certificates go back too (older backups have none).
    let cred_backup = backup.join(crate::bootstrap::backup::CRED_IN_BACKUP);
    if cred_backup.is_dir() {
        let cred = config.server_dir().join("cred");
        if cred.exists() {
            let aside = config.server_dir().join(format!("cred-replaced-{now}"));
            std::fs::rename(&cred, &aside).map_err(io("move aside", &cred))?;
        }
        std::fs::rename(&cred_backup, &cred).map_err(io("put back", &cred_backup))?;
    }
    std::fs::rename(backup, &tls).map_err(io("put back", backup))?;
    crate::fsutil::sync_dir(&config.server_dir()).map_err(io("sync", &config.server_dir()))?;
    Ok(tls)
}

/// The server lock, for the duration of a reset or rollback; refused while a server holds it.
/// On a new host (no `server` dir: no server has ever run here) there is nothing to guard, and
/// creating the dir would change a data dir a refused restore must leave as it was.
fn server_lock(config: &DesiredConfig) -> Result<Option<std::fs::File>, ResetError> {
    if !config.server_dir().is_dir() {
        return Ok(None);
    }
    let path = config.server_lock_path();
    match crate::fsutil::try_lock_exclusive(&path) {
        Ok(Some(file)) => Ok(Some(file)),
        Ok(None) => Err(ResetError::ServerRunning { lock: path }),
        Err(source) => Err(ResetError::Io {
            action: "lock",
            path,
            source,
        }),
    }
}

/// Every backup restores and resets left, oldest first.
pub fn backups(config: &DesiredConfig) -> Result<Vec<Backup>, ResetError> {
    let mut all = datadir::list_backups(&config.db_dir(), &config.server_dir())?;
    all.sort_by_key(|b| (b.unix, b.seq));
    Ok(all)
}

/// After a normal start with the reset-flag present: the reset is complete, the flag goes.
pub fn clear_reset_flag(config: &DesiredConfig) {
    match remove_reset_flag(&reset_flag_path(&config.data_dir)) {
        Ok(true) => tracing::info!("cluster reset complete; removed the reset-flag"),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %crate::errors::error_chain(&e), "failed to remove the reset-flag")
        }
    }
}

/// What to tell the operator after a reset: what moved where, RKE2's message, the peer
/// instruction, and how to undo it.
pub fn report_lines(config: &DesiredConfig, outcome: &ResetOutcome) -> Vec<String> {
    if let (Some(db), ResetOutcome::Restored(done)) =
        (crate::datastore::select(config).sqlite_path(), outcome)
    {
        return super::sqlite::report_lines(db, done);
    }
    let mut lines = Vec::new();
    match outcome {
        ResetOutcome::Restored(done) => {
            lines.push(format!(
                "Restored snapshot {} (revision {}).",
                done.restored_from.display(),
                done.revision
            ));
            if let Some(r) = &done.replayed {
                lines.push(format!(
                    "Replayed its delta chain from revision {} to revision {}: {} revisions, {} changes from {} segments, {} keyspace hashes matched.",
                    r.snapshot_revision, r.target, r.groups, r.events, r.segments, r.hashes_checked
                ));
            }
            if let Some(previous) = &done.previous {
                lines.push(format!(
                    "Pre-restore etcd database moved to {}.",
                    previous.display()
                ));
            }
            if let Some(tls) = &done.tls_backup {
                lines.push(format!(
                    "Certificates backed up to {}; {} files restored from the snapshot.",
                    tls.display(),
                    done.bootstrap_files
                ));
            }
        }
        ResetOutcome::MembershipReset { backup } => {
            lines.push(format!(
                "The etcd data as it was is kept at {}.",
                backup.display()
            ));
        }
    }
    lines.push(super::reset_flag::RESET_DONE_MESSAGE.to_string());
    lines.push(super::reset_flag::peer_instruction(&config.data_dir));
    lines.push("To undo: etcd-snapshot restore --rollback".to_string());
    lines
}
