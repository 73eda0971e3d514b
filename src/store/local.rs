//! The local snapshot directory: listing, deleting, pruning, temp-file cleanup and the advisory
//! lock that serialises writers (server and direct-mode CLI) on one node.
//!
//! Owns file-system effects in the snapshot dir and its siblings (`crate::layout`: `.metadata`,
//! and the work dir that holds the lock and temp files, so the snapshot dir holds snapshots
//! only). Decisions (which names are snapshots, what retention deletes) come from
//! `snapshot::name` and `snapshot::prune`; this file never writes snapshot contents (the save
//! pipeline does, into the paths `layout()` gives it).

use std::collections::BTreeMap;
use std::fs::{DirEntry, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::fsutil;
use crate::layout::{LEGACY_LOCK_FILE, SnapshotDirLayout};
use crate::snapshot::name::{
    AGE_SUFFIX, PART_SUFFIX, ZIP_SUFFIX, belongs_to_node, is_compressed_name, timestamp_in_name,
};
use crate::snapshot::prune::{Candidate, Pruned, plan_retention};
use crate::snapshot::retention::RetentionPolicy;
use crate::snapshot::{SnapshotName, SnapshotRecord, Storage};

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

/// The snapshot dir and its siblings.
#[derive(Debug, Clone)]
pub struct LocalStore {
    layout: SnapshotDirLayout,
    node: String,
}

/// Holds the advisory lock until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: std::fs::File,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

impl LocalStore {
    /// Opens the store; creates the dir (0700) only when `create` is set (the default dir).
    pub fn open(dir: &Path, node: &str, create: bool) -> Result<Self, StoreError> {
        let dir = std::path::absolute(dir).map_err(io_err("resolve", dir))?;
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(StoreError::NotADir { path: dir }),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fsutil::create_dir_all_mode(&dir, 0o700)
                    .map_err(io_err("create snapshot dir", &dir))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::MissingDir { path: dir });
            }
            Err(e) => return Err(io_err("inspect snapshot dir", &dir)(e)),
        }
        Ok(Self {
            layout: SnapshotDirLayout::open(&dir),
            node: node.to_string(),
        })
    }

    /// The snapshot dir: snapshots only.
    pub fn dir(&self) -> &Path {
        &self.layout.snapshots
    }

    /// Every path that belongs to this snapshot dir: where the save pipeline writes its temp
    /// file, the snapshot and its metadata.
    pub fn layout(&self) -> &SnapshotDirLayout {
        &self.layout
    }

    /// `<dir>/../.metadata`, where each snapshot's extra-metadata JSON lives.
    pub fn metadata_dir(&self) -> &Path {
        &self.layout.metadata
    }

    /// The node whose snapshots this store manages.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Takes the node-wide writer lock (waits for a holder to finish). Creates the work dir
    /// (0700) that holds it and the temp files.
    pub async fn lock(&self) -> Result<StoreLock, StoreError> {
        let path = self.layout.lock_path();
        let task_path = path.clone();
        let work = self.layout.work.clone();
        let task = tokio::task::spawn_blocking(move || {
            fsutil::create_dir_all_mode(&work, 0o700)?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&task_path)?;
            file.lock()?;
            Ok(file)
        });
        let file = match task.await {
            Ok(result) => result.map_err(io_err("lock", &path))?,
            Err(join) => return Err(io_err("lock", &path)(io::Error::other(join))),
        };
        Ok(StoreLock { _file: file })
    }

    /// A name for a new snapshot at `now_unix` that collides with no existing file (bumps the
    /// second until free, so two saves in one second never overwrite each other).
    /// Every form of the name (raw, zip, encrypted, in progress) counts as taken.
    pub fn allocate_name(
        &self,
        base: &str,
        now_unix: i64,
        compressed: bool,
        encrypted: bool,
    ) -> SnapshotName {
        let mut unix = now_unix;
        loop {
            let name = SnapshotName {
                base: base.to_string(),
                node: self.node.clone(),
                unix,
                compressed,
                encrypted,
            };
            let stem = name.stem();
            let taken = ["", ZIP_SUFFIX]
                .iter()
                .flat_map(|zip| ["", AGE_SUFFIX].map(|age| format!("{stem}{zip}{age}")))
                .flat_map(|f| [self.layout.temp_path(&f), self.layout.snapshot_path(&f)])
                .any(|path| std::fs::symlink_metadata(path).is_ok());
            if !taken {
                return name;
            }
            unix += 1;
        }
    }

    /// Snapshot files in the dir (not recursive; temp files, dotfiles and non-snapshot names
    /// skipped), as records located `file://`.
    pub fn list(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        let mut records: Vec<SnapshotRecord> = self
            .snapshot_files()?
            .into_iter()
            .filter_map(|(file_name, entry)| self.record(file_name, &entry))
            .collect();
        records.sort_by(|a, b| (a.created_unix, &a.file_name).cmp(&(b.created_unix, &b.file_name)));
        Ok(records)
    }

    /// Deletes `<dir>/<name>` and its metadata file.
    pub fn delete(&self, file_name: &str) -> Result<DeleteOutcome, StoreError> {
        crate::snapshot::name::validate_user_name(file_name).map_err(|reason| {
            StoreError::InvalidName {
                name: file_name.to_string(),
                reason,
            }
        })?;
        let path = self.layout.snapshot_path(file_name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DeleteOutcome::NotFound),
            Err(e) => return Err(io_err("delete snapshot", &path)(e)),
        }
        self.remove_metadata(file_name)?;
        fsutil::sync_dir(self.dir()).map_err(io_err("sync", self.dir()))?;
        tracing::info!(path = %path.display(), "removed local snapshot");
        Ok(DeleteOutcome::Deleted)
    }

    /// Applies `policy` to `base` on this node: deletes (unless `dry_run`) what it removes and
    /// returns every snapshot's verdict. Deletes oldest first, so an interruption keeps the
    /// newest snapshots; the deleted names are in that order.
    pub fn prune(
        &self,
        base: &str,
        policy: &RetentionPolicy,
        dry_run: bool,
    ) -> Result<Pruned, StoreError> {
        let candidates: Vec<Candidate> = self
            .snapshot_files()?
            .into_iter()
            .filter_map(|(file_name, entry)| {
                let record = self.record(file_name, &entry)?;
                Some(Candidate {
                    size: record.size,
                    verified: crate::snapshot::retention::verified(&record),
                    file_name: record.file_name,
                })
            })
            .collect();
        let plan = plan_retention(&candidates, base, &self.node, policy, now_unix());
        let mut doomed = plan.delete;
        doomed.reverse();
        let verdicts = plan.verdicts;
        if dry_run || doomed.is_empty() {
            return Ok(Pruned {
                deleted: doomed,
                verdicts,
            });
        }
        for file_name in &doomed {
            let path = self.layout.snapshot_path(file_name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("delete snapshot", &path)(e)),
            }
            self.remove_metadata(file_name)?;
            tracing::info!(path = %path.display(), "removing local snapshot (retention)");
        }
        fsutil::sync_dir(self.dir()).map_err(io_err("sync", self.dir()))?;
        Ok(Pruned {
            deleted: doomed,
            verdicts,
        })
    }

    /// Removes this node's leftover temp files from an interrupted save; returns their paths.
    /// Other nodes' temp files in a shared dir may belong to saves in progress and stay. Looks in
    /// the work dir and, when that is beside the snapshot dir, in the snapshot dir too, where
    /// versions before the current layout left them (with their lock file, also removed).
    pub fn cleanup_temp_files(&self) -> Result<Vec<PathBuf>, StoreError> {
        let mut removed = self.cleanup_temp_files_in(&self.layout.work)?;
        if self.layout.work_is_beside() {
            removed.extend(self.cleanup_temp_files_in(self.dir())?);
            let legacy_lock = self.layout.snapshot_path(LEGACY_LOCK_FILE);
            if remove_regular(&legacy_lock, "remove old lock file")? {
                removed.push(legacy_lock);
                fsutil::sync_dir(self.dir()).map_err(io_err("sync", self.dir()))?;
            }
        }
        Ok(removed)
    }

    fn cleanup_temp_files_in(&self, dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(read) => read
                .collect::<Result<Vec<_>, _>>()
                .map_err(io_err("list temp files in", dir))?,
            // The work dir exists only once something was locked or written.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list temp files in", dir)(e)),
        };
        let mut removed = Vec::new();
        for entry in entries {
            let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some(stem) = file_name.strip_suffix(PART_SUFFIX) else {
                continue;
            };
            // A SQLite datastore's copy is a temp file of the snapshot it was for.
            let stem = stem
                .strip_suffix(crate::layout::IMAGE_SUFFIX)
                .unwrap_or(stem);
            if !belongs_to_node(stem, &self.node) || !is_regular(&entry) {
                continue;
            }
            let path = entry.path();
            if remove_regular(&path, "remove temp file")? {
                tracing::info!(path = %path.display(), "removed leftover snapshot temp file");
                removed.push(path);
            }
        }
        if !removed.is_empty() {
            fsutil::sync_dir(dir).map_err(io_err("sync", dir))?;
        }
        Ok(removed)
    }

    fn read_dir(&self) -> Result<Vec<DirEntry>, StoreError> {
        let dir = self.dir();
        let read = std::fs::read_dir(dir).map_err(io_err("list snapshot dir", dir))?;
        read.collect::<Result<_, _>>()
            .map_err(io_err("list snapshot dir", dir))
    }

    /// Regular, non-hidden, non-temp files whose name carries a `-<digits>[.zip]` timestamp.
    fn snapshot_files(&self) -> Result<Vec<(String, DirEntry)>, StoreError> {
        Ok(self
            .read_dir()?
            .into_iter()
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_string();
                let wanted = !name.starts_with('.')
                    && !name.ends_with(PART_SUFFIX)
                    && timestamp_in_name(&name).is_some()
                    && is_regular(&entry);
                wanted.then_some((name, entry))
            })
            .collect())
    }

    fn record(&self, file_name: String, entry: &DirEntry) -> Option<SnapshotRecord> {
        // A file removed between the listing and this stat is simply not listed.
        let meta = entry.metadata().ok()?;
        let created_unix = timestamp_in_name(&file_name).or_else(|| mtime_unix(entry))?;
        Some(SnapshotRecord {
            location: format!("file://{}", entry.path().display()),
            node_name: self.node.clone(),
            storage: Storage::Local,
            size: meta.len(),
            created_unix,
            compressed: is_compressed_name(&file_name),
            ready: true,
            error: None,
            token_hash: None,
            metadata: self.read_metadata(&file_name),
            file_name,
        })
    }

    /// The snapshot's extra metadata; a missing file is normal, a bad one only a warning.
    fn read_metadata(&self, file_name: &str) -> Option<BTreeMap<String, String>> {
        let path = self.layout.metadata_path(file_name);
        let bytes = match crate::fsutil::read_capped(&path, crate::fsutil::SMALL_FILE_MAX) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "failed to read snapshot metadata");
                return None;
            }
        };
        match crate::snapshot::record::parse_metadata(&bytes) {
            Ok(map) => Some(map),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring invalid snapshot metadata");
                None
            }
        }
    }

    /// Removes the snapshot's extra metadata and encryption record (either may be absent).
    fn remove_metadata(&self, file_name: &str) -> Result<(), StoreError> {
        for path in [
            self.layout.metadata_path(file_name),
            self.layout.encryption_path(file_name),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("delete snapshot metadata", &path)(e)),
            }
        }
        Ok(())
    }
}

/// Removes `path` if it is a regular file; true when it was removed.
fn remove_regular(path: &Path, action: &'static str) -> Result<bool, StoreError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(action, path)(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(action, path)(e)),
    }
}

/// A regular file itself (symlinks and directories are never snapshots here).
fn is_regular(entry: &DirEntry) -> bool {
    entry.file_type().is_ok_and(|t| t.is_file())
}

/// The clock retention measures max-age against.
pub(crate) fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

fn mtime_unix(entry: &DirEntry) -> Option<i64> {
    let modified = entry.metadata().ok()?.modified().ok()?;
    let secs = modified.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
