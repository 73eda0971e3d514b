//! The record of uploads that failed: one small JSON file per snapshot in
//! `<snapshot-dir>/../.s3-pending/`, so `ls`, metrics and the next reconcile know about a
//! failure even after a restart.
//!
//! A marker is written when a snapshot could not be copied to S3 and removed once it is there
//! (or the local snapshot is gone). Markers are advisory: backfill itself compares the local
//! and S3 listings, so a lost marker costs only the error text, never an upload.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::snapshot::name::validate_user_name;

/// One failed upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingUpload {
    /// The snapshot's file name.
    pub name: String,
    /// Where it should have gone: `s3://<bucket>/<key>`.
    pub location: String,
    /// The error chain of the last attempt (never contains secrets: S3 errors name the
    /// endpoint, bucket and key only).
    pub error: String,
    /// Unix seconds of the last failed attempt.
    pub failed_at: i64,
}

/// The marker dir of a snapshot dir (the layout owns it).
pub fn pending_dir(snapshot_dir: &Path) -> PathBuf {
    crate::layout::pending_dir_for(snapshot_dir)
}

/// Records (or replaces) the failure of `upload.name`.
pub fn record(snapshot_dir: &Path, upload: &PendingUpload) -> std::io::Result<()> {
    let path = marker_path(snapshot_dir, &upload.name)?;
    let dir = pending_dir(snapshot_dir);
    fsutil::create_dir_all_mode(&dir, 0o700)?;
    let json = serde_json::to_vec(upload).map_err(std::io::Error::other)?;
    fsutil::write_atomic(&path, &json, 0o600)
}

/// Forgets the failure of `name`; a missing marker is fine.
pub fn clear(snapshot_dir: &Path, name: &str) -> std::io::Result<()> {
    let path = marker_path(snapshot_dir, name)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every recorded failure, oldest first. Unreadable markers are skipped with a warning: they
/// only ever carry an error text.
pub fn list(snapshot_dir: &Path) -> Vec<PendingUpload> {
    let dir = pending_dir(snapshot_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut uploads: Vec<PendingUpload> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| {
            let path = e.path();
            let parsed = crate::fsutil::read_capped(&path, crate::fsutil::SMALL_FILE_MAX)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            if parsed.is_none() {
                tracing::warn!(path = %path.display(), "ignoring an unreadable upload-failure marker");
            }
            parsed
        })
        .collect();
    uploads.sort_by(|a: &PendingUpload, b| (a.failed_at, &a.name).cmp(&(b.failed_at, &b.name)));
    uploads
}

fn marker_path(snapshot_dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    validate_user_name(name)
        .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason))?;
    Ok(pending_dir(snapshot_dir).join(format!("{name}.json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(name: &str, at: i64) -> PendingUpload {
        PendingUpload {
            name: name.into(),
            location: format!("s3://b/f/{name}"),
            error: "failed to upload: connection refused".into(),
            failed_at: at,
        }
    }

    #[test]
    fn record_list_clear_round_trip() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join("snapshots");
        std::fs::create_dir(&snapshots).unwrap();
        assert!(list(&snapshots).is_empty());
        record(&snapshots, &upload("s-n1-2", 20)).unwrap();
        record(&snapshots, &upload("s-n1-1.zip", 10)).unwrap();
        record(&snapshots, &upload("s-n1-2", 30)).unwrap();
        let listed = list(&snapshots);
        assert_eq!(listed, [upload("s-n1-1.zip", 10), upload("s-n1-2", 30)]);
        assert!(root.path().join(".s3-pending/s-n1-2.json").exists());
        clear(&snapshots, "s-n1-2").unwrap();
        clear(&snapshots, "never-there-n1-1").unwrap();
        assert_eq!(list(&snapshots), [upload("s-n1-1.zip", 10)]);
    }

    #[test]
    fn names_cannot_escape_the_marker_dir() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join("snapshots");
        assert!(record(&snapshots, &upload("../x", 1)).is_err());
        assert!(clear(&snapshots, "a/b").is_err());
    }

    #[test]
    fn garbage_markers_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join("snapshots");
        record(&snapshots, &upload("s-n1-1", 1)).unwrap();
        std::fs::write(pending_dir(&snapshots).join("junk.json"), b"{").unwrap();
        assert_eq!(list(&snapshots).len(), 1);
    }
}
