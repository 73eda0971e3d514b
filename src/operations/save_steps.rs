//! The steps of a save that stand apart from the writer lock and the stores: the recipients of
//! this save and the fingerprints recorded for them, the revision taken before the stream and the
//! keyspace hash asked for after it (`snapshot::hashkv`), the bootstrap sync of an embedded
//! member, the metadata record (the ConfigMap's entries with ours), the log line of a saved
//! snapshot, and letting a failed save's upload go.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{OperationError, replicate};
use crate::config::DesiredConfig;
use crate::config::verify;
use crate::errors::error_chain;
use crate::etcd::client::connect;
use crate::snapshot::hashkv::{self, HashDecision, HashKvError};
use crate::snapshot::save::{LateEntries, SavedSnapshot};

/// The recipients a save encrypts to, read afresh for every save: a rotated recipients file or
/// encryption Secret applies to the next snapshot. None when encryption is off; an error (no
/// snapshot, never a plaintext one) when a configured Secret cannot be read.
pub(super) async fn current_recipients(
    kube: &crate::kube::KubeAccess,
    settings: &crate::config::SnapshotSettings,
    base: &str,
) -> Result<Option<crate::crypt::Recipients>, OperationError> {
    crate::kube::encryption_secret::current_recipients(kube, &settings.encryption)
        .await
        .map_err(|source| OperationError::Keys {
            name: base.to_string(),
            source: Box::new(source),
        })
}

/// The fingerprints an encrypted save's recipients have, as metadata entries: recorded with
/// the keyspace hash in the metadata record and on the S3 object, so the listing of either copy
/// (`SnapshotRecord::encrypted_to`) shows them. Empty when encryption is off.
pub(super) fn encryption_entries(
    recipients: Option<&crate::crypt::Recipients>,
) -> BTreeMap<String, String> {
    recipients.map_or_else(BTreeMap::new, |r| {
        let key = crate::snapshot::encryption_record::META_FINGERPRINTS;
        let fingerprints = crate::crypt::keys::join(&r.fingerprints());
        BTreeMap::from([(key.to_string(), fingerprints)])
    })
}

/// After a failed save: the upload saw its feed close without `Done` and throws its parts
/// away; give it a moment to do so, without letting an unreachable S3 delay the error.
pub(super) async fn abandon_upload(upload: Option<tokio::task::JoinHandle<replicate::Streamed>>) {
    if let Some(task) = upload {
        let _ = tokio::time::timeout(ABANDON_GRACE, task).await;
    }
}

/// The one log line of a saved snapshot: where it is, its size and hashes, and the key
/// fingerprints it is encrypted to (never the keys).
pub(super) fn log_saved(saved: &SavedSnapshot) {
    tracing::info!(
        snapshot = %saved.name.file_name(),
        path = %saved.path.display(),
        size = saved.size,
        sha256 = %saved.file_sha256,
        encrypted_to = %crate::crypt::keys::join(&saved.recipients),
        plaintext_sha256 = saved.plaintext_sha256.as_deref().unwrap_or(""),
        "snapshot saved"
    );
}

/// Before the stream: the live revision `R` as metadata entries, and, unless the database is
/// over `etcd-snapshot-hashkv-max-db-size`, the keyspace hash at `R` for the pipeline to ask for
/// once the stream has ended (`Output::late`). Nothing (with a warning) when etcd cannot give
/// `R`: the snapshot is still taken, and a drill says that no hash was recorded.
pub(super) async fn begin_hashkv(
    config: &DesiredConfig,
    snapshot: &str,
) -> (BTreeMap<String, String>, Option<LateEntries>) {
    let mut client = match connect(&config.etcd).await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(%snapshot, error = %error_chain(&e), "failed to connect to etcd for the keyspace revision; saving without it");
            return (BTreeMap::new(), None);
        }
    };
    let status = match hashkv::live_status(&mut client).await {
        Ok(status) => status,
        Err(e) => {
            tracing::warn!(%snapshot, error = %error_chain(&e), "failed to ask etcd for its revision; saving without a keyspace hash");
            return (BTreeMap::new(), None);
        }
    };
    let max = config.snapshot.verify.hashkv_max_db_size;
    let late = match hashkv::decide(status.db_size, max) {
        HashDecision::Hash => Some(late_hash(client, status.revision, snapshot.to_string())),
        HashDecision::Never => {
            tracing::info!(%snapshot, "keyspace hash skipped: {} is 0", verify::HASHKV_MAX_DB_SIZE);
            None
        }
        HashDecision::TooBig { db_size, .. } => {
            tracing::info!(%snapshot, "keyspace hash skipped: database is {db_size} bytes, over {} ({max} bytes)", verify::HASHKV_MAX_DB_SIZE);
            None
        }
    };
    (status.entries(), late)
}

/// `HashKV(revision)` as the save's late entries; a failure records no hash and never fails
/// the save (a revision compacted meanwhile is expected, and logged at info).
fn late_hash(mut client: etcd_client::Client, revision: i64, snapshot: String) -> LateEntries {
    LateEntries(Box::pin(async move {
        match hashkv::hash_at(&mut client, revision).await {
            Ok(record) => {
                tracing::debug!(%snapshot, hash = record.hash, revision, "recorded the keyspace hash");
                record.entries()
            }
            Err(e @ HashKvError::Compacted { .. }) => {
                tracing::info!(%snapshot, "keyspace hash skipped: {e}");
                BTreeMap::new()
            }
            Err(e) => {
                tracing::warn!(%snapshot, error = %error_chain(&e), "failed to record the keyspace hash; saved without it");
                BTreeMap::new()
            }
        }
    }))
}

pub(super) async fn sync_bootstrap_before_save(config: &DesiredConfig) {
    let Ok(token) = crate::token::existing_server_token(config) else {
        return;
    };
    if let Err(e) = crate::bootstrap::sync::sync_from_disk(config, &token).await {
        tracing::warn!(error = %error_chain(&e), "failed to store the bootstrap data in etcd before the snapshot");
    }
}

/// How long a failed save waits for its upload task to discard what it streamed.
const ABANDON_GRACE: Duration = Duration::from_secs(30);

/// The metadata record of a save: the ConfigMap's extra metadata, with the entries this tool
/// records added (ours never override the ConfigMap's).
pub(super) async fn merged_metadata_of(
    kube: &crate::kube::KubeAccess,
    recorded: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let mut metadata = crate::kube::extra_metadata::read_extra_metadata(kube).await;
    if !recorded.is_empty() {
        let map = metadata.get_or_insert_with(BTreeMap::new);
        for (key, value) in recorded {
            map.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    metadata
}
