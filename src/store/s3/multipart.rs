//! Multipart uploads: of one file (parts of `PART_SIZE`, one in memory at a time), and the
//! streamed one fed part by part by `stream.rs` (one part upload in flight while the next
//! accumulates). Both are aborted on any failure so no orphaned parts are billed.
//!
//! Part checksums are left out of CompleteMultipartUpload on purpose: mixing them with an
//! upload created without a checksum algorithm fails on strict servers.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};

use super::client::S3Client;
use super::error::{S3Error, to_error};
use super::store::{ObjectMetadata, PART_SIZE, S3Store};
use super::upload::{content_type, read_part, user_metadata};
use crate::errors::error_chain;
use crate::snapshot::tee::{TeeMessage, TeeReceiver};
use crate::telemetry::progress::Step;

/// Uploads `first` and the rest of `file` as one multipart object; returns the size. The next
/// part is read while the previous one uploads (one in flight, as for a streamed upload); any
/// failure aborts the upload.
pub(super) async fn upload(
    store: &S3Store,
    key: &str,
    name: &str,
    user_metadata: HashMap<String, String>,
    (mut file, first, path): (tokio::fs::File, Vec<u8>, &Path),
    step: &dyn Step,
) -> Result<u64, S3Error> {
    let mut upload = StreamedUpload::start_with(store, key, name, user_metadata).await?;
    let mut size = 0u64;
    let mut part = first;
    while !part.is_empty() {
        let len = part.len() as u64;
        size += len;
        let last = part.len() < PART_SIZE;
        let step_future = async {
            upload.submit(Bytes::from(part)).await?;
            if last {
                Ok(Vec::new())
            } else {
                read_part(&mut file, path).await
            }
        };
        part = match step_future.await {
            Ok(next) => {
                step.advance(len);
                next
            }
            Err(e) => {
                upload.abort().await;
                return Err(e);
            }
        };
    }
    upload.complete(Bytes::new()).await?;
    Ok(size)
}

/// A part upload in flight; it hands its buffer back when done, for reuse.
type PartUpload = Pin<Box<dyn Future<Output = Result<(CompletedPart, Bytes), S3Error>> + Send>>;

/// A streamed multipart upload in progress, fed one part at a time with at most one part
/// upload in flight. Dropped without `complete` or `abort` (the caller's
/// future was cancelled), it aborts the upload in the background so no parts stay billed.
pub(super) struct StreamedUpload {
    client: S3Client,
    key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
    in_flight: Option<PartUpload>,
    /// The buffer of the last finished part, until the assembler reuses it.
    returned: Option<Bytes>,
    settled: bool,
}

impl StreamedUpload {
    /// CreateMultipartUpload with RKE2's metadata (the checksum is not known yet).
    pub(super) async fn start(
        store: &S3Store,
        key: &str,
        name: &str,
        metadata: &ObjectMetadata,
    ) -> Result<Self, S3Error> {
        Self::start_with(store, key, name, user_metadata(metadata, None)).await
    }

    /// CreateMultipartUpload with the given object user metadata.
    pub(super) async fn start_with(
        store: &S3Store,
        key: &str,
        name: &str,
        metadata: HashMap<String, String>,
    ) -> Result<Self, S3Error> {
        let client = store.client();
        let created = client
            .sdk
            .create_multipart_upload()
            .bucket(&client.bucket)
            .key(key)
            .content_type(content_type(name))
            .set_metadata(Some(metadata))
            .send()
            .await
            .map_err(|e| to_error(e, "start upload of", &client.target(key)))?;
        Ok(Self {
            client: client.clone(),
            key: key.to_string(),
            upload_id: created.upload_id().unwrap_or_default().to_string(),
            parts: Vec::new(),
            in_flight: None,
            returned: None,
            settled: false,
        })
    }

    /// The next tee message, while letting the part in flight finish meanwhile.
    pub(super) async fn next_message(
        &mut self,
        feed: &mut TeeReceiver,
    ) -> Result<Option<TeeMessage>, S3Error> {
        while let Some(mut flight) = self.in_flight.take() {
            tokio::select! {
                biased;
                done = &mut flight => {
                    let (completed, body) = done?;
                    self.parts.push(completed);
                    self.returned = Some(body);
                }
                message = feed.recv() => {
                    self.in_flight = Some(flight);
                    return Ok(message);
                }
            }
        }
        Ok(feed.recv().await)
    }

    /// Starts uploading `part` once the previous one is done (one in flight at most).
    pub(super) async fn submit(&mut self, part: Bytes) -> Result<(), S3Error> {
        self.settle_in_flight().await?;
        self.in_flight = Some(self.upload_part(part));
        Ok(())
    }

    async fn settle_in_flight(&mut self) -> Result<(), S3Error> {
        self.reclaim().await.map(|_| ())
    }

    /// Waits for the part in flight and returns its buffer, emptied, when nothing else holds
    /// it. Reusing the two part buffers, rather than allocating one per part, keeps the
    /// allocator from ratcheting up its mmap threshold and peak memory with it.
    pub(super) async fn reclaim(&mut self) -> Result<Option<BytesMut>, S3Error> {
        if let Some(flight) = self.in_flight.take() {
            let (completed, body) = flight.await?;
            self.parts.push(completed);
            self.returned = Some(body);
        }
        Ok(self
            .returned
            .take()
            .and_then(|body| body.try_into_mut().ok())
            .map(|mut buffer| {
                buffer.clear();
                buffer
            }))
    }

    fn upload_part(&self, part: Bytes) -> PartUpload {
        let client = self.client.clone();
        let key = self.key.clone();
        let upload_id = self.upload_id.clone();
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        Box::pin(async move {
            let uploaded = client
                .sdk
                .upload_part()
                .bucket(&client.bucket)
                .key(&key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(part.clone()))
                .send()
                .await
                .map_err(|e| to_error(e, "upload part of", &client.target(&key)))?;
            let completed = CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_string))
                .build();
            Ok((completed, part))
        })
    }

    /// Uploads the last (possibly empty) remainder and completes the object; aborts on failure.
    pub(super) async fn complete(mut self, rest: Bytes) -> Result<(), S3Error> {
        let result = self.finish_parts(rest).await;
        match result {
            Ok(()) => {
                self.settled = true;
                Ok(())
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn finish_parts(&mut self, rest: Bytes) -> Result<(), S3Error> {
        self.settle_in_flight().await?;
        if !rest.is_empty() {
            self.in_flight = Some(self.upload_part(rest));
            self.settle_in_flight().await?;
        }
        let client = &self.client;
        client
            .sdk
            .complete_multipart_upload()
            .bucket(&client.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| to_error(e, "complete upload of", &client.target(&self.key)))?;
        Ok(())
    }

    /// Waits for the part in flight (S3 may keep a part that lands after the abort), then
    /// aborts. A failed abort is logged: the caller's error is the one that matters.
    pub(super) async fn abort(mut self) {
        if let Some(flight) = self.in_flight.take() {
            let _ = flight.await;
        }
        self.settled = true;
        abort_upload(
            self.client.clone(),
            self.key.clone(),
            self.upload_id.clone(),
        )
        .await;
    }
}

impl Drop for StreamedUpload {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (client, key, id) = (
                self.client.clone(),
                self.key.clone(),
                self.upload_id.clone(),
            );
            runtime.spawn(abort_upload(client, key, id));
        }
    }
}

async fn abort_upload(client: S3Client, key: String, upload_id: String) {
    let aborted = client
        .sdk
        .abort_multipart_upload()
        .bucket(&client.bucket)
        .key(&key)
        .upload_id(upload_id)
        .send()
        .await
        .map_err(|e| to_error(e, "abort upload of", &client.target(&key)));
    match aborted {
        Ok(_) => tracing::debug!(%key, "aborted multipart upload"),
        Err(e) => {
            tracing::warn!(%key, error = %error_chain(&e), "failed to abort multipart upload")
        }
    }
}
