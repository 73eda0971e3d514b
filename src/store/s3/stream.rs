//! Streamed upload: the save pipeline's tee (`snapshot::tee`) fed straight into S3 while the
//! local file is still being written.
//!
//! Owns reading the tee, cutting it into parts and choosing PutObject or multipart (whose
//! requests are in `multipart.rs`). Memory stays bounded: one part accumulating, at most one
//! part upload in flight, plus the tee's channel. The checksum is
//! only known at the end, so a multipart object gets it afterwards through a metadata-only
//! self-copy, with the entries the tee's `Done` carries (the keyspace hash, asked for after the
//! stream). A stream that ends without `Done` is aborted so nothing is left at the key. This
//! file never reads the local snapshot file (a failed stream is retried from the file by the
//! caller, see `retry.rs`).

use std::collections::BTreeMap;

use aws_sdk_s3::types::MetadataDirective;
use bytes::{Bytes, BytesMut};

use super::error::{S3Error, to_error};
use super::keys::location;
use super::multipart::StreamedUpload;
use super::store::{ObjectMetadata, PART_SIZE, S3Store, UploadedObject, validate_name};
use super::upload::{content_type, user_metadata};
use crate::snapshot::tee::{TeeMessage, TeeReceiver};
use crate::telemetry::progress::{Operation, Step, reporter};

/// Largest object S3's CopyObject accepts; above it the checksum cannot be attached afterwards.
pub const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

impl S3Store {
    /// Uploads what the tee delivers as `<folder>/<name>`: a single PutObject when the whole
    /// snapshot fits in one part, otherwise a multipart upload started as soon as the first
    /// part is full. The sha256 and size come from the tee's `Done` (the verified local file);
    /// `metadata.sha256` is not used. A channel closed without `Done` (the save failed or the
    /// tee cut a slow upload off) returns `S3Error::Abandoned` and leaves nothing at the key;
    /// so does a `Done` whose size differs from the bytes received (`S3Error::SizeMismatch`).
    /// If only recording the checksum fails, the complete object stays without it and the
    /// error is returned, so the caller's upload from the file replaces it.
    ///
    /// The bytes handed to S3 are reported to this process's progress reporter (an `upload`
    /// step; the server has none).
    pub async fn upload_stream(
        &self,
        name: &str,
        metadata: &ObjectMetadata,
        feed: TeeReceiver,
    ) -> Result<UploadedObject, S3Error> {
        let step = reporter().start(Operation::Upload, name, None);
        let uploaded = self
            .upload_stream_observed(name, metadata, feed, &*step)
            .await;
        step.finish(uploaded.is_ok());
        uploaded
    }

    async fn upload_stream_observed(
        &self,
        name: &str,
        metadata: &ObjectMetadata,
        mut feed: TeeReceiver,
        step: &dyn Step,
    ) -> Result<UploadedObject, S3Error> {
        validate_name(name)?;
        let key = self.layout().object_key(name);
        let mut multipart = None;
        let received = self
            .receive_feed(&key, name, metadata, &mut feed, &mut multipart, step)
            .await;
        // Let the tee see the consumer go as soon as nothing more is read.
        drop(feed);
        let (rest, sha256, size, late) = match received {
            Ok(end) => end,
            Err(e) => {
                if let Some(upload) = multipart {
                    upload.abort().await;
                }
                return Err(e);
            }
        };
        let rest_len = rest.len() as u64;
        // The entries known only at the end (the keyspace hash) join the final metadata: a
        // PutObject carries them, a multipart object gets them with its checksum's self-copy.
        let mut metadata = metadata.clone();
        for (key, value) in late {
            metadata.extra.entry(key).or_insert(value);
        }
        let metadata = &metadata;
        match multipart {
            None => {
                let entries = user_metadata(metadata, Some(&sha256));
                self.put_whole(&key, name, entries, rest).await?;
            }
            Some(upload) => {
                upload.complete(rest).await?;
                self.record_checksum(&key, name, metadata, &sha256, size)
                    .await?;
            }
        }
        step.advance(rest_len);
        let location = location(self.client().bucket(), &key);
        tracing::info!(%location, size, "uploaded snapshot to S3 while saving");
        Ok(UploadedObject {
            key,
            location,
            size,
            sha256,
        })
    }

    /// Reads the tee until `Done`, sending full parts on the way; returns the bytes after the
    /// last full part, the announced sha256, the size and the late metadata entries.
    async fn receive_feed(
        &self,
        key: &str,
        name: &str,
        metadata: &ObjectMetadata,
        feed: &mut TeeReceiver,
        multipart: &mut Option<StreamedUpload>,
        step: &dyn Step,
    ) -> Result<(Bytes, String, u64, BTreeMap<String, String>), S3Error> {
        let mut parts = PartAssembler::new(PART_SIZE);
        loop {
            let message = match multipart.as_mut() {
                Some(upload) => upload.next_message(feed).await?,
                None => feed.recv().await,
            };
            match message {
                Some(TeeMessage::Chunk(chunk)) => {
                    parts.push(&chunk);
                    while parts.is_full() {
                        // The previous part must land first anyway (one in flight); its buffer
                        // then takes the next part's bytes.
                        if let Some(upload) = multipart.as_mut()
                            && let Some(spare) = upload.reclaim().await?
                        {
                            parts.recycle(spare);
                        }
                        let Some(part) = parts.take_full() else { break };
                        let upload = match multipart {
                            Some(upload) => upload,
                            None => multipart
                                .insert(StreamedUpload::start(self, key, name, metadata).await?),
                        };
                        let len = part.len() as u64;
                        upload.submit(part).await?;
                        step.advance(len);
                    }
                }
                Some(TeeMessage::Done {
                    sha256,
                    size,
                    entries,
                }) => {
                    if size != parts.received() {
                        return Err(S3Error::SizeMismatch {
                            bucket: self.client().bucket().to_string(),
                            key: key.to_string(),
                            announced: size,
                            received: parts.received(),
                        });
                    }
                    return Ok((parts.finish(), sha256, size, entries));
                }
                None => {
                    return Err(S3Error::Abandoned {
                        bucket: self.client().bucket().to_string(),
                        key: key.to_string(),
                        received: parts.received(),
                    });
                }
            }
        }
    }

    /// Attaches the sha256 to a completed multipart object by copying it onto itself with
    /// replaced metadata (content type and RKE2's entries restated, as Replace drops them).
    async fn record_checksum(
        &self,
        key: &str,
        name: &str,
        metadata: &ObjectMetadata,
        sha256: &str,
        size: u64,
    ) -> Result<(), S3Error> {
        if !can_record_checksum(size) {
            tracing::warn!(
                location = %location(self.client().bucket(), key),
                size,
                "snapshot is larger than S3 can copy; its sha256 is not recorded, so downloads \
                 cannot verify it by checksum (restore still checks the snapshot's own integrity)"
            );
            return Ok(());
        }
        let client = self.client();
        client
            .sdk
            .copy_object()
            .bucket(&client.bucket)
            .key(key)
            .copy_source(copy_source(&client.bucket, key))
            .metadata_directive(MetadataDirective::Replace)
            .content_type(content_type(name))
            .set_metadata(Some(user_metadata(metadata, Some(sha256))))
            .send()
            .await
            .map_err(|e| to_error(e, "record the checksum of", &client.target(key)))?;
        Ok(())
    }
}

/// Cuts the tee's chunks into parts of exactly `part_size` bytes (the rest comes at the end).
#[derive(Debug)]
struct PartAssembler {
    buffer: BytesMut,
    /// A finished part's buffer, emptied, waiting to take the next part.
    spare: Option<BytesMut>,
    part_size: usize,
    received: u64,
}

impl PartAssembler {
    fn new(part_size: usize) -> Self {
        Self {
            buffer: BytesMut::with_capacity(part_size),
            spare: None,
            part_size,
            received: 0,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
        self.received += chunk.len() as u64;
    }

    fn is_full(&self) -> bool {
        self.buffer.len() >= self.part_size
    }

    /// Keeps an emptied buffer of a finished part for the next part.
    fn recycle(&mut self, buffer: BytesMut) {
        if buffer.capacity() >= self.part_size {
            self.spare = Some(buffer);
        }
    }

    /// The next full part, if one has accumulated.
    fn take_full(&mut self) -> Option<Bytes> {
        if !self.is_full() {
            return None;
        }
        let part = self.buffer.split_to(self.part_size).freeze();
        // A buffer of exactly one part (the recycled one when there is one): growing the old
        // one while `part` is still being uploaded would allocate a larger one (BytesMut
        // doubles), inflating peak memory.
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| BytesMut::with_capacity(self.part_size));
        let rest = std::mem::replace(&mut self.buffer, next);
        self.buffer.extend_from_slice(&rest);
        Some(part)
    }

    fn received(&self) -> u64 {
        self.received
    }

    /// What is left after the last full part (may be empty).
    fn finish(self) -> Bytes {
        self.buffer.freeze()
    }
}

/// Whether CopyObject can carry the checksum onto an object of `size` bytes.
pub fn can_record_checksum(size: u64) -> bool {
    size <= COPY_LIMIT
}

/// The CopySource header for `bucket/key`, percent-encoded except `/` and unreserved bytes.
pub fn copy_source(bucket: &str, key: &str) -> String {
    let mut encoded = String::with_capacity(bucket.len() + key.len() + 1);
    for byte in format!("{bucket}/{key}").bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time check: the save pipeline spawns these uploads on the runtime.
    #[allow(dead_code)]
    fn uploads_can_be_spawned(store: &'static S3Store, meta: &'static ObjectMetadata) {
        fn spawnable<T: Send + 'static>(_: &T) {}
        let (_, feed) = tokio::sync::mpsc::channel(1);
        spawnable(&store.upload_stream("s-n-1", meta, feed));
        let policy = super::super::RetryPolicy::default();
        spawnable(&store.upload_file_with_retry(std::path::Path::new("/x"), "s-n-1", meta, policy));
    }

    #[test]
    fn parts_are_exactly_part_size_and_the_rest_comes_last() {
        let mut parts = PartAssembler::new(10);
        parts.push(&[1; 7]);
        assert_eq!(parts.take_full(), None);
        parts.push(&[2; 7]);
        let first = parts.take_full().expect("a full part");
        assert_eq!(first.len(), 10);
        assert_eq!(&first[..], &[1, 1, 1, 1, 1, 1, 1, 2, 2, 2]);
        assert_eq!(parts.take_full(), None);
        // A chunk larger than a part yields several parts in order.
        parts.push(&[3; 25]);
        let sizes: Vec<usize> = std::iter::from_fn(|| parts.take_full())
            .map(|p| p.len())
            .collect();
        assert_eq!(sizes, [10, 10]);
        assert_eq!(parts.received(), 39);
        let rest = parts.finish();
        assert_eq!(rest.len(), 9);
        assert!(rest.iter().all(|&b| b == 3), "the rest is the newest bytes");
    }

    #[test]
    fn an_exact_multiple_leaves_an_empty_rest() {
        let mut parts = PartAssembler::new(4);
        parts.push(&[0; 8]);
        assert!(parts.take_full().is_some() && parts.take_full().is_some());
        assert!(parts.finish().is_empty());
    }

    #[test]
    fn checksum_is_recorded_up_to_the_copy_limit() {
        assert!(can_record_checksum(0));
        assert!(can_record_checksum(COPY_LIMIT));
        assert!(!can_record_checksum(COPY_LIMIT + 1));
    }

    #[test]
    fn copy_source_encodes_everything_but_path_and_unreserved_bytes() {
        assert_eq!(
            copy_source("snapshots", "prod/etcd-snapshot-n1-100.zip"),
            "snapshots/prod/etcd-snapshot-n1-100.zip"
        );
        assert_eq!(copy_source("b", "my folder/a+b-1"), "b/my%20folder/a%2Bb-1");
        assert_eq!(copy_source("b", "é-1"), "b/%C3%A9-1");
    }
}
