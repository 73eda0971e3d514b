//! Swapping the member's data dir: moving the live `server/db/etcd` aside, installing a
//! restored one, rolling back, and keeping the number of old copies bounded.
//!
//! Every move is a rename that never replaces an existing path, followed by an fsync of the
//! parent. Old data is only ever deleted by retention, and never the newest copy of a kind. It
//! does not decide when to swap (the restore flow does) and does not stop etcd.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::RestoreError;
use crate::fsutil;

/// The live member dir's name inside `server/db`.
pub const LIVE_DIR: &str = "etcd";
/// `server/db/etcd-old-<unix>`: a data dir moved aside before a restore.
pub const OLD_PREFIX: &str = "etcd-old-";
/// `server/db/etcd-failed-<unix>`: a restored dir that was rolled back.
pub const FAILED_PREFIX: &str = "etcd-failed-";
/// `server/tls-<unix>`: certificates replaced by a bootstrap-data reconcile.
pub const TLS_PREFIX: &str = "tls-";

/// Moves `<db_dir>/etcd` to `<db_dir>/etcd-old-<unix>` and returns the new path; `None` when
/// there is no live dir. A second move within the same second gets `-1`, `-2`, ... appended.
pub fn move_current_aside(db_dir: &Path) -> Result<Option<PathBuf>, RestoreError> {
    let live = db_dir.join(LIVE_DIR);
    if std::fs::symlink_metadata(&live).is_err() {
        return Ok(None);
    }
    move_to_unique(&live, db_dir, OLD_PREFIX).map(Some)
}

/// Renames the finished staging dir to `<db_dir>/etcd` (which must not exist) and returns it.
pub fn install_staged(staging: &Path, db_dir: &Path) -> Result<PathBuf, RestoreError> {
    let live = db_dir.join(LIVE_DIR);
    rename_no_replace(staging, &live).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            RestoreError::DestinationExists { dest: live.clone() }
        } else {
            RestoreError::Move {
                from: staging.to_path_buf(),
                to: live.clone(),
                source,
            }
        }
    })?;
    sync(db_dir, staging, &live)?;
    Ok(live)
}

/// Puts `old` back as `<db_dir>/etcd`. A live dir that is there (the failed restore) is kept as
/// `<db_dir>/etcd-failed-<unix>`, whose path is returned.
pub fn rollback(db_dir: &Path, old: &Path) -> Result<Option<PathBuf>, RestoreError> {
    let live = db_dir.join(LIVE_DIR);
    let failed = if std::fs::symlink_metadata(&live).is_ok() {
        Some(move_to_unique(&live, db_dir, FAILED_PREFIX)?)
    } else {
        None
    };
    install_staged(old, db_dir)?;
    Ok(failed)
}

/// Renames `from` to `<dir>/<prefix><unix>[-n]`, the first such name that is free.
fn move_to_unique(from: &Path, dir: &Path, prefix: &str) -> Result<PathBuf, RestoreError> {
    let unix = now_unix();
    for n in 0u32.. {
        let name = match n {
            0 => format!("{prefix}{unix}"),
            n => format!("{prefix}{unix}-{n}"),
        };
        let to = dir.join(name);
        match rename_no_replace(from, &to) {
            Ok(()) => {
                sync(dir, from, &to)?;
                return Ok(to);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(RestoreError::Move {
                    from: from.to_path_buf(),
                    to,
                    source,
                });
            }
        }
    }
    unreachable!("u32 names run out before a directory fills")
}

/// `rename` that fails with `AlreadyExists` instead of replacing `to` (a plain rename would
/// silently replace an empty directory). Falls back to check-then-rename where the file system
/// has no `RENAME_NOREPLACE`; callers hold the operation lock, so that race has no opponent.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::EXIST => Err(io::ErrorKind::AlreadyExists.into()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            std::fs::rename(from, to)
        }
        Err(e) => Err(e.into()),
    }
}

/// fsyncs the directory holding both names so the rename survives a crash.
fn sync(dir: &Path, from: &Path, to: &Path) -> Result<(), RestoreError> {
    fsutil::sync_dir(dir).map_err(|source| RestoreError::Move {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Which kind of old copy a backup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackupKind {
    /// `server/db/etcd-old-<unix>`.
    EtcdOld,
    /// `server/tls-<unix>`.
    TlsOld,
}

/// An old copy kept on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub kind: BackupKind,
    /// When it was moved aside (from its name).
    pub unix: u64,
    /// Same-second tiebreaker from the name's `-n` suffix (0 without one).
    pub seq: u32,
    /// Bytes of all regular files inside.
    pub size: u64,
}

/// Parses `<prefix><unix>` or `<prefix><unix>-<n>`. Pure.
pub fn parse_backup_name(name: &str, prefix: &str) -> Option<(u64, u32)> {
    let rest = name.strip_prefix(prefix)?;
    let (unix, seq) = match rest.split_once('-') {
        Some((unix, seq)) => (unix, digits(seq)?),
        None => (rest, 0),
    };
    Some((digits(unix)?, seq))
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Lists `etcd-old-*` dirs in `db_dir` and `tls-*` dirs in `server_dir` (missing dirs count as
/// empty), oldest first within each kind.
pub fn list_backups(db_dir: &Path, server_dir: &Path) -> Result<Vec<Backup>, RestoreError> {
    let mut backups = scan(db_dir, OLD_PREFIX, BackupKind::EtcdOld)?;
    backups.extend(scan(server_dir, TLS_PREFIX, BackupKind::TlsOld)?);
    backups.sort_by_key(|b| (b.kind, b.unix, b.seq));
    Ok(backups)
}

fn scan(dir: &Path, prefix: &str, kind: BackupKind) -> Result<Vec<Backup>, RestoreError> {
    let err = |source| RestoreError::ListBackups {
        dir: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let Some((unix, seq)) = name.to_str().and_then(|n| parse_backup_name(n, prefix)) else {
            continue;
        };
        if !entry.file_type().map_err(err)?.is_dir() {
            continue;
        }
        let path = entry.path();
        let size = dir_size(&path).map_err(err)?;
        found.push(Backup {
            path,
            kind,
            unix,
            seq,
            size,
        });
    }
    Ok(found)
}

/// Sum of regular file sizes under `dir`, not following symlinks.
fn dir_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

/// The backups to delete so that at most `keep` of each kind remain. Pure.
///
/// `made_now` (the backups the running restore or reset just made) are always kept and count
/// first: they are the only way back from it, and the times in backup names come from the
/// clock, which may have been wrong when an older backup was named (one from a clock running
/// ahead would otherwise look newest and outlive them). The rest are ranked by the time in
/// their names, newest first. The newest of each kind is always kept, even with `keep == 0`.
pub fn plan_backup_retention(
    backups: &[Backup],
    keep: usize,
    made_now: &[PathBuf],
) -> Vec<PathBuf> {
    let keep = keep.max(1);
    let mut doomed = Vec::new();
    for kind in [BackupKind::EtcdOld, BackupKind::TlsOld] {
        let mut of_kind: Vec<&Backup> = backups.iter().filter(|b| b.kind == kind).collect();
        // Made now first, then newest first.
        of_kind.sort_by_key(|b| {
            (
                !made_now.contains(&b.path),
                std::cmp::Reverse((b.unix, b.seq)),
            )
        });
        let made = of_kind
            .iter()
            .filter(|b| made_now.contains(&b.path))
            .count();
        doomed.extend(
            of_kind
                .into_iter()
                .skip(keep.max(made))
                .map(|b| b.path.clone()),
        );
    }
    doomed
}

/// Deletes the planned backups and returns them; stops at the first one that cannot be
/// removed (the rest stay for the next run).
pub fn apply_backup_retention(doomed: &[PathBuf]) -> Result<Vec<PathBuf>, RestoreError> {
    let mut removed = Vec::new();
    for path in doomed {
        std::fs::remove_dir_all(path).map_err(|source| RestoreError::RemoveBackup {
            path: path.clone(),
            source,
        })?;
        tracing::info!(path = %path.display(), "removed old backup");
        removed.push(path.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(kind: BackupKind, unix: u64, seq: u32) -> Backup {
        Backup {
            path: PathBuf::from(format!("/b/{kind:?}-{unix}-{seq}")),
            kind,
            unix,
            seq,
            size: 0,
        }
    }

    #[test]
    fn parses_backup_names() {
        assert_eq!(
            parse_backup_name("etcd-old-1700000000", OLD_PREFIX),
            Some((1_700_000_000, 0))
        );
        assert_eq!(
            parse_backup_name("etcd-old-1700000000-2", OLD_PREFIX),
            Some((1_700_000_000, 2))
        );
        assert_eq!(parse_backup_name("tls-17", TLS_PREFIX), Some((17, 0)));
        for bad in [
            "etcd-old-",
            "etcd-old-x",
            "etcd-old-1-",
            "etcd-old-1-2-3",
            "etcd",
            "etcd-old--1",
        ] {
            assert_eq!(parse_backup_name(bad, OLD_PREFIX), None, "{bad}");
        }
    }

    #[test]
    fn retention_keeps_the_newest_per_kind() {
        use BackupKind::*;
        let all = vec![
            backup(EtcdOld, 10, 0),
            backup(EtcdOld, 30, 0),
            backup(EtcdOld, 20, 0),
            backup(EtcdOld, 30, 1),
            backup(EtcdOld, 5, 0),
            backup(TlsOld, 1, 0),
            backup(TlsOld, 2, 0),
        ];
        let mut doomed = plan_backup_retention(&all, 3, &[]);
        doomed.sort();
        assert_eq!(doomed, [all[0].path.clone(), all[4].path.clone()]);
        let doomed = plan_backup_retention(&all, 0, &[]);
        assert_eq!(doomed.len(), 5);
        assert!(!doomed.contains(&all[3].path) && !doomed.contains(&all[6].path));
        assert!(plan_backup_retention(&all, 10, &[]).is_empty());
    }

    #[test]
    fn backups_made_now_outlive_older_ones_named_by_a_clock_running_ahead() {
        use BackupKind::*;
        // 2000000000 was named while the clock ran years ahead; 1700000000 is this restore's.
        let all = vec![
            backup(EtcdOld, 2_000_000_000, 0),
            backup(EtcdOld, 1_600_000_000, 0),
            backup(EtcdOld, 1_700_000_000, 0),
            backup(TlsOld, 2_000_000_000, 0),
            backup(TlsOld, 1_700_000_000, 0),
        ];
        let made_now = [all[2].path.clone(), all[4].path.clone()];
        let mut doomed = plan_backup_retention(&all, 1, &made_now);
        doomed.sort();
        let mut want = vec![
            all[0].path.clone(),
            all[1].path.clone(),
            all[3].path.clone(),
        ];
        want.sort();
        assert_eq!(doomed, want);
        // With room for two, the next is the newest by name.
        let doomed = plan_backup_retention(&all, 2, &made_now);
        assert_eq!(doomed, [all[1].path.clone()]);
    }

    #[test]
    fn move_aside_install_and_list() {
        let root = tempfile::tempdir().unwrap();
        let (server, db) = (root.path().join("server"), root.path().join("server/db"));
        std::fs::create_dir_all(db.join("etcd/member")).unwrap();
        std::fs::write(db.join("etcd/member/x"), b"12345").unwrap();
        let first = move_current_aside(&db).unwrap().unwrap();
        assert!(!db.join("etcd").exists());
        assert_eq!(move_current_aside(&db).unwrap(), None);
        std::fs::create_dir_all(db.join("etcd")).unwrap();
        let second = move_current_aside(&db).unwrap().unwrap();
        assert_ne!(first, second);
        std::fs::create_dir_all(server.join("tls-5")).unwrap();
        std::fs::create_dir_all(db.join("staging")).unwrap();
        std::fs::create_dir_all(db.join("etcd")).unwrap();
        let err = install_staged(&db.join("staging"), &db).unwrap_err();
        assert!(
            matches!(err, RestoreError::DestinationExists { .. }),
            "{err}"
        );
        std::fs::remove_dir(db.join("etcd")).unwrap();
        assert_eq!(
            install_staged(&db.join("staging"), &db).unwrap(),
            db.join("etcd")
        );
        let backups = list_backups(&db, &server).unwrap();
        let kinds: Vec<_> = backups.iter().map(|b| (b.kind, b.size)).collect();
        assert_eq!(
            kinds,
            [
                (BackupKind::EtcdOld, 5),
                (BackupKind::EtcdOld, 0),
                (BackupKind::TlsOld, 0)
            ]
        );
        assert_eq!(backups[0].path, first);
    }
}
