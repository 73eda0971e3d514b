//! Read-only checks of a SQLite snapshot image as kine wrote it: `PRAGMA integrity_check`, the
//! `kine` table's shape, its row count and revision, and its live keys (the latest row of each
//! name, deleted rows excluded) for per-resource counts and the bootstrap value.
//!
//! The image is hostile input (any file handed to `inspect` or `restore`), so it is opened the
//! way SQLite advises for untrusted databases: read-only and `immutable` (nothing is ever
//! created beside it: no `-wal`, no `-shm`), `trusted_schema` off, defensive mode on, cell size
//! checks on, and `kine` must be an ordinary table (a view of the same name would run the
//! file's own SQL). Queries read row by row; memory does not grow with the database.

use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::DatastoreError;

/// kine's columns, in its schema's order.
pub const KINE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "created",
    "deleted",
    "create_revision",
    "prev_revision",
    "lease",
    "value",
    "old_value",
];

/// kine's row recording the compact revision (not a key).
const COMPACT_ROW: &str = "compact_rev_key";

/// Problems `integrity_check` lists at most.
const MAX_PROBLEMS: u32 = 20;

/// What the checks of one image found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KineSummary {
    /// `integrity_check`'s answer: `["ok"]`, or up to 20 problems.
    pub integrity: Vec<String>,
    /// Why the `kine` table is not kine's, when it is not (None: it is).
    pub shape_problem: Option<String>,
    /// Rows in `kine` (every revision of every key).
    pub rows: u64,
    /// The highest row id: kine's current revision.
    pub revision: i64,
    /// Bytes per page and pages, from the database itself.
    pub page_size: u64,
    pub pages: u64,
}

impl KineSummary {
    /// True when the image passed every check.
    pub fn healthy(&self) -> bool {
        self.integrity_ok() && self.shape_problem.is_none()
    }

    pub fn integrity_ok(&self) -> bool {
        self.integrity.len() == 1 && self.integrity[0] == "ok"
    }
}

/// Opens an image read-only for checks: immutable (never writes or creates a file beside it),
/// with SQLite's hardening for untrusted databases.
pub fn open_image(path: &Path) -> Result<Connection, DatastoreError> {
    let open_err = |source| DatastoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(image_uri(path), flags).map_err(open_err)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(open_err)?;
    conn.pragma_update(None, "trusted_schema", "OFF")
        .map_err(open_err)?;
    conn.pragma_update(None, "cell_size_check", "ON")
        .map_err(open_err)?;
    Ok(conn)
}

/// `file:<path>?immutable=1`, every byte of the path but `[A-Za-z0-9/._~-]` percent-encoded
/// (SQLite decodes them back, so any file name opens as itself). Pure.
pub fn image_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'~' | b'-') {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Runs every check on the image at `path`.
pub fn summarize(path: &Path) -> Result<KineSummary, DatastoreError> {
    let conn = open_image(path)?;
    let query_err = |source| DatastoreError::Query {
        path: path.to_path_buf(),
        source,
    };
    let integrity = integrity(&conn).map_err(query_err)?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(query_err)?;
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(query_err)?;
    let shape_problem = shape_problem(&conn).map_err(query_err)?;
    let (rows, revision) = if shape_problem.is_none() {
        conn.query_row("SELECT count(*), coalesce(max(id), 0) FROM kine", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(query_err)?
    } else {
        (0, 0)
    };
    Ok(KineSummary {
        integrity,
        shape_problem,
        rows: u64::try_from(rows).unwrap_or(0),
        revision,
        page_size: u64::try_from(page_size).unwrap_or(0),
        pages: u64::try_from(pages).unwrap_or(0),
    })
}

fn integrity(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA integrity_check({MAX_PROBLEMS})"))?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Why the database's `kine` is not kine's table (missing, a view, a column missing); None
/// when it is.
fn shape_problem(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM sqlite_schema WHERE name = 'kine'",
            [],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    match kind.as_deref() {
        None => return Ok(Some("there is no kine table".into())),
        Some("table") => {}
        Some(other) => return Ok(Some(format!("kine is a {other}, not a table"))),
    }
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('kine')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    let missing: Vec<&str> = KINE_COLUMNS
        .iter()
        .copied()
        .filter(|c| !columns.iter().any(|have| have == c))
        .collect();
    Ok((!missing.is_empty())
        .then(|| format!("the kine table has no {} column", missing.join(", "))))
}

/// Calls `each(name, value_len)` for every live key: the latest row of each name that is not
/// a deletion, kine's own compact row left out. Only for an image whose shape passed.
pub fn for_each_live_key(
    conn: &Connection,
    path: &Path,
    mut each: impl FnMut(&[u8], u64),
) -> Result<(), DatastoreError> {
    let query_err = |source| DatastoreError::Query {
        path: path.to_path_buf(),
        source,
    };
    let mut stmt = conn
        .prepare(
            "SELECT CAST(k.name AS BLOB), length(CAST(k.value AS BLOB)) FROM kine k \
             JOIN (SELECT name, max(id) AS id FROM kine GROUP BY name) latest ON k.id = latest.id \
             WHERE k.deleted = 0 AND k.name != ?1",
        )
        .map_err(query_err)?;
    let mut rows = stmt.query([COMPACT_ROW]).map_err(query_err)?;
    while let Some(row) = rows.next().map_err(query_err)? {
        let name: Option<Vec<u8>> = row.get(0).map_err(query_err)?;
        let len: Option<i64> = row.get(1).map_err(query_err)?;
        let Some(name) = name else {
            continue;
        };
        each(&name, len.map_or(0, |l| u64::try_from(l).unwrap_or(0)));
    }
    Ok(())
}

/// The latest value of `name` when it is live (the bootstrap data under `/bootstrap/<hash>`)
/// and at most `max_len` bytes (a hostile image's huge value is never loaded).
pub fn live_value(
    conn: &Connection,
    path: &Path,
    name: &str,
    max_len: i64,
) -> Result<Option<Vec<u8>>, DatastoreError> {
    let query_err = |source| DatastoreError::Query {
        path: path.to_path_buf(),
        source,
    };
    let row = conn.query_row(
        "SELECT coalesce(deleted, 0), CASE WHEN length(CAST(value AS BLOB)) <= ?2 \
         THEN CAST(value AS BLOB) END FROM kine \
         WHERE name = ?1 ORDER BY id DESC LIMIT 1",
        rusqlite::params![name, max_len],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?)),
    );
    match row {
        Ok((0, value)) => Ok(Some(value.unwrap_or_default())),
        Ok(_) | Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(query_err(e)),
    }
}
