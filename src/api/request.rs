//! Request -> operation mapping: what an RKE2 `SnapshotRequest` asks for, and the config layer
//! its explicit fields form. Pure.
//!
//! The server's own merged config fills every field the request leaves out; fields the request
//! carries win over everything (DESIGN.md precedence: ... < flags < API request). Values are not
//! validated here: the config engine does that, so a bad value's error names the key, the value
//! and "API request" as its source.

use secrecy::ExposeSecret;

use crate::config::desired::{S3Proxy, S3Settings};
use crate::config::{Layer, RawValue, Source};

use super::wire::{Operation, S3Request, SnapshotRequest};

/// The operation a request maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedOperation {
    Save,
    List,
    Delete { names: Vec<String> },
    Prune { dry_run: bool },
}

/// Why a request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request has no operation (expected save, list, delete or prune)")]
    MissingOperation,
    #[error("no snapshots given for removal")]
    NoNamesToDelete,
    #[error("request has both s3 settings and skipS3 (expected one of them)")]
    ConflictingS3,
    #[error("retention {0} is negative (expected a count >= 0)")]
    NegativeRetention(i64),
    #[error(
        "the request sets the S3 {0} but not both an access key and a secret key: a request that sends S3 traffic elsewhere must bring its own credentials (the server never signs for another endpoint with its own)"
    )]
    CredentialsElsewhere(&'static str),
}

/// Maps a request to its operation and the config layer of its explicit fields.
pub fn plan_request(request: &SnapshotRequest) -> Result<(PlannedOperation, Layer), RequestError> {
    let operation = match request.operation.ok_or(RequestError::MissingOperation)? {
        Operation::Save => PlannedOperation::Save,
        Operation::List => PlannedOperation::List,
        Operation::Prune => PlannedOperation::Prune {
            dry_run: request.dry_run.unwrap_or(false),
        },
        Operation::Delete => {
            let names = request.name.clone().unwrap_or_default();
            if names.is_empty() {
                return Err(RequestError::NoNamesToDelete);
            }
            PlannedOperation::Delete { names }
        }
    };
    let mut layer = Layer::new();
    if matches!(
        operation,
        PlannedOperation::Save | PlannedOperation::Prune { .. }
    ) && let Some(base) = request.name.as_ref().and_then(|names| names.first())
    {
        layer.set("name", RawValue::String(base.clone()), Source::Request);
    }
    if let Some(dir) = &request.dir {
        layer.set(
            "etcd-snapshot-dir",
            RawValue::String(dir.clone()),
            Source::Request,
        );
    }
    if let Some(compress) = request.compress {
        layer.set(
            "etcd-snapshot-compress",
            RawValue::Bool(compress),
            Source::Request,
        );
    }
    if let Some(retention) = request.retention {
        if retention < 0 {
            return Err(RequestError::NegativeRetention(retention));
        }
        layer.set(
            "etcd-snapshot-retention",
            RawValue::Int(retention),
            Source::Request,
        );
    }
    match (&request.s3, request.skip_s3) {
        (Some(_), Some(true)) => return Err(RequestError::ConflictingS3),
        (Some(s3), _) => add_s3(&mut layer, s3),
        (None, Some(true)) => layer.set("etcd-s3", RawValue::Bool(false), Source::Request),
        (None, _) => {}
    }
    Ok((operation, layer))
}

/// A present `s3` block turns S3 on and sets each field it carries. Empty strings are unset:
/// RKE2's CLI sends "" for every string the user left out, and the server's config fills those.
fn add_s3(layer: &mut Layer, s3: &S3Request) {
    let mut set = |key: &str, value: RawValue| layer.set(key, value, Source::Request);
    set("etcd-s3", RawValue::Bool(true));
    let secrets = [
        ("etcd-s3-access-key", &s3.access_key),
        ("etcd-s3-secret-key", &s3.secret_key),
        ("etcd-s3-session-token", &s3.session_token),
    ];
    for (key, secret) in secrets {
        if let Some(secret) = secret.as_ref().filter(|s| !is_blank(s.expose_secret())) {
            set(key, RawValue::Secret(secret.clone()));
        }
    }
    let texts = [
        ("etcd-s3-bucket", &s3.bucket),
        ("etcd-s3-bucket-lookup-type", &s3.bucket_lookup),
        ("etcd-s3-config-secret", &s3.config_secret),
        ("etcd-s3-endpoint", &s3.endpoint),
        ("etcd-s3-endpoint-ca", &s3.endpoint_ca),
        ("etcd-s3-folder", &s3.folder),
        ("etcd-s3-proxy", &s3.proxy),
        ("etcd-s3-region", &s3.region),
        ("etcd-s3-timeout", &s3.timeout),
    ];
    for (key, text) in texts {
        if let Some(text) = text.as_deref().filter(|t| !is_blank(t)) {
            set(key, RawValue::String(text.to_string()));
        }
    }
    for (key, flag) in [
        ("etcd-s3-insecure", s3.insecure),
        ("etcd-s3-skip-ssl-verify", s3.skip_ssl_verify),
    ] {
        if let Some(flag) = flag {
            set(key, RawValue::Bool(flag));
        }
    }
    if let Some(retention) = s3.retention {
        // A negative count reaches the engine, whose error names the key and the request.
        set("etcd-s3-retention", RawValue::Int(retention));
    }
}

/// Refuses a request that points S3 traffic at another endpoint or proxy than the server's
/// own `server` settings without bringing both keys: an API token holder could otherwise have
/// the server sign requests with its credentials (its own, the environment's or the Secret's)
/// for a host of their choosing. Restating the server's endpoint (RKE2's CLI always sends one)
/// is not a redirect.
pub fn check_own_credentials(
    layer: &Layer,
    server: Option<&S3Settings>,
) -> Result<(), RequestError> {
    let text = |key: &str| match layer.get(key).map(|s| &s.value) {
        Some(RawValue::String(t)) => Some(t.trim().to_string()),
        _ => None,
    };
    let endpoint_moves = text("etcd-s3-endpoint")
        .is_some_and(|e| server.is_none_or(|s| !e.eq_ignore_ascii_case(s.endpoint.trim())));
    let proxy_moves = text("etcd-s3-proxy").is_some_and(|p| {
        let wanted = S3Proxy::parse(&p).ok();
        server.is_none_or(|s| wanted.as_ref() != Some(&s.proxy))
    });
    let has_keys = ["etcd-s3-access-key", "etcd-s3-secret-key"]
        .iter()
        .all(|key| layer.get(key).is_some());
    match (endpoint_moves, proxy_moves) {
        _ if has_keys => Ok(()),
        (true, _) => Err(RequestError::CredentialsElsewhere("endpoint")),
        (_, true) => Err(RequestError::CredentialsElsewhere("proxy")),
        _ => Ok(()),
    }
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
