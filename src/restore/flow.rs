//! The cluster-reset-with-restore sequence: everything is fetched, unpacked, verified, restored
//! into a staging dir and started once on loopback *before* the live data dir is touched; only
//! then is the live dir moved aside and the staged one put in its place.
//!
//! Pre-flight failures leave the data dir exactly as it was (the staging dir and any extracted
//! copy are removed). A failure after the swap says how to roll back. The steps themselves live
//! in the sibling files; this file owns their order and the messages an operator sees.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::datadir::{self, install_staged, move_current_aside, rollback};
use super::decrypt::{Decrypted, decrypt_snapshot_checked, decrypt_to_file};
use super::plan::{RestoreInputs, RestorePlan, SnapshotSource, WAL_ALLOWANCE, plan_restore};
use super::replay::{PointInTime, ReplayReport, Replayed};
use super::reset_flag::{reset_complete_message, reset_flag_path, write_reset_flag};
use super::stage::{Staged, stage};
use super::stage_encrypted::stage_encrypted;
use super::staging::{CreatedDirs, Extracted, remove_stale_staging};
use super::verify::check_free_space;
use super::{ResetError, checks, last_restore};
use crate::bootstrap;
use crate::config::DesiredConfig;
use crate::crypt::Fingerprint;
use crate::snapshot::encryption_record::EncryptionRecord;
use crate::snapshot::name::rounded_now_unix;
use crate::store::s3::S3Store;
use crate::store::s3::store::META_TOKEN_HASH;

/// How far a restore bumps the revision when the tool can: far beyond anything a client may
/// have watched, so no watcher ever sees a revision go backwards.
pub const REVISION_BUMP: u64 = 1_000_000_000;

/// What a finished restore did, for the final messages and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    pub restored_from: PathBuf,
    /// Where the previous live data dir went (`None` on a fresh node).
    pub previous: Option<PathBuf>,
    /// Where the previous certificates went (`None` when none were replaced).
    pub tls_backup: Option<PathBuf>,
    pub revision: i64,
    pub bootstrap_files: usize,
    /// What the point-in-time replay did, when one ran.
    pub replayed: Option<ReplayReport>,
}

/// Restores `restore_path` into the embedded etcd's data dir as a single-member cluster; with
/// `point`, its delta chain is replayed up to that point first (`replay`), and the replayed
/// member's snapshot goes through the same checks, staging and swap.
pub async fn restore_snapshot(
    config: &DesiredConfig,
    restore_path: &str,
    point: Option<&PointInTime>,
    token: &SecretString,
) -> Result<RestoreOutcome, ResetError> {
    checks::refuse_unusable_setup(config)?;
    let passphrase = bootstrap::token_password(token.expose_secret())?;
    let plan = plan_for(config, restore_path)?;
    remove_stale_staging(&plan.db_dir);
    // Dirs this restore has to create are removed again if it fails before the swap, so a
    // refused restore on a new host leaves the data dir exactly as it was.
    let created = CreatedDirs::ensure(&[&config.snapshot.dir, &plan.db_dir])?;
    let staged = async {
        // Encrypted segments no identity opens are refused before anything is fetched.
        let keys = match point {
            Some(point) => super::replay::segment_keys(config, point)
                .await
                .map_err(|e| ResetError::Replay(Box::new(e)))?,
            None => None,
        };
        let (input, object_keys) = fetch(config, &plan, token).await?;
        if plan.encrypted && !plan.compressed && point.is_none() {
            return stage_encrypted(config, &plan, &input, object_keys, &passphrase).await;
        }
        // The decrypted and extracted copies are removed whatever happens next.
        let (decrypted, extracted) = if plan.encrypted && plan.compressed {
            let extracted = extract_encrypted(config, &input, object_keys).await?;
            (None, extracted)
        } else {
            let decrypted = decrypt(config, &plan, &input, object_keys, true).await?;
            let input = decrypted.as_ref().map_or(input, |d| d.path().to_path_buf());
            let extracted = Extracted::new(&plan, &input, &config.snapshot.dir)?;
            (decrypted, extracted)
        };
        // A copy written here (decrypted database, extracted entry) was checked as it was
        // written; the operator's own plain file is checked beside the restore tool.
        let mut checked = plan.compressed || decrypted.is_some();
        // The replayed copy (in its own dir beside the staging dir) lives until staged.
        let replayed = match point {
            Some(point) => {
                let anchor = super::replay::AnchorFile {
                    path: extracted.path(),
                    checked,
                };
                Some(replay(config, &plan, anchor, point, keys).await?)
            }
            None => None,
        };
        let input = replayed
            .as_ref()
            .map_or_else(|| extracted.path().to_path_buf(), Replayed::snapshot);
        checked &= replayed.is_none();
        let staged = stage(config, &plan, &input, &passphrase, checked).await?;
        Ok(Staged {
            replayed: replayed.map(|r| r.report),
            ..staged
        })
    }
    .await;
    let staged = match staged {
        Ok(staged) => Staged {
            // Name what the operator gave (a zip, an object), not the extracted copy.
            snapshot: PathBuf::from(restore_path),
            ..staged
        },
        Err(e) => {
            created.undo();
            return Err(e);
        }
    };
    swap_in(config, &plan, staged).await
}

/// Replays `point` onto the plain snapshot file in the plan's replay dir, after checking there
/// is room for the replay member and its snapshot beside the staging copy.
async fn replay(
    config: &DesiredConfig,
    plan: &RestorePlan,
    snapshot: super::replay::AnchorFile<'_>,
    point: &PointInTime,
    keys: super::replay::SegmentKeys,
) -> Result<Replayed, ResetError> {
    let size = std::fs::metadata(snapshot.path)
        .map(|m| m.len())
        .unwrap_or(0);
    let needed = size.saturating_mul(2).saturating_add(WAL_ALLOWANCE);
    check_free_space(&plan.db_dir, needed.saturating_add(plan.space_needed(size)))?;
    tracing::info!(to = %point.to, anchor = %point.plan.anchor.file_name, "replaying the delta chain");
    super::replay::replay(config, snapshot, plan.replay_dir.clone(), point, keys)
        .await
        .map_err(|e| ResetError::Replay(Box::new(e)))
}

/// S3: checks the recorded token hash first, then downloads (verified against the recorded
/// SHA-256); also returns the key fingerprints the object's metadata names (an encrypted
/// object's). Local: the path must be an existing file.
pub(super) async fn fetch(
    config: &DesiredConfig,
    plan: &RestorePlan,
    token: &SecretString,
) -> Result<(PathBuf, Vec<Fingerprint>), ResetError> {
    match &plan.source {
        SnapshotSource::Local { path } => {
            checks::source_is_file(path)?;
            Ok((path.clone(), Vec::new()))
        }
        SnapshotSource::S3 {
            object,
            download_to,
        } => {
            let s3 = config.s3.as_ref().ok_or(ResetError::NoS3)?;
            let store = S3Store::connect(s3).await?;
            let metadata = store.object_metadata(object).await?;
            let recorded = metadata
                .get(&META_TOKEN_HASH.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default();
            checks::token_hash_matches(&recorded, token, object)?;
            let keys = EncryptionRecord::from_object_metadata(&metadata)
                .map(|r| r.recipients)
                .unwrap_or_default();
            tracing::info!(snapshot = %object, "retrieving etcd snapshot from S3");
            let path = store.download(object, &config.snapshot.dir).await?;
            debug_assert_eq!(&path, download_to);
            tracing::info!(path = %path.display(), "S3 download complete");
            Ok((path, keys))
        }
    }
}

/// An encrypted snapshot's plaintext copy in the snapshot dir (None for a plaintext snapshot).
/// A snapshot this host's identities cannot open is refused here, before anything is touched.
/// `object_keys` are the fingerprints an S3 object's metadata names, for the refusal's message
/// when no local record names them. With `check_etcd`, a plaintext that is an etcd database
/// (not a `.zip`) has its trailer checked as it is written (`decrypt_snapshot_checked`).
pub(super) async fn decrypt(
    config: &DesiredConfig,
    plan: &RestorePlan,
    input: &Path,
    object_keys: Vec<Fingerprint>,
    check_etcd: bool,
) -> Result<Option<Decrypted>, ResetError> {
    if !plan.encrypted {
        return Ok(None);
    }
    let identities = crate::kube::encryption_secret::command_identities(config)
        .await
        .map_err(ResetError::Identity)?;
    let (input, dir) = (input.to_path_buf(), config.snapshot.dir.clone());
    let check = check_etcd && !plan.compressed;
    tracing::info!(snapshot = %input.display(), "decrypting the encrypted snapshot");
    let decrypted = tokio::task::spawn_blocking(move || {
        let needed = needed_keys(&input, object_keys);
        if check {
            decrypt_snapshot_checked(&input, &dir, identities.as_ref(), &needed)
        } else {
            decrypt_to_file(&input, &dir, identities.as_ref(), &needed)
        }
    })
    .await??;
    Ok(Some(decrypted))
}

/// The database of an encrypted `.zip.age` snapshot, decrypted and extracted into the snapshot
/// dir in one pass (`unzip_encrypted`), its trailer checked as it is written; removed on drop.
/// A snapshot this host's identities cannot open is refused before anything is written.
async fn extract_encrypted(
    config: &DesiredConfig,
    input: &Path,
    object_keys: Vec<Fingerprint>,
) -> Result<Extracted, ResetError> {
    let identities = crate::kube::encryption_secret::command_identities(config)
        .await
        .map_err(ResetError::Identity)?;
    let (input, dir) = (input.to_path_buf(), config.snapshot.dir.clone());
    tracing::info!(snapshot = %input.display(), "decrypting and extracting the encrypted snapshot in one pass");
    let path = tokio::task::spawn_blocking(move || {
        let needed = needed_keys(&input, object_keys);
        super::unzip_encrypted::extract_encrypted_checked(
            &input,
            identities.as_ref(),
            &needed,
            &dir,
        )
    })
    .await??;
    Ok(Extracted::written(path))
}

/// The key fingerprints an encrypted snapshot needs, for a refusal's message: the save's
/// record names them (the age header cannot), else the S3 object's metadata.
pub(super) fn needed_keys(input: &Path, object_keys: Vec<Fingerprint>) -> Vec<Fingerprint> {
    EncryptionRecord::read_beside(input)
        .map(|r| r.recipients)
        .filter(|keys| !keys.is_empty())
        .unwrap_or(object_keys)
}

/// The point of no return: the live dir goes aside, the staged one takes its place, the
/// certificates come back from the bootstrap data, the reset-flag is written.
async fn swap_in(
    config: &DesiredConfig,
    plan: &RestorePlan,
    staged: Staged,
) -> Result<RestoreOutcome, ResetError> {
    last_restore::remove(&plan.db_dir);
    let previous = move_current_aside(&plan.db_dir)?;
    let mut made = last_restore::LastRestore {
        etcd_old: previous.clone(),
        tls: None,
    };
    last_restore::record(&plan.db_dir, &made);
    if let Some(old) = &previous {
        tracing::info!(path = %old.display(), "pre-restore etcd database moved aside");
    }
    install_or_put_back(plan, previous.as_deref())?;
    let after_swap = |step: &'static str, source: Box<dyn std::error::Error + Send + Sync>| {
        ResetError::AfterSwap {
            step,
            previous: previous.clone(),
            source,
        }
    };
    let mut tls_backup = None;
    let mut bootstrap_files = 0;
    if let Some(data) = &staged.bootstrap {
        let written =
            bootstrap::write_bootstrap(&config.server_dir(), data, true).map_err(|e| {
                after_swap(
                    "write the certificates from the bootstrap data",
                    Box::new(e),
                )
            })?;
        tls_backup = written.backup_dir;
        bootstrap_files = written.written.len();
        made.tls = tls_backup.clone();
        last_restore::record(&plan.db_dir, &made);
    }
    write_reset_flag(&reset_flag_path(&config.data_dir))
        .map_err(|e| after_swap("write the reset-flag", Box::new(e)))?;
    prune_backups(config, &made);
    tracing::info!(
        snapshot = %staged.snapshot.display(),
        revision = staged.revision,
        "{}",
        reset_complete_message(&config.data_dir)
    );
    Ok(RestoreOutcome {
        restored_from: staged.snapshot,
        previous,
        tls_backup,
        revision: staged.revision,
        bootstrap_files,
        replayed: staged.replayed,
    })
}

/// Installs the staged dir; when that fails, puts `previous` (the live dir moved aside) back.
fn install_or_put_back(plan: &RestorePlan, previous: Option<&Path>) -> Result<(), ResetError> {
    let Err(e) = install_staged(&plan.staging_dir, &plan.db_dir) else {
        return Ok(());
    };
    if let Some(old) = previous
        && let Err(rollback_error) = rollback(&plan.db_dir, old)
    {
        tracing::error!(error = %crate::errors::error_chain(&rollback_error), "failed to put the previous etcd data back");
        return Err(ResetError::InstallAndRollback {
            previous: old.to_path_buf(),
            live: plan.live_dir.clone(),
            source: Box::new(e),
        });
    }
    Err(e.into())
}

/// Keeps the newest `cluster-reset-backup-retention` of each backup kind (0 keeps all), and
/// always the backups this run made; trouble here only warns.
pub(super) fn prune_backups(config: &DesiredConfig, made: &last_restore::LastRestore) {
    let made_now: Vec<PathBuf> = made.etcd_old.iter().chain(&made.tls).cloned().collect();
    let result = datadir::list_backups(&config.db_dir(), &config.server_dir()).and_then(|all| {
        let keep = config.reset.backup_retention as usize;
        if keep == 0 {
            return Ok(Vec::new());
        }
        datadir::apply_backup_retention(&datadir::plan_backup_retention(&all, keep, &made_now))
    });
    match result {
        Ok(removed) => {
            for path in removed {
                tracing::info!(path = %path.display(), "removed an old restore backup");
            }
        }
        Err(e) => {
            tracing::warn!(error = %crate::errors::error_chain(&e), "failed to prune old restore backups")
        }
    }
}

/// The restore plan of `restore_path` under this configuration, as of now (rounded as
/// snapshot names are). Shared by the etcd and SQLite restores.
pub(super) fn plan_for(
    config: &DesiredConfig,
    restore_path: &str,
) -> Result<RestorePlan, super::RestoreError> {
    plan_restore(&RestoreInputs {
        restore_path: restore_path.to_string(),
        s3_enabled: config.s3.is_some(),
        data_dir: config.data_dir.clone(),
        snapshot_dir: config.snapshot.dir.clone(),
        now_unix: rounded_now_unix(),
    })
}
