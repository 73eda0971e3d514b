//! The restore plan: from the restore path and the configuration, which source to read and
//! where the staging dir goes. Pure: no I/O, no clock. The order of the steps (everything that
//! can refuse runs before anything live is changed) lives in `flow.rs`, which runs them.

use std::path::{Path, PathBuf};

use super::RestoreError;
use super::datadir::LIVE_DIR;
use super::unzip::check_entry_name;
use crate::snapshot::name::{is_compressed_name, is_encrypted_name};

/// Extra room the restored member needs beyond its database: etcd preallocates a 64 MB WAL
/// segment, plus slack for the `.snap` file and a first round of writes.
pub const WAL_ALLOWANCE: u64 = 64_000_000 + 16 * 1024 * 1024;

/// Everything `plan_restore` needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInputs {
    /// `--cluster-reset-restore-path` (or the `restore` argument), as given.
    pub restore_path: String,
    /// S3 is enabled: the path is then an object name, as in RKE2.
    pub s3_enabled: bool,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// Where downloads land (the snapshot dir, as in RKE2).
    pub snapshot_dir: PathBuf,
    /// Now, Unix seconds: names the staging and work dirs.
    pub now_unix: i64,
}

/// Where the snapshot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    /// A file on this machine, used where it is (a relative path is relative to the working
    /// directory, as in RKE2).
    Local { path: PathBuf },
    /// An object in the configured bucket/folder, downloaded to `download_to` first.
    S3 {
        object: String,
        download_to: PathBuf,
    },
}

/// Where a restore reads from and writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    pub source: SnapshotSource,
    /// The file (local or downloaded) is a `.zip` to extract first (after decrypting).
    pub compressed: bool,
    /// The file is an age file (`.age`) to decrypt first.
    pub encrypted: bool,
    /// `<data-dir>/server/db`.
    pub db_dir: PathBuf,
    /// `<data-dir>/server/db/etcd`: the live member dir.
    pub live_dir: PathBuf,
    /// `<data-dir>/server/db/etcd-restore-<unix>.tmp`: where the tool writes. Same file system
    /// as the live dir, so installing it is a rename.
    pub staging_dir: PathBuf,
    /// `<data-dir>/server/db/etcd-restore-<unix>-replay.tmp`: a point-in-time restore's replay
    /// member and its snapshot (a leftover is removed like a staging dir).
    pub replay_dir: PathBuf,
}

impl RestorePlan {
    /// The file as it sits on disk before extraction (local path or download target).
    pub fn input_file(&self) -> &Path {
        match &self.source {
            SnapshotSource::Local { path } => path,
            SnapshotSource::S3 { download_to, .. } => download_to,
        }
    }

    /// Bytes of free space `db_dir` needs for a database of `db_size` bytes: the staging copy
    /// and the WAL, plus the extracted copy when the input is a zip.
    pub fn space_needed(&self, db_size: u64) -> u64 {
        let extracted = if self.compressed { db_size } else { 0 };
        db_size
            .saturating_add(extracted)
            .saturating_add(WAL_ALLOWANCE)
    }
}

/// Decides the restore for `inputs`. Pure.
///
/// With S3 enabled the path must be a bare object name (a `/` is an error that says how to
/// restore a local file instead); without S3 it is a local path.
pub fn plan_restore(inputs: &RestoreInputs) -> Result<RestorePlan, RestoreError> {
    let given = inputs.restore_path.trim();
    if given.is_empty() {
        return Err(RestoreError::EmptyRestorePath);
    }
    let source = if inputs.s3_enabled {
        check_entry_name(given).map_err(|reason| RestoreError::InvalidObjectName {
            name: given.to_string(),
            reason: reason.to_string(),
        })?;
        SnapshotSource::S3 {
            object: given.to_string(),
            download_to: inputs.snapshot_dir.join(given),
        }
    } else {
        SnapshotSource::Local {
            path: PathBuf::from(&inputs.restore_path),
        }
    };
    let compressed = is_compressed_name(given);
    let encrypted = is_encrypted_name(given);
    let db_dir = inputs.data_dir.join("server").join("db");
    let unix = inputs.now_unix;
    Ok(RestorePlan {
        source,
        compressed,
        encrypted,
        live_dir: db_dir.join(LIVE_DIR),
        staging_dir: db_dir.join(format!("etcd-restore-{unix}.tmp")),
        replay_dir: db_dir.join(format!("etcd-restore-{unix}-replay.tmp")),
        db_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(path: &str, s3: bool) -> RestoreInputs {
        RestoreInputs {
            restore_path: path.into(),
            s3_enabled: s3,
            data_dir: PathBuf::from("/var/lib/es"),
            snapshot_dir: PathBuf::from("/var/lib/es/server/db/snapshots"),
            now_unix: 1_700_000_000,
        }
    }

    #[test]
    fn local_paths_and_s3_names() {
        let plan = plan_restore(&inputs("/backups/snap-n-1", false)).unwrap();
        assert_eq!(
            plan.source,
            SnapshotSource::Local {
                path: "/backups/snap-n-1".into()
            }
        );
        assert!(!plan.compressed);
        assert_eq!(plan.input_file(), Path::new("/backups/snap-n-1"));
        let plan = plan_restore(&inputs("snap-n-1.zip", true)).unwrap();
        assert_eq!(
            plan.source,
            SnapshotSource::S3 {
                object: "snap-n-1.zip".into(),
                download_to: "/var/lib/es/server/db/snapshots/snap-n-1.zip".into(),
            }
        );
        assert!(plan.compressed);
        for bad in ["/backups/snap", "dir/snap", "../snap", ""] {
            assert!(plan_restore(&inputs(bad, true)).is_err(), "{bad:?}");
        }
        let err = plan_restore(&inputs("dir/snap", true)).unwrap_err();
        assert!(err.to_string().contains("--etcd-s3=false"), "{err}");
        assert!(matches!(
            plan_restore(&inputs("  ", false)),
            Err(RestoreError::EmptyRestorePath)
        ));
    }

    #[test]
    fn dirs_sit_beside_the_live_one() {
        let plan = plan_restore(&inputs("/b/s.zip", false)).unwrap();
        let db = Path::new("/var/lib/es/server/db");
        assert_eq!(plan.live_dir, db.join("etcd"));
        assert_eq!(plan.staging_dir, db.join("etcd-restore-1700000000.tmp"));
        assert_eq!(
            plan.replay_dir,
            db.join("etcd-restore-1700000000-replay.tmp")
        );
        assert_eq!(plan.space_needed(100), 200 + WAL_ALLOWANCE);
        let raw = plan_restore(&inputs("/b/s", false)).unwrap();
        assert_eq!(raw.space_needed(100), 100 + WAL_ALLOWANCE);
    }
}
