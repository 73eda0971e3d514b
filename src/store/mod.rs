//! Where snapshot copies live and how they are listed, deleted and pruned.
//!
//! `LocalStore` is the snapshot dir, `S3Store` a folder of a bucket; both implement
//! `SnapshotStore`, the seam through which operations list, delete and prune (with the store's
//! retention policy, `snapshot::retention`) every configured store alike, and name each copy's
//! storage and location in their reports. tests/it/store_conformance.rs holds every store to
//! it. Saving is not part of the trait: the save pipeline writes the local file (through the
//! store's layout) and uploads it.

pub mod local;
pub mod rekey;
pub mod s3;
pub mod verdict;

use std::future::Future;

pub use local::{DeleteOutcome, LocalStore, StoreError, StoreLock};
pub use s3::{S3Error, S3Store};
pub use verdict::VerdictError;

use crate::snapshot::prune::Pruned;
use crate::snapshot::retention::RetentionPolicy;
use crate::snapshot::{SnapshotRecord, Storage};

/// One place that holds snapshot copies.
pub trait SnapshotStore: Send + Sync {
    /// The store's own error type (local file-system or S3 errors).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Which kind of store this is, as listings and retention verdicts name it.
    fn storage(&self) -> Storage;

    /// Where the copy named `file_name` lives, as listings and reports show it (`file://` is
    /// left off a local path; an S3 copy is `s3://<bucket>/<key>`).
    fn location(&self, file_name: &str) -> String;

    /// Every snapshot copy the store holds, oldest first.
    fn list(&self) -> impl Future<Output = Result<Vec<SnapshotRecord>, Self::Error>> + Send;

    /// Deletes one snapshot (and its metadata) by file name, e.g. `on-demand-n1-1.zip`.
    fn delete(
        &self,
        file_name: &str,
    ) -> impl Future<Output = Result<DeleteOutcome, Self::Error>> + Send;

    /// Applies `policy` to this node's snapshots of `base` (exact names only, never another
    /// node's, base's or cluster's): deletes (unless `dry_run`) what it removes, oldest first,
    /// and returns what was (or would be) deleted with every considered snapshot's verdict.
    fn prune(
        &self,
        base: &str,
        policy: &RetentionPolicy,
        dry_run: bool,
    ) -> impl Future<Output = Result<Pruned, Self::Error>> + Send;
}

/// Local operations are a few syscalls on one directory, so they run inline.
impl SnapshotStore for LocalStore {
    type Error = StoreError;

    fn storage(&self) -> Storage {
        Storage::Local
    }

    fn location(&self, file_name: &str) -> String {
        self.layout().snapshot_path(file_name).display().to_string()
    }

    async fn list(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        LocalStore::list(self)
    }

    async fn delete(&self, file_name: &str) -> Result<DeleteOutcome, StoreError> {
        LocalStore::delete(self, file_name)
    }

    async fn prune(
        &self,
        base: &str,
        policy: &RetentionPolicy,
        dry_run: bool,
    ) -> Result<Pruned, StoreError> {
        LocalStore::prune(self, base, policy, dry_run)
    }
}

/// S3 copies are listed, deleted and pruned like local ones. Pruning needs the store's
/// identity (`S3Store::with_identity`) and never touches another cluster's objects.
impl SnapshotStore for S3Store {
    type Error = S3Error;

    fn storage(&self) -> Storage {
        Storage::S3
    }

    fn location(&self, file_name: &str) -> String {
        s3::keys::location(self.client().bucket(), &self.layout().object_key(file_name))
    }

    async fn list(&self) -> Result<Vec<SnapshotRecord>, S3Error> {
        S3Store::list(self).await
    }

    async fn delete(&self, file_name: &str) -> Result<DeleteOutcome, S3Error> {
        S3Store::delete(self, file_name).await
    }

    async fn prune(
        &self,
        base: &str,
        policy: &RetentionPolicy,
        dry_run: bool,
    ) -> Result<Pruned, S3Error> {
        S3Store::prune(self, base, policy, dry_run).await
    }
}
