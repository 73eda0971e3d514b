//! Downloading a snapshot object for a restore: streamed into a temp file in the destination
//! dir, fsynced, and only renamed to its name once its SHA-256 matches the one recorded with the
//! object. Never more than one network chunk in memory.
//!
//! A file already in the destination under the object's name is never replaced: when it holds
//! the same bytes it is used as it is; otherwise the download is refused. It may be the only
//! copy of a different snapshot, and a restore must not destroy one snapshot to fetch another.

use std::path::{Path, PathBuf};

use aws_sdk_s3::operation::get_object::GetObjectOutput;
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
    ///
    /// A file already at `dest_dir/<name>` is never replaced. It is used as it is when it holds
    /// the object's bytes: known from the recorded SHA-256 without downloading, or, for objects
    /// with none (RKE2's uploads), by downloading to a temp file and comparing. Otherwise the
    /// download is refused with `LocalCopyDiffers`.
    pub async fn download(&self, name: &str, dest_dir: &Path) -> Result<PathBuf, S3Error> {
        validate_name(name)?;
        let key = self.layout().object_key(name);
        let dest = dest_dir.join(name);
        let local = match tokio::fs::try_exists(&dest)
            .await
            .map_err(io_err("inspect", &dest))?
        {
            true => Some(sha256_file(&dest).await?),
            false => None,
        };
        if let Some(local) = &local {
            let recorded = self.head(&key).await?;
            if let Some(recorded) = recorded.get(&META_SHA256.to_ascii_lowercase()) {
                self.same_bytes(&key, &dest, recorded, local, "recorded")?;
                tracing::info!(path = %dest.display(), %key, "the snapshot dir already holds this S3 object's bytes; not downloading");
                return Ok(dest);
            }
        }
        let temp = dest_dir.join(format!("{name}{PART_SUFFIX}"));
        let actual = self.fetch_verified(&key, &temp).await?;
        if let Some(local) = &local {
            let _ = tokio::fs::remove_file(&temp).await;
            self.same_bytes(&key, &dest, &actual, local, "downloaded")?;
            tracing::info!(path = %dest.display(), %key, "the snapshot dir already holds this S3 object's bytes; the download was compared and dropped");
            return Ok(dest);
        }
        if let Err(e) = fsutil::publish_no_clobber(&temp, &dest) {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_err("publish", &dest)(e));
        }
        Ok(dest)
    }

    /// Ok when `local` (the SHA-256 of `dest`) equals `object` (the object's, `how` it is
    /// known); `LocalCopyDiffers` otherwise.
    fn same_bytes(
        &self,
        key: &str,
        dest: &Path,
        object: &str,
        local: &str,
        how: &str,
    ) -> Result<(), S3Error> {
        if object.eq_ignore_ascii_case(local) {
            return Ok(());
        }
        Err(S3Error::LocalCopyDiffers {
            path: dest.to_path_buf(),
            bucket: self.client().bucket().to_string(),
            key: key.to_string(),
            reason: format!("{how} sha256 {object}, local file {local}"),
        })
    }

    /// GETs `key` into `temp` and checks it against the recorded SHA-256 when there is one;
    /// returns the SHA-256 of what arrived. Nothing is left at `temp` on failure.
    async fn fetch_verified(&self, key: &str, temp: &Path) -> Result<String, S3Error> {
        let response = self.get(key, "download").await?;
        let expected = response
            .metadata()
            .and_then(|m| m.get(&META_SHA256.to_ascii_lowercase()).cloned());
        let actual = match self.receive(response.body, key, temp).await {
            Ok(sum) => sum,
            Err(e) => {
                let _ = tokio::fs::remove_file(temp).await;
                return Err(e);
            }
        };
        match expected {
            Some(expected) if !expected.eq_ignore_ascii_case(&actual) => {
                let _ = tokio::fs::remove_file(temp).await;
                return Err(S3Error::ChecksumMismatch {
                    bucket: self.client().bucket().to_string(),
                    key: key.to_string(),
                    expected,
                    actual,
                });
            }
            Some(_) => {}
            None => tracing::warn!(%key, "S3 object has no recorded sha256; not verified"),
        }
        Ok(actual)
    }

    /// GetObject of `key`; `action` names the request in errors ("download", "read").
    pub(super) async fn get(
        &self,
        key: &str,
        action: &'static str,
    ) -> Result<GetObjectOutput, S3Error> {
        self.client()
            .sdk
            .get_object()
            .bucket(self.client().bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| to_error(e, action, &self.client().target(key)))
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
