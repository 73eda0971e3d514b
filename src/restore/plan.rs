//! The restore plan: from the restore path and the configuration, which source to read, where
//! every intermediate file goes, and the ordered steps and checks. Pure: no I/O, no clock.
//!
//! The order is the point. Everything that can refuse (download, unzip, trailer, space, tool)
//! runs before anything is changed, and the new data dir is built beside the live one before
//! the live one is moved aside, so a failure at any step leaves the member as it was.

use std::path::{Path, PathBuf};

use super::RestoreError;
use super::datadir::LIVE_DIR;
use super::unzip::check_entry_name;
use crate::snapshot::name::ZIP_SUFFIX;

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

/// One step of a restore, in execution order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreStep {
    /// Download the S3 object (to `.part`, then rename).
    Download,
    /// The (downloaded or local) path exists and is a regular file.
    CheckSourceIsFile,
    /// Enough space in `db_dir` for the extracted file, the staging dir and the WAL (sizes from
    /// the file, or the zip's declared entry size: see [`RestorePlan::space_needed`]).
    CheckFreeSpace,
    /// Extract the zip's single entry into the work dir.
    Extract,
    /// The database's SHA-256 trailer matches its content.
    VerifyTrailer,
    /// A restore tool exists and suits the configured etcd.
    SelectTool,
    /// Run the tool into the staging dir. Nothing has been changed before this point.
    RestoreIntoStaging,
    /// etcd must be stopped here (the caller owns the process).
    StopEtcd,
    /// `server/db/etcd` -> `server/db/etcd-old-<unix>`.
    MoveCurrentAside,
    /// staging -> `server/db/etcd`; on failure roll back.
    InstallStaged,
    /// Record the reset so it cannot run twice.
    WriteResetFlag,
    /// Remove the work dir (the extracted plaintext database).
    CleanWorkDir,
    /// Keep at most a few old data dirs.
    PruneBackups,
}

impl RestoreStep {
    /// True for steps that only check: a failure there changes nothing on disk.
    pub fn is_preflight(&self) -> bool {
        matches!(
            self,
            Self::Download
                | Self::CheckSourceIsFile
                | Self::CheckFreeSpace
                | Self::Extract
                | Self::VerifyTrailer
                | Self::SelectTool
        )
    }
}

/// The decided restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    pub source: SnapshotSource,
    /// The file (local or downloaded) is a `.zip` to extract first.
    pub compressed: bool,
    /// `<data-dir>/server/db`.
    pub db_dir: PathBuf,
    /// `<data-dir>/server/db/etcd`: the live member dir.
    pub live_dir: PathBuf,
    /// `<data-dir>/server/db/etcd-restore-<unix>.tmp`: where the tool writes. Same file system
    /// as the live dir, so installing it is a rename.
    pub staging_dir: PathBuf,
    /// `<data-dir>/server/db/restore-<unix>.work`: holds the extracted database, never the
    /// working directory (RKE2 extracts into `/` under systemd and never cleans up).
    pub work_dir: PathBuf,
    /// Ordered steps; the pre-flight ones come first.
    pub steps: Vec<RestoreStep>,
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
    let compressed = given.ends_with(ZIP_SUFFIX);
    let db_dir = inputs.data_dir.join("server").join("db");
    let unix = inputs.now_unix;
    let mut steps = Vec::new();
    if matches!(source, SnapshotSource::S3 { .. }) {
        steps.push(RestoreStep::Download);
    }
    steps.push(RestoreStep::CheckSourceIsFile);
    steps.push(RestoreStep::CheckFreeSpace);
    if compressed {
        steps.push(RestoreStep::Extract);
    }
    steps.extend([
        RestoreStep::VerifyTrailer,
        RestoreStep::SelectTool,
        RestoreStep::RestoreIntoStaging,
        RestoreStep::StopEtcd,
        RestoreStep::MoveCurrentAside,
        RestoreStep::InstallStaged,
        RestoreStep::WriteResetFlag,
    ]);
    if compressed {
        steps.push(RestoreStep::CleanWorkDir);
    }
    steps.push(RestoreStep::PruneBackups);
    Ok(RestorePlan {
        source,
        compressed,
        live_dir: db_dir.join(LIVE_DIR),
        staging_dir: db_dir.join(format!("etcd-restore-{unix}.tmp")),
        work_dir: db_dir.join(format!("restore-{unix}.work")),
        db_dir,
        steps,
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
        assert_eq!(plan.work_dir, db.join("restore-1700000000.work"));
        assert_eq!(plan.space_needed(100), 200 + WAL_ALLOWANCE);
        let raw = plan_restore(&inputs("/b/s", false)).unwrap();
        assert_eq!(raw.space_needed(100), 100 + WAL_ALLOWANCE);
    }

    #[test]
    fn steps_check_everything_before_changing_anything() {
        use RestoreStep::*;
        let plan = plan_restore(&inputs("s.zip", true)).unwrap();
        assert_eq!(
            plan.steps,
            [
                Download,
                CheckSourceIsFile,
                CheckFreeSpace,
                Extract,
                VerifyTrailer,
                SelectTool,
                RestoreIntoStaging,
                StopEtcd,
                MoveCurrentAside,
                InstallStaged,
                WriteResetFlag,
                CleanWorkDir,
                PruneBackups,
            ]
        );
        let raw = plan_restore(&inputs("/b/s", false)).unwrap();
        assert!(
            !raw.steps
                .iter()
                .any(|s| matches!(s, Download | Extract | CleanWorkDir))
        );
        let first_change = raw.steps.iter().position(|s| !s.is_preflight()).unwrap();
        assert!(raw.steps[first_change..].iter().all(|s| !s.is_preflight()));
    }
}
