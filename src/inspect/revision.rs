//! The revision a member restored from a snapshot serves, read from a handful of pages instead
//! of the whole file: meta page -> root bucket tree -> the `key` bucket -> its rightmost leaf,
//! whose last key is the highest revision (revision keys sort bytewise as big-endian numbers),
//! and `meta/finishedCompactRev` (the lookups are `tree`'s).
//!
//! A restore needs this figure beside the restore tool. `etcdutl snapshot status` gives the
//! same revision but walks and hashes every page, competing with the tool for the CPU; this
//! reads a few pages (tens of KiB on a gigabyte snapshot). It checks only what it reads (the
//! meta checksum, page ids, bounds, types); whether the file is whole is the trailer check's
//! and the walker's job. Pure over positioned reads; damage is an error string, never a panic.

use std::path::Path;

use super::bbolt::PageSource;
use super::mvcc::parse_revision;
use super::tree::Tree;
/// etcd's trailer after the database image.
const TRAILER: u64 = 32;

/// The revisions a snapshot's database records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revisions {
    /// The highest revision in the `key` bucket (0 without any): `snapshot status`'s revision.
    pub latest: u64,
    /// `meta/finishedCompactRev`: the last finished compaction, when one ran.
    pub finished_compact: Option<u64>,
}

impl Revisions {
    /// The revision a member restored without a revision bump serves: etcd starts at the
    /// finished compaction when the revisions up to it were all compacted away (deleted keys),
    /// and serves at least 1. Pure.
    pub fn served(&self) -> u64 {
        self.latest.max(self.finished_compact.unwrap_or(0)).max(1)
    }
}

/// Reads the revisions of the snapshot file at `path` (the trailer, if any, excluded).
pub fn read_file(path: &Path) -> Result<Revisions, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let size = PageSource::len(&file);
    let len = if size % 512 == TRAILER {
        size - TRAILER
    } else {
        size
    };
    read(&super::bbolt::Bounded { source: &file, len })
        .map_err(|e| format!("cannot read the revision of {}: {e}", path.display()))
}

/// Reads the revisions of the database image `src`.
pub fn read(src: &dyn PageSource) -> Result<Revisions, String> {
    let tree = Tree::open(src)?;
    let latest = match tree.bucket(&tree.root(), b"key")? {
        None => 0,
        Some(bucket) => match tree.last_key(&bucket)? {
            None => 0,
            Some(key) => {
                parse_revision(&key)
                    .ok_or_else(|| {
                        format!(
                            "the last key of bucket key is not a revision ({} bytes)",
                            key.len()
                        )
                    })?
                    .main
            }
        },
    };
    let finished_compact = match tree.bucket(&tree.root(), b"meta")? {
        None => None,
        Some(bucket) => match tree.lookup(&bucket, b"finishedCompactRev")? {
            None => None,
            Some(found) => Some(
                parse_revision(&found.value)
                    .ok_or("meta/finishedCompactRev is not a revision")?
                    .main,
            ),
        },
    };
    Ok(Revisions {
        latest,
        finished_compact,
    })
}

#[cfg(test)]
#[path = "revision_tests.rs"]
mod tests;
