//! `VerifyError`: why a file is not a complete etcd snapshot, or could not be read to tell.
//! Every variant names the file; sources are attached, never repeated in the text. The restore
//! maps each variant onto its own error of the same name and text (`restore::verify`).

use std::path::PathBuf;

/// Why verifying a snapshot file (plain or zipped) failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
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
    #[error("snapshot {path} is not a well-formed SQLite database: {detail}")]
    BadSqlite { path: PathBuf, detail: String },
    #[error("snapshot {path} is not an etcd database: its first page is not a bbolt meta page")]
    NotADatabase { path: PathBuf },
    #[error(
        "snapshot {path} is not the file that was recorded: expected sha256 {expected}, it hashes to {actual}"
    )]
    FileChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
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
}
