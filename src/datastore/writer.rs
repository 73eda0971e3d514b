//! Whether another process holds a SQLite database open, as a running k3s does: a restore
//! must never swap the files under a live writer.
//!
//! SQLite in WAL mode (kine's mode) keeps a shared POSIX lock on a byte of the `-shm` file for
//! as long as a connection is open, idle or not; transactions take further locks on the
//! database file. So a non-blocking exclusive POSIX lock over the whole of `-shm` and of the
//! database file succeeds only when no other process has the database open. The locks are
//! then kept until the [`Exclusive`] is dropped: a k3s started mid-restore cannot open the
//! database (SQLite reports it busy) until the files are in place.
//!
//! Limits: POSIX locks are per process (this process must not have the database open through
//! SQLite itself, which it never does here), and a database in rollback-journal mode shows a
//! lock only while a transaction runs, so an idle writer in that mode is not seen. kine always
//! uses WAL.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, fcntl_lock};

use super::DatastoreError;

/// Exclusive POSIX locks on a database's files, released on drop.
#[derive(Debug)]
pub struct Exclusive {
    _files: Vec<File>,
}

/// The outcome of trying to lock a database's files.
#[derive(Debug)]
pub enum Holder {
    /// Nobody else has it open; the locks are held until this is dropped.
    Free(Exclusive),
    /// Another process holds a lock on this file.
    Held { file: PathBuf },
}

/// The database file and its `-shm`, the files SQLite locks.
pub fn lock_files(db: &Path) -> [PathBuf; 2] {
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    [db.to_path_buf(), PathBuf::from(shm)]
}

/// Tries to lock `db` and its `-shm` exclusively without waiting. Files that do not exist are
/// skipped (a database never opened in WAL mode has no `-shm`).
pub fn try_exclusive(db: &Path) -> Result<Holder, DatastoreError> {
    let mut files = Vec::new();
    for path in lock_files(db) {
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(DatastoreError::Io {
                    action: "open for locking",
                    path,
                    source,
                });
            }
        };
        match fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => files.push(file),
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS => {
                return Ok(Holder::Held { file: path });
            }
            Err(e) => {
                return Err(DatastoreError::Io {
                    action: "lock",
                    path,
                    source: e.into(),
                });
            }
        }
    }
    Ok(Holder::Free(Exclusive { _files: files }))
}
