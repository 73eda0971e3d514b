//! Request -> operation mapping: what an RKE2 `SnapshotRequest` asks for, and the config layer
//! its explicit fields form. Pure.
//!
//! The server's own merged config fills every field the request leaves out; fields the request
//! carries win over everything (DESIGN.md precedence: ... < flags < API request). Values are not
//! validated here: the config engine does that, so a bad value's error names the key, the value
//! and "API request" as its source.

use secrecy::ExposeSecret;

use crate::config::desired::S3Settings;
use crate::config::{Layer, RawValue, Source};

use super::wire::{Operation, S3Request, SnapshotRequest};

/// The operation a request maps to (the operations' own type: the API only plans it).
pub use crate::operations::PlannedOperation;

/// Why a request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request has no operation (expected save, list, delete, prune or verify)")]
    MissingOperation,
    #[error("no snapshots given for removal")]
    NoNamesToDelete,
    #[error("request has both s3 settings and skipS3 (expected one of them)")]
    ConflictingS3,
    #[error("retention {0} is negative (expected a count >= 0)")]
    NegativeRetention(i64),
    #[error(
        "the request changes s3 {0} but does not carry both an access key and a secret key: a request that changes where or how S3 data travels must bring its own credentials (the server never signs for another destination with its own)"
    )]
    CredentialsElsewhere(String),
    #[error(
        "the request names S3 config Secret {0:?}, which is not the server's (a request may only restate the server's etcd-s3-config-secret)"
    )]
    OtherConfigSecret(String),
    #[error(
        "the server has no S3 settings of its own: a request that uses S3 must carry both an access key and a secret key"
    )]
    NoServerS3,
}

/// Maps a request to its operation and the config layer of its explicit fields.
pub fn plan_request(request: &SnapshotRequest) -> Result<(PlannedOperation, Layer), RequestError> {
    let operation = match request.operation.ok_or(RequestError::MissingOperation)? {
        Operation::Save => PlannedOperation::Save,
        Operation::List => PlannedOperation::List,
        Operation::Prune => PlannedOperation::Prune {
            dry_run: request.dry_run.unwrap_or(false),
        },
        Operation::Verify => PlannedOperation::Verify {
            names: request.name.clone().unwrap_or_default(),
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

/// The S3 settings that decide where snapshot data goes and how it travels, by their request
/// (JSON) name. Each differs from the server's own value only when the request changed it.
/// `retention` and `timeout` are not here: they change neither the destination nor the
/// transport. `configSecret` is handled apart (`check_own_credentials`).
pub fn routing_changes(requested: &S3Settings, server: &S3Settings) -> Vec<&'static str> {
    let folder = |s: &S3Settings| s.folder.trim().trim_matches('/').to_string();
    let ca = |s: &S3Settings| s.endpoint_ca.as_deref().map(str::trim).map(str::to_string);
    let differs = [
        (
            "endpoint",
            !requested
                .endpoint
                .trim()
                .eq_ignore_ascii_case(server.endpoint.trim()),
        ),
        ("proxy", requested.proxy != server.proxy),
        ("bucket", requested.bucket != server.bucket),
        ("folder", folder(requested) != folder(server)),
        ("region", requested.region.trim() != server.region.trim()),
        ("insecure", requested.insecure != server.insecure),
        (
            "skipSSLVerify",
            requested.skip_ssl_verify != server.skip_ssl_verify,
        ),
        ("endpointCA", ca(requested) != ca(server)),
        (
            "bucketLookup",
            requested.bucket_lookup != server.bucket_lookup,
        ),
    ];
    differs
        .into_iter()
        .filter_map(|(field, changed)| changed.then_some(field))
        .collect()
}

/// Refuses a request that changes where or how S3 data travels without bringing both keys of
/// its own: an API token holder could otherwise have the server sign for a destination of
/// their choosing with the server's credentials, whether those are configured, come from the
/// AWS default chain (environment, shared file, instance role) or from the S3 config Secret.
///
/// `requested` is the request's effective S3 block (None: S3 is off for it); `server` is the
/// server's own block with S3 on (None: the server has no usable S3 settings). Restating a
/// server value is not a change: RKE2's CLI sends every field. A request may never name an S3
/// config Secret other than the server's, keys or not, since that Secret's credentials would
/// replace its own.
pub fn check_own_credentials(
    layer: &Layer,
    requested: Option<&S3Settings>,
    server: Option<&S3Settings>,
) -> Result<(), RequestError> {
    let Some(requested) = requested else {
        return Ok(());
    };
    if let Some(name) = &requested.config_secret
        && server.is_none_or(|s| s.config_secret.as_ref() != Some(name))
    {
        return Err(RequestError::OtherConfigSecret(name.clone()));
    }
    if has_own_keys(layer) {
        return Ok(());
    }
    let Some(server) = server else {
        return Err(RequestError::NoServerS3);
    };
    let changed = routing_changes(requested, server);
    if changed.is_empty() {
        Ok(())
    } else {
        Err(RequestError::CredentialsElsewhere(changed.join(", ")))
    }
}

/// True when the request carries both an access key and a secret key.
fn has_own_keys(layer: &Layer) -> bool {
    ["etcd-s3-access-key", "etcd-s3-secret-key"]
        .iter()
        .all(|key| layer.get(key).is_some())
}

/// A request that brings a key of its own signs with its own credentials only: the server's
/// session token (or a key the request left out) must never be paired with them and sent to a
/// destination the request chose.
pub fn own_credentials_only(s3: &mut S3Settings, layer: &Layer) {
    let from_request = |key: &str| match layer.get(key).map(|s| &s.value) {
        Some(RawValue::Secret(secret)) => Some(secret.clone()),
        _ => None,
    };
    let access = from_request("etcd-s3-access-key");
    let secret = from_request("etcd-s3-secret-key");
    if access.is_none() && secret.is_none() {
        return;
    }
    s3.access_key = access;
    s3.secret_key = secret;
    s3.session_token = from_request("etcd-s3-session-token");
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "request_credentials_tests.rs"]
mod credentials_tests;
