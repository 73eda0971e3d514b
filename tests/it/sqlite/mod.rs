//! SQLite datastores (k3s/RKE2's kine `state.db`): snapshots taken with the real binary from a
//! kine-schema database in WAL mode, checked with SQLite itself (rusqlite, and the `sqlite3`
//! CLI where a tool we did not write should agree), `inspect`, consistency under a busy
//! writer, kill -9 mid-save, and restore (refused while a writer holds the database).

mod consistency;
mod lifecycle;
mod restore;
mod save;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// kine's SQLite schema (its table and indexes, as kine creates them).
pub const KINE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name INTEGER,
    created INTEGER,
    deleted INTEGER,
    create_revision INTEGER,
    prev_revision INTEGER,
    lease INTEGER,
    value BLOB,
    old_value BLOB
);
CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name);
CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name, id);
CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id, deleted);
CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision);
CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision);
";

/// `<data-dir>/server/db/state.db`.
pub fn state_db(data_dir: &Path) -> PathBuf {
    data_dir.join("server/db/state.db")
}

/// Opens (creating) a kine database in WAL mode, as kine opens it.
pub fn open_kine(path: &Path) -> Connection {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    conn.execute_batch(KINE_SCHEMA).unwrap();
    conn
}

/// Appends a revision of `name` the way kine does (create, update or delete row).
pub fn put(conn: &Connection, name: &str, value: &[u8], deleted: bool) {
    let prev: i64 = conn
        .query_row(
            "SELECT coalesce(max(id), 0) FROM kine WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value) \
         VALUES (?1, ?2, ?3, 0, ?4, 0, ?5, NULL)",
        rusqlite::params![name, i64::from(prev == 0), i64::from(deleted), prev, value],
    )
    .unwrap();
}

/// A small kine database at `<data-dir>/server/db/state.db`: 3 pods (one later deleted, one
/// updated), 2 configmaps, 1 deployment; returns nothing open (the connection is closed).
pub fn small_cluster(data_dir: &Path) {
    let conn = open_kine(&state_db(data_dir));
    for (name, value) in [
        ("/registry/pods/default/a", "pod-a"),
        ("/registry/pods/default/b", "pod-b"),
        ("/registry/pods/default/c", "pod-c"),
        ("/registry/configmaps/default/x", "cm-x"),
        ("/registry/configmaps/default/y", "cm-y"),
        ("/registry/deployments/default/d", "dep-d"),
    ] {
        put(&conn, name, value.as_bytes(), false);
    }
    put(&conn, "/registry/pods/default/a", b"pod-a-v2", false);
    put(&conn, "/registry/pods/default/c", b"", true);
}

/// Every live key and its value in a live kine database (the latest row of each name, not
/// deleted), its WAL included.
pub fn live_keys(path: &Path) -> Vec<(String, Vec<u8>)> {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    keys_of(&conn)
}

/// [`live_keys`] of a snapshot file, opened immutable: nothing is created beside it.
pub fn snapshot_keys(path: &Path) -> Vec<(String, Vec<u8>)> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    let uri = format!("file:{}?immutable=1", path.display());
    keys_of(&Connection::open_with_flags(uri, flags).unwrap())
}

fn keys_of(conn: &Connection) -> Vec<(String, Vec<u8>)> {
    let mut stmt = conn
        .prepare(
            "SELECT k.name, k.value FROM kine k JOIN (SELECT name, max(id) AS id FROM kine GROUP BY name) l \
             ON k.id = l.id WHERE k.deleted = 0 ORDER BY k.name",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default(),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The one snapshot file in the default snapshot dir.
pub fn only_snapshot(data_dir: &Path) -> PathBuf {
    let dir = crate::support::snapshot_dir(data_dir);
    let files = crate::support::snapshot_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    dir.join(&files[0])
}

/// `PRAGMA integrity_check` through the real `sqlite3` CLI; None when it is missing locally.
pub fn sqlite3_integrity(path: &Path) -> Option<String> {
    let sqlite3 = crate::support::require_binary("sqlite3")?;
    // immutable: nothing (no -shm) is created beside the snapshot.
    let out = std::process::Command::new(sqlite3)
        .arg(format!("file:{}?immutable=1", path.display()))
        .arg("PRAGMA integrity_check;")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
