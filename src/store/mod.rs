//! Where snapshot copies live and how they are listed, deleted and pruned.
//!
//! `LocalStore` is the snapshot dir, `S3Store` a folder of a bucket; both implement
//! `SnapshotStore` so callers (operations, scheduler, controller) treat every copy alike. Saving is
//! not part of the trait: the save pipeline writes the local file and uploads it.

pub mod local;
pub mod rekey;
pub mod s3;

use std::future::Future;

pub use local::{DeleteOutcome, LocalStore, StoreError, StoreLock};
pub use s3::{S3Error, S3Store};

use crate::snapshot::SnapshotRecord;

/// One place that holds snapshot copies.
pub trait SnapshotStore: Send + Sync {
    /// The store's own error type (local file-system or S3 errors).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every snapshot copy the store holds, oldest first.
    fn list(&self) -> impl Future<Output = Result<Vec<SnapshotRecord>, Self::Error>> + Send;

    /// Deletes one snapshot (and its metadata) by file name, e.g. `on-demand-n1-1.zip`.
    fn delete(
        &self,
        file_name: &str,
    ) -> impl Future<Output = Result<DeleteOutcome, Self::Error>> + Send;

    /// Keeps the newest `retention` snapshots of `base` (0 keeps all); returns what was deleted,
    /// or with `dry_run` what would be.
    fn prune(
        &self,
        base: &str,
        retention: u32,
        dry_run: bool,
    ) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send;
}

/// Local operations are a few syscalls on one directory, so they run inline.
impl SnapshotStore for LocalStore {
    type Error = StoreError;

    async fn list(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        LocalStore::list(self)
    }

    async fn delete(&self, file_name: &str) -> Result<DeleteOutcome, StoreError> {
        LocalStore::delete(self, file_name)
    }

    async fn prune(
        &self,
        base: &str,
        retention: u32,
        dry_run: bool,
    ) -> Result<Vec<String>, StoreError> {
        LocalStore::prune(self, base, retention, dry_run)
    }
}

/// S3 copies are listed, deleted and pruned like local ones. Pruning needs the store's
/// identity (`S3Store::with_identity`) and never touches another cluster's objects.
impl SnapshotStore for S3Store {
    type Error = S3Error;

    async fn list(&self) -> Result<Vec<SnapshotRecord>, S3Error> {
        S3Store::list(self).await
    }

    async fn delete(&self, file_name: &str) -> Result<DeleteOutcome, S3Error> {
        S3Store::delete(self, file_name).await
    }

    async fn prune(
        &self,
        base: &str,
        retention: u32,
        dry_run: bool,
    ) -> Result<Vec<String>, S3Error> {
        S3Store::prune(self, base, retention, dry_run).await
    }
}
