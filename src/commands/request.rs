//! Building the RKE2 `SnapshotRequest` a client subcommand sends to the server.
//!
//! A request carries only what the user set explicitly for this client (flags and
//! `ETCD_SNAPSHOT_*` variables): the server's own merged config fills the rest. The core
//! (`request_for`) is pure; `ClientSide::gather` is the only place that reads the process
//! environment. This file neither sends requests nor validates values (the client's and the
//! server's config engines do).
//!
//! S3 follows RKE2's CLI: the `s3` block is sent when S3 is on for the client (`--s3`, or the
//! client's config turns it on and an `--s3-*` setting is given), carrying the S3 settings set
//! explicitly plus the `AWS_*` credential variables RKE2's CLI reads for keys no config layer
//! sets. An explicit `--s3=false` sends our `skipS3` extension so the server skips S3 for this
//! one operation, as an RKE2 server does for any request without `s3`. An endpoint CA given as
//! a file is read here and sent as inline PEM (the server reads no path a client names unless
//! its operator allows the dir).

use std::path::Path;

use secrecy::SecretString;

use crate::api::request_paths::MAX_CA_BYTES;
use crate::api::wire::{Operation, S3Request, SnapshotRequest};
use crate::cli::Command;
use crate::config::value::parse_go_bool;
use crate::config::{ConfigEngine, Layer, RawValue, Resolved, Source};

/// The secret S3 keys and the AWS variables RKE2's CLI reads them from.
const AWS_VARIABLES: [(&str, &str); 3] = [
    ("etcd-s3-access-key", "AWS_ACCESS_KEY_ID"),
    ("etcd-s3-secret-key", "AWS_SECRET_ACCESS_KEY"),
    ("etcd-s3-session-token", "AWS_SESSION_TOKEN"),
];

/// What the client knows when it builds a request; `gather` collects it, tests write it.
#[derive(Debug)]
pub struct ClientSide<'a> {
    /// Flags typed on the command line.
    pub flags: &'a Layer,
    /// `ETCD_SNAPSHOT_*` variables.
    pub env: &'a Layer,
    /// Whether the client's merged config (files included) turns S3 on.
    pub s3_on: bool,
    /// Secret S3 keys that no config layer of the client sets, with their `AWS_*` variable's
    /// value from this process's environment.
    pub aws_credentials: Vec<(&'static str, SecretString)>,
    /// The content of the endpoint CA file set explicitly, read here: the request carries
    /// inline PEM, since a server reads a path from a request only in dirs its operator lists.
    pub endpoint_ca_pem: Option<String>,
}

impl<'a> ClientSide<'a> {
    /// Collects the client's explicit layers, its S3 switch and its `AWS_*` credentials.
    pub fn gather(engine: &'a ConfigEngine, resolved: &Resolved) -> Self {
        let (flags, env) = engine.explicit_layers();
        let set_by_config = |key: &str| {
            resolved
                .shown
                .iter()
                .any(|v| v.key == key && v.source != Source::Default)
        };
        let aws_credentials = AWS_VARIABLES
            .iter()
            .filter(|(key, _)| !set_by_config(key))
            .filter_map(|(key, var)| {
                let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty())?;
                Some((*key, SecretString::from(value)))
            })
            .collect();
        let mut side = Self {
            flags,
            env,
            s3_on: resolved.config.s3.is_some(),
            aws_credentials,
            endpoint_ca_pem: None,
        };
        side.endpoint_ca_pem = side.string("etcd-s3-endpoint-ca").and_then(|v| read_ca(&v));
        side
    }

    /// A value set explicitly: a flag over an `ETCD_SNAPSHOT_*` variable.
    fn explicit(&self, key: &str) -> Option<RawValue> {
        self.flags
            .get(key)
            .or_else(|| self.env.get(key))
            .map(|s| s.value.clone())
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.explicit(key)? {
            RawValue::String(s) if !s.trim().is_empty() => Some(s),
            _ => None,
        }
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.explicit(key).and_then(|v| as_bool(&v))
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.explicit(key).and_then(|v| as_int(&v))
    }

    fn secret(&self, key: &str) -> Option<SecretString> {
        match self.explicit(key) {
            Some(RawValue::Secret(s)) => Some(s),
            Some(RawValue::String(s)) if !s.trim().is_empty() => Some(SecretString::from(s)),
            _ => self
                .aws_credentials
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, s)| s.clone()),
        }
    }

    /// `etcd-s3-*` keys set explicitly (not `etcd-s3` itself).
    fn explicit_s3_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .flags
            .iter()
            .chain(self.env.iter())
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("etcd-s3-"))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// True when this request carries an `s3` block.
    fn sends_s3(&self) -> bool {
        match self.bool("etcd-s3") {
            Some(on) => on,
            None => self.s3_on && !self.explicit_s3_keys().is_empty(),
        }
    }
}

/// The RKE2 request for a command, carrying only values the user set explicitly (flags or
/// environment); the server fills the rest from its own config.
pub fn build_request(
    command: &Command,
    engine: &ConfigEngine,
    resolved: &Resolved,
) -> SnapshotRequest {
    request_for(command, &ClientSide::gather(engine, resolved))
}

/// `build_request` from gathered client facts. Pure.
pub fn request_for(command: &Command, side: &ClientSide<'_>) -> SnapshotRequest {
    let mut request = SnapshotRequest {
        dir: side.string("etcd-snapshot-dir"),
        compress: side.bool("etcd-snapshot-compress"),
        ..Default::default()
    };
    match command {
        Command::Save => {
            request.operation = Some(Operation::Save);
            request.name = side.string("name").map(|n| vec![n]);
        }
        Command::List { .. } => request.operation = Some(Operation::List),
        Command::Delete { names } => {
            request.operation = Some(Operation::Delete);
            request.name = Some(names.clone());
        }
        Command::Verify { names, .. } => {
            request.operation = Some(Operation::Verify);
            request.name = (!names.is_empty()).then(|| names.clone());
        }
        Command::Prune { dry_run, .. } => {
            request.operation = Some(Operation::Prune);
            request.name = side.string("name").map(|n| vec![n]);
            request.retention = side.int("etcd-snapshot-retention");
            request.dry_run = dry_run.then_some(true);
        }
        _ => return request,
    }
    if side.sends_s3() {
        request.s3 = Some(s3_block(side));
    } else if side.bool("etcd-s3") == Some(false) {
        request.skip_s3 = Some(true);
    }
    request
}

/// The explicitly set S3 settings, under RKE2's field names.
fn s3_block(side: &ClientSide<'_>) -> S3Request {
    S3Request {
        access_key: side.secret("etcd-s3-access-key"),
        secret_key: side.secret("etcd-s3-secret-key"),
        session_token: side.secret("etcd-s3-session-token"),
        bucket: side.string("etcd-s3-bucket"),
        bucket_lookup: side.string("etcd-s3-bucket-lookup-type"),
        config_secret: side.string("etcd-s3-config-secret"),
        endpoint: side.string("etcd-s3-endpoint"),
        endpoint_ca: side
            .endpoint_ca_pem
            .clone()
            .or_else(|| side.string("etcd-s3-endpoint-ca")),
        folder: side.string("etcd-s3-folder"),
        proxy: side.string("etcd-s3-proxy"),
        region: side.string("etcd-s3-region"),
        insecure: side.bool("etcd-s3-insecure"),
        skip_ssl_verify: side.bool("etcd-s3-skip-ssl-verify"),
        retention: side.int("etcd-s3-retention"),
        timeout: side.string("etcd-s3-timeout"),
    }
}

/// A warning when `--s3-*` settings were given but no `s3` block is sent (S3 is off for this
/// client), so they would otherwise be dropped silently.
pub fn unsent_s3_warning(side: &ClientSide<'_>) -> Option<String> {
    let keys = side.explicit_s3_keys();
    if keys.is_empty() || side.sends_s3() {
        return None;
    }
    Some(format!(
        "{} ignored: S3 is off for this command (add --s3 to use S3 settings for it)",
        keys.join(", ")
    ))
}

/// The PEM text of a CA file path (None for inline PEM, or a file that cannot be read, which
/// is then sent as given and the server says why it refuses it).
fn read_ca(value: &str) -> Option<String> {
    if value.contains("-----BEGIN") {
        return None;
    }
    let bytes = crate::fsutil::read_capped(Path::new(value.trim()), MAX_CA_BYTES).ok()?;
    String::from_utf8(bytes).ok()
}

fn as_bool(value: &RawValue) -> Option<bool> {
    match value {
        RawValue::Bool(b) => Some(*b),
        RawValue::String(s) => parse_go_bool(s.trim()),
        _ => None,
    }
}

fn as_int(value: &RawValue) -> Option<i64> {
    match value {
        RawValue::Int(i) => Some(*i),
        RawValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
