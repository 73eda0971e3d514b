//! Downloading a snapshot object for a restore: streamed into a temp file in the destination
//! dir, fsynced, and only renamed to its name once its SHA-256 matches the one recorded with the
//! object. Never more than one network chunk in memory.
//!
//! A file already in the destination under the object's name is never replaced: when it holds
//! the same bytes it is used as it is; otherwise the download is refused. It may be the only
//! copy of a different snapshot, and a restore must not destroy one snapshot to fetch another.
//!
//! The temp file `<name>.part` is created new, never opened through a symlink: a regular file
//! left there by an interrupted download is removed first; anything else there (a symlink
//! planted to make us overwrite its target, a dir) is refused and left as it is.

use std::path::{Path, PathBuf};

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::{S3Error, to_error};
use super::store::{META_SHA256, S3Store, io_err, validate_name};
use super::upload::sha256_file;
use crate::fsutil;
use crate::hex::encode as hex;
use crate::snapshot::name::PART_SUFFIX;
use crate::telemetry::progress::{Operation, Step};

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
    pub(super) async fn fetch_verified(&self, key: &str, temp: &Path) -> Result<String, S3Error> {
        let file = create_part(temp).await?;
        let response = match self.get(key, "download").await {
            Ok(response) => response,
            Err(e) => {
                let _ = tokio::fs::remove_file(temp).await;
                return Err(e);
            }
        };
        let expected = response
            .metadata()
            .and_then(|m| m.get(&META_SHA256.to_ascii_lowercase()).cloned());
        // Reported to this process's progress reporter (a CLI restore's; the server has none).
        let progress = crate::telemetry::progress::reporter();
        let total = response
            .content_length()
            .and_then(|n| u64::try_from(n).ok());
        let name = key.rsplit('/').next().unwrap_or(key);
        let step = progress.start(Operation::Download, name, total);
        let received = self.receive(response.body, key, temp, file, &*step).await;
        step.finish(received.is_ok());
        let actual = match received {
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
    pub(crate) async fn get(
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

    /// Streams the body into `file` (at `temp`), fsyncs it; returns its hex SHA-256.
    async fn receive(
        &self,
        mut body: ByteStream,
        key: &str,
        temp: &Path,
        mut file: tokio::fs::File,
        progress: &dyn Step,
    ) -> Result<String, S3Error> {
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
            progress.advance(chunk.len() as u64);
        }
        file.sync_all().await.map_err(io_err("sync", temp))?;
        Ok(hex(&hasher.finalize()))
    }
}

/// Creates `temp` (0600) as a new file, never through a symlink. A regular file already there
/// is a download of ours cut short and is removed first (unlinking a name never touches another
/// file); anything else is refused untouched.
async fn create_part(temp: &Path) -> Result<tokio::fs::File, S3Error> {
    match tokio::fs::symlink_metadata(temp).await {
        Ok(meta) if meta.file_type().is_file() => tokio::fs::remove_file(temp)
            .await
            .map_err(io_err("remove the stale temp file", temp))?,
        Ok(meta) => {
            let found = if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "something other than a regular file"
            };
            let reason = format!(
                "{found} is in the way (only a regular file left by an interrupted download is replaced); remove it"
            );
            return Err(io_err("create", temp)(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                reason,
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect", temp)(e)),
    }
    // create_new fails on anything that appeared meanwhile, a dangling symlink included;
    // O_NOFOLLOW says the same to the kernel in so many words.
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(temp)
        .await
        .map_err(io_err("create", temp))
}
