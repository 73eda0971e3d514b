//! `server/db/last-restore`: which backups the last restore or reset made, so `restore
//! --rollback` puts back exactly those.
//!
//! Backup names carry the time they were made, but that time comes from the clock: a backup
//! named while the clock ran ahead would look like the newest and be "rolled back" to, bringing
//! back data far older than what the last restore replaced. The record names the backups
//! themselves; rollback falls back to the newest names only when there is no record (a data dir
//! from before the record existed, or one whose record was removed by hand).
//!
//! Format: one `<kind> <dir name>` line per backup (`etcd-old etcd-old-1754906881`,
//! `tls tls-1754906881`), written atomically. Only plain names are read back, so a tampered
//! record can never point rollback outside the server dir.

use std::io;
use std::path::{Path, PathBuf};

use super::ResetError;
use super::datadir::{OLD_PREFIX, TLS_PREFIX};
use crate::fsutil;

/// The record's file name inside `server/db`.
pub const RECORD: &str = "last-restore";
const MODE: u32 = 0o600;

/// The backups one restore or reset made; `None` where it made none of that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastRestore {
    /// `server/db/etcd-old-*`.
    pub etcd_old: Option<PathBuf>,
    /// `server/tls-*`.
    pub tls: Option<PathBuf>,
}

/// Records `made` in `db_dir`, replacing the previous record.
pub fn write(db_dir: &Path, made: &LastRestore) -> Result<(), ResetError> {
    let name = |p: &Option<PathBuf>| {
        p.as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    };
    let mut text = String::new();
    if let Some(old) = name(&made.etcd_old) {
        text.push_str(&format!("etcd-old {old}\n"));
    }
    if let Some(tls) = name(&made.tls) {
        text.push_str(&format!("tls {tls}\n"));
    }
    let path = db_dir.join(RECORD);
    fsutil::write_atomic(&path, text.as_bytes(), MODE).map_err(|source| ResetError::Io {
        action: "record the backups made in",
        path,
        source,
    })
}

/// The last record, as paths (`etcd-old-*` under `db_dir`, `tls-*` under `server_dir`);
/// `None` when there is none or it cannot be read (rollback then falls back to names).
pub fn read(db_dir: &Path, server_dir: &Path) -> Option<LastRestore> {
    let text = match std::fs::read_to_string(db_dir.join(RECORD)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(error = %e, "failed to read the last restore's record; rolling back to the newest backups by name");
            return None;
        }
    };
    Some(parse(&text, db_dir, server_dir))
}

/// Removes the record: before a restore or reset makes its first backup (a failure after that
/// point must never leave an older run's record for rollback to follow), and after a rollback
/// used it. A missing record is fine.
pub fn remove(db_dir: &Path) {
    let _ = std::fs::remove_file(db_dir.join(RECORD));
}

/// Records `made`, as soon as each backup exists. When the record cannot be written it is
/// removed (rollback then goes by backup names) and the failure is logged, since the restore
/// itself can go on.
pub fn record(db_dir: &Path, made: &LastRestore) {
    if let Err(e) = write(db_dir, made) {
        remove(db_dir);
        tracing::warn!(error = %crate::errors::error_chain(&e), "failed to record the backups this restore made; a rollback will go by backup names");
    }
}

/// Pure: the record's lines as paths, ignoring anything that is not a plain backup name.
fn parse(text: &str, db_dir: &Path, server_dir: &Path) -> LastRestore {
    let mut record = LastRestore::default();
    for line in text.lines() {
        let Some((kind, name)) = line.split_once(' ') else {
            continue;
        };
        let plain = !name.is_empty() && !name.contains('/') && !name.contains("..");
        match kind {
            "etcd-old" if plain && name.starts_with(OLD_PREFIX) => {
                record.etcd_old = Some(db_dir.join(name))
            }
            "tls" if plain && name.starts_with(TLS_PREFIX) => {
                record.tls = Some(server_dir.join(name))
            }
            _ => {}
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_only_plain_names_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (db, server) = (dir.path().join("db"), dir.path().to_path_buf());
        std::fs::create_dir(&db).unwrap();
        assert_eq!(read(&db, &server), None);
        let made = LastRestore {
            etcd_old: Some(db.join("etcd-old-1754906881")),
            tls: Some(server.join("tls-1754906881")),
        };
        write(&db, &made).unwrap();
        assert_eq!(read(&db, &server), Some(made));
        let only_data = LastRestore {
            etcd_old: Some(db.join("etcd-old-1754906999-1")),
            tls: None,
        };
        write(&db, &only_data).unwrap();
        assert_eq!(read(&db, &server), Some(only_data));
        remove(&db);
        assert_eq!(read(&db, &server), None);

        let tampered = "etcd-old ../../etc\ntls /etc/ssl\netcd-old etcd\ntls tls\nnoise\n";
        assert_eq!(parse(tampered, &db, &server), LastRestore::default());
    }
}
