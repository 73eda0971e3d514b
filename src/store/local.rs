//! The local snapshot directory: listing, deleting, pruning, temp-file cleanup and the advisory
//! lock that serialises writers (server and direct-mode CLI) on one node.

use std::path::{Path, PathBuf};

use crate::snapshot::SnapshotName;
use crate::snapshot::SnapshotRecord;

/// Errors from the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("snapshot dir {path} does not exist (only the default dir is created automatically)")]
    MissingDir { path: PathBuf },
    #[error("{path} is not a directory")]
    NotADir { path: PathBuf },
    #[error("invalid snapshot name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result of deleting one snapshot by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
}

/// The snapshot dir and its sibling metadata dir.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    metadata_dir: PathBuf,
    node: String,
}

/// Holds the advisory lock until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: std::fs::File,
}

impl LocalStore {
    /// Opens the store; creates the dir (0700) only when `create` is set (the default dir).
    pub fn open(dir: &Path, node: &str, create: bool) -> Result<Self, StoreError> {
        let _ = (dir, node, create);
        todo!()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Takes the node-wide writer lock (waits for a holder to finish).
    pub async fn lock(&self) -> Result<StoreLock, StoreError> {
        todo!()
    }
    /// A name for a new snapshot at `now_unix` that collides with no existing file (bumps the
    /// second until free, so two saves in one second never overwrite each other).
    pub fn allocate_name(&self, base: &str, now_unix: i64, compressed: bool) -> SnapshotName {
        let _ = (base, now_unix, compressed);
        todo!()
    }
    /// Snapshot files in the dir (not recursive; temp files, dotfiles and non-snapshot names
    /// skipped), as records located `file://`.
    pub fn list(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        todo!()
    }
    /// Deletes `<dir>/<name>` and its metadata file.
    pub fn delete(&self, file_name: &str) -> Result<DeleteOutcome, StoreError> {
        let _ = file_name;
        todo!()
    }
    /// Applies retention for `base` on this node; returns deleted file names (or, with
    /// `dry_run`, the ones that would be).
    pub fn prune(
        &self,
        base: &str,
        retention: u32,
        dry_run: bool,
    ) -> Result<Vec<String>, StoreError> {
        let _ = (base, retention, dry_run);
        todo!()
    }
    /// Removes this node's leftover temp files from an interrupted save; returns their paths.
    pub fn cleanup_temp_files(&self) -> Result<Vec<PathBuf>, StoreError> {
        todo!()
    }
}
