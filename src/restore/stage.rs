//! Staging a restore: the snapshot is restored into the staging dir and the result proven
//! (started once on loopback: one member, no alarms, the expected revision, bootstrap data that
//! opens with the token) before anything live is touched.
//!
//! Three reads of the snapshot run at once, on different cores: the restore tool, told to skip
//! its own hash pass (`--skip-hash-check`); our SHA-256 trailer check (`snapshot::verify`); and
//! the cheap revision read (`inspect::revision`, a few pages). The restore counts only when our
//! check passed and the file is the same file, unchanged, after all three; otherwise the
//! staging dir is removed and the check's error returned. A copy this restore wrote itself
//! (decrypted or extracted) was checked as it was written, so only the tool reads it then. A
//! file without a trailer is refused before any of this (`quick_check`), as before.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::flow::REVISION_BUMP;
use super::plan::RestorePlan;
use super::progress_watch::watched;
use super::replay::ReplayReport;
use super::run::{RestoreTarget, run_restore};
use super::tool::{RestoreTool, select_restore_tool};
use super::verify::{check_free_space, quick_check, verify_snapshot_file};
use super::{ResetError, RestoreError, checks};
use crate::bootstrap::BootstrapData;
use crate::config::DesiredConfig;
use crate::inspect::revision::{self, Revisions};
use crate::snapshot::name::rounded_now_unix;

/// A verified restore waiting in the staging dir.
pub(super) struct Staged {
    pub(super) snapshot: PathBuf,
    pub(super) revision: i64,
    pub(super) bootstrap: Option<BootstrapData>,
    pub(super) replayed: Option<ReplayReport>,
}

/// Restores `snapshot` into the staging dir and proves the result; `checked` says its trailer
/// was already checked as this restore wrote it. On any failure the staging dir is removed.
pub(super) async fn stage(
    config: &DesiredConfig,
    plan: &RestorePlan,
    snapshot: &Path,
    passphrase: &SecretString,
    checked: bool,
) -> Result<Staged, ResetError> {
    let file_size = std::fs::metadata(snapshot).map(|m| m.len()).unwrap_or(0);
    check_free_space(&plan.db_dir, plan.space_needed(file_size))?;
    let tool = select_restore_tool(&config.etcd.binary).await?;
    for warning in &tool.assessment.warnings {
        tracing::warn!("{warning}");
    }
    let target = target_for(config, plan, &tool);
    let bump = target.bump_revision;
    quick_check(snapshot)?;
    let before = FileStamp::of(snapshot)?;
    let name = snapshot
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let db_file = plan.staging_dir.join("member/snap/db");
    let (verified, revisions, restored) = tokio::join!(
        check_trailer(snapshot, checked),
        read_revisions(snapshot),
        watched(
            &name,
            file_size.saturating_sub(32),
            &db_file,
            run_restore(&tool, snapshot, &target)
        )
    );
    let unchanged = FileStamp::of(snapshot).is_ok_and(|after| after == before);
    let gate = verified.and_then(|()| {
        unchanged.then_some(()).ok_or_else(|| {
            ResetError::from(RestoreError::SnapshotChanged {
                path: snapshot.to_path_buf(),
            })
        })
    });
    if let Err(e) = gate {
        // The tool may have finished: its output is of a file that failed our check.
        let _ = std::fs::remove_dir_all(&plan.staging_dir);
        return Err(e);
    }
    restored?;
    let expected = expected_revision(revisions, bump);
    prove(config, plan, snapshot, expected, passphrase).await
}

/// Where and as what the tool restores: the staging dir, this node's name and peer URL, a
/// cluster token unique to this restore, the revision bump when the tool can.
pub(super) fn target_for(
    config: &DesiredConfig,
    plan: &RestorePlan,
    tool: &RestoreTool,
) -> RestoreTarget {
    RestoreTarget {
        data_dir: plan.staging_dir.clone(),
        name: config.node_name.clone(),
        peer_url: format!("https://{}", config.etcd.peer_address),
        cluster_token: format!("etcd-snapshot-restore-{}", rounded_now_unix()),
        bump_revision: tool.assessment.bump_revision.then_some(REVISION_BUMP),
        skip_hash_check: true,
    }
}

/// Starts the staged member once and checks it (`checks::prove_staged`); the staging dir is
/// removed when it fails.
pub(super) async fn prove(
    config: &DesiredConfig,
    plan: &RestorePlan,
    snapshot: &Path,
    expected: Option<i64>,
    passphrase: &SecretString,
) -> Result<Staged, ResetError> {
    match checks::prove_staged(config, &plan.staging_dir, expected, passphrase).await {
        Ok((revision, bootstrap)) => Ok(Staged {
            snapshot: snapshot.to_path_buf(),
            revision,
            bootstrap,
            replayed: None,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&plan.staging_dir);
            Err(e)
        }
    }
}

/// Our full trailer check (SHA-256 of the database against its trailer, the first page), off
/// the async threads; nothing to do for a copy checked as it was written.
async fn check_trailer(snapshot: &Path, checked: bool) -> Result<(), ResetError> {
    if checked {
        return Ok(());
    }
    let path = snapshot.to_path_buf();
    tokio::task::spawn_blocking(move || verify_snapshot_file(&path)).await??;
    Ok(())
}

/// The snapshot's revisions; None (with a warning) when they cannot be read, in which case only
/// "at least 1" is checked after staging.
async fn read_revisions(snapshot: &Path) -> Option<Revisions> {
    let path = snapshot.to_path_buf();
    tokio::task::spawn_blocking(move || revisions_or_warn(&path))
        .await
        .unwrap_or_else(|e| revisions_or_warn_about(Err(e.to_string())))
}

/// The revisions of the snapshot file at `path` (its trailer, if any, excluded); None, with a
/// warning, when they cannot be read.
pub(super) fn revisions_or_warn(path: &Path) -> Option<Revisions> {
    revisions_or_warn_about(revision::read_file(path))
}

fn revisions_or_warn_about(read: Result<Revisions, String>) -> Option<Revisions> {
    match read {
        Ok(revisions) => Some(revisions),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the snapshot's revision; checking only that the restored member has data");
            None
        }
    }
}

/// What identifies a file's content without reading it: it must be the same after the
/// parallel reads as before, or the tool and our check may have read different bytes.
#[derive(Debug, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(path: &Path) -> Result<Self, RestoreError> {
        let meta = std::fs::metadata(path).map_err(|source| RestoreError::ReadSnapshot {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// The revision the restored member must serve. Without a bump: the highest revision in the
/// file, or the last finished compaction when that is higher, at least 1 (`Revisions::served`).
/// With a bump of N, the tool writes a record at the file's highest revision + N, which is
/// then the member's revision. Pure.
pub fn expected_revision(revisions: Option<Revisions>, bump: Option<u64>) -> Option<i64> {
    let revisions = revisions?;
    let served = match bump {
        Some(n) => revisions.latest.saturating_add(n),
        None => revisions.served(),
    };
    i64::try_from(served).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revs(latest: u64, finished_compact: Option<u64>) -> Option<Revisions> {
        Some(Revisions {
            latest,
            finished_compact,
        })
    }

    #[test]
    fn expected_revision_follows_what_etcd_serves() {
        // A database without keys: etcd serves 1.
        assert_eq!(expected_revision(revs(0, None), None), Some(1));
        assert_eq!(expected_revision(revs(42, None), None), Some(42));
        assert_eq!(expected_revision(revs(42, Some(40)), None), Some(42));
        // Compacted past the last key left (the newest changes were deletions).
        assert_eq!(expected_revision(revs(3, Some(5)), None), Some(5));
        // The bump's record sits at the highest key + N, whatever was compacted.
        assert_eq!(expected_revision(revs(42, None), Some(1000)), Some(1042));
        assert_eq!(expected_revision(revs(3, Some(5)), Some(1000)), Some(1003));
        assert_eq!(expected_revision(None, Some(1000)), None);
    }

    #[test]
    fn a_rewritten_file_has_another_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, b"one").unwrap();
        let first = FileStamp::of(&path).unwrap();
        assert_eq!(FileStamp::of(&path).unwrap(), first);
        std::fs::write(&path, b"two!").unwrap();
        assert_ne!(FileStamp::of(&path).unwrap(), first);
    }
}
