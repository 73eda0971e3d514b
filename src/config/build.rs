//! Building the typed `DesiredConfig` from the values `resolve` parsed, key by key.
//!
//! Pure and infallible for a consistent key table: every key with a default has a value by the
//! time `build` runs. A new setting that `DesiredConfig` carries is read here.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use secrecy::SecretString;

use super::desired::{
    ApiSettings, BucketLookup, DesiredConfig, EtcdSettings, LogFormat, LogSettings, S3Proxy,
    S3Settings, SnapshotSettings, is_host_port,
};
use super::layer::Source;
use super::resolve::ConfigError;
use super::value::{self, Value};
use crate::scheduler::Schedule;

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
        etcd: etcd(p)?,
        snapshot: snapshot(p)?,
        api: api(p)?,
        log: LogSettings {
            format: p.log_format("log-format")?,
            debug: p.flag("debug")?,
        },
        s3: s3(p)?,
    })
}

/// The S3 block: `Some(None)` when `etcd-s3` is off. Values `check_s3` rejects never get here.
fn s3(p: &Parsed) -> Option<Option<S3Settings>> {
    if !p.flag("etcd-s3")? {
        return Some(None);
    }
    let lookup = p.text("etcd-s3-bucket-lookup-type").unwrap_or_default();
    let proxy = p.text("etcd-s3-proxy").unwrap_or_default();
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
        config_secret: p.text("etcd-s3-config-secret"),
    }))
}

/// S3 checks that go beyond one value's kind. Value formats (lookup type, proxy, endpoint,
/// timeout) are checked whenever set; what S3 needs to run only when `etcd-s3` is on.
pub(super) fn check_s3(p: &Parsed, errors: &mut Vec<ConfigError>) {
    let mut fail = |key: &str, expected: &str| {
        errors.push(ConfigError {
            key: key.into(),
            value: p.value(key).map(value::render),
            source: p.source(key).cloned().unwrap_or(Source::Default),
            expected: expected.into(),
        });
    };
    if let Some(lookup) = p.text("etcd-s3-bucket-lookup-type")
        && BucketLookup::parse(&lookup).is_none()
    {
        fail("etcd-s3-bucket-lookup-type", "one of: auto, dns, path");
    }
    if let Some(Err(expected)) = p.text("etcd-s3-proxy").map(|t| S3Proxy::parse(&t)) {
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
    if p.text("etcd-s3-bucket").is_none() && p.text("etcd-s3-config-secret").is_none() {
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

fn etcd(p: &Parsed) -> Option<EtcdSettings> {
    Some(EtcdSettings {
        endpoints: p.list("etcd-endpoints")?,
        ca_file: p.path("etcd-cafile"),
        cert_file: p.path("etcd-certfile"),
        key_file: p.path("etcd-keyfile"),
        binary: p.path("etcd-binary")?,
        client_address: p.socket("etcd-client-address")?,
        peer_address: p.socket("etcd-peer-address")?,
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
        retention: p.int("etcd-snapshot-retention")?,
        schedule: p.cron("etcd-snapshot-schedule-cron")?,
    })
}

fn api(p: &Parsed) -> Option<ApiSettings> {
    Some(ApiSettings {
        bind_address: p.ip("bind-address")?,
        supervisor_port: p.port("supervisor-port")?,
        server_url: p.text("etcd-server")?,
        token: p.secret("etcd-token"),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::ExposeSecret;

    use super::super::layer::{Layer, RawValue};
    use super::super::resolve::{ConfigErrors, HostFacts, Resolved, resolve_with};
    use super::*;

    fn flags(pairs: &[(&str, &str)]) -> Layer {
        let mut layer = Layer::new();
        for (key, value) in pairs {
            let source = Source::Flag(format!("--{key}"));
            layer.set(*key, RawValue::String((*value).into()), source);
        }
        layer
    }

    fn run(pairs: &[(&str, &str)]) -> Result<Resolved, ConfigErrors> {
        let host = HostFacts {
            hostname: Some("node-a".into()),
        };
        resolve_with(&[&flags(pairs)], &host)
    }

    fn errors(pairs: &[(&str, &str)]) -> Vec<ConfigError> {
        match run(pairs) {
            Ok(_) => panic!("{pairs:?} should be rejected"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn s3_is_none_unless_switched_on() {
        let r = run(&[("etcd-s3-bucket", "b1")]).unwrap();
        assert!(r.config.s3.is_none());
    }

    #[test]
    fn s3_defaults_match_rke2() {
        let r = run(&[("s3", "true"), ("s3-bucket", "snapshots")]).unwrap();
        let s3 = r.config.s3.expect("s3 is on");
        assert_eq!(s3.endpoint, "s3.amazonaws.com");
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.timeout, Duration::from_secs(300));
        assert_eq!(s3.bucket, "snapshots");
        assert_eq!(s3.bucket_lookup, BucketLookup::Auto);
        assert_eq!(s3.proxy, S3Proxy::FromEnv);
        assert_eq!(s3.folder, "");
        assert!(!s3.insecure && !s3.skip_ssl_verify);
        assert!(s3.access_key.is_none() && s3.config_secret.is_none());
        // Retention follows etcd-snapshot-retention's default of 5.
        assert_eq!(s3.retention, 5);
    }

    #[test]
    fn s3_settings_are_read_from_every_key() {
        let r = run(&[
            ("etcd-s3", "true"),
            ("etcd-s3-endpoint", "10.0.0.5:9000"),
            ("etcd-s3-endpoint-ca", "/etc/ca.pem"),
            ("etcd-s3-skip-ssl-verify", "true"),
            ("etcd-s3-access-key", "AKIA"),
            ("etcd-s3-secret-key", "shh"),
            ("etcd-s3-session-token", "tok"),
            ("etcd-s3-bucket", "b1"),
            ("etcd-s3-bucket-lookup-type", "DNS"),
            ("etcd-s3-region", "eu-west-3"),
            ("etcd-s3-folder", "prod/etcd"),
            ("etcd-s3-proxy", "none"),
            ("etcd-s3-insecure", "true"),
            ("etcd-s3-timeout", "1m30s"),
            ("etcd-snapshot-retention", "9"),
            ("etcd-s3-retention", "2"),
            ("etcd-s3-config-secret", "s3-secret"),
        ])
        .unwrap();
        let s3 = r.config.s3.unwrap();
        assert_eq!(s3.endpoint, "10.0.0.5:9000");
        assert_eq!(s3.endpoint_ca.as_deref(), Some("/etc/ca.pem"));
        assert!(s3.skip_ssl_verify && s3.insecure);
        assert_eq!(s3.access_key.unwrap().expose_secret(), "AKIA");
        assert_eq!(s3.secret_key.unwrap().expose_secret(), "shh");
        assert_eq!(s3.session_token.unwrap().expose_secret(), "tok");
        assert_eq!(s3.bucket_lookup, BucketLookup::Dns);
        assert_eq!(s3.region, "eu-west-3");
        assert_eq!(s3.folder, "prod/etcd");
        assert_eq!(s3.proxy, S3Proxy::Disabled);
        assert_eq!(s3.timeout, Duration::from_secs(90));
        assert_eq!(s3.retention, 2);
        assert_eq!(s3.config_secret.as_deref(), Some("s3-secret"));
    }

    #[test]
    fn s3_retention_defaults_to_the_snapshot_retention() {
        let r = run(&[
            ("s3", "1"),
            ("s3-bucket", "b1"),
            ("snapshot-retention", "12"),
        ])
        .unwrap();
        assert_eq!(r.config.s3.unwrap().retention, 12);
    }

    #[test]
    fn bucket_is_required_unless_a_config_secret_supplies_it() {
        let errs = errors(&[("s3", "true")]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "etcd-s3-bucket");
        assert!(errs[0].expected.contains("etcd-s3-config-secret"));
        let r = run(&[("s3", "true"), ("s3-config-secret", "cfg")]).unwrap();
        assert_eq!(r.config.s3.unwrap().bucket, "");
    }

    #[test]
    fn invalid_s3_values_name_key_value_source_and_expectation() {
        let cases: &[(&str, &str, &str)] = &[
            ("etcd-s3-bucket-lookup-type", "virtual", "auto, dns, path"),
            ("etcd-s3-proxy", "http://%invalid", "scheme and a host"),
            ("etcd-s3-proxy", "/proxy", "scheme and a host"),
            ("etcd-s3-proxy", "proxy:3128", "scheme and a host"),
            ("etcd-s3-endpoint", "https://minio:9000", "without a scheme"),
            ("etcd-s3-endpoint", "minio:9000/path", "without a scheme"),
            ("etcd-s3-endpoint", "", "without a scheme"),
            ("etcd-s3-timeout", "0s", "greater than zero"),
            ("etcd-s3-timeout", "five minutes", "duration"),
            ("etcd-s3-region", " ", "region name"),
        ];
        for (key, bad, expected) in cases {
            let errs = errors(&[("s3", "true"), ("s3-bucket", "b1"), (key, bad)]);
            assert_eq!(errs.len(), 1, "{key}={bad:?}: {errs:?}");
            let e = &errs[0];
            assert_eq!(e.key, *key);
            assert_eq!(e.source, Source::Flag(format!("--{key}")));
            assert!(e.expected.contains(expected), "{key}={bad:?}: {e}");
            if !bad.trim().is_empty() {
                assert!(e.to_string().contains(bad.trim()), "{e}");
            }
        }
    }

    #[test]
    fn valid_proxies_and_lookups_are_accepted() {
        for proxy in [
            "http://proxy:3128",
            "https://u:p@[::1]:8443/",
            "socks5://10.1.2.3",
        ] {
            let r = run(&[("s3", "true"), ("s3-bucket", "b1"), ("s3-proxy", proxy)]).unwrap();
            assert_eq!(r.config.s3.unwrap().proxy, S3Proxy::Url(proxy.into()));
        }
        for (text, lookup) in [("path", BucketLookup::Path), ("auto", BucketLookup::Auto)] {
            let r = run(&[
                ("s3", "true"),
                ("s3-bucket", "b1"),
                ("s3-bucket-lookup-type", text),
            ])
            .unwrap();
            assert_eq!(r.config.s3.unwrap().bucket_lookup, lookup);
        }
    }

    #[test]
    fn half_a_static_key_pair_is_rejected_without_showing_it() {
        let errs = errors(&[
            ("s3", "true"),
            ("s3-bucket", "b1"),
            ("s3-secret-key", "hunter2"),
        ]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "etcd-s3-secret-key");
        assert!(errs[0].expected.contains("etcd-s3-access-key"));
        assert!(!errs[0].to_string().contains("hunter2"), "{}", errs[0]);
    }

    #[test]
    fn s3_secrets_are_redacted_in_show_and_debug() {
        let r = run(&[
            ("s3", "true"),
            ("s3-bucket", "b1"),
            ("s3-access-key", "AKIAVISIBLE"),
            ("s3-secret-key", "hunter2"),
            ("s3-session-token", "sessiontok"),
        ])
        .unwrap();
        let debug = format!("{:?}", r.config);
        let shown = format!("{:?}", r.shown);
        for secret in ["AKIAVISIBLE", "hunter2", "sessiontok"] {
            assert!(!debug.contains(secret), "Debug shows {secret}");
            assert!(!shown.contains(secret), "config show shows {secret}");
        }
    }
}
