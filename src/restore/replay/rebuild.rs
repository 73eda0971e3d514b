//! The replayed database, written directly: every bucket of the full snapshot copied into a new
//! bbolt file, then the chain's revisions appended to the `key` bucket exactly as etcd would
//! have stored them (`apply`), and leases the chain binds keys to added to the `lease` bucket.
//! Revisions only grow, so the appended entries all sort after the snapshot's and the `key`
//! bucket is bulk-loaded in one pass (`bolt_writer`): disk speed instead of one etcd request
//! per revision.
//!
//! The copy is read with the project's bbolt walker, which checks the snapshot's structure on
//! the way, and the SHA-256 trailer of a file no earlier step checked is checked beside it; a
//! damaged snapshot, or one holding what etcd never writes (a nested bucket, a `key` bucket key
//! that is not a revision), is refused. The `key` bucket's builder stays open while the rest
//! of the snapshot is copied and the chain is appended; the `lease` bucket is held in memory
//! (one small entry per lease, as etcd itself holds them) so granted leases merge in order.
//! Nothing here proves the result: the caller starts a member on it and compares its keyspace
//! hash and revision with what the capture recorded.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::ReplayError;
use super::apply::{granted_lease, group_entries, leases_of};
use super::bolt_writer::{BoltWriter, BucketBuilder};
use crate::delta::segment::RevisionGroup;
use crate::inspect::bbolt::Problems;
use crate::inspect::bbolt::{Visit, read_meta, walk};
use crate::inspect::mvcc::parse_revision;
use crate::snapshot::verify::{VerifyError, verify_snapshot_file};

const KEY_BUCKET: &[u8] = b"key";
const LEASE_BUCKET: &[u8] = b"lease";
const META_BUCKET: &[u8] = b"meta";
const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";

/// The database being rebuilt: the snapshot copied, the chain being appended.
pub struct Rebuild {
    out: BoltWriter,
    path: PathBuf,
    key_bucket: BucketBuilder,
    /// Buckets already written whole: name and root page.
    written: Vec<(Vec<u8>, u64)>,
    leases: Option<BTreeMap<Vec<u8>, Vec<u8>>>,
    txid: u64,
    /// The revision the snapshot holds (what a member restored from it reports).
    pub snapshot_revision: i64,
    /// The revision the next group must have.
    next_revision: i64,
}

impl Rebuild {
    /// Copies every bucket of the plain database file `anchor` into a new file at `path`; with
    /// `check_trailer` (a file no earlier step checked as it was written), its SHA-256 trailer
    /// is checked on a second thread during the copy.
    pub fn copy_anchor(
        anchor: &Path,
        path: &Path,
        check_trailer: bool,
    ) -> Result<Self, ReplayError> {
        std::thread::scope(|s| {
            let trailer = check_trailer.then(|| s.spawn(|| verify_snapshot_file(anchor)));
            let copied = Self::copy(anchor, path);
            if let Some(check) = trailer {
                let checked = check.join().unwrap_or_else(|_| {
                    Err(VerifyError::ReadSnapshot {
                        path: anchor.to_path_buf(),
                        source: std::io::Error::other("the trailer check panicked"),
                    })
                });
                // A damaged file explains any copy failure; say that first.
                checked.map_err(|source| ReplayError::AnchorCheck(Box::new(source)))?;
            }
            copied
        })
    }

    fn copy(anchor: &Path, path: &Path) -> Result<Self, ReplayError> {
        let source = File::open(anchor).map_err(io_err("open", anchor))?;
        let mut problems = Problems::default();
        let (meta, _) =
            read_meta(&source, &mut problems).ok_or_else(|| damaged(anchor, &problems))?;
        let mut copy = AnchorCopier {
            out: BoltWriter::create(path, meta.page_size).map_err(io_err("create", path))?,
            current: Current::None,
            key_bucket: None,
            written: Vec::new(),
            leases: None,
            last_key_revision: 0,
            finished_compact: 0,
            failure: None,
            fault: None,
        };
        let structure = walk(&source, &mut copy);
        copy.close_current();
        if !structure.problems.is_empty() {
            return Err(damaged(anchor, &structure.problems));
        }
        if let Some(detail) = copy.fault {
            return Err(ReplayError::Anchor {
                path: anchor.to_path_buf(),
                detail,
            });
        }
        if let Some(failure) = copy.failure {
            return Err(io_err("copy the full snapshot into", path)(failure));
        }
        let key_bucket = copy.key_bucket.ok_or_else(|| ReplayError::Anchor {
            path: anchor.to_path_buf(),
            detail: "it has no key bucket: not an etcd database".into(),
        })?;
        // As etcd computes it at start: at least 1, and the compaction revision when compaction
        // removed every later key.
        let snapshot_revision = copy.last_key_revision.max(copy.finished_compact).max(1);
        Ok(Self {
            out: copy.out,
            path: path.to_path_buf(),
            key_bucket,
            written: copy.written,
            leases: copy.leases,
            txid: structure.txid,
            snapshot_revision,
            next_revision: snapshot_revision + 1,
        })
    }

    /// Appends `group` (read from `segment`): it must be the revision after the last one.
    pub fn apply(&mut self, group: &RevisionGroup, segment: &Path) -> Result<(), ReplayError> {
        if group.revision != self.next_revision {
            return Err(ReplayError::RevisionGap {
                path: segment.to_path_buf(),
                revision: group.revision,
                expected: self.next_revision,
            });
        }
        let entries = group_entries(group).map_err(|m| ReplayError::Misplaced {
            path: segment.to_path_buf(),
            field: "mod revision of a put",
            found: m.mod_revision.to_string(),
            expected: group.revision.to_string(),
        })?;
        for (key, value) in &entries {
            self.key_bucket
                .push(&mut self.out, key, value)
                .map_err(io_err(WRITE, &self.path))?;
        }
        for id in leases_of(group) {
            let (key, value) = granted_lease(id);
            self.leases
                .get_or_insert_default()
                .entry(key)
                .or_insert(value);
        }
        self.next_revision += 1;
        Ok(())
    }

    /// Writes the `key` and `lease` buckets, the root bucket and the meta pages; returns the
    /// file's path.
    pub fn finish(mut self) -> Result<PathBuf, ReplayError> {
        let root = self
            .key_bucket
            .finish(&mut self.out)
            .map_err(io_err("write the key bucket of", &self.path))?;
        self.written.push((KEY_BUCKET.to_vec(), root));
        if let Some(leases) = self.leases.take() {
            let mut bucket = BucketBuilder::default();
            let root = leases
                .iter()
                .try_for_each(|(k, v)| bucket.push(&mut self.out, k, v))
                .and_then(|()| bucket.finish(&mut self.out));
            let root = root.map_err(io_err(WRITE, &self.path))?;
            self.written.push((LEASE_BUCKET.to_vec(), root));
        }
        self.written.sort();
        let path = self.path;
        self.out
            .finish(&self.written, self.txid + 1)
            .map_err(io_err("finish", &path))?;
        Ok(path)
    }
}

/// The action named when appending to the rebuilt file fails.
const WRITE: &str = "write the replayed revisions to";

/// An I/O error while doing `action` to the file at `path`.
fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ReplayError {
    let path = path.to_path_buf();
    move |source| ReplayError::Io {
        action,
        path,
        source,
    }
}

fn damaged(anchor: &Path, problems: &Problems) -> ReplayError {
    ReplayError::Anchor {
        path: anchor.to_path_buf(),
        detail: problems.first.join("; "),
    }
}

/// The bucket the walk is in.
enum Current {
    None,
    Copied(Vec<u8>, BucketBuilder),
    Key(BucketBuilder),
    Lease,
}

/// The walk's visitor: writes each bucket as it is visited, keeps the `key` bucket open and the
/// `lease` bucket in memory, and notes the revisions the snapshot holds.
struct AnchorCopier {
    out: BoltWriter,
    current: Current,
    key_bucket: Option<BucketBuilder>,
    written: Vec<(Vec<u8>, u64)>,
    leases: Option<BTreeMap<Vec<u8>, Vec<u8>>>,
    last_key_revision: i64,
    finished_compact: i64,
    /// The first write failure; the walk goes on, writing nothing more.
    failure: Option<std::io::Error>,
    /// The first thing in the snapshot etcd would not have written.
    fault: Option<String>,
}

impl AnchorCopier {
    fn close_current(&mut self) {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::Copied(name, builder) if self.failure.is_none() => {
                match builder.finish(&mut self.out) {
                    Ok(root) => self.written.push((name, root)),
                    Err(e) => self.failure = Some(e),
                }
            }
            Current::Key(builder) => self.key_bucket = Some(builder),
            _ => {}
        }
    }
}

impl Visit for AnchorCopier {
    fn bucket(&mut self, name: &[u8]) {
        self.close_current();
        self.current = match name {
            KEY_BUCKET => Current::Key(BucketBuilder::default()),
            LEASE_BUCKET => {
                self.leases = Some(BTreeMap::new());
                Current::Lease
            }
            _ => Current::Copied(name.to_vec(), BucketBuilder::default()),
        };
    }

    fn entry(&mut self, key: &[u8], value: Option<&[u8]>) {
        if self.failure.is_some() || self.fault.is_some() {
            return;
        }
        let Some(value) = value else {
            self.fault = Some("it has a nested bucket, which etcd never writes".into());
            return;
        };
        let written = match &mut self.current {
            Current::None => Ok(()),
            Current::Lease => {
                if let Some(leases) = self.leases.as_mut() {
                    leases.insert(key.to_vec(), value.to_vec());
                }
                Ok(())
            }
            Current::Key(builder) => {
                let Some(revision) = parse_revision(key) else {
                    self.fault = Some(format!(
                        "its key bucket holds {}, which is not a revision",
                        crate::inspect::mvcc::printable(key)
                    ));
                    return;
                };
                self.last_key_revision = revision.main as i64;
                builder.push(&mut self.out, key, value)
            }
            Current::Copied(name, builder) => {
                if name == META_BUCKET
                    && key == FINISHED_COMPACT
                    && let Some(revision) = parse_revision(value)
                {
                    self.finished_compact = revision.main as i64;
                }
                builder.push(&mut self.out, key, value)
            }
        };
        if let Err(e) = written {
            self.failure = Some(e);
        }
    }
}

#[cfg(test)]
#[path = "rebuild_tests.rs"]
mod tests;
