//! The extra metadata of one S3 snapshot: the `<folder>/.metadata/<name>` object a save uploads
//! beside the snapshot (the `rke2-etcd-snapshot-extra-metadata` ConfigMap's data, as compact
//! JSON), read back so every node shows the same `spec.metadata` for the shared S3 resource.
//!
//! Owns the bounded GetObject of that object and the parser of the metadata file format. It never
//! uploads, caches or decides which objects to read (`sources.rs` does, once per object).

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;

use super::error::S3Error;
use super::store::{S3Store, validate_name};
use crate::snapshot::record::parse_metadata;

/// The largest metadata object read. The ConfigMap it comes from is itself capped near 1 MiB
/// by the apiserver, so a bigger object is not ours: refusing it keeps a stray or hostile object
/// from making the reconcile buffer without limit.
pub const MAX_METADATA_BYTES: u64 = 1024 * 1024;

/// What a `.metadata/<name>` object holds, once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraMetadata {
    /// The object exists. `None` when its content is not a JSON object of strings: warned about
    /// and shown as no metadata, as an invalid local metadata file is.
    Found(Option<BTreeMap<String, String>>),
    /// There is no such object (saved without extra metadata, or not uploaded yet).
    Missing,
}

impl ExtraMetadata {
    /// The map the resource's `spec.metadata` shows.
    pub fn map(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            ExtraMetadata::Found(map) => map.as_ref(),
            ExtraMetadata::Missing => None,
        }
    }
}

/// Why an object was refused without being read to the end; the source of the `S3Error`.
#[derive(Debug, thiserror::Error)]
#[error("the metadata object is larger than the {limit}-byte limit")]
pub struct MetadataTooLarge {
    pub limit: u64,
}

impl S3Store {
    /// Reads `<folder>/.metadata/<name>`: `Missing` when there is no such object, an error when
    /// it cannot be read. An object larger than `MAX_METADATA_BYTES` (never buffered past that)
    /// or not in the metadata format is warned about and counts as found without metadata: it
    /// will not change, so reading it again each pass would only repeat the warning.
    pub async fn read_extra_metadata(&self, name: &str) -> Result<ExtraMetadata, S3Error> {
        validate_name(name)?;
        let key = self.layout().metadata_key(name);
        let bytes = match self.get_capped(&key, MAX_METADATA_BYTES).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(ExtraMetadata::Missing),
            Err(S3Error::Request { source, .. }) if source.is::<MetadataTooLarge>() => {
                tracing::warn!(%key, error = %source, "ignoring snapshot metadata in S3");
                return Ok(ExtraMetadata::Found(None));
            }
            Err(e) => return Err(e),
        };
        match parse_metadata(&bytes) {
            Ok(map) => Ok(ExtraMetadata::Found(Some(map))),
            Err(e) => {
                tracing::warn!(%key, error = %e, "ignoring invalid snapshot metadata in S3");
                Ok(ExtraMetadata::Found(None))
            }
        }
    }

    /// The whole body of `key`, or `None` when the key does not exist. Larger than `limit`
    /// is an error, found from Content-Length when the server sends it and else while reading.
    async fn get_capped(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, S3Error> {
        let sent = self.get(key, "read").await;
        let response = match sent {
            Ok(response) => response,
            // A missing bucket is a real failure, not a snapshot without metadata.
            Err(S3Error::ObjectNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let announced = response
            .content_length()
            .and_then(|len| u64::try_from(len).ok());
        if announced.is_some_and(|len| len > limit) {
            return Err(self.read_error(key, Box::new(MetadataTooLarge { limit })));
        }
        read_capped(response.body, limit)
            .await
            .map(Some)
            .map_err(|source| self.read_error(key, source))
    }

    fn read_error(&self, key: &str, source: super::error::BoxError) -> S3Error {
        S3Error::Request {
            action: "read",
            bucket: self.client().bucket().to_string(),
            key: key.to_string(),
            http: String::new(),
            source,
        }
    }
}

/// Collects `body`, failing as soon as it passes `limit` bytes: at most one network chunk beyond
/// the limit is ever held.
async fn read_capped(mut body: ByteStream, limit: u64) -> Result<Vec<u8>, super::error::BoxError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(Box::new(MetadataTooLarge { limit }));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_found_valid_metadata_has_a_map() {
        let map = BTreeMap::from([("k".to_string(), "v".to_string())]);
        assert_eq!(ExtraMetadata::Found(Some(map.clone())).map(), Some(&map));
        assert_eq!(ExtraMetadata::Found(None).map(), None);
        assert_eq!(ExtraMetadata::Missing.map(), None);
    }

    #[tokio::test]
    async fn a_body_is_read_whole_up_to_the_limit_and_refused_past_it() {
        let body = || ByteStream::from(vec![b'x'; 10]);
        assert_eq!(
            read_capped(body(), 10).await.expect("at the limit").len(),
            10
        );
        let refused = read_capped(body(), 9).await.expect_err("over the limit");
        let too_large = refused
            .downcast_ref::<MetadataTooLarge>()
            .expect("a size error");
        assert_eq!(too_large.limit, 9);
    }
}

#[cfg(test)]
#[path = "metadata_fuzz.rs"]
mod fuzz;
