//! Delta chains in the bucket: one prefix per full snapshot,
//! `<folder>/.deltas/<snapshot file name>/.metadata/`, holding that chain's segment files under
//! the names they have on disk (`keys::KeyLayout::segment_key`).
//!
//! Names are opaque here: which files are segments, and what range each covers, is the delta
//! module's business (its name parser); this file lists, uploads, downloads and deletes objects
//! by the name they have. Anchors are checked like snapshot names and segment names as plain
//! file names, so no name can reach a key outside its chain's prefix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use super::batch_delete::{ChainDeletion, RefusedKey};
use super::error::{S3Error, to_error};
use super::keys::location;
use super::retry::{RetryPolicy, backoff_delays, random_seed, retry};
use super::store::{ObjectMetadata, S3Store, UploadedObject, io_err, validate_name};
use super::upload::sha256_file;
use crate::fsutil;

/// One object of a chain: its file name, key and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainObject {
    pub name: String,
    pub key: String,
    pub size: u64,
}

impl S3Store {
    /// `s3://<bucket>/<folder>/.deltas/<anchor>/.metadata/`: where a chain lives, for reports.
    pub fn chain_location(&self, anchor: &str) -> String {
        location(self.client().bucket(), &self.layout().chain_prefix(anchor))
    }

    /// The objects of `anchor`'s chain, by name; an absent chain is empty.
    pub async fn list_chain(&self, anchor: &str) -> Result<Vec<ChainObject>, S3Error> {
        validate_name(anchor)?;
        let chains = self.list_under(&self.layout().chain_prefix(anchor)).await?;
        Ok(chains.into_values().flatten().collect())
    }

    /// Every chain in the folder: anchor -> its objects by name.
    pub async fn list_chains(&self) -> Result<BTreeMap<String, Vec<ChainObject>>, S3Error> {
        self.list_under(&self.layout().chains_prefix()).await
    }

    /// Segment keys under `prefix` (recursive, paginated), grouped by anchor; other keys are
    /// skipped.
    async fn list_under(
        &self,
        prefix: &str,
    ) -> Result<BTreeMap<String, Vec<ChainObject>>, S3Error> {
        let client = self.client();
        let mut pages = client
            .sdk
            .list_objects_v2()
            .bucket(client.bucket())
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut chains: BTreeMap<String, Vec<ChainObject>> = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| to_error(e, "list", &client.target(prefix)))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let Some((anchor, name)) = self.layout().parse_segment_key(key) else {
                    continue;
                };
                let size = object.size().and_then(|s| u64::try_from(s).ok());
                chains
                    .entry(anchor.to_string())
                    .or_default()
                    .push(ChainObject {
                        name: name.to_string(),
                        key: key.to_string(),
                        size: size.unwrap_or(0),
                    });
            }
        }
        for objects in chains.values_mut() {
            objects.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(chains)
    }

    /// Uploads the segment file at `path` as `name` of `anchor`'s chain, retried per `policy`
    /// like a snapshot upload, with the same object user metadata and its SHA-256.
    pub async fn upload_segment(
        &self,
        path: &Path,
        anchor: &str,
        name: &str,
        metadata: &ObjectMetadata,
        policy: RetryPolicy,
    ) -> Result<UploadedObject, S3Error> {
        validate_name(anchor)?;
        validate_segment_name(name)?;
        let key = self.layout().segment_key(anchor, name);
        let mut metadata = metadata.clone();
        if metadata.sha256.is_none() {
            metadata.sha256 = Some(sha256_file(path).await?);
        }
        let delays = backoff_delays(&policy, random_seed());
        let what = format!("upload of delta segment {name}");
        retry(&what, &policy, &delays, || {
            self.upload_file_to_key(path, &key, name, &metadata)
        })
        .await
    }

    /// Downloads segment `name` of `anchor`'s chain into `dest_dir/<name>`, through a temp file,
    /// checked against its recorded SHA-256. Never replaces a file.
    pub async fn download_segment(
        &self,
        anchor: &str,
        name: &str,
        dest_dir: &Path,
    ) -> Result<PathBuf, S3Error> {
        validate_name(anchor)?;
        validate_segment_name(name)?;
        let key = self.layout().segment_key(anchor, name);
        let temp = dest_dir.join(format!(".{name}.part"));
        let dest = dest_dir.join(name);
        self.fetch_verified(&key, &temp).await?;
        if let Err(e) = fsutil::publish_no_clobber(&temp, &dest) {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_err("publish", &dest)(e));
        }
        Ok(dest)
    }

    /// Deletes every object of `anchor`'s chain, up to 1,000 a request (`batch_delete`): what
    /// was deleted, what the server refused by key and code, and a request that failed. Never
    /// an object reported deleted that the server did not delete.
    pub async fn delete_chain(&self, anchor: &str) -> ChainDeletion {
        let objects = match self.list_chain(anchor).await {
            Ok(objects) => objects,
            Err(e) => {
                return ChainDeletion {
                    error: Some(e),
                    ..ChainDeletion::default()
                };
            }
        };
        let prefix = self.layout().chain_prefix(anchor);
        let deletion = self.delete_objects(&objects, &prefix).await;
        if !deletion.deleted.is_empty() {
            tracing::info!(location = %self.chain_location(anchor), segments = deletion.deleted.len(), "removed S3 delta chain");
        }
        deletion
    }
}

/// A segment name is one plain file name: no separator, not hidden, no control characters.
pub(super) fn validate_segment_name(name: &str) -> Result<(), S3Error> {
    let reason = if name.is_empty() || name.len() > 255 {
        Some("expected 1 to 255 bytes")
    } else if name.contains('/') || name.contains('\\') {
        Some("must not contain a path separator")
    } else if name.starts_with('.') {
        Some("must not start with '.'")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(S3Error::InvalidName {
            name: name.chars().take(300).collect(),
            reason: format!("a delta segment file name {reason}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_plain_file_names() {
        validate_segment_name("00000000000000000011-00000000000000000013.seg").unwrap();
        validate_segment_name("00000000000000000011-00000000000000000013.seg.zst.age").unwrap();
        for bad in ["", "a/b", "..", ".x.part", "a\\b", "a\nb"] {
            let err = validate_segment_name(bad).unwrap_err();
            assert!(
                err.to_string().contains("delta segment file name"),
                "{bad:?}: {err}"
            );
        }
        assert!(validate_segment_name(&"a".repeat(256)).is_err());
    }
}
