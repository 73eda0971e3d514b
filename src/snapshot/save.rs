//! The save pipeline: etcd's snapshot stream -> SHA-256 trailer check -> optional zip -> temp
//! file -> fsync -> rename.
//!
//! The stream is read once and never held whole in memory. Only a verified, fsynced, renamed file
//! is a snapshot: any failure removes the temp file and leaves the dir as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SnapshotName;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    pub name: SnapshotName,
    pub path: PathBuf,
    /// Bytes on disk (the zip's size when compressed).
    pub size: u64,
    /// SHA-256 of the bytes on disk, hex.
    pub file_sha256: String,
    /// Size of the etcd database image (without the 32-byte trailer).
    pub db_size: u64,
}

/// Why a save failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("failed to start the etcd snapshot stream")]
    StartStream(#[source] etcd_client::Error),
    #[error("failed to read the etcd snapshot stream after {received} bytes")]
    ReadStream {
        received: u64,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd snapshot stream is truncated or has no sha256 trailer ({received} bytes)")]
    Truncated { received: u64 },
    #[error("etcd snapshot sha256 trailer mismatch: stream says {expected}, computed {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("failed to write snapshot {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write snapshot metadata {path}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Streams a snapshot from etcd into `dir/name` (`name.compressed` decides zip), plus the
/// metadata file `<dir>/../.metadata/<file>` when `extra_metadata` is given.
pub async fn save_snapshot(
    client: &mut etcd_client::Client,
    dir: &Path,
    name: &SnapshotName,
    extra_metadata: Option<&BTreeMap<String, String>>,
) -> Result<SavedSnapshot, SaveError> {
    let _ = (client, dir, name, extra_metadata);
    todo!()
}
