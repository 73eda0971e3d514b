//! Segment files on disk: one chain dir per full snapshot beside the snapshot dir
//! (`layout::chain_dir_for`), published segments named `<from>-<to>.seg[.gz][.age]` (the one
//! parser of those names, `delta::names`, is re-exported here), listed by range, and the open
//! segment as a hidden temp file in the same dir (written and published by `open_segment`,
//! whose types are re-exported here).
//!
//! Crash safety: a segment becomes visible only by being linked to its final name after an
//! fsync (`open_segment`). A crash before that leaves only the temp file, which the next start
//! removes (`remove_temp_files`); the chain then resumes after the last published segment, so
//! nothing is lost or written twice.

use std::io;
use std::path::{Path, PathBuf};

pub use super::names::{SegmentForm, SegmentName, parse_segment_name};
#[cfg(test)]
pub use super::open_segment::publish_test_segment;
pub use super::open_segment::{OpenSegment, Published};
use super::segment::{SegmentError, check_anchor};
use crate::crypt::CryptError;

/// Temp files: `.<from>.part`.
pub(super) const TEMP_SUFFIX: &str = ".part";

/// Why a segment file could not be listed, written or published.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("refused anchor {anchor:?} for a chain dir: expected {expected}")]
    Anchor { anchor: String, expected: String },
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to write delta segment {path}")]
    Segment {
        path: PathBuf,
        #[source]
        source: SegmentError,
    },
    #[error("failed to start encrypting delta segment {path}")]
    Encrypt {
        path: PathBuf,
        #[source]
        source: CryptError,
    },
}

pub(super) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FilesError {
    let path = path.to_path_buf();
    move |source| FilesError::Io {
        action,
        path,
        source,
    }
}

/// A published segment as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub from: i64,
    pub to: i64,
    pub form: SegmentForm,
    pub path: PathBuf,
    /// Bytes on disk (compressed and encrypted when stored so).
    pub size: u64,
}

/// The dir holding one full snapshot's chain.
#[derive(Debug, Clone)]
pub struct ChainDir {
    dir: PathBuf,
}

impl ChainDir {
    /// The chain dir of `anchor` (a snapshot file name) beside `snapshot_dir`.
    pub fn new(snapshot_dir: &Path, anchor: &str) -> Result<Self, FilesError> {
        check_anchor(anchor).map_err(|expected| FilesError::Anchor {
            anchor: anchor.chars().take(300).collect(),
            expected,
        })?;
        Ok(Self {
            dir: crate::layout::chain_dir_for(snapshot_dir, anchor),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Published segments, by `from`; an absent dir is an empty chain. Other names are
    /// skipped (temp files, anything that is not ours).
    pub fn list(&self) -> Result<Vec<SegmentFile>, FilesError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list delta segments in", &self.dir)(e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list delta segments in", &self.dir))?;
            let Some(name) = entry.file_name().to_str().and_then(parse_segment_name) else {
                continue;
            };
            let meta = entry
                .metadata()
                .map_err(io_err("inspect delta segment", &entry.path()))?;
            if meta.is_file() {
                found.push(SegmentFile {
                    from: name.from,
                    to: name.to,
                    form: name.form,
                    path: entry.path(),
                    size: meta.len(),
                });
            }
        }
        found.sort_by_key(|s| (s.from, s.to, s.form));
        Ok(found)
    }

    /// Removes temp files a crash left behind; returns how many.
    pub fn remove_temp_files(&self) -> Result<usize, FilesError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("list delta segments in", &self.dir)(e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
                std::fs::remove_file(entry.path())
                    .map_err(io_err("remove stale delta temp file", &entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_anchors_never_name_a_dir_outside_the_deltas_dir() {
        let dir = Path::new("/var/lib/x/snapshots");
        for bad in ["", ".", "..", "../etc", "a/b", ".hidden", "a\0b"] {
            assert!(
                matches!(ChainDir::new(dir, bad), Err(FilesError::Anchor { .. })),
                "{bad:?}"
            );
        }
        let long = "a".repeat(256);
        assert!(ChainDir::new(dir, &long).is_err());
    }
}
