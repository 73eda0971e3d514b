//! Building the typed `DesiredConfig` from the values `resolve` parsed, key by key.
//!
//! Pure and infallible for a consistent key table: every key with a default has a value by the
//! time `build` runs. A new setting that `DesiredConfig` carries is read here.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::desired::ResetSettings;
use super::desired::{
    ApiSettings, BucketLookup, DesiredConfig, EtcdSettings, LogFormat, LogSettings, S3Proxy,
    S3Settings, SnapshotSettings, is_host_port,
};
use super::layer::Source;
use super::resolve::ConfigError;
use super::value::{self, Value};
use crate::config::schedule::Schedule;

/// One key's effective value; `None` is an optional key left unset (or set to "").
pub(super) struct Entry {
    pub value: Option<Value>,
    pub source: Source,
}

/// Every key's entry, by canonical name.
#[derive(Default)]
pub(super) struct Parsed(pub BTreeMap<&'static str, Entry>);

impl Parsed {
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key).and_then(|e| e.value.as_ref())
    }
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.0.get(key).map(|e| &e.source)
    }
    /// A cross-key check's error for `key`: its value as shown, where it came from, and what
    /// was expected instead.
    pub fn error(&self, key: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            value: self.value(key).map(value::render),
            source: self.source(key).cloned().unwrap_or(Source::Default),
            expected: expected.into(),
        }
    }
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        match self.value(key)? {
            Value::Path(p) => Some(p.clone()),
            _ => None,
        }
    }
    pub fn text(&self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        }
    }
    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.value(key)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The proxy setting as typed, exposed only to be parsed into `S3Proxy`.
    pub fn proxy(&self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::Proxy(url) => Some(url.expose_secret().to_string()),
            _ => None,
        }
    }
    pub fn secret(&self, key: &str) -> Option<SecretString> {
        match self.value(key)? {
            Value::Secret(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        match self.value(key)? {
            Value::List(items) => Some(items.clone()),
            _ => None,
        }
    }
    pub fn int(&self, key: &str) -> Option<u32> {
        match self.value(key)? {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
    pub fn port(&self, key: &str) -> Option<u16> {
        match self.value(key)? {
            Value::Port(p) => Some(*p),
            _ => None,
        }
    }
    pub fn socket(&self, key: &str) -> Option<SocketAddr> {
        match self.value(key)? {
            Value::Socket(a) => Some(*a),
            _ => None,
        }
    }
    pub fn ip(&self, key: &str) -> Option<IpAddr> {
        match self.value(key)? {
            Value::Ip(ip) => Some(*ip),
            _ => None,
        }
    }
    pub fn cron(&self, key: &str) -> Option<Schedule> {
        match self.value(key)? {
            Value::Cron(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn duration(&self, key: &str) -> Option<std::time::Duration> {
        match self.value(key)? {
            Value::Duration(d) => Some(*d),
            _ => None,
        }
    }
    pub fn log_format(&self, key: &str) -> Option<LogFormat> {
        match self.value(key)? {
            Value::LogFormat(f) => Some(*f),
            _ => None,
        }
    }
}

/// The typed config; None only if a key the table guarantees is missing (a bug).
pub(super) fn build(p: &Parsed) -> Option<DesiredConfig> {
    Some(DesiredConfig {
        config_file: p.path("config")?,
        data_dir: p.path("data-dir")?,
        node_name: p.text("node-name")?,
        token: p.secret("token"),
        token_file: p.path("token-file"),
        cluster_id: p.text("cluster-id").unwrap_or_default(),
        reset: ResetSettings {
            cluster_reset: p.flag("cluster-reset")?,
            restore_path: p
                .text("cluster-reset-restore-path")
                .filter(|path| !path.trim().is_empty()),
            restore_to: super::restore_to::setting(p),
            backup_retention: p.int("cluster-reset-backup-retention")?,
        },
        etcd: etcd(p)?,
        snapshot: snapshot(p)?,
        api: api(p)?,
        log: LogSettings {
            format: p.log_format("log-format")?,
            debug: p.flag("debug")?,
        },
        s3: s3(p)?,
        kubeconfig: p.path("kubeconfig"),
        install_crd: p.flag("etcd-snapshot-install-crd")?,
    })
}

/// The S3 block: `Some(None)` when `etcd-s3` is off. Values `check_s3` rejects never get here.
fn s3(p: &Parsed) -> Option<Option<S3Settings>> {
    if !p.flag("etcd-s3")? {
        return Some(None);
    }
    let lookup = p.text("etcd-s3-bucket-lookup-type").unwrap_or_default();
    let proxy = p.proxy("etcd-s3-proxy").unwrap_or_default();
    Some(Some(S3Settings {
        endpoint: p.text("etcd-s3-endpoint")?.trim().to_string(),
        endpoint_ca: p.text("etcd-s3-endpoint-ca"),
        skip_ssl_verify: p.flag("etcd-s3-skip-ssl-verify")?,
        access_key: p.secret("etcd-s3-access-key"),
        secret_key: p.secret("etcd-s3-secret-key"),
        session_token: p.secret("etcd-s3-session-token"),
        bucket: p.text("etcd-s3-bucket").unwrap_or_default(),
        bucket_lookup: BucketLookup::parse(&lookup).unwrap_or_default(),
        region: p.text("etcd-s3-region")?.trim().to_string(),
        folder: p.text("etcd-s3-folder").unwrap_or_default(),
        proxy: S3Proxy::parse(&proxy).unwrap_or_default(),
        insecure: p.flag("etcd-s3-insecure")?,
        timeout: p.duration("etcd-s3-timeout")?,
        retention: p
            .int("etcd-s3-retention")
            .or_else(|| p.int("etcd-snapshot-retention"))?,
        retention_rules: super::retention::s3_rules(p),
        config_secret: p
            .text("etcd-s3-config-secret")
            .filter(|_| secret_blockers(p).is_empty()),
    }))
}

/// S3 settings given besides `etcd-s3` and `etcd-s3-config-secret` (retention aside): any of
/// them means the Secret is ignored (RKE2's rule), and the warning names them. As in RKE2 a
/// value equal to the built-in default does not count: RKE2's CLI sends the default endpoint,
/// region, timeout and flags with every request.
pub(super) fn secret_blockers(p: &Parsed) -> Vec<(&'static str, Source)> {
    const NOT_BLOCKING: [&str; 3] = ["etcd-s3", "etcd-s3-config-secret", "etcd-s3-retention"];
    super::keys::all()
        .iter()
        .filter(|spec| spec.name.starts_with("etcd-s3") && !NOT_BLOCKING.contains(&spec.name))
        .filter_map(|spec| {
            let entry = p.0.get(spec.name)?;
            let value = entry.value.as_ref()?;
            let is_default = match spec.default {
                super::keys::DefaultValue::Value(text) => {
                    value::parse(spec.kind, &super::layer::RawValue::String(text.into()))
                        .is_ok_and(|default| value::render(&default) == value::render(value))
                }
                _ => false,
            };
            (entry.source != Source::Default && !is_default)
                .then(|| (spec.name, entry.source.clone()))
        })
        .collect()
}

/// The warning for a Secret that other S3 settings override, naming each of them.
pub(super) fn check_config_secret(p: &Parsed, warnings: &mut Vec<String>) {
    let Some(name) = p.text("etcd-s3-config-secret") else {
        return;
    };
    let blockers = secret_blockers(p);
    if p.flag("etcd-s3") != Some(true) || blockers.is_empty() {
        return;
    }
    let named: Vec<String> = blockers
        .iter()
        .map(|(key, source)| format!("{key} (from {source})"))
        .collect();
    warnings.push(format!(
        "etcd-s3-config-secret {name:?} is ignored because other S3 settings are set: {}; \
         set only etcd-s3 and etcd-s3-config-secret (and optionally etcd-s3-retention) to use it",
        named.join(", ")
    ));
}

/// S3 checks that go beyond one value's kind. Value formats (lookup type, proxy, endpoint,
/// timeout) are checked whenever set; what S3 needs to run only when `etcd-s3` is on.
pub(super) fn check_s3(p: &Parsed, errors: &mut Vec<ConfigError>) {
    let mut fail = |key: &str, expected: &str| errors.push(p.error(key, expected));
    if let Some(lookup) = p.text("etcd-s3-bucket-lookup-type")
        && BucketLookup::parse(&lookup).is_none()
    {
        fail("etcd-s3-bucket-lookup-type", "one of: auto, dns, path");
    }
    if let Some(Err(expected)) = p.proxy("etcd-s3-proxy").map(|t| S3Proxy::parse(&t)) {
        fail("etcd-s3-proxy", &expected);
    }
    if p.text("etcd-s3-endpoint")
        .is_some_and(|e| !is_host_port(e.trim()))
    {
        fail(
            "etcd-s3-endpoint",
            "host[:port] without a scheme or path, such as s3.amazonaws.com or 10.0.0.5:9000 \
             (use etcd-s3-insecure for plain HTTP)",
        );
    }
    if p.duration("etcd-s3-timeout").is_some_and(|d| d.is_zero()) {
        fail(
            "etcd-s3-timeout",
            "a duration greater than zero, such as 5m",
        );
    }
    if p.flag("etcd-s3") != Some(true) {
        return;
    }
    if p.text("etcd-s3-region").is_none_or(|r| r.trim().is_empty()) {
        fail("etcd-s3-region", "a region name such as us-east-1");
    }
    let secret_in_use = p.text("etcd-s3-config-secret").is_some() && secret_blockers(p).is_empty();
    if p.text("etcd-s3-bucket").is_none() && !secret_in_use {
        fail(
            "etcd-s3-bucket",
            "a bucket name when etcd-s3 is on (or etcd-s3-config-secret to read it from a Secret)",
        );
    }
    for (have, need) in [
        ("etcd-s3-access-key", "etcd-s3-secret-key"),
        ("etcd-s3-secret-key", "etcd-s3-access-key"),
    ] {
        if p.value(have).is_some() && p.value(need).is_none() {
            fail(have, &format!("{need} to be set as well"));
        }
    }
}

/// Each snapshot base name must fit in one file name with the node name (`name` for
/// on-demand saves, `etcd-snapshot-name` for scheduled ones).
pub(super) fn check_name_lengths(p: &Parsed, errors: &mut Vec<ConfigError>) {
    let Some(node) = p.text("node-name") else {
        return;
    };
    for key in ["name", "etcd-snapshot-name"] {
        let Some(base) = p.text(key) else { continue };
        if let Err(expected) = crate::snapshot::name::check_fits(&base, &node) {
            errors.push(p.error(key, expected));
        }
    }
}

fn etcd(p: &Parsed) -> Option<EtcdSettings> {
    let endpoints = p.list("etcd-endpoints")?;
    let mut tls = [
        p.path("etcd-cafile"),
        p.path("etcd-certfile"),
        p.path("etcd-keyfile"),
    ];
    // The embedded etcd takes client certificates only: unless the operator names files, ours
    // (the ones `etcd::certs` issues) are used, by the server and the direct-mode CLI alike.
    if endpoints.is_empty() && tls.iter().all(Option::is_none) {
        let server_dir = p.path("data-dir")?.join("server");
        tls = EtcdSettings::embedded_client_files(&server_dir).map(Some);
    }
    let [ca_file, cert_file, key_file] = tls;
    Some(EtcdSettings {
        endpoints,
        ca_file,
        cert_file,
        key_file,
        binary: p.path("etcd-binary")?,
        client_address: p.socket("etcd-client-address")?,
        peer_address: p.socket("etcd-peer-address")?,
        join_endpoint: p.text("etcd-join-endpoint"),
    })
}

fn snapshot(p: &Parsed) -> Option<SnapshotSettings> {
    Some(SnapshotSettings {
        disabled: p.flag("etcd-disable-snapshots")?,
        scheduled_name: p.text("etcd-snapshot-name")?,
        on_demand_name: p.text("name")?,
        compress: p.flag("etcd-snapshot-compress")?,
        dir: p.path("etcd-snapshot-dir")?,
        dir_is_default: p.source("etcd-snapshot-dir")? == &Source::Default,
        allowed_dirs: paths(p, "etcd-snapshot-allowed-dirs"),
        allowed_ca_dirs: paths(p, "etcd-snapshot-allowed-ca-dirs"),
        retention: p.int("etcd-snapshot-retention")?,
        retention_rules: super::retention::local_rules(p),
        schedule: p.cron("etcd-snapshot-schedule-cron")?,
        reconcile_interval: p.duration("etcd-snapshot-reconcile-interval")?,
        encryption: super::encryption::settings(p),
        delta: super::delta::settings(p),
        verify: super::verify::settings(p),
    })
}

fn paths(p: &Parsed, key: &str) -> Vec<PathBuf> {
    p.list(key)
        .unwrap_or_default()
        .into_iter()
        .map(PathBuf::from)
        .collect()
}

fn api(p: &Parsed) -> Option<ApiSettings> {
    Some(ApiSettings {
        bind_address: p.ip("bind-address")?,
        supervisor_port: p.port("supervisor-port")?,
        tls_san: p.list("tls-san").unwrap_or_default(),
        server_url: p.text("etcd-server")?,
        token: p.secret("etcd-token"),
        server_ca: p.path("etcd-server-ca"),
    })
}

/// `tls-san`: every entry must be an IP address or a DNS name, as a certificate can carry them.
pub(super) fn check_tls_san(p: &Parsed, errors: &mut Vec<ConfigError>) {
    let Some(names) = p.list("tls-san") else {
        return;
    };
    if let Some(bad) = names.iter().find(|name| !is_san(name)) {
        errors.push(ConfigError {
            key: "tls-san".into(),
            value: Some(bad.clone()),
            source: p.source("tls-san").cloned().unwrap_or(Source::Default),
            expected: "host names (letters, digits, '-', '.'; '*.' allowed as the first label) or \
                       IPv4/IPv6 addresses, comma-separated"
                .into(),
        });
    }
}

/// An IP address, or a DNS name of 1..=253 characters whose labels are 1..=63 letters, digits
/// and inner hyphens (the first label may be `*`).
fn is_san(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let label_ok = |(i, label): (usize, &str)| {
        (i == 0 && label == "*")
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').enumerate().all(label_ok)
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
