//! Copying snapshots to S3 inside an operation: the streamed upload that runs beside the local
//! save, the retried upload from the finished file when streaming did not work out, and the
//! failure record when nothing worked.
//!
//! The local snapshot never depends on S3: the S3 connection is made concurrently with the
//! save, a slow or failing S3 is cut off from the save's tee, and every failure leaves the local
//! file in place and a marker (`pending`) for `ls` and the next reconcile.

use std::collections::BTreeMap;
use std::path::Path;

use tokio::task::JoinHandle;

use super::FailedItem;
use super::pending::{self, PendingUpload};
use super::{error_chain, rounded_now_unix};
use crate::config::DesiredConfig;
use crate::config::desired::S3Settings;
use crate::kube::KubeAccess;
use crate::snapshot::save::SavedSnapshot;
use crate::snapshot::tee::TeeReceiver;
use crate::store::s3::keys::location;
use crate::store::s3::retry::RetryPolicy;
use crate::store::s3::{ObjectMetadata, S3Error, S3Store, UploadedObject};

/// The operation's S3 session: `open` when an earlier step of the same operation connected
/// already, else a new connection. One operation thus checks the bucket and reads the token
/// once, however many steps (upload, retention, listing) use S3.
pub(super) async fn session(
    kube: &KubeAccess,
    config: &DesiredConfig,
    settings: &S3Settings,
    open: Option<S3Store>,
) -> Result<S3Store, S3Error> {
    match open {
        Some(store) => Ok(store),
        None => connect(kube, config, settings).await,
    }
}

/// Connects to the configured bucket as this node (name and cluster id for retention, and the
/// token hash its objects carry: the token file is read here, once per connection).
pub(super) async fn connect(
    kube: &KubeAccess,
    config: &DesiredConfig,
    settings: &S3Settings,
) -> Result<S3Store, S3Error> {
    let settings = &super::s3_config::connectable(kube, settings).await?;
    let token_hash = crate::token::server_token_hash(config).unwrap_or_default();
    Ok(S3Store::connect(settings)
        .await?
        .with_identity(&config.node_name, &config.cluster_id)
        .with_token_hash(&token_hash))
}

/// The object metadata RKE2 reads: cluster id, uploading node, token hash (the one `store`
/// was connected with).
pub(super) fn object_metadata(config: &DesiredConfig, store: &S3Store) -> ObjectMetadata {
    ObjectMetadata {
        cluster_id: config.cluster_id.clone(),
        node_name: config.node_name.clone(),
        token_hash: store.token_hash().to_string(),
        sha256: None,
        extra: BTreeMap::new(),
    }
}

/// What the concurrent upload task ended with.
pub(super) enum Streamed {
    Uploaded {
        store: S3Store,
        uploaded: UploadedObject,
    },
    /// The store is kept when the connection worked, for the retry from the file.
    Failed {
        store: Option<S3Store>,
        error: S3Error,
    },
}

/// Starts connecting and, once connected, uploads what the save's tee sends. Started before
/// the local save so a slow connection never delays it (the tee cuts a stalled consumer off).
pub(super) fn start_streamed_upload(
    kube: &KubeAccess,
    config: &DesiredConfig,
    settings: &S3Settings,
    name: String,
    feed: TeeReceiver,
    extra: BTreeMap<String, String>,
) -> JoinHandle<Streamed> {
    let (kube, config, settings) = (kube.clone(), config.clone(), settings.clone());
    tokio::spawn(async move {
        let store = match connect(&kube, &config, &settings).await {
            Ok(store) => store,
            Err(error) => return Streamed::Failed { store: None, error },
        };
        let metadata = ObjectMetadata {
            extra,
            ..object_metadata(&config, &store)
        };
        match store.upload_stream(&name, &metadata, feed).await {
            Ok(uploaded) => Streamed::Uploaded { store, uploaded },
            Err(error) => Streamed::Failed {
                store: Some(store),
                error,
            },
        }
    })
}

/// Where a snapshot goes in the configured bucket, for messages and markers.
pub(super) fn target_location(settings: &S3Settings, name: &str) -> String {
    if let Some(secret) = settings
        .config_secret
        .as_ref()
        .filter(|_| settings.bucket.is_empty())
    {
        return format!("S3 (bucket from Secret kube-system/{secret})");
    }
    let layout = crate::store::s3::keys::KeyLayout::new(&settings.folder);
    location(&settings.bucket, &layout.object_key(name))
}

/// Completes the S3 copy of a saved snapshot: takes the streamed result, or uploads the file
/// with retries when streaming failed; then uploads the metadata file if there is one.
/// Records or clears the failure marker. Returns the failure to report, if any, and the
/// connected store for the rest of the operation.
pub(super) async fn finish_upload(
    kube: &KubeAccess,
    config: &DesiredConfig,
    settings: &S3Settings,
    saved: &SavedSnapshot,
    streamed: Result<Streamed, tokio::task::JoinError>,
    extra: &BTreeMap<String, String>,
) -> (Option<FailedItem>, Option<S3Store>) {
    let name = saved.name.file_name();
    let (store, first_error) = match streamed {
        Ok(Streamed::Uploaded { store, uploaded }) => (Some(store), Ok(uploaded)),
        Ok(Streamed::Failed { store, error }) => (store, Err(error_chain(&error))),
        Err(join) => (None, Err(format!("the upload task failed: {join}"))),
    };
    let result = match (first_error, store) {
        (Ok(uploaded), Some(store)) => Ok((uploaded, store)),
        (first, store) => {
            let first = first.err().unwrap_or_default();
            tracing::warn!(snapshot = %name, error = %first, "streamed S3 upload did not complete; uploading the saved file");
            upload_saved_file(kube, config, settings, store, saved, extra).await
        }
    };
    match result {
        Ok((uploaded, store)) => {
            upload_metadata_file(&store, saved, &object_metadata(config, &store)).await;
            if let Err(e) = pending::clear(saved.path.parent().unwrap_or(Path::new(".")), &name) {
                tracing::warn!(snapshot = %name, error = %e, "failed to clear the upload-failure marker");
            }
            tracing::info!(snapshot = %name, location = %uploaded.location, size = uploaded.size, "snapshot copied to S3");
            (None, Some(store))
        }
        Err(e) => (Some(record_failure(settings, saved, &e)), None),
    }
}

/// The fallback: the finished file, uploaded with retries and backoff.
async fn upload_saved_file(
    kube: &KubeAccess,
    config: &DesiredConfig,
    settings: &S3Settings,
    store: Option<S3Store>,
    saved: &SavedSnapshot,
    extra: &BTreeMap<String, String>,
) -> Result<(UploadedObject, S3Store), S3Error> {
    let store = session(kube, config, settings, store).await?;
    let metadata = ObjectMetadata {
        sha256: Some(saved.file_sha256.clone()),
        extra: extra.clone(),
        ..object_metadata(config, &store)
    };
    let uploaded = store
        .upload_file_with_retry(
            &saved.path,
            &saved.name.file_name(),
            &metadata,
            RetryPolicy::default(),
        )
        .await?;
    Ok((uploaded, store))
}

/// Uploads `<dir>/../.metadata/<name>` when the save wrote one; a failure only warns, as the
/// snapshot itself is safely in S3.
async fn upload_metadata_file(store: &S3Store, saved: &SavedSnapshot, metadata: &ObjectMetadata) {
    let name = saved.name.file_name();
    let dir = saved.path.parent().unwrap_or(Path::new("."));
    let path = crate::layout::metadata_dir_for(dir).join(&name);
    let read = tokio::task::spawn_blocking(move || {
        crate::fsutil::read_capped(&path, crate::fsutil::SMALL_FILE_MAX)
    });
    let Ok(Ok(json)) = read.await else {
        return;
    };
    if let Err(e) = store.upload_metadata(&name, json, metadata).await {
        tracing::warn!(snapshot = %name, error = %error_chain(&e), "failed to upload the snapshot's metadata file to S3");
    }
}

/// Logs the failure, writes its marker, and returns it as a failed item of the operation.
fn record_failure(settings: &S3Settings, saved: &SavedSnapshot, error: &S3Error) -> FailedItem {
    let name = saved.name.file_name();
    let target = target_location(settings, &name);
    let message = format!(
        "the local snapshot was kept, but copying it to {target} failed (it is retried on the next reconcile): {}",
        error_chain(error)
    );
    tracing::error!(snapshot = %name, %target, error = %error_chain(error), "failed to copy snapshot to S3; the local snapshot was kept");
    // Where the copy should have gone is unknown when the Secret naming the bucket could not
    // be read: the record then has no location rather than a sentence in its place.
    let bucket_known = !settings.bucket.is_empty();
    let marker = PendingUpload {
        name: name.clone(),
        location: if bucket_known { target } else { String::new() },
        error: error_chain(error),
        failed_at: rounded_now_unix(),
    };
    let dir = saved.path.parent().unwrap_or(Path::new("."));
    if let Err(e) = pending::record(dir, &marker) {
        tracing::warn!(snapshot = %name, error = %e, "failed to record the upload failure");
    }
    FailedItem { name, message }
}
