//! Where a snapshot's bytes come from: etcd, or a SQLite datastore (k3s/RKE2's kine
//! `server/db/state.db`), which is read with the SQLite library linked into this binary.

/// The version of the SQLite library this binary carries (compiled in, not the system's).
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_sqlite_is_recent_enough_for_the_backup_api_and_immutable_files() {
        // sqlite_schema, trusted_schema and defensive mode need 3.33 or later.
        let version = super::sqlite_version();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap());
        let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(major == 3 && minor >= 33, "{version}");
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut copy = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let backup = rusqlite::backup::Backup::new(&conn, &mut copy).unwrap();
        assert_eq!(backup.step(-1).unwrap(), rusqlite::backup::StepResult::Done);
        drop(backup);
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
}
