//! Multipart upload of one file: parts of `PART_SIZE`, one in memory at a time, aborted on
//! any failure so no orphaned parts are billed.
//!
//! Part checksums are left out of CompleteMultipartUpload on purpose: mixing them with an
//! upload created without a checksum algorithm fails on strict servers.

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::error::{S3Error, to_error};
use super::store::{PART_SIZE, S3Store, content_type, read_part};

/// Uploads `first` and the rest of `file` as one multipart object; returns the size.
pub(super) async fn upload(
    store: &S3Store,
    key: &str,
    name: &str,
    user_metadata: HashMap<String, String>,
    mut file: tokio::fs::File,
    first: Vec<u8>,
    path: &Path,
) -> Result<u64, S3Error> {
    let client = store.client();
    let created = client
        .sdk
        .create_multipart_upload()
        .bucket(&client.bucket)
        .key(key)
        .content_type(content_type(name))
        .set_metadata(Some(user_metadata))
        .send()
        .await
        .map_err(|e| to_error(e, "start upload of", &client.target(key)))?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let result = upload_parts(store, key, &upload_id, &mut file, first, path).await;
    if result.is_err() {
        let abort = client
            .sdk
            .abort_multipart_upload()
            .bucket(&client.bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
        if let Err(e) = abort {
            tracing::warn!(%key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "failed to abort multipart upload");
        }
    }
    result
}

async fn upload_parts(
    store: &S3Store,
    key: &str,
    upload_id: &str,
    file: &mut tokio::fs::File,
    first: Vec<u8>,
    path: &Path,
) -> Result<u64, S3Error> {
    let client = store.client();
    let mut parts = Vec::new();
    let mut size = 0u64;
    let mut part = first;
    while !part.is_empty() {
        let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
        size += part.len() as u64;
        let last = part.len() < PART_SIZE;
        let uploaded = client
            .sdk
            .upload_part()
            .bucket(&client.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| to_error(e, "upload part of", &client.target(key)))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_string))
                .build(),
        );
        part = if last {
            Vec::new()
        } else {
            read_part(file, path).await?
        };
    }
    client
        .sdk
        .complete_multipart_upload()
        .bucket(&client.bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| to_error(e, "complete upload of", &client.target(key)))?;
    Ok(size)
}
