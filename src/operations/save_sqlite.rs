//! A save whose datastore is SQLite: the checked copy (`datastore::save::SqliteCopy`) taken
//! before the upload starts, then streamed through the same pipeline as an etcd snapshot
//! (`snapshot::save_image`), with the same metadata record, encryption, tee and progress.

use std::collections::BTreeMap;

use super::save_steps::merged_metadata_of;
use super::{OperationError, Operations};
use crate::datastore::Datastore;
use crate::datastore::save::SqliteCopy;
use crate::snapshot::SnapshotName;
use crate::snapshot::image::ImageKind;
use crate::snapshot::save::{DEFAULT_COMPRESSION_LEVEL, Output, SavedSnapshot};
use crate::snapshot::save_image::save_from_image;
use crate::snapshot::tee::Tee;
use crate::store::local::LocalStore;
use crate::telemetry::progress::Operation;

/// For a SQLite datastore, its checked copy in the store's work dir; None for etcd.
pub(super) async fn copy_if_sqlite(
    datastore: &Datastore,
    store: &LocalStore,
    name: &SnapshotName,
) -> Result<Option<SqliteCopy>, OperationError> {
    let Datastore::Sqlite { path, why } = datastore else {
        return Ok(None);
    };
    tracing::info!(database = %path.display(), chosen = ?why, snapshot = %name.file_name(), "copying the SQLite datastore");
    let copy = SqliteCopy::take(path, store.layout(), name)
        .await
        .map_err(|source| OperationError::Datastore {
            name: name.file_name(),
            source: Box::new(source),
        })?;
    tracing::info!(
        database = %path.display(),
        pages = copy.copied.pages,
        page_size = copy.copied.page_size,
        revision = copy.summary.revision,
        rows = copy.summary.rows,
        "SQLite datastore copied and checked"
    );
    Ok(Some(copy))
}

impl Operations {
    /// Writes the snapshot from a SQLite copy, as `stream_to_store` does from etcd's stream.
    pub(super) async fn image_to_store(
        &self,
        store: &LocalStore,
        name: &SnapshotName,
        copy: &SqliteCopy,
        tee: Option<Tee>,
        recipients: Option<crate::crypt::Recipients>,
        recorded: &BTreeMap<String, String>,
    ) -> Result<SavedSnapshot, OperationError> {
        let metadata = merged_metadata_of(&self.kube, recorded).await;
        let total = copy.copied.pages * copy.copied.page_size;
        let progress = crate::telemetry::progress::reporter();
        let step =
            std::sync::Arc::new(progress.start(Operation::Save, &name.file_name(), Some(total)));
        let advancing = step.clone();
        let output = Output {
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            tee,
            recipients,
            late: None,
        };
        let saved = save_from_image(
            copy.path(),
            ImageKind::Sqlite,
            store.layout(),
            name,
            metadata.as_ref(),
            output,
            Box::new(move |n| advancing.advance(n)),
        )
        .await;
        if let Ok(step) = std::sync::Arc::try_unwrap(step) {
            step.finish(saved.is_ok());
        }
        saved.map_err(|source| OperationError::Save {
            name: name.file_name(),
            source,
        })
    }
}
