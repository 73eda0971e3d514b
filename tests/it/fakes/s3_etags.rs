//! s3s-fs behind a thin layer that makes its listings carry ETags, as every real S3 does
//! (AWS, MinIO, SeaweedFS): `ListObjects(V2)` from s3s-fs leaves `ETag` out, and the product's
//! metadata cache keys on it to notice an object rewritten under the same name and size. Every
//! other call goes to s3s-fs unchanged. The ETag is the one s3s-fs stored at upload (what
//! `HeadObject` and `GetObject` return), or, for an object written without it, 32 hex digits
//! of the content's SHA-256 (ETags are opaque to clients).
//!
//! DeleteObjects goes through here too, so a test can make the server behave as others do:
//! lack the operation (NotImplemented, 501, as some S3-compatible servers answer), or refuse
//! chosen keys (listed in the reply's `Errors` with `AccessDenied`, as a bucket policy would).
//! Quiet mode is honoured as S3 does it (s3s-fs lists every deleted key regardless): a quiet
//! reply lists only the refusals.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use sha2::Digest;

pub struct ListingEtags {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
    deletes: DeleteRules,
}

/// How the server treats DeleteObjects; shared with the test, changeable while it runs.
#[derive(Clone, Default)]
pub struct DeleteRules(Arc<Mutex<Rules>>);

#[derive(Default)]
struct Rules {
    /// Answer DeleteObjects with NotImplemented.
    unsupported: bool,
    /// Keys containing one of these are refused (AccessDenied) and kept.
    refused: Vec<String>,
}

impl DeleteRules {
    pub fn make_unsupported(&self) {
        self.0.lock().expect("delete rules").unsupported = true;
    }

    pub fn refuse_keys_containing(&self, pattern: &str) {
        let mut rules = self.0.lock().expect("delete rules");
        rules.refused.push(pattern.to_string());
    }

    /// Deletes every key again (the policy that refused some is lifted).
    pub fn refuse_none(&self) {
        self.0.lock().expect("delete rules").refused.clear();
    }
}

impl ListingEtags {
    pub fn new(root: &Path, deletes: DeleteRules) -> Self {
        Self {
            fs: s3s_fs::FileSystem::new(root).expect("s3s-fs root"),
            root: root.to_path_buf(),
            deletes,
        }
    }

    /// The ETag s3s-fs serves for `bucket/key`.
    fn etag(&self, bucket: &str, key: &str) -> Option<ETag> {
        let stored = std::fs::read(info_path(&self.root, bucket, key))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["e_tag"].as_str().map(str::to_string));
        let value = match stored {
            Some(value) => value,
            None => {
                let bytes = std::fs::read(self.root.join(bucket).join(key)).ok()?;
                let digest = sha2::Sha256::digest(&bytes);
                digest[..16].iter().map(|b| format!("{b:02x}")).collect()
            }
        };
        Some(ETag::Strong(value))
    }

    fn fill(&self, bucket: &str, objects: Option<&mut Vec<Object>>) {
        for object in objects.into_iter().flatten() {
            if let Some(key) = &object.key {
                object.e_tag = self.etag(bucket, key);
            }
        }
    }
}

/// Where s3s-fs keeps an object's ETag, checksums and user metadata.
pub fn info_path(root: &Path, bucket: &str, key: &str) -> PathBuf {
    use base64::Engine;
    let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    root.join(format!(
        ".bucket-{}.object-{}.internal.json",
        encode(bucket),
        encode(key)
    ))
}

/// Forwards the named calls to s3s-fs as they are. Written in the form `async_trait` gives
/// its methods, since the attribute does not see inside a macro.
macro_rules! forward {
    ($($name:ident: $input:ty => $output:ty;)*) => {
        $(
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                req: S3Request<$input>,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<Output = S3Result<S3Response<$output>>>
                        + Send
                        + 'async_trait,
                >,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move { self.fs.$name(req).await })
            }
        )*
    };
}

#[async_trait::async_trait]
impl S3 for ListingEtags {
    forward! {
        create_bucket: CreateBucketInput => CreateBucketOutput;
        copy_object: CopyObjectInput => CopyObjectOutput;
        delete_bucket: DeleteBucketInput => DeleteBucketOutput;
        delete_object: DeleteObjectInput => DeleteObjectOutput;
        get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
        get_object: GetObjectInput => GetObjectOutput;
        head_bucket: HeadBucketInput => HeadBucketOutput;
        head_object: HeadObjectInput => HeadObjectOutput;
        list_buckets: ListBucketsInput => ListBucketsOutput;
        put_object: PutObjectInput => PutObjectOutput;
        create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
        upload_part: UploadPartInput => UploadPartOutput;
        upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput;
        list_parts: ListPartsInput => ListPartsOutput;
        complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput;
        abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
    }

    async fn delete_objects(
        &self,
        mut req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let refused_patterns = {
            let rules = self.deletes.0.lock().expect("delete rules");
            if rules.unsupported {
                return Err(s3s::s3_error!(NotImplemented));
            }
            rules.refused.clone()
        };
        let quiet = req.input.delete.quiet == Some(true);
        let (refused, kept): (Vec<ObjectIdentifier>, Vec<ObjectIdentifier>) =
            std::mem::take(&mut req.input.delete.objects)
                .into_iter()
                .partition(|o| refused_patterns.iter().any(|p| o.key.contains(p.as_str())));
        req.input.delete.objects = kept;
        let mut response = self.fs.delete_objects(req).await?;
        if quiet {
            response.output.deleted = None;
        }
        let errors: Vec<Error> = refused
            .into_iter()
            .map(|o| Error {
                key: Some(o.key),
                code: Some("AccessDenied".into()),
                message: Some("Access Denied by the test's bucket policy".into()),
                ..Default::default()
            })
            .collect();
        response.output.errors = (!errors.is_empty()).then_some(errors);
        Ok(response)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let mut response = self.fs.list_objects(req).await?;
        self.fill(&bucket, response.output.contents.as_mut());
        Ok(response)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let mut response = self.fs.list_objects_v2(req).await?;
        self.fill(&bucket, response.output.contents.as_mut());
        Ok(response)
    }
}
