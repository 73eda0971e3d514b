//! Pre-flight checks on a snapshot file and on the disk it will be restored to.
//!
//! The snapshot checks themselves live in `snapshot::verify` (read-only, shared with the S3
//! backfill); this module gives them the restore's error type, one variant for each of theirs
//! with the same text, and owns the free-space check. Reads only; never modifies or removes
//! anything.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::RestoreError;
use crate::snapshot::verify::{self as snapshot_verify, VerifyError};
pub use crate::snapshot::verify::{Shape, VerifiedSnapshot, shape_of};

/// The checks that need no full read (see `snapshot::verify::quick_check`).
pub fn quick_check(path: &Path) -> Result<(), RestoreError> {
    Ok(snapshot_verify::quick_check(path)?)
}

/// Verifies that `path` is a complete etcd snapshot (see `snapshot::verify`).
pub fn verify_snapshot_file(path: &Path) -> Result<VerifiedSnapshot, RestoreError> {
    Ok(snapshot_verify::verify_snapshot_file(path)?)
}

/// Like [`verify_snapshot_file`], and also checks the whole file against the SHA-256 recorded
/// when it was saved.
pub fn verify_snapshot_file_expecting(
    path: &Path,
    expected_file_sha256: &str,
) -> Result<VerifiedSnapshot, RestoreError> {
    Ok(snapshot_verify::verify_snapshot_file_expecting(
        path,
        expected_file_sha256,
    )?)
}

/// Verifies a snapshot as it sits in the snapshot dir, plain or zipped, without writing
/// anything; returns the database size.
pub fn verify_stored_snapshot(path: &Path) -> Result<u64, RestoreError> {
    Ok(snapshot_verify::verify_stored_snapshot(path)?)
}

/// One restore error per verification error, with the same fields and text, so a restore's
/// messages and `is_bad_snapshot` read as they did when the checks lived here.
impl From<VerifyError> for RestoreError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::ReadSnapshot { path, source } => Self::ReadSnapshot { path, source },
            VerifyError::Truncated { path, size } => Self::Truncated { path, size },
            VerifyError::NoTrailer { path, size } => Self::NoTrailer { path, size },
            VerifyError::ChecksumMismatch {
                path,
                expected,
                actual,
            } => Self::ChecksumMismatch {
                path,
                expected,
                actual,
            },
            VerifyError::NotADatabase { path } => Self::NotADatabase { path },
            VerifyError::BadSqlite { path, detail } => Self::BadSqlite { path, detail },
            VerifyError::FileChecksumMismatch {
                path,
                expected,
                actual,
            } => Self::FileChecksumMismatch {
                path,
                expected,
                actual,
            },
            VerifyError::OpenArchive { zip, source } => Self::OpenArchive { zip, source },
            VerifyError::NotAZip { zip, source } => Self::NotAZip { zip, source },
            VerifyError::EntryCount { zip, entries } => Self::EntryCount { zip, entries },
            VerifyError::UnsafeEntry { zip, name, reason } => {
                Self::UnsafeEntry { zip, name, reason }
            }
        }
    }
}

/// Free space on the file system holding a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes available to unprivileged writers (what etcd's files may use).
    pub available: u64,
    /// Where that file system is mounted (the topmost ancestor on the same device).
    pub mount: PathBuf,
}

/// Fails unless `dir`'s file system has at least `needed_bytes` available.
///
/// Counts only blocks available to non-root users, so the restore never eats the reserve an
/// administrator needs to recover.
pub fn check_free_space(dir: &Path, needed_bytes: u64) -> Result<FreeSpace, RestoreError> {
    let space = free_space(dir)?;
    if space.available < needed_bytes {
        return Err(RestoreError::InsufficientSpace {
            dir: dir.to_path_buf(),
            mount: space.mount,
            needed: needed_bytes,
            available: space.available,
        });
    }
    Ok(space)
}

/// Reads the available bytes and mount point of `dir`'s file system.
pub fn free_space(dir: &Path) -> Result<FreeSpace, RestoreError> {
    let err = |source| RestoreError::FreeSpace {
        dir: dir.to_path_buf(),
        source,
    };
    let stat = rustix::fs::statvfs(dir).map_err(|e| err(e.into()))?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    let mount = mount_point(dir).map_err(err)?;
    Ok(FreeSpace { available, mount })
}

/// Walks up from `dir` while the device stays the same: the last such ancestor is the mount.
fn mount_point(dir: &Path) -> io::Result<PathBuf> {
    let dir = dir.canonicalize()?;
    let dev = std::fs::metadata(&dir)?.dev();
    let mut mount = dir.clone();
    for ancestor in dir.ancestors().skip(1) {
        match std::fs::metadata(ancestor) {
            Ok(meta) if meta.dev() == dev => mount = ancestor.to_path_buf(),
            _ => break,
        }
    }
    Ok(mount)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;

#[cfg(test)]
mod error_mapping_tests {
    use super::*;

    fn io() -> io::Error {
        io::Error::other("disk gone")
    }

    fn zip_error() -> zip::result::ZipError {
        zip::result::ZipError::InvalidArchive("no end of central directory".into())
    }

    /// Every verification error keeps its text (and its source) as a restore error, and counts
    /// as a bad snapshot exactly when the snapshot itself is at fault.
    #[test]
    fn each_verify_error_becomes_the_restore_error_with_the_same_text() {
        let p = || PathBuf::from("/s/snap");
        let (e, a) = (|| "aa".to_string(), || "bb".to_string());
        let cases = [
            (
                VerifyError::ReadSnapshot {
                    path: p(),
                    source: io(),
                },
                false,
            ),
            (VerifyError::Truncated { path: p(), size: 7 }, true),
            (
                VerifyError::NoTrailer {
                    path: p(),
                    size: 1024,
                },
                true,
            ),
            (
                VerifyError::ChecksumMismatch {
                    path: p(),
                    expected: e(),
                    actual: a(),
                },
                true,
            ),
            (VerifyError::NotADatabase { path: p() }, true),
            (
                VerifyError::BadSqlite {
                    path: p(),
                    detail: e(),
                },
                true,
            ),
            (
                VerifyError::FileChecksumMismatch {
                    path: p(),
                    expected: e(),
                    actual: a(),
                },
                true,
            ),
            (
                VerifyError::OpenArchive {
                    zip: p(),
                    source: io(),
                },
                false,
            ),
            (
                VerifyError::NotAZip {
                    zip: p(),
                    source: zip_error(),
                },
                true,
            ),
            (
                VerifyError::EntryCount {
                    zip: p(),
                    entries: 2,
                },
                true,
            ),
            (
                VerifyError::UnsafeEntry {
                    zip: p(),
                    name: "../x".into(),
                    reason: "r",
                },
                true,
            ),
        ];
        for (verify, bad) in cases {
            let text = crate::errors::error_chain(&verify);
            let restore = RestoreError::from(verify);
            assert_eq!(crate::errors::error_chain(&restore), text);
            assert_eq!(restore.is_bad_snapshot(), bad, "{text}");
        }
    }
}
