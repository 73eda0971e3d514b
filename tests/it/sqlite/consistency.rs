//! Evidence that a SQLite snapshot is consistent while k3s writes: a writer thread commits
//! kine rows in WAL mode as fast as it can (batches of rows per transaction, checkpointing the
//! WAL as it goes, as kine's SQLite does) while the real binary takes snapshots. Every row's
//! content is a function of its id and the writer logs each commit's highest id, so a snapshot
//! equals the writer's state at some commit exactly when its highest id is a logged commit, it
//! holds every id up to it, and every row is the one the writer wrote.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::save::save_ok;
use super::{open_kine, state_db};
use crate::support::{snapshot_dir, snapshot_files, wait_for};

/// Rows per transaction.
const BATCH: i64 = 25;

/// The row the writer writes with id `id`: its name, whether it is a deletion, its value.
fn row_for(id: i64) -> (String, bool, Vec<u8>) {
    let name = format!("/registry/pods/ns{}/p{}", id % 7, id % 500);
    let value = (0..200).map(|i| ((id * 31 + i) % 251) as u8).collect();
    (name, id % 11 == 0, value)
}

/// The writer: commits batches until `stop`, logging each commit's highest id.
fn write_until(db: &Path, stop: &AtomicBool, log: &Mutex<Vec<i64>>) {
    let conn = open_kine(db);
    let mut next = 1i64;
    let mut commits = 0u64;
    while !stop.load(Ordering::Relaxed) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for _ in 0..BATCH {
            let (name, deleted, value) = row_for(next);
            conn.execute(
                "INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) \
                 VALUES (?1, ?2, 0, ?3, 0, ?1, 0, ?4, NULL)",
                rusqlite::params![next, name, i64::from(deleted), value],
            )
            .unwrap();
            next += 1;
        }
        conn.execute_batch("COMMIT").unwrap();
        log.lock().unwrap().push(next - 1);
        commits += 1;
        // Move the WAL's frames into the database file while snapshots run (a reader may
        // keep a checkpoint from finishing; that is allowed).
        if commits.is_multiple_of(40) {
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }
}

/// Checks one snapshot against the writer's log; returns its highest id.
fn check_snapshot(path: &Path, committed: &[i64]) -> i64 {
    let uri = format!("file:{}?immutable=1", path.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(uri, flags).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "{}", path.display());
    let (count, max): (i64, i64) = conn
        .query_row("SELECT count(*), coalesce(max(id), 0) FROM kine", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(
        committed.binary_search(&max).is_ok(),
        "{}: highest id {max} is not a commit the writer logged",
        path.display()
    );
    assert_eq!(
        count,
        max,
        "{}: rows missing below the highest id",
        path.display()
    );
    let mut stmt = conn
        .prepare("SELECT id, name, deleted, value FROM kine ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, name, deleted, value) = row.unwrap();
        let (want_name, want_deleted, want_value) = row_for(id);
        assert!(
            name == want_name && (deleted == 1) == want_deleted && value == want_value,
            "{}: row {id} is not the row the writer wrote",
            path.display()
        );
    }
    max
}

#[test]
fn snapshots_under_a_busy_writer_each_equal_one_committed_state() {
    let data = tempfile::tempdir().unwrap();
    let db = state_db(data.path());
    drop(open_kine(&db));
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (db, stop, log) = (db.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || write_until(&db, &stop, &log))
    };
    let started = Instant::now();
    let committed = || log.lock().unwrap().last().copied().unwrap_or(0);
    wait_for("the writer's first rows", Duration::from_secs(30), || {
        committed() > 5_000
    });
    let mut wal_sizes = Vec::new();
    for _ in 0..4 {
        let before = committed();
        wal_sizes.push(std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len()));
        save_ok(&[], data.path());
        assert!(
            committed() > before,
            "the writer made no progress during a save"
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let rows = committed();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "writer: {rows} rows in {secs:.1} s ({:.0} rows/s) across 4 saves",
        rows as f64 / secs
    );
    assert!(
        wal_sizes.iter().any(|&s| s > 0),
        "the WAL was never in use: {wal_sizes:?}"
    );
    let committed = log.lock().unwrap().clone();
    let dir = snapshot_dir(data.path());
    let files = snapshot_files(&dir);
    assert_eq!(files.len(), 4, "{files:?}");
    let maxes: Vec<i64> = files
        .iter()
        .map(|f| check_snapshot(&dir.join(f), &committed))
        .collect();
    assert!(maxes.windows(2).all(|w| w[0] <= w[1]), "{maxes:?}");
    eprintln!("snapshot revisions: {maxes:?}");
}
