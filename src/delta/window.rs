//! The window record of a chain: `.window.json` in the chain dir, rewritten by the capture each
//! time it publishes a segment, with the chain's start (the full snapshot's revision and time),
//! its end (the last persisted revision and when that revision arrived from etcd), and whether
//! that end is reached from the snapshot without a hole.
//!
//! Why a record: segments may be compressed and encrypted to keys the server cannot decrypt,
//! so a listing cannot read the arrival time out of the last segment; the record is plaintext
//! metadata without secrets (revisions, times, the snapshot's file name). The segment parser
//! ignores its name (hidden, no `.seg`). It is written crash-safe (temp file, fsync, rename):
//! a crash leaves the previous record, which the next segment's record replaces.
//!
//! What a listing shows is decided from names first (`window_of`): the end revision is how far
//! the segment files reach without a hole, and the record only adds the time of that end when
//! it describes exactly that end. A missing, stale or unreadable record leaves revisions only.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chain::{Anchor, chain_reach};
use super::files::{ChainDir, FilesError};
use super::segment::check_anchor;
use crate::fsutil;
use crate::snapshot::point_in_time::PointInTime;

/// The record's name in the chain dir.
pub const WINDOW_FILE: &str = ".window.json";
/// The one format version written and read.
const VERSION: u32 = 1;
/// A record is under 400 bytes; anything larger is not one.
const MAX_RECORD_BYTES: u64 = 4096;

/// What `.window.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowRecord {
    pub version: u32,
    /// The full snapshot's file name (the chain dir's name).
    pub anchor: String,
    pub anchor_revision: i64,
    /// The snapshot's time, Unix seconds.
    pub anchor_unix: i64,
    /// The last persisted revision.
    pub to_revision: i64,
    /// When `to_revision` arrived from etcd, Unix milliseconds.
    pub to_unix_ms: i64,
    /// Whether `to_revision` is reached from the anchor without a hole.
    pub restorable: bool,
}

/// Why a window record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("refused delta window record {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("failed to {action} delta window record {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to list the delta chain for its window record")]
    Files(#[source] FilesError),
}

/// The record's bytes. Pure.
pub fn encode(record: &WindowRecord) -> Vec<u8> {
    serde_json::to_vec(record).expect("a window record always serializes")
}

/// A record from its bytes, every field checked; the error names the field and what was
/// expected. Pure.
pub fn decode(bytes: &[u8]) -> Result<WindowRecord, String> {
    let record: WindowRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if record.version != VERSION {
        return Err(format!("version {}, expected {VERSION}", record.version));
    }
    check_anchor(&record.anchor).map_err(|expected| format!("anchor: expected {expected}"))?;
    let checks = [
        (
            record.anchor_revision >= 0,
            "anchorRevision: expected 0 or more",
        ),
        (record.anchor_unix >= 0, "anchorUnix: expected 0 or more"),
        (
            record.to_revision >= record.anchor_revision,
            "toRevision: expected anchorRevision or more",
        ),
        (record.to_unix_ms >= 0, "toUnixMs: expected 0 or more"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, why)) => Err((*why).to_string()),
        None => Ok(record),
    }
}

/// The window a listing shows for `anchor`, from its chain's segment ranges and its record
/// (see the module doc). Pure.
pub fn window_of(
    anchor: &Anchor,
    segments: &[(i64, i64)],
    record: Option<&WindowRecord>,
) -> PointInTime {
    let reach = chain_reach(anchor.revision, segments);
    let from_unix_ms = anchor.created_unix.saturating_mul(1000);
    let to_unix_ms = if reach.path.is_empty() {
        Some(from_unix_ms)
    } else {
        record
            .filter(|r| r.anchor == anchor.file_name && r.anchor_revision == anchor.revision)
            .filter(|r| r.restorable && r.to_revision == reach.contiguous_to)
            .map(|r| r.to_unix_ms)
    };
    PointInTime {
        from_revision: anchor.revision,
        to_revision: reach.contiguous_to,
        from_unix_ms,
        to_unix_ms,
    }
}

/// Writes the record of `chain` crash-safe (0600).
pub fn write(chain: &ChainDir, record: &WindowRecord) -> Result<(), WindowError> {
    let path = chain.path().join(WINDOW_FILE);
    fsutil::write_atomic(&path, &encode(record), 0o600).map_err(|source| WindowError::Io {
        action: "write",
        path,
        source,
    })
}

/// The record of `chain`; None when it has none.
pub fn read(chain: &ChainDir) -> Result<Option<WindowRecord>, WindowError> {
    let path = chain.path().join(WINDOW_FILE);
    let bytes = match fsutil::read_capped(&path, MAX_RECORD_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(WindowError::Io {
                action: "read",
                path,
                source,
            });
        }
    };
    decode(&bytes)
        .map(Some)
        .map_err(|reason| WindowError::Invalid { path, reason })
}

/// After a segment ending at `to` (its last revision arrived at `to_unix_ms`) was published:
/// records the chain's new end. Blocking. A failure is logged and never fails the capture (the
/// segment is durable; a listing then shows revisions only until the next record).
pub fn record_published(chain: &ChainDir, anchor: &Anchor, to: i64, to_unix_ms: i64) {
    let result = chain.list().map_err(WindowError::Files).and_then(|files| {
        let pairs: Vec<(i64, i64)> = files.iter().map(|f| (f.from, f.to)).collect();
        let record = WindowRecord {
            version: VERSION,
            anchor: anchor.file_name.clone(),
            anchor_revision: anchor.revision,
            anchor_unix: anchor.created_unix,
            to_revision: to,
            to_unix_ms,
            restorable: chain_reach(anchor.revision, &pairs).contiguous_to == to,
        };
        write(chain, &record)
    });
    if let Err(e) = result {
        let error = crate::errors::error_chain(&e);
        tracing::warn!(chain = %chain.path().display(), %error, "failed to record the delta chain's window; listings show its revisions only");
    }
}

/// The window of `anchor`'s chain beside `snapshot_dir`; None when it has no chain dir (no
/// capture ever chained from it). An unreadable record is logged and counts as missing.
pub fn window_beside(
    snapshot_dir: &Path,
    anchor: &Anchor,
) -> Result<Option<PointInTime>, WindowError> {
    let chain = ChainDir::new(snapshot_dir, &anchor.file_name).map_err(WindowError::Files)?;
    if !chain.path().is_dir() {
        return Ok(None);
    }
    let files = chain.list().map_err(WindowError::Files)?;
    let pairs: Vec<(i64, i64)> = files.iter().map(|f| (f.from, f.to)).collect();
    let record = read(&chain).unwrap_or_else(|e| {
        let error = crate::errors::error_chain(&e);
        tracing::warn!(%error, "delta window record ignored; its chain is shown by revisions only");
        None
    });
    Ok(Some(window_of(anchor, &pairs, record.as_ref())))
}

/// The window of the S3 copy of `anchor`, from the names of its chain's objects in the bucket
/// (`object_names`; names that are not segment names are skipped) and this node's record of
/// the same chain, if it has one: the end is how far the uploaded segments reach without a
/// hole, and its time is known only when this node's record describes exactly that end (a copy
/// whose newest segments are still uploading shows revisions only). Pure.
pub fn remote_window<'a>(
    anchor: &Anchor,
    object_names: impl IntoIterator<Item = &'a str>,
    record: Option<&WindowRecord>,
) -> PointInTime {
    let pairs: Vec<(i64, i64)> = object_names
        .into_iter()
        .filter_map(super::chain::parse_segment_file_name)
        .collect();
    window_of(anchor, &pairs, record)
}

/// This node's window record of `anchor`'s chain, when it has the chain dir and can read it.
pub fn record_beside(snapshot_dir: &Path, anchor: &Anchor) -> Option<WindowRecord> {
    let chain = ChainDir::new(snapshot_dir, &anchor.file_name).ok()?;
    if !chain.path().is_dir() {
        return None;
    }
    read(&chain).ok().flatten()
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
