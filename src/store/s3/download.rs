//! Downloading a snapshot object for a restore: streamed into a temp file in the destination
//! dir, fsynced, and only renamed to its name once its SHA-256 matches the one recorded with the
//! object. Never more than one network chunk in memory.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::{S3Error, to_error};
use super::store::{META_SHA256, S3Store, hex, io_err, validate_name};
use crate::fsutil;
use crate::snapshot::name::PART_SUFFIX;

impl S3Store {
    /// Downloads `<folder>/<name>` into `dest_dir/<name>` through a temp file, verifying the
    /// recorded SHA-256 (when the object has one) before the file appears under its name.
    pub async fn download(&self, name: &str, dest_dir: &Path) -> Result<PathBuf, S3Error> {
        validate_name(name)?;
        let key = self.layout().object_key(name);
        let response = self
            .client()
            .sdk
            .get_object()
            .bucket(self.client().bucket())
            .key(&key)
            .send()
            .await
            .map_err(|e| to_error(e, "download", &self.client().target(&key)))?;
        let expected = response
            .metadata()
            .and_then(|m| m.get(&META_SHA256.to_ascii_lowercase()).cloned());
        let dest = dest_dir.join(name);
        let temp = dest_dir.join(format!("{name}{PART_SUFFIX}"));
        let result = self.receive(response.body, &key, &temp).await;
        let actual = match result {
            Ok(sum) => sum,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(e);
            }
        };
        match expected {
            Some(expected) if !expected.eq_ignore_ascii_case(&actual) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(S3Error::ChecksumMismatch {
                    bucket: self.client().bucket().to_string(),
                    key,
                    expected,
                    actual,
                });
            }
            Some(_) => {}
            None => tracing::warn!(%key, "S3 object has no recorded sha256; not verified"),
        }
        tokio::fs::rename(&temp, &dest)
            .await
            .map_err(io_err("rename", &temp))?;
        fsutil::sync_dir(dest_dir).map_err(io_err("sync", dest_dir))?;
        Ok(dest)
    }

    /// Streams the body into `temp` (0600, fsynced); returns its hex SHA-256.
    async fn receive(
        &self,
        mut body: ByteStream,
        key: &str,
        temp: &Path,
    ) -> Result<String, S3Error> {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(temp)
            .await
            .map_err(io_err("create", temp))?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| S3Error::Request {
                action: "download",
                bucket: self.client().bucket().to_string(),
                key: key.to_string(),
                http: String::new(),
                source: Box::new(e),
            })?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(io_err("write", temp))?;
        }
        file.sync_all().await.map_err(io_err("sync", temp))?;
        Ok(hex(&hasher.finalize()))
    }
}
