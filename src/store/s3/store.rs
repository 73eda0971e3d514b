//! `S3Store`: snapshot objects in one folder of one bucket — list, delete, read metadata
//! (uploads are `upload.rs`, downloads `download.rs`).
//!
//! Owns object I/O and the object metadata RKE2 reads. Key layout is `keys.rs`, client setup
//! `client.rs`. Retention (which objects to prune) is not decided here.

use std::collections::HashMap;
use std::path::Path;

use super::client::S3Client;
use super::error::{S3Error, to_error};
use super::keys::{KeyLayout, location};
use crate::config::desired::S3Settings;
use crate::snapshot::name::{timestamp_in_name, validate_user_name};
use crate::snapshot::{SnapshotRecord, Storage};
use crate::store::DeleteOutcome;

/// Object user-metadata keys, as RKE2 writes them (`X-Amz-Meta-<key>`).
pub const META_CLUSTER_ID: &str = "Rke2-Cluster-Id";
pub const META_NODE_NAME: &str = "Rke2-Node-Name";
pub const META_TOKEN_HASH: &str = "Rke2-Token-Hash";
/// Ours: the hex SHA-256 of the object's bytes, checked after every download.
pub const META_SHA256: &str = "Etcd-Snapshot-Sha256";

/// Multipart part size: S3's 5 MiB minimum. Two parts are in memory during a streamed upload
/// (one uploading, one filling), so the smallest allowed size keeps peak memory lowest; 10,000
/// parts still allow 50 GiB, far above etcd's limits.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// The node name listed for S3 copies. Object user metadata would need one HEAD per object,
/// and the node part of `<base>-<node>-<ts>` is ambiguous when names contain `-`, so S3 rows
/// carry `s3` as RKE2's listing does.
pub const S3_NODE_NAME: &str = "s3";

/// Who uploaded a snapshot and its checksum, sent as object user metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMetadata {
    /// UID of the `kube-system` namespace; empty when unknown (no Kubernetes).
    pub cluster_id: String,
    pub node_name: String,
    /// First 12 hex characters of sha256(server token); empty when unknown.
    pub token_hash: String,
    /// Hex SHA-256 of the file; computed from the file when `None`.
    pub sha256: Option<String>,
    /// Our own further entries (the keyspace hash recorded at save time, `snapshot::hashkv`).
    pub extra: std::collections::BTreeMap<String, String>,
}

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedObject {
    pub key: String,
    pub location: String,
    pub size: u64,
    pub sha256: String,
}

/// Snapshot copies in `<bucket>/<folder>/`.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: S3Client,
    layout: KeyLayout,
    /// This node's name: retention only ever considers `<base>-<node>-<ts>` objects.
    pub(super) node: String,
    /// This cluster's id (`Rke2-Cluster-Id`); objects of another cluster are never pruned.
    pub(super) cluster_id: String,
    /// This server's token hash (`Rke2-Token-Hash`); empty when unknown. Objects written under
    /// another token are never pruned, even when neither side has a cluster id.
    pub(super) token_hash: String,
    /// The ETag of every object the last `list` returned, by location: the metadata cache
    /// (`sources`) keys on it, so an object rewritten under the same name and size (a `rekey`
    /// run by another process) is read again.
    pub(super) listed_etags: ListedEtags,
    /// False once the server answered that it lacks multi-object delete (`batch_delete`);
    /// clones of a store share it, so the fallback is found and logged once.
    pub(super) batch_delete: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Location -> ETag of the last listing; clones of a store share it.
pub(super) type ListedEtags = std::sync::Arc<std::sync::Mutex<HashMap<String, String>>>;

impl S3Store {
    /// Builds the client and checks the bucket (clear errors for every setup problem).
    pub async fn connect(settings: &S3Settings) -> Result<Self, S3Error> {
        let client = S3Client::connect(settings).await?;
        Ok(Self::new(client, &settings.folder))
    }

    /// A store over an already built client.
    pub fn new(client: S3Client, folder: &str) -> Self {
        Self {
            client,
            layout: KeyLayout::new(folder),
            node: String::new(),
            cluster_id: String::new(),
            token_hash: String::new(),
            listed_etags: ListedEtags::default(),
            batch_delete: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// Sets the token hash this store's own objects carry (see `token_hash`).
    pub fn with_token_hash(mut self, token_hash: &str) -> Self {
        self.token_hash = token_hash.to_string();
        self
    }

    /// The token hash this store's own objects carry; empty when unknown.
    pub fn token_hash(&self) -> &str {
        &self.token_hash
    }

    /// Sets who this store prunes for: the node name and cluster id (empty when unknown).
    pub fn with_identity(mut self, node: &str, cluster_id: &str) -> Self {
        self.node = node.to_string();
        self.cluster_id = cluster_id.to_string();
        self
    }

    pub fn client(&self) -> &S3Client {
        &self.client
    }

    pub fn layout(&self) -> &KeyLayout {
        &self.layout
    }

    /// Snapshot objects directly under the folder, oldest first: one paginated ListObjectsV2
    /// and no request per object. Metadata objects, nested keys and non-snapshot names are
    /// skipped.
    pub async fn list(&self) -> Result<Vec<SnapshotRecord>, S3Error> {
        let prefix = self.layout.list_prefix();
        let mut pages = self
            .client
            .sdk
            .list_objects_v2()
            .bucket(&self.client.bucket)
            .prefix(&prefix)
            // Only the folder's own keys: `.metadata/` (one object per snapshot) and any nested
            // folder collapse into a prefix each, which halves the pages to fetch.
            .delimiter("/")
            .into_paginator()
            .send();
        let mut records = Vec::new();
        let mut etags = HashMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| to_error(e, "list", &self.client.target(&prefix)))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                if let Some(record) = self.record(key, object) {
                    if let Some(etag) = object.e_tag() {
                        etags.insert(record.location.clone(), etag.to_string());
                    }
                    records.push(record);
                }
            }
        }
        *self
            .listed_etags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = etags;
        records.sort_by(|a, b| (a.created_unix, &a.file_name).cmp(&(b.created_unix, &b.file_name)));
        Ok(records)
    }

    fn record(&self, key: &str, object: &aws_sdk_s3::types::Object) -> Option<SnapshotRecord> {
        let name = self.layout.snapshot_name(key)?;
        let modified = object.last_modified().map(|t| t.secs());
        Some(SnapshotRecord {
            file_name: name.to_string(),
            location: location(&self.client.bucket, key),
            node_name: S3_NODE_NAME.into(),
            storage: Storage::S3,
            size: object
                .size()
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
            created_unix: timestamp_in_name(name).or(modified)?,
            compressed: crate::snapshot::name::is_compressed_name(name),
            ready: true,
            error: None,
            token_hash: None,
            metadata: None,
        })
    }

    /// Deletes the snapshot object and its metadata object; `NotFound` when the snapshot
    /// object did not exist (a stray metadata object is still removed).
    pub async fn delete(&self, name: &str) -> Result<DeleteOutcome, S3Error> {
        validate_name(name)?;
        let key = self.layout.object_key(name);
        let outcome = match self.head(&key).await {
            Ok(_) => {
                self.delete_key(&key).await?;
                DeleteOutcome::Deleted
            }
            Err(e) if e.is_not_found() => DeleteOutcome::NotFound,
            Err(e) => return Err(e),
        };
        self.delete_key(&self.layout.metadata_key(name)).await?;
        if outcome == DeleteOutcome::Deleted {
            tracing::info!(location = %location(&self.client.bucket, &key), "removed S3 snapshot");
        }
        Ok(outcome)
    }

    /// The user metadata of snapshot object `name` (keys lower-case, as S3 returns them),
    /// e.g. to compare its token hash before downloading it for a restore.
    pub async fn object_metadata(&self, name: &str) -> Result<HashMap<String, String>, S3Error> {
        validate_name(name)?;
        self.head(&self.layout.object_key(name)).await
    }

    pub(super) async fn head(&self, key: &str) -> Result<HashMap<String, String>, S3Error> {
        let head = self
            .client
            .sdk
            .head_object()
            .bucket(&self.client.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| to_error(e, "inspect", &self.client.target(key)))?;
        Ok(head.metadata().cloned().unwrap_or_default())
    }

    /// DeleteObject succeeds for missing keys too, so this never reports "not found".
    pub(super) async fn delete_key(&self, key: &str) -> Result<(), S3Error> {
        self.client
            .sdk
            .delete_object()
            .bucket(&self.client.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| to_error(e, "delete", &self.client.target(key)))?;
        Ok(())
    }
}

pub(super) fn validate_name(name: &str) -> Result<(), S3Error> {
    validate_user_name(name).map_err(|reason| S3Error::InvalidName {
        name: name.to_string(),
        reason,
    })
}

pub(super) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> S3Error {
    let path = path.to_path_buf();
    move |source| S3Error::Io {
        action,
        path,
        source,
    }
}
