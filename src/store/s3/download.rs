//! Downloading a snapshot object for a restore: streamed into a temp file in the destination
//! dir, fsynced, and only renamed to its name once its SHA-256 matches the one recorded with the
//! object. Never more than one network chunk in memory.
//!
//! A file already in the destination under the object's name is never replaced: when it holds
//! the same bytes (its SHA-256 equals the recorded one) it is used as it is and nothing is
//! downloaded; otherwise the download is refused. It may be the only copy of a different
//! snapshot, and a restore must not destroy one snapshot to fetch another.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::{S3Error, to_error};
use super::store::{META_SHA256, S3Store, hex, io_err, sha256_file, validate_name};
use crate::fsutil;
use crate::snapshot::name::PART_SUFFIX;

impl S3Store {
    /// Downloads `<folder>/<name>` into `dest_dir/<name>` through a temp file, verifying the
    /// recorded SHA-256 (when the object has one) before the file appears under its name.
    pub async fn download(&self, name: &str, dest_dir: &Path) -> Result<PathBuf, S3Error> {
        validate_name(name)?;
        let key = self.layout().object_key(name);
        let dest = dest_dir.join(name);
        if tokio::fs::try_exists(&dest)
            .await
            .map_err(io_err("inspect", &dest))?
        {
            self.check_existing_copy(&key, &dest).await?;
            tracing::info!(path = %dest.display(), %key, "the snapshot dir already holds this S3 object's bytes; not downloading");
            return Ok(dest);
        }
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

    /// Ok when `dest` holds exactly the bytes recorded for `key`; `LocalCopyDiffers` otherwise
    /// (including when the object has no recorded SHA-256 to compare with).
    async fn check_existing_copy(&self, key: &str, dest: &Path) -> Result<(), S3Error> {
        let recorded = self
            .head(key)
            .await?
            .get(&META_SHA256.to_ascii_lowercase())
            .cloned();
        let local = sha256_file(dest).await?;
        let differs = |reason: String| S3Error::LocalCopyDiffers {
            path: dest.to_path_buf(),
            bucket: self.client().bucket().to_string(),
            key: key.to_string(),
            reason,
        };
        match recorded {
            Some(recorded) if recorded.eq_ignore_ascii_case(&local) => Ok(()),
            Some(recorded) => Err(differs(format!(
                "recorded sha256 {recorded}, local file {local}"
            ))),
            None => Err(differs(
                "the object has no recorded sha256 to compare with".into(),
            )),
        }
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
