//! Where a snapshot's bytes come from: etcd (its snapshot stream, `etcd` and `snapshot::save`)
//! or a SQLite datastore, kine's `server/db/state.db` with its `-wal` and `-shm` files, as
//! k3s and RKE2 run it on single-server clusters.
//!
//! [`choose`] is the pure decision (a configured `datastore-endpoint: sqlite://<path>`, else
//! etcd when `etcd-endpoints` is set, else SQLite when the data dir holds `state.db`, else the
//! embedded etcd as before); [`select`] feeds it the one file-system fact it needs. The SQLite
//! side: `backup` copies a live database consistently (SQLite's online backup API, while k3s
//! keeps writing), `save` streams that copy through the snapshot pipeline, `kine` checks an
//! image read-only (integrity, kine's table, per-resource counts, the bootstrap value),
//! `writer` tells whether a process holds the live database open, and `restore` installs a
//! SQLite snapshot on a stopped node.
//!
//! Sits beside `etcd` and `store`: above `config` and `snapshot`, below `inspect`, `restore`
//! and `operations`, which use it.

pub mod backup;
pub mod kine;
pub mod save;
pub mod writer;

#[cfg(test)]
mod fuzz_tests;

use std::path::{Path, PathBuf};

use crate::config::DesiredConfig;

/// The version of the SQLite library this binary carries (compiled in, not the system's).
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

/// The datastore a node's snapshots are taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datastore {
    /// etcd: the configured endpoints, or the embedded member.
    Etcd,
    /// A kine SQLite database.
    Sqlite { path: PathBuf, why: SqliteBecause },
}

/// Why SQLite was chosen, for the log and `config`-style messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteBecause {
    /// `datastore-endpoint: sqlite://...`.
    Configured,
    /// No etcd endpoint, and `<data-dir>/server/db/state.db` exists.
    Detected,
}

/// kine's database file name under `<data-dir>/server/db`.
pub const STATE_DB: &str = "state.db";

/// The SQLite database k3s/RKE2 keep in a data dir: `<data-dir>/server/db/state.db`.
pub fn default_state_db(data_dir: &Path) -> PathBuf {
    crate::layout::DataDirLayout::new(data_dir)
        .db_dir()
        .join(STATE_DB)
}

/// The datastore decision. Pure: `state_db_exists` is whether `default_state_db` exists.
pub fn choose(
    configured_sqlite: Option<&Path>,
    etcd_endpoints_set: bool,
    default_state_db: &Path,
    state_db_exists: bool,
) -> Datastore {
    if let Some(path) = configured_sqlite {
        return Datastore::Sqlite {
            path: path.to_path_buf(),
            why: SqliteBecause::Configured,
        };
    }
    if !etcd_endpoints_set && state_db_exists {
        return Datastore::Sqlite {
            path: default_state_db.to_path_buf(),
            why: SqliteBecause::Detected,
        };
    }
    Datastore::Etcd
}

/// The datastore `config` says, looking at the data dir only when nothing else decides.
pub fn select(config: &DesiredConfig) -> Datastore {
    let default = default_state_db(&config.data_dir);
    let configured = config.datastore_sqlite.as_deref();
    let endpoints_set = !config.etcd.endpoints.is_empty();
    let exists = configured.is_none() && !endpoints_set && default.is_file();
    choose(configured, endpoints_set, &default, exists)
}

impl Datastore {
    /// The SQLite database, when that is the datastore.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Datastore::Sqlite { path, .. } => Some(path),
            Datastore::Etcd => None,
        }
    }
}

/// Why a SQLite datastore operation failed. Every variant names the database or file.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    #[error("failed to open SQLite database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("failed to copy SQLite database {path} with the online backup")]
    Backup {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("failed to read SQLite database {path}")]
    Query {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("SQLite database {path} does not exist")]
    Missing { path: PathBuf },
    #[error("SQLite database {path} failed its checks, so no snapshot is made of it: {detail}")]
    Unhealthy { path: PathBuf, detail: String },
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to save snapshot {name}")]
    Save {
        name: String,
        #[source]
        source: crate::snapshot::save::SaveError,
    },
    #[error("failed to run the SQLite copy")]
    Task(#[source] tokio::task::JoinError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_datastore_is_configured_then_etcd_endpoints_then_state_db_then_embedded_etcd() {
        let default = Path::new("/data/server/db/state.db");
        let other = Path::new("/k3s/state.db");
        let sqlite = |path: &Path, why| Datastore::Sqlite {
            path: path.to_path_buf(),
            why,
        };
        use SqliteBecause::*;
        // (configured, etcd endpoints set, state.db exists) -> datastore
        for (configured, endpoints, exists, expected) in [
            (Some(other), false, false, sqlite(other, Configured)),
            (Some(other), false, true, sqlite(other, Configured)),
            (None, true, true, Datastore::Etcd),
            (None, true, false, Datastore::Etcd),
            (None, false, true, sqlite(default, Detected)),
            // A data dir without state.db keeps the embedded etcd default.
            (None, false, false, Datastore::Etcd),
        ] {
            assert_eq!(
                choose(configured, endpoints, default, exists),
                expected,
                "{configured:?} {endpoints} {exists}"
            );
        }
    }

    #[test]
    fn the_bundled_sqlite_is_recent_enough_for_the_backup_api_and_immutable_files() {
        // sqlite_schema, trusted_schema and defensive mode need 3.33 or later.
        let version = sqlite_version();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap());
        let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(major == 3 && minor >= 33, "{version}");
    }

    #[test]
    fn select_looks_for_state_db_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let flags = |pairs: &[(&str, &str)]| {
            let data = dir.path().display().to_string();
            let mut all = vec![("data-dir", data.as_str())];
            all.extend_from_slice(pairs);
            crate::config::test_support::resolve_flags(&all)
                .unwrap()
                .config
        };
        assert_eq!(select(&flags(&[])), Datastore::Etcd);
        let db = default_state_db(dir.path());
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        std::fs::write(&db, b"").unwrap();
        assert_eq!(select(&flags(&[])).sqlite_path(), Some(db.as_path()));
        let external = flags(&[("etcd-endpoints", "https://10.0.0.1:2379")]);
        assert_eq!(select(&external), Datastore::Etcd);
    }
}
