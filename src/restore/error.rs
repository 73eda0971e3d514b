//! The restore module's single error type.
//!
//! Every failure of a restore step names the file or directory involved and what was wrong with
//! it; source errors are attached, never repeated in the text. No I/O or decisions live here.

use std::path::PathBuf;

/// Why a restore, a cluster reset or one of their checks failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    // --- the restore path and the start decision ---
    #[error("invalid flag use; --cluster-reset required with --cluster-reset-restore-path")]
    RestorePathWithoutReset,
    #[error("invalid flag use; --cluster-reset required with --cluster-reset-restore-to")]
    RestoreToWithoutReset,
    /// RKE2's exact message, so operators and scripts recognise it.
    #[error(
        "Managed etcd cluster membership was previously reset, please remove the cluster-reset flag and start etcd-snapshot normally. If you need to perform another cluster reset, you must first manually delete the file at {flag}"
    )]
    AlreadyReset { flag: PathBuf },
    #[error("invalid restore path: it is empty")]
    EmptyRestorePath,
    #[error(
        "invalid restore path {name:?}: with S3 enabled it must be a bare object name ({reason}); to restore a local file pass --etcd-s3=false and its full path"
    )]
    InvalidObjectName { name: String, reason: String },
    #[error("etcd: snapshot path does not exist: {path}")]
    SourceMissing { path: PathBuf },
    #[error("etcd: snapshot path must be a file, not a directory: {path}")]
    SourceNotAFile { path: PathBuf },

    // --- unzip ---
    #[error("failed to open snapshot archive {zip}")]
    OpenArchive {
        zip: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read snapshot archive {zip}: not a readable zip archive")]
    NotAZip {
        zip: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("snapshot archive {zip} must hold exactly one file, it holds {entries}")]
    EntryCount { zip: PathBuf, entries: usize },
    #[error("snapshot archive {zip} has an unsafe entry {name:?}: {reason}")]
    UnsafeEntry {
        zip: PathBuf,
        name: String,
        reason: &'static str,
    },
    #[error(
        "failed to extract {entry} from snapshot archive {zip}: the compressed data is corrupt"
    )]
    CorruptArchive {
        zip: PathBuf,
        entry: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to extract snapshot archive {zip}: {dest} already exists")]
    ExtractedExists { zip: PathBuf, dest: PathBuf },
    #[error("failed to write extracted snapshot {path}")]
    WriteExtracted {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    // --- verification ---
    #[error("failed to read snapshot {path}")]
    ReadSnapshot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "snapshot {path} is truncated: {size} bytes cannot be a database followed by its sha256 trailer"
    )]
    Truncated { path: PathBuf, size: u64 },
    #[error(
        "snapshot {path} has no sha256 trailer ({size} bytes is whole pages): a raw database copy or a damaged file"
    )]
    NoTrailer { path: PathBuf, size: u64 },
    #[error(
        "snapshot {path} is corrupt: its sha256 trailer says {expected}, its content hashes to {actual}"
    )]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("snapshot {path} is not an etcd database: its first page is not a bbolt meta page")]
    NotADatabase { path: PathBuf },
    #[error("snapshot {path} is not a well-formed SQLite database: {detail}")]
    BadSqlite { path: PathBuf, detail: String },
    #[error(
        "snapshot {path} is not the file that was recorded: expected sha256 {expected}, it hashes to {actual}"
    )]
    FileChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("failed to check free space in {dir}")]
    FreeSpace {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "not enough free space for the restore in {dir}: {needed} bytes needed, {available} available on the file system mounted at {mount}"
    )]
    InsufficientSpace {
        dir: PathBuf,
        mount: PathBuf,
        needed: u64,
        available: u64,
    },

    // --- the restore tool ---
    #[error(
        "no etcd restore tool found: looked for etcdutl and etcdctl in {searched}; install Debian's etcd-client package (etcdctl, and etcdutl from etcd 3.5 on) or put etcdutl beside the etcd binary"
    )]
    ToolNotFound { searched: String },
    #[error("no usable etcd restore tool for etcd {etcd_version}: {rejected}")]
    NoCompatibleTool {
        etcd_version: String,
        rejected: String,
    },
    #[error("failed to run {program} to read its version")]
    RunVersion {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the version of {program}: unexpected output {output:?}")]
    ParseVersion { program: PathBuf, output: String },
    #[error(
        "failed to restore with {program} {version}: it does not support --bump-revision/--mark-compacted"
    )]
    BumpUnsupported { program: PathBuf, version: String },
    #[error("failed to restore into {dir}: the staging dir already exists")]
    StagingExists { dir: PathBuf },
    #[error(
        "failed to restore {path}: the file changed while it was being checked and restored; nothing was changed"
    )]
    SnapshotChanged { path: PathBuf },
    #[error("failed to start {program}")]
    SpawnTool {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to restore snapshot {snapshot} with {program} ({status}): {stderr}")]
    ToolFailed {
        program: PathBuf,
        snapshot: PathBuf,
        status: String,
        stderr: String,
    },

    // --- data dir swap and backups ---
    #[error("failed to move {from} to {to}")]
    Move {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to install the restored data dir at {dest}: it already exists")]
    DestinationExists { dest: PathBuf },
    #[error("failed to list backups in {dir}")]
    ListBackups {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to remove old backup {path}")]
    RemoveBackup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    // --- reset-flag ---
    #[error("failed to {action} reset-flag {path}")]
    ResetFlag {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RestoreError {
    /// True when the snapshot itself is bad (not the machine, the tool or the flags): retrying
    /// with the same file cannot succeed, another snapshot might.
    pub fn is_bad_snapshot(&self) -> bool {
        matches!(
            self,
            Self::NotAZip { .. }
                | Self::EntryCount { .. }
                | Self::UnsafeEntry { .. }
                | Self::CorruptArchive { .. }
                | Self::Truncated { .. }
                | Self::NoTrailer { .. }
                | Self::ChecksumMismatch { .. }
                | Self::NotADatabase { .. }
                | Self::BadSqlite { .. }
                | Self::FileChecksumMismatch { .. }
        )
    }
}
