//! The bootstrap file table (RKE2's Go field names and paths under `<data-dir>/server`) and the
//! two disk operations on it: read the present files, and write stored files back.
//!
//! Paths come only from the table, never from the data: a field name the table does not know
//! is skipped with a warning. Deciding *whether* to overwrite disk (the reconcile rules) is the
//! caller's; this file writes what it is given.

use std::fs::{File, FileTimes};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use super::BootstrapError;
use super::backup::backup_tls;
use super::codec::{BootstrapData, BootstrapFile};
use crate::fsutil;

/// One bootstrap file: its Go field name in k3s's `ControlRuntimeBootstrap` (the JSON key) and
/// its path relative to `<data-dir>/server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapFileSpec {
    pub field: &'static str,
    pub path: &'static str,
}

const fn spec(field: &'static str, path: &'static str) -> BootstrapFileSpec {
    BootstrapFileSpec { field, path }
}

/// Every bootstrap file, in k3s's field order (which is also the JSON order we write).
pub const BOOTSTRAP_FILES: &[BootstrapFileSpec] = &[
    spec("ETCDServerCA", "tls/etcd/server-ca.crt"),
    spec("ETCDServerCAKey", "tls/etcd/server-ca.key"),
    spec("ETCDPeerCA", "tls/etcd/peer-ca.crt"),
    spec("ETCDPeerCAKey", "tls/etcd/peer-ca.key"),
    spec("ServerCA", "tls/server-ca.crt"),
    spec("ServerCAKey", "tls/server-ca.key"),
    spec("ClientCA", "tls/client-ca.crt"),
    spec("ClientCAKey", "tls/client-ca.key"),
    spec("ServiceKey", "tls/service.key"),
    spec("PasswdFile", "cred/passwd"),
    spec("RequestHeaderCA", "tls/request-header-ca.crt"),
    spec("RequestHeaderCAKey", "tls/request-header-ca.key"),
    spec("IPSECKey", "cred/ipsec.psk"),
    spec("EncryptionConfig", "cred/encryption-config.json"),
    spec("EncryptionHash", "cred/encryption-state.json"),
];

/// Mode of written bootstrap files and of directories created for them (RKE2's).
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// The table entry for a JSON field name.
pub fn spec_for(field: &str) -> Option<&'static BootstrapFileSpec> {
    BOOTSTRAP_FILES.iter().find(|spec| spec.field == field)
}

/// What `write_bootstrap` did, for the caller's log lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The `tls-<unix>` copy made before writing, if one was asked for and `tls` existed.
    pub backup_dir: Option<PathBuf>,
    /// Files written, in table order.
    pub written: Vec<PathBuf>,
    /// Field names in the data that the table does not know (not written).
    pub ignored: Vec<String>,
}

/// Reads the bootstrap files present under `server_dir` (missing ones are skipped, as k3s does),
/// each with its mtime.
pub fn read_bootstrap(server_dir: &Path) -> Result<BootstrapData, BootstrapError> {
    let mut data = BootstrapData::default();
    for spec in BOOTSTRAP_FILES {
        let path = server_dir.join(spec.path);
        match read_file(&path) {
            Ok(file) => {
                data.files.insert(spec.field.to_owned(), file);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), field = spec.field, "bootstrap file not present");
            }
            Err(source) => return Err(BootstrapError::ReadFile { path, source }),
        }
    }
    Ok(data)
}

fn read_file(path: &Path) -> io::Result<BootstrapFile> {
    let file = File::open(path)?;
    let modified = file.metadata()?.modified()?;
    // Certificates, keys, passwd and encryption configs are small; anything else is refused.
    let content = crate::fsutil::read_open_capped(file, crate::fsutil::SMALL_FILE_MAX)?;
    Ok(BootstrapFile {
        timestamp: Some(DateTime::<Utc>::from(modified)),
        content,
    })
}

/// Writes every known file of `data` under `server_dir`, crash-safely (0600, new directories
/// 0700), with its mtime set to the stored timestamp so a later reconcile sees disk and datastore
/// agree. With `backup`, `<server_dir>/tls` is first copied to `tls-<unix seconds>`.
pub fn write_bootstrap(
    server_dir: &Path,
    data: &BootstrapData,
    backup: bool,
) -> Result<WriteOutcome, BootstrapError> {
    let mut outcome = WriteOutcome::default();
    if backup {
        outcome.backup_dir = backup_tls(server_dir, unix_now())?;
        if let Some(dir) = &outcome.backup_dir {
            tracing::info!(dir = %dir.display(), "backed up certificates directory before writing bootstrap data");
        }
    }
    outcome.ignored = data
        .files
        .keys()
        .filter(|field| spec_for(field).is_none())
        .cloned()
        .collect();
    for field in &outcome.ignored {
        tracing::warn!(field = %field, "ignoring unknown bootstrap field (no file is known for it)");
    }
    for spec in BOOTSTRAP_FILES {
        let Some(file) = data.files.get(spec.field) else {
            continue;
        };
        let path = server_dir.join(spec.path);
        write_file(&path, file).map_err(|source| BootstrapError::WriteFile {
            path: path.clone(),
            source,
        })?;
        outcome.written.push(path);
    }
    Ok(outcome)
}

fn write_file(path: &Path, file: &BootstrapFile) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fsutil::create_dir_all_mode(parent, DIR_MODE)?;
    }
    fsutil::write_atomic(path, &file.content, FILE_MODE)?;
    // The content is durable already; a crash before the mtime lands leaves a newer mtime on
    // identical content, which reconcile treats as agreement.
    if let Some(timestamp) = file.timestamp {
        let time = SystemTime::from(timestamp);
        let handle = File::options().write(true).open(path)?;
        handle.set_times(FileTimes::new().set_modified(time).set_accessed(time))?;
        handle.sync_all()?;
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use chrono::TimeZone;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn mtime(path: &Path) -> SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    /// A server dir holding every table file but the encryption ones, with distinct mtimes.
    fn populated_server_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let skipped = ["EncryptionConfig", "EncryptionHash"];
        for (i, spec) in BOOTSTRAP_FILES.iter().enumerate() {
            if skipped.contains(&spec.field) {
                continue;
            }
            let path = dir.path().join(spec.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("{} content {i}\n", spec.field)).unwrap();
            let at = Utc
                .timestamp_opt(1_700_000_000 + i as i64, 123_456_789)
                .unwrap();
            let file = File::options().write(true).open(&path).unwrap();
            file.set_times(FileTimes::new().set_modified(SystemTime::from(at)))
                .unwrap();
        }
        dir
    }

    #[test]
    fn table_paths_are_relative_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for spec in BOOTSTRAP_FILES {
            assert!(!spec.path.starts_with('/') && !spec.path.contains(".."));
            assert!(seen.insert(spec.path), "duplicate path {}", spec.path);
        }
        assert_eq!(BOOTSTRAP_FILES.len(), 15);
        assert_eq!(spec_for("PasswdFile").unwrap().path, "cred/passwd");
    }

    #[test]
    fn read_json_write_reproduces_bytes_and_mtimes() {
        let source = populated_server_dir();
        let data = read_bootstrap(source.path()).unwrap();
        assert_eq!(data.files.len(), BOOTSTRAP_FILES.len() - 2);
        assert!(!data.files.contains_key("EncryptionConfig"));

        let decoded = BootstrapData::from_json(&data.to_json()).unwrap();
        let target = tempfile::tempdir().unwrap();
        let outcome = write_bootstrap(target.path(), &decoded, false).unwrap();
        assert_eq!(outcome.written.len(), data.files.len());
        assert_eq!(outcome.backup_dir, None);
        for spec in BOOTSTRAP_FILES {
            let (from, to) = (source.path().join(spec.path), target.path().join(spec.path));
            if !from.exists() {
                assert!(!to.exists(), "{} written without data", spec.path);
                continue;
            }
            assert_eq!(std::fs::read(&from).unwrap(), std::fs::read(&to).unwrap());
            assert_eq!(mtime(&from), mtime(&to), "{}", spec.path);
            assert_eq!(mode(&to), 0o600);
        }
        assert_eq!(mode(&target.path().join("tls/etcd")), 0o700);
        assert_eq!(mode(&target.path().join("cred")), 0o700);
        // Reading the written copy gives back the same data.
        assert_eq!(read_bootstrap(target.path()).unwrap(), data);
    }

    #[test]
    fn backup_keeps_old_content_and_unknown_fields_are_not_written() {
        let server = populated_server_dir();
        let old = std::fs::read(server.path().join("tls/server-ca.key")).unwrap();
        let mut files = BTreeMap::new();
        let new_file = BootstrapFile {
            timestamp: None,
            content: b"new key".to_vec(),
        };
        files.insert("ServerCAKey".to_owned(), new_file.clone());
        files.insert("../../etc/evil".to_owned(), new_file);
        let data = BootstrapData { files };

        let outcome = write_bootstrap(server.path(), &data, true).unwrap();
        let backup = outcome.backup_dir.expect("a backup dir");
        let name = backup.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("tls-"), "{name}");
        assert_eq!(std::fs::read(backup.join("server-ca.key")).unwrap(), old);
        assert_eq!(
            std::fs::read(server.path().join("tls/server-ca.key")).unwrap(),
            b"new key"
        );
        assert_eq!(outcome.ignored, vec!["../../etc/evil".to_owned()]);
        assert_eq!(
            outcome.written,
            vec![server.path().join("tls/server-ca.key")]
        );
    }
}
