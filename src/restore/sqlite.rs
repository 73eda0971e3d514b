//! Restore onto a SQLite datastore (k3s/RKE2's kine `state.db`):
//! `--cluster-reset --cluster-reset-restore-path=<snapshot>` and `restore --rollback` when the
//! node's datastore is SQLite (`datastore::select`).
//!
//! Order, every refusal before anything in the data dir changes:
//! 1. the database's files are locked exclusively (`datastore::writer`): a process that holds
//!    the database open (k3s still running) is refused, and the locks then keep one from
//!    opening it until the restore is done;
//! 2. the snapshot is fetched, decrypted and extracted as for etcd (`flow`), then verified: a
//!    SQLite image (header and length), `integrity_check`, kine's table, and, when it holds
//!    bootstrap data under the token's key, that the token opens it;
//! 3. the snapshot is copied beside the database as a hidden temp file and fsynced;
//! 4. `state.db`, `state.db-wal`, `state.db-shm` (and a `-journal`) are renamed aside as
//!    `state.db-old-<unix>` (`-wal`, `-shm` ...: SQLite's own naming, so the old set still
//!    opens as a database), the copy is renamed to `state.db`, the dir fsynced;
//! 5. the token's bootstrap files are written from the snapshot (certificates backed up to
//!    `tls-<unix>` first), as the etcd restore does.
//!
//! `--rollback` puts the newest `state.db-old-<unix>` set back, the current set kept as
//! `state.db-failed-<unix>`, and the certificates that restore replaced.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::ResetError;
use super::flow::{RestoreOutcome, decrypt, fetch};
use super::staging::Extracted;
use crate::bootstrap::{self, BootstrapData};
use crate::config::DesiredConfig;
use crate::datastore::kine;
use crate::datastore::writer::{Exclusive, Holder, try_exclusive};
use crate::snapshot::name::rounded_now_unix;

/// The suffixes of a SQLite database's files, the database itself first.
pub const DB_SUFFIXES: [&str; 4] = ["", "-wal", "-shm", "-journal"];
/// The prefix of a set moved aside by a restore: `state.db-old-<unix>`.
pub const OLD_INFIX: &str = "-old-";
/// The prefix of a set a rollback replaced: `state.db-failed-<unix>`.
pub const FAILED_INFIX: &str = "-failed-";
/// Largest bootstrap value read from a snapshot.
const MAX_BOOTSTRAP_VALUE: i64 = 16 << 20;

/// Restores `restore_path` onto the SQLite database `db`.
pub async fn restore_sqlite(
    config: &DesiredConfig,
    db: &Path,
    restore_path: &str,
    token: &SecretString,
) -> Result<RestoreOutcome, ResetError> {
    let _locked = lock_database(db)?;
    let passphrase = bootstrap::token_password(token.expose_secret())?;
    let plan = super::flow::plan_for(config, restore_path)?;
    let (input, object_keys) = fetch(config, &plan, token).await?;
    let decrypted = decrypt(config, &plan, &input, object_keys, false).await?;
    let input = decrypted.as_ref().map_or(input, |d| d.path().to_path_buf());
    let extracted = Extracted::new(&plan, &input, &config.snapshot.dir)?;
    let image = extracted.path().to_path_buf();
    let (summary, bootstrap) = {
        let image = image.clone();
        tokio::task::spawn_blocking(move || verify_image(&image, &passphrase))
            .await
            .map_err(|e| ResetError::Io {
                action: "verify",
                path: PathBuf::from(restore_path),
                source: std::io::Error::other(e),
            })??
    };
    let previous = install(db, &image)?;
    tracing::info!(database = %db.display(), previous = ?previous, "SQLite database restored");
    let mut outcome = RestoreOutcome {
        restored_from: PathBuf::from(restore_path),
        previous,
        tls_backup: None,
        revision: summary.revision,
        bootstrap_files: 0,
        replayed: None,
    };
    if let Some(data) = &bootstrap {
        let written =
            bootstrap::write_bootstrap(&config.server_dir(), data, true).map_err(|e| {
                ResetError::AfterSwap {
                    step: "write the certificates from the bootstrap data",
                    previous: outcome.previous.clone(),
                    source: Box::new(e),
                }
            })?;
        outcome.tls_backup = written.backup_dir;
        outcome.bootstrap_files = written.written.len();
    }
    Ok(outcome)
}

/// What a SQLite restore tells the operator: what was restored, where the old database went,
/// the certificates, and what to do next (start k3s; no peers to rejoin).
pub fn report_lines(db: &Path, done: &RestoreOutcome) -> Vec<String> {
    let mut lines = vec![format!(
        "Restored snapshot {} into the SQLite datastore {} (kine revision {}).",
        done.restored_from.display(),
        db.display(),
        done.revision
    )];
    if let Some(previous) = &done.previous {
        lines.push(format!(
            "Pre-restore database moved to {} (with its -wal and -shm).",
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
    lines.push("Start k3s or RKE2 again now.".to_string());
    lines.push("To undo: etcd-snapshot restore --rollback".to_string());
    lines
}

/// The exclusive locks on `db`'s files, or the refusal naming the file another process holds.
fn lock_database(db: &Path) -> Result<Exclusive, ResetError> {
    match try_exclusive(db).map_err(|e| sqlite_error(db, &e))? {
        Holder::Free(locked) => Ok(locked),
        Holder::Held { file } => Err(ResetError::SqliteInUse {
            db: db.to_path_buf(),
            file,
        }),
    }
}

fn sqlite_error(path: &Path, error: &crate::datastore::DatastoreError) -> ResetError {
    ResetError::SqliteSnapshot {
        path: path.to_path_buf(),
        detail: crate::errors::error_chain(error),
    }
}

/// The snapshot must be a well-formed, healthy kine database; its bootstrap data, when it has
/// some for this token, must open with it.
fn verify_image(
    image: &Path,
    passphrase: &SecretString,
) -> Result<(kine::KineSummary, Option<BootstrapData>), ResetError> {
    if !crate::snapshot::verify::starts_like_sqlite(image).map_err(super::RestoreError::from)? {
        return Err(ResetError::SqliteSnapshot {
            path: image.to_path_buf(),
            detail: "it is an etcd snapshot, and this node's datastore is SQLite".into(),
        });
    }
    crate::snapshot::verify::verify_stored_snapshot(image).map_err(super::RestoreError::from)?;
    let summary = kine::summarize(image).map_err(|e| sqlite_error(image, &e))?;
    if !summary.healthy() {
        return Err(ResetError::SqliteSnapshot {
            path: image.to_path_buf(),
            detail: crate::datastore::save::unhealthy_detail(&summary),
        });
    }
    let conn = kine::open_image(image).map_err(|e| sqlite_error(image, &e))?;
    let key = bootstrap::crypto::storage_key(passphrase.expose_secret());
    let stored = kine::live_value(&conn, image, &key, MAX_BOOTSTRAP_VALUE)
        .map_err(|e| sqlite_error(image, &e))?;
    let Some(stored) = stored else {
        tracing::warn!(key = %key, "the snapshot holds no bootstrap data for this token; certificates on disk are kept as they are");
        return Ok((summary, None));
    };
    let text = String::from_utf8_lossy(&stored);
    let plain = bootstrap::crypto::decrypt(passphrase.expose_secret(), &text)
        .map_err(ResetError::WrongToken)?;
    Ok((summary, Some(BootstrapData::from_json(&plain)?)))
}

/// `<db><infix><unix><suffix>`: one file of a set moved aside.
pub fn aside_name(db: &Path, infix: &str, unix: i64, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(format!("{infix}{unix}{suffix}"));
    PathBuf::from(name)
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Copies `image` beside `db` (fsynced), moves the current set aside, renames the copy into
/// place. Returns the old database's new path (None on a node that had none).
fn install(db: &Path, image: &Path) -> Result<Option<PathBuf>, ResetError> {
    let dir = db.parent().unwrap_or(Path::new("."));
    let mut unix = rounded_now_unix();
    // Two restores in one second never share (and overwrite) a set's name.
    while aside_name(db, OLD_INFIX, unix, "").exists() {
        unix += 1;
    }
    let temp = dir.join(format!(".state.db-restore-{unix}.tmp"));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ResetError::Io {
            action,
            path,
            source,
        }
    };
    crate::fsutil::create_dir_all_mode(dir, 0o700).map_err(io("create", dir))?;
    let _ = std::fs::remove_file(&temp);
    let copied = copy_synced(image, &temp);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&temp);
        return Err(io("copy the snapshot to", &temp)(e));
    }
    let existed = db.exists();
    move_set(db, "", 0, OLD_INFIX, unix)?;
    std::fs::rename(&temp, db).map_err(io("install", db))?;
    crate::fsutil::sync_dir(dir).map_err(io("sync", dir))?;
    Ok(existed.then(|| aside_name(db, OLD_INFIX, unix, "")))
}

/// Renames each existing file of the set `<db><from_infix><from_unix>` to
/// `<db><to_infix><to_unix>` (the live set when `from_infix` is empty).
fn move_set(
    db: &Path,
    from_infix: &str,
    from_unix: i64,
    to_infix: &str,
    to_unix: i64,
) -> Result<(), ResetError> {
    for suffix in DB_SUFFIXES {
        let from = if from_infix.is_empty() {
            with_suffix(db, suffix)
        } else {
            aside_name(db, from_infix, from_unix, suffix)
        };
        let to = if to_infix.is_empty() {
            with_suffix(db, suffix)
        } else {
            aside_name(db, to_infix, to_unix, suffix)
        };
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ResetError::Io {
                    action: "move aside",
                    path: from,
                    source,
                });
            }
        }
    }
    Ok(())
}

fn copy_synced(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = std::fs::File::open(from)?;
    let mut dst = crate::fsutil::create_new(to, 0o600)?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()
}

/// The newest `state.db-old-<unix>` beside `db`: its unix seconds.
pub fn newest_old_set(db: &Path) -> Option<i64> {
    let dir = db.parent()?;
    let prefix = format!("{}{OLD_INFIX}", db.file_name()?.to_string_lossy());
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            parse_old_unix(&name, &prefix)
        })
        .max()
}

/// `<prefix><digits>` exactly (the database file of a set, not its `-wal`). Pure.
pub fn parse_old_unix(name: &str, prefix: &str) -> Option<i64> {
    let digits = name.strip_prefix(prefix)?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// `restore --rollback` on a SQLite datastore: the current set goes to
/// `state.db-failed-<unix>`, the newest `state.db-old-<unix>` set comes back. Returns (the
/// database, the replaced set's database path, the old set's unix seconds).
pub fn rollback_sqlite(db: &Path) -> Result<(PathBuf, PathBuf, i64), ResetError> {
    let _locked = lock_database(db)?;
    let dir = db.parent().unwrap_or(Path::new(".")).to_path_buf();
    let old =
        newest_old_set(db).ok_or_else(|| ResetError::NothingToRollBack { dir: dir.clone() })?;
    let now = rounded_now_unix();
    move_set(db, "", 0, FAILED_INFIX, now)?;
    move_set(db, OLD_INFIX, old, "", 0)?;
    crate::fsutil::sync_dir(&dir).map_err(|source| ResetError::Io {
        action: "sync",
        path: dir.clone(),
        source,
    })?;
    Ok((db.to_path_buf(), aside_name(db, FAILED_INFIX, now, ""), old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_sets_are_found_by_their_exact_names() {
        let p = "state.db-old-";
        assert_eq!(
            parse_old_unix("state.db-old-1700000000", p),
            Some(1_700_000_000)
        );
        for other in [
            "state.db-old-1700000000-wal",
            "state.db-old-",
            "state.db-old-12a",
            "state.db",
        ] {
            assert_eq!(parse_old_unix(other, p), None, "{other}");
        }
        let db = Path::new("/d/server/db/state.db");
        assert_eq!(
            aside_name(db, OLD_INFIX, 5, "-wal"),
            PathBuf::from("/d/server/db/state.db-old-5-wal")
        );
        assert_eq!(
            with_suffix(db, "-shm"),
            PathBuf::from("/d/server/db/state.db-shm")
        );
    }
}
