//! The dirs a restore makes beside the live data dir before the swap: staging dirs (and the
//! files a direct restore writes beside them) an interrupted restore left behind are removed
//! at the next start, and the dirs a restore had to create are removed again when it fails
//! before the swap (a refused restore on a new host leaves the data dir exactly as it was); a
//! zipped snapshot's extracted copy is removed whatever happens.

use std::path::{Path, PathBuf};

use super::ResetError;
use super::plan::RestorePlan;
use super::unzip::{archive_entry_size, extract_snapshot_checked};
use super::verify::check_free_space;

/// Removes staging dirs an interrupted restore left (each a full database copy). Safe: the
/// caller holds the server lock, so no other restore is writing one.
pub(super) fn remove_stale_staging(db_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(db_dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("etcd-restore-") && name.ends_with(".tmp") {
            tracing::info!(path = %entry.path().display(), "removing a staging dir an interrupted restore left");
            // The staging dir, or a file a direct restore writes beside it (`direct`).
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let _ = if is_dir {
                std::fs::remove_dir_all(entry.path())
            } else {
                std::fs::remove_file(entry.path())
            };
        }
    }
}

/// The topmost dirs a restore created (0700), for removal when it fails before the swap.
pub(super) struct CreatedDirs(Vec<PathBuf>);

impl CreatedDirs {
    pub(super) fn ensure(dirs: &[&Path]) -> Result<Self, ResetError> {
        let mut created = Vec::new();
        for dir in dirs {
            let topmost = dir.ancestors().take_while(|d| !d.exists()).last();
            if let Some(top) = topmost {
                created.push(top.to_path_buf());
            }
            crate::fsutil::create_dir_all_mode(dir, 0o700).map_err(|source| ResetError::Io {
                action: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        Ok(Self(created))
    }

    pub(super) fn undo(self) {
        for dir in self.0.iter().rev() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The snapshot file to restore from: the input itself, or its extracted copy in the
/// snapshot dir (removed on drop).
pub(super) struct Extracted {
    path: PathBuf,
    remove_on_drop: bool,
}

impl Extracted {
    pub(super) fn new(
        plan: &RestorePlan,
        input: &Path,
        snapshot_dir: &Path,
    ) -> Result<Self, ResetError> {
        if !plan.compressed {
            return Ok(Self {
                path: input.to_path_buf(),
                remove_on_drop: false,
            });
        }
        let size = archive_entry_size(input)?;
        check_free_space(snapshot_dir, size)?;
        let path = extract_snapshot_checked(input, snapshot_dir)?;
        Ok(Self {
            path,
            remove_on_drop: true,
        })
    }

    /// A database file this restore extracted at `path` (`unzip_encrypted`).
    pub(super) fn written(path: PathBuf) -> Self {
        Self {
            path,
            remove_on_drop: true,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Extracted {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
