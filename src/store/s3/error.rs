//! The S3 store's error type and the mapping of SDK failures onto it.
//!
//! Each startup failure a user can fix (missing bucket, unreachable endpoint, bad CA, denied
//! credentials) is its own variant naming the bucket and endpoint, never a credential. The SDK's
//! error is kept as the `#[source]`, so logs show the whole chain.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// A boxed source error from the SDK or the HTTP stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from S3 client setup and S3 operations.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("invalid S3 settings: {reason}")]
    InvalidSettings { reason: String },
    /// The settings themselves could not be obtained (the S3 config Secret is unusable).
    #[error("failed to load the S3 settings")]
    Settings(#[source] BoxError),
    #[error("failed to read etcd-s3-endpoint-ca file {path}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no PEM certificate found in etcd-s3-endpoint-ca ({what})")]
    NoCertificates { what: String },
    #[error("failed to set up the TLS client for S3 endpoint {endpoint}")]
    TlsSetup {
        endpoint: String,
        #[source]
        source: BoxError,
    },
    #[error("bucket {bucket} does not exist at S3 endpoint {endpoint}")]
    BucketNotFound { bucket: String, endpoint: String },
    #[error(
        "access to bucket {bucket} at S3 endpoint {endpoint} was denied: check the access key, \
         secret key, session token and region"
    )]
    AccessDenied {
        bucket: String,
        endpoint: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "failed to verify the TLS certificate of S3 endpoint {endpoint}: check \
         etcd-s3-endpoint-ca (or etcd-s3-skip-ssl-verify)"
    )]
    Certificate {
        endpoint: String,
        #[source]
        source: BoxError,
    },
    #[error("failed to reach S3 endpoint {endpoint}")]
    Unreachable {
        endpoint: String,
        #[source]
        source: BoxError,
    },
    #[error("S3 request to {endpoint} timed out (etcd-s3-timeout is {timeout:?})")]
    Timeout { endpoint: String, timeout: Duration },
    #[error(
        "no S3 credentials found: set etcd-s3-access-key and etcd-s3-secret-key, the AWS_* \
         environment variables or a shared credentials file"
    )]
    NoCredentials {
        #[source]
        source: BoxError,
    },
    #[error("s3://{bucket}/{key} does not exist")]
    ObjectNotFound { bucket: String, key: String },
    #[error("failed to {action} s3://{bucket}/{key}{http}")]
    Request {
        action: &'static str,
        bucket: String,
        key: String,
        /// ` (HTTP <status>)` when the server answered, else empty: the SDK's own text for
        /// an unmodelled error says nothing useful.
        http: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "checksum mismatch for s3://{bucket}/{key}: recorded sha256 {expected}, downloaded {actual}"
    )]
    ChecksumMismatch {
        bucket: String,
        key: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{path} already exists and may not be the same snapshot as s3://{bucket}/{key} \
         ({reason}); it was left untouched: move it out of the snapshot dir, or restore from it \
         by path"
    )]
    LocalCopyDiffers {
        path: PathBuf,
        bucket: String,
        key: String,
        reason: String,
    },
    #[error(
        "upload of s3://{bucket}/{key} was abandoned after {received} bytes: the save failed \
         or fell behind, nothing was kept"
    )]
    Abandoned {
        bucket: String,
        key: String,
        received: u64,
    },
    #[error(
        "failed to upload s3://{bucket}/{key}: the save announced {announced} bytes but \
         {received} arrived"
    )]
    SizeMismatch {
        bucket: String,
        key: String,
        announced: u64,
        received: u64,
    },
    #[error("invalid snapshot name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl S3Error {
    /// True for failures that may go away on their own (network, timeouts, throttling).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            S3Error::Unreachable { .. } | S3Error::Timeout { .. } | S3Error::Request { .. }
        )
    }

    /// True when the object (or bucket) asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            S3Error::ObjectNotFound { .. } | S3Error::BucketNotFound { .. }
        )
    }
}

/// What went wrong with one request, before it is given the caller's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The bucket itself is missing.
    NoBucket,
    /// The key (or, for bucket-level requests, the bucket) is missing.
    NotFound,
    Denied,
    Certificate,
    Unreachable,
    Timeout,
    NoCredentials,
    Other,
}

/// Where a failed request went: enough to name it in an error.
pub struct Target<'a> {
    pub endpoint: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub timeout: Duration,
}

/// Classifies an SDK error: HTTP status and error code for service errors, the source chain
/// for transport errors (a rustls certificate error means a CA problem).
pub fn classify<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::TimeoutError(_) => Failure::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => Failure::Timeout,
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            if chain_has_certificate_error(err) {
                Failure::Certificate
            } else {
                Failure::Unreachable
            }
        }
        SdkError::ServiceError(service) => {
            status_failure(service.raw().status().as_u16(), service.err().code())
        }
        SdkError::ConstructionFailure(_) if chain_mentions(err, "credentials") => {
            Failure::NoCredentials
        }
        _ => Failure::Other,
    }
}

/// The failure an S3 HTTP status and error code stand for.
pub fn status_failure(status: u16, code: Option<&str>) -> Failure {
    match (status, code) {
        (_, Some("NoSuchBucket")) => Failure::NoBucket,
        (404, _) | (_, Some("NoSuchKey" | "NotFound")) => Failure::NotFound,
        (401 | 403, _)
        | (
            _,
            Some(
                "AccessDenied"
                | "SignatureDoesNotMatch"
                | "InvalidAccessKeyId"
                | "AuthorizationHeaderMalformed",
            ),
        ) => Failure::Denied,
        _ => Failure::Other,
    }
}

/// Turns a classified SDK error into the error users see, naming the target.
pub fn to_error<E>(
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    action: &'static str,
    t: &Target<'_>,
) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (endpoint, bucket, key) = (
        t.endpoint.to_string(),
        t.bucket.to_string(),
        t.key.to_string(),
    );
    match classify(&err) {
        Failure::NoBucket => S3Error::BucketNotFound { bucket, endpoint },
        Failure::NotFound if key.is_empty() => S3Error::BucketNotFound { bucket, endpoint },
        Failure::NotFound => S3Error::ObjectNotFound { bucket, key },
        Failure::Denied => S3Error::AccessDenied {
            bucket,
            endpoint,
            source: Box::new(err),
        },
        Failure::Certificate => S3Error::Certificate {
            endpoint,
            source: Box::new(err),
        },
        Failure::Unreachable => S3Error::Unreachable {
            endpoint,
            source: Box::new(err),
        },
        Failure::Timeout => S3Error::Timeout {
            endpoint,
            timeout: t.timeout,
        },
        Failure::NoCredentials => S3Error::NoCredentials {
            source: Box::new(err),
        },
        Failure::Other => S3Error::Request {
            action,
            bucket,
            key,
            http: err
                .raw_response()
                .map(|r| format!(" (HTTP {})", r.status().as_u16()))
                .unwrap_or_default(),
            source: Box::new(err),
        },
    }
}

fn chain_has_certificate_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && chain_has_certificate_error(inner)
        {
            return true;
        }
        next = e.source();
    }
    // Some layers flatten the rustls error into text; its wording is stable.
    chain_mentions(err, "invalid peer certificate")
}

fn chain_mentions(err: &(dyn std::error::Error + 'static), needle: &str) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.to_string().to_ascii_lowercase().contains(needle) {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::error_chain;

    #[test]
    fn stream_failures_are_not_retried_in_place() {
        let abandoned = S3Error::Abandoned {
            bucket: "b".into(),
            key: "k".into(),
            received: 3,
        };
        assert!(!abandoned.is_retryable() && !abandoned.is_not_found());
        let mismatch = S3Error::SizeMismatch {
            bucket: "b".into(),
            key: "k".into(),
            announced: 4,
            received: 3,
        };
        assert!(!mismatch.is_retryable());
        assert!(
            mismatch
                .to_string()
                .contains("announced 4 bytes but 3 arrived")
        );
    }

    #[test]
    fn error_chain_joins_every_source() {
        let err = S3Error::Io {
            action: "read",
            path: "/x".into(),
            source: std::io::Error::other("disk gone"),
        };
        assert_eq!(error_chain(&err), "failed to read /x: disk gone");
    }

    #[test]
    fn statuses_and_codes_map_to_failures() {
        assert_eq!(status_failure(404, None), Failure::NotFound);
        assert_eq!(status_failure(404, Some("NoSuchBucket")), Failure::NoBucket);
        assert_eq!(status_failure(404, Some("NoSuchKey")), Failure::NotFound);
        assert_eq!(status_failure(403, None), Failure::Denied);
        assert_eq!(
            status_failure(400, Some("AuthorizationHeaderMalformed")),
            Failure::Denied
        );
        assert_eq!(status_failure(500, Some("InternalError")), Failure::Other);
    }
}
