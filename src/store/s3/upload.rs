//! Uploads to the store: a finished snapshot file (one PUT, or multipart past `PART_SIZE`),
//! the extra-metadata object, and the user metadata and content type RKE2 sets on them.
//! Streaming uploads from the save pipeline are `stream.rs`; retries are `retry.rs`.

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::error::{S3Error, to_error};
use super::keys::location;
use super::store::{
    META_CLUSTER_ID, META_NODE_NAME, META_SHA256, META_TOKEN_HASH, ObjectMetadata, PART_SIZE,
    S3Store, UploadedObject, io_err, validate_name,
};
use crate::hex::encode as hex;
use crate::snapshot::name::ZIP_SUFFIX;
use crate::telemetry::progress::{Operation, reporter};

impl S3Store {
    /// Uploads the extra-metadata JSON as `<folder>/.metadata/<name>`, with the same `Rke2-*`
    /// user metadata as the snapshot object (RKE2 sends them on both objects); the snapshot's
    /// checksum is not repeated there, as it does not describe this object's bytes.
    pub async fn upload_metadata(
        &self,
        name: &str,
        json: Vec<u8>,
        metadata: &ObjectMetadata,
    ) -> Result<(), S3Error> {
        validate_name(name)?;
        let key = self.layout().metadata_key(name);
        self.client()
            .sdk
            .put_object()
            .bucket(&self.client().bucket)
            .key(&key)
            .content_type("application/json")
            .set_metadata(Some(user_metadata(metadata, None)))
            .body(ByteStream::from(json))
            .send()
            .await
            .map_err(|e| to_error(e, "upload", &self.client().target(&key)))?;
        Ok(())
    }

    /// Uploads the file at `path` as `<folder>/<name>` with RKE2's object user metadata and
    /// its SHA-256. Large files go up in `PART_SIZE` parts, one in memory at a time.
    pub async fn upload_file(
        &self,
        path: &Path,
        name: &str,
        metadata: &ObjectMetadata,
    ) -> Result<UploadedObject, S3Error> {
        validate_name(name)?;
        let key = self.layout().object_key(name);
        self.upload_file_to_key(path, &key, name, metadata).await
    }

    /// [`Self::upload_file`] under any key of the bucket (`name` sets the content type and
    /// names the progress step): rekey's temp copies.
    pub(super) async fn upload_file_to_key(
        &self,
        path: &Path,
        key: &str,
        name: &str,
        metadata: &ObjectMetadata,
    ) -> Result<UploadedObject, S3Error> {
        let key = key.to_string();
        let sha256 = match &metadata.sha256 {
            Some(sum) => sum.clone(),
            None => sha256_file(path).await?,
        };
        let user_metadata = user_metadata(metadata, Some(&sha256));
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(io_err("open", path))?;
        let total = file.metadata().await.ok().map(|m| m.len());
        let step = reporter().start(Operation::Upload, name, total);
        let sent = async {
            let first = read_part(&mut file, path).await?;
            if first.len() < PART_SIZE {
                let size = self
                    .put_whole(&key, name, user_metadata, first.into())
                    .await?;
                step.advance(size);
                Ok(size)
            } else {
                let parts = (file, first, path);
                super::multipart::upload(self, &key, name, user_metadata, parts, &*step).await
            }
        }
        .await;
        let size = match sent {
            Ok(size) => {
                step.finish(true);
                size
            }
            Err(e) => {
                step.finish(false);
                return Err(e);
            }
        };
        tracing::info!(location = %location(&self.client().bucket, &key), size, "uploaded snapshot to S3");
        Ok(UploadedObject {
            location: location(&self.client().bucket, &key),
            key,
            size,
            sha256,
        })
    }

    /// One PutObject of the whole snapshot; returns its size.
    pub(super) async fn put_whole(
        &self,
        key: &str,
        name: &str,
        user_metadata: HashMap<String, String>,
        bytes: Bytes,
    ) -> Result<u64, S3Error> {
        let size = bytes.len() as u64;
        self.client()
            .sdk
            .put_object()
            .bucket(&self.client().bucket)
            .key(key)
            .content_type(content_type(name))
            .set_metadata(Some(user_metadata))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| to_error(e, "upload", &self.client().target(key)))?;
        Ok(size)
    }
}

/// `application/zip` for compressed snapshots, as RKE2 sets it.
pub fn content_type(name: &str) -> &'static str {
    if name.ends_with(ZIP_SUFFIX) {
        "application/zip"
    } else {
        "application/octet-stream"
    }
}

/// RKE2's three user-metadata entries, plus our checksum when it is known and our extra entries
/// (never overriding RKE2's or the checksum).
pub(super) fn user_metadata(
    metadata: &ObjectMetadata,
    sha256: Option<&str>,
) -> HashMap<String, String> {
    let mut entries = HashMap::from([
        (META_CLUSTER_ID.to_string(), metadata.cluster_id.clone()),
        (META_NODE_NAME.to_string(), metadata.node_name.clone()),
        (META_TOKEN_HASH.to_string(), metadata.token_hash.clone()),
    ]);
    if let Some(sum) = sha256 {
        entries.insert(META_SHA256.to_string(), sum.to_string());
    }
    for (key, value) in &metadata.extra {
        entries.entry(key.clone()).or_insert_with(|| value.clone());
    }
    entries
}

/// Reads up to `PART_SIZE` bytes (fewer only at the end of the file).
pub(super) async fn read_part(file: &mut tokio::fs::File, path: &Path) -> Result<Vec<u8>, S3Error> {
    let mut buf = Vec::with_capacity(PART_SIZE);
    let mut limited = file.take(PART_SIZE as u64);
    limited
        .read_to_end(&mut buf)
        .await
        .map_err(io_err("read", path))?;
    Ok(buf)
}

pub(super) async fn sha256_file(path: &Path) -> Result<String, S3Error> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(io_err("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_follows_the_suffix() {
        assert_eq!(content_type("s-n-1.zip"), "application/zip");
        assert_eq!(content_type("s-n-1"), "application/octet-stream");
    }
}
