//! A consistent copy of a live SQLite database, taken with SQLite's online backup API while
//! k3s keeps writing.
//!
//! Copying `state.db` with `cp` while kine writes gives a torn copy: the main file and the
//! `-wal` change between reads, and the WAL's committed frames are not in the main file at
//! all. The backup API instead reads every page through one read transaction, WAL frames
//! included, so the copy is the database as of one commit.
//!
//! The whole copy is one `sqlite3_backup_step(-1)`: a step loop that yields between steps
//! restarts from the first page whenever another connection writes (SQLite's rule for a
//! source changed by another process), and under kine's write rate it might never finish. In
//! WAL mode the one long read transaction does not block the writer; it only keeps the WAL
//! from being checkpointed past it until the copy ends. Memory stays SQLite's page cache: the
//! destination spills pages to its file as the cache fills.
//!
//! The source is opened read-only (never a checkpoint, never a WAL deletion on close, so the
//! datastore is left as kine left it); the destination is a private file created 0600 with no
//! journal (it is a temp copy, fsynced later as part of the snapshot).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::DatastoreError;

/// How long the source's read lock may be waited for (a checkpoint or recovery holding it).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a step that reports busy or locked is retried before the copy gives up.
const STEP_PATIENCE: Duration = Duration::from_secs(60);
/// The wait between such retries.
const STEP_RETRY: Duration = Duration::from_millis(50);

/// What one copy took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Pages in the copy.
    pub pages: u64,
    /// Bytes per page.
    pub page_size: u64,
    /// Retried steps (the source was busy).
    pub retries: u32,
}

/// Copies the database at `db` into `dest`, which must not exist (created 0600). On failure
/// `dest` may be left behind; its owner removes it.
pub fn copy_database(db: &Path, dest: &Path) -> Result<Copied, DatastoreError> {
    if !db.is_file() {
        return Err(DatastoreError::Missing {
            path: db.to_path_buf(),
        });
    }
    let src = open_source(db)?;
    crate::fsutil::create_new(dest, 0o600).map_err(|e| DatastoreError::Io {
        action: "create the database copy",
        path: dest.to_path_buf(),
        source: e,
    })?;
    let mut dst = open_dest(dest)?;
    let backup_err = |source| DatastoreError::Backup {
        path: db.to_path_buf(),
        source,
    };
    let backup = Backup::new(&src, &mut dst).map_err(backup_err)?;
    let started = Instant::now();
    let mut retries = 0u32;
    loop {
        match backup.step(-1).map_err(backup_err)? {
            StepResult::Done => break,
            // More cannot follow a step of -1; busy and locked are retried for a while.
            _ if started.elapsed() < STEP_PATIENCE => {
                retries += 1;
                std::thread::sleep(STEP_RETRY);
            }
            _ => {
                return Err(backup_err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some(format!(
                        "the database stayed busy for {} s",
                        STEP_PATIENCE.as_secs()
                    )),
                )));
            }
        }
    }
    let progress = backup.progress();
    drop(backup);
    let page_size: i64 = dst
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(|source| DatastoreError::Query {
            path: dest.to_path_buf(),
            source,
        })?;
    Ok(Copied {
        pages: u64::try_from(progress.pagecount).unwrap_or(0),
        page_size: u64::try_from(page_size).unwrap_or(0),
        retries,
    })
}

/// The live database, read-only, waiting for brief locks.
fn open_source(path: &Path) -> Result<Connection, DatastoreError> {
    let open_err = |source| DatastoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    Ok(conn)
}

/// The private copy: no journal and no syncs (the snapshot made from it is fsynced).
fn open_dest(path: &Path) -> Result<Connection, DatastoreError> {
    let open_err = |source| DatastoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    // journal_mode answers with the mode it set: read as a query.
    conn.query_row("PRAGMA journal_mode = OFF", [], |_| Ok(()))
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(open_err)?;
    Ok(conn)
}
