//! Unit tests of the S3 block of `build`: defaults, every key, cross-key checks, redaction.

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
    assert_eq!(
        s3.config_secret, None,
        "other S3 settings override the Secret"
    );
}

#[test]
fn the_secret_is_used_only_beside_etcd_s3_and_retention() {
    let r = run(&[
        ("s3", "true"),
        ("s3-config-secret", "cfg"),
        ("etcd-s3-retention", "4"),
    ])
    .unwrap();
    assert_eq!(r.config.s3.unwrap().config_secret.as_deref(), Some("cfg"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);

    let r = run(&[
        ("s3", "true"),
        ("s3-config-secret", "cfg"),
        ("s3-bucket", "b1"),
        ("s3-region", "eu-west-1"),
    ])
    .unwrap();
    assert_eq!(r.config.s3.unwrap().config_secret, None);
    let warning = r.warnings.join("\n");
    assert!(warning.contains("\"cfg\" is ignored"), "{warning}");
    assert!(
        warning.contains("etcd-s3-bucket (from flag --s3-bucket)"),
        "{warning}"
    );
    assert!(
        warning.contains("etcd-s3-region (from flag --s3-region)"),
        "{warning}"
    );
}

#[test]
fn restated_defaults_do_not_make_the_secret_ignored() {
    // What RKE2's CLI sends with every request: the defaults, spelled its way.
    let r = run(&[
        ("s3", "true"),
        ("s3-config-secret", "cfg"),
        ("etcd-s3-endpoint", "s3.amazonaws.com"),
        ("etcd-s3-region", "us-east-1"),
        ("etcd-s3-timeout", "5m0s"),
        ("etcd-s3-insecure", "false"),
        ("etcd-s3-skip-ssl-verify", "false"),
    ])
    .unwrap();
    assert_eq!(r.config.s3.unwrap().config_secret.as_deref(), Some("cfg"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn an_ignored_secret_does_not_excuse_a_missing_bucket() {
    let errs = errors(&[
        ("s3", "true"),
        ("s3-config-secret", "cfg"),
        ("s3-folder", "f"),
    ]);
    assert_eq!(errs[0].key, "etcd-s3-bucket");
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

#[test]
fn s3_on_resolves_without_warnings_and_off_drops_the_block() {
    let off = run(&[("etcd-s3-bucket", "b1")]).unwrap();
    assert!(off.config.s3.is_none());
    let on = run(&[("etcd-s3", "true"), ("etcd-s3-bucket", "b1")]).unwrap();
    assert!(on.warnings.is_empty(), "{:?}", on.warnings);
    assert_eq!(on.config.s3.unwrap().bucket, "b1");
}

#[test]
fn proxy_credentials_reach_the_settings_but_never_show() {
    let proxy = "http://alice:s3cr3t-pw@proxy.corp:3128";
    let r = run(&[("s3", "true"), ("s3-bucket", "b1"), ("s3-proxy", proxy)]).unwrap();
    let shown = format!("{:?}", r.shown);
    let settings = r.config.s3.clone().unwrap();
    // The real value goes on to the HTTP client.
    assert_eq!(settings.proxy, S3Proxy::Url(proxy.into()));
    let debug = format!("{:?} {settings:?}", r.config);
    for hidden in ["alice", "s3cr3t-pw"] {
        assert!(!debug.contains(hidden), "Debug shows {hidden}: {debug}");
        assert!(
            !shown.contains(hidden),
            "config show shows {hidden}: {shown}"
        );
    }
    assert!(
        debug.contains("http://<redacted>@proxy.corp:3128"),
        "{debug}"
    );
    assert!(
        shown.contains("http://<redacted>@proxy.corp:3128"),
        "{shown}"
    );
}

#[test]
fn errors_quoting_a_proxy_leave_its_credentials_out() {
    // Malformed, with the credentials in places a URL parser would not expect them.
    for bad in [
        "http://alice:pa/ss@proxy corp:3128",
        "alice:s3cr3t@proxy:3128",
        "http://alice:s3cr3t@",
    ] {
        let errs = errors(&[("s3", "true"), ("s3-bucket", "b1"), ("s3-proxy", bad)]);
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        let text = errs[0].to_string();
        assert!(text.contains("<redacted>@"), "{text}");
        for hidden in ["alice", "s3cr3t", "pa/ss"] {
            assert!(!text.contains(hidden), "{text}");
        }
    }
    // A list where one value belongs fails in parsing, before the S3 checks.
    let mut layer = Layer::new();
    layer.set(
        "etcd-s3-proxy",
        RawValue::List(vec!["http://alice:s3cr3t@proxy:3128".into()]),
        Source::Flag("--etcd-s3-proxy".into()),
    );
    let host = HostFacts {
        hostname: Some("node-a".into()),
    };
    let errs = resolve_with(&[&layer], &host)
        .expect_err("a list is rejected")
        .0;
    let text = errs[0].to_string();
    assert!(text.contains("http://<redacted>@proxy:3128"), "{text}");
    assert!(
        !text.contains("s3cr3t") && !text.contains("alice"),
        "{text}"
    );
}

#[test]
fn tls_san_takes_names_and_addresses_and_names_a_bad_entry() {
    let r = run(&[(
        "tls-san",
        "snap.example.com, 10.0.0.5,fd00::5,*.nodes.example",
    )])
    .unwrap();
    assert_eq!(
        r.config.api.tls_san,
        ["snap.example.com", "10.0.0.5", "fd00::5", "*.nodes.example"]
    );
    assert!(run(&[]).unwrap().config.api.tls_san.is_empty());
    for bad in [
        "https://snap.example.com",
        "a b",
        "-x.example",
        "a..b",
        "x.*.y",
    ] {
        let errs = errors(&[("tls-san", &format!("ok.example,{bad}"))]);
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        let text = errs[0].to_string();
        assert!(text.contains("tls-san") && text.contains(bad), "{text}");
        assert!(
            text.contains("--tls-san") && text.contains("IPv4/IPv6"),
            "{text}"
        );
    }
}

#[test]
fn the_embedded_etcd_gets_our_client_certificate_unless_files_are_named() {
    let r = run(&[("data-dir", "/d")]).unwrap();
    let etcd = r.config.etcd;
    assert_eq!(etcd.client_endpoints(), ["https://127.0.0.1:2379"]);
    assert_eq!(
        etcd.ca_file.as_deref(),
        Some(std::path::Path::new("/d/server/tls/etcd/server-ca.crt"))
    );
    assert_eq!(
        etcd.cert_file.as_deref(),
        Some(std::path::Path::new("/d/server/tls/etcd/client.crt"))
    );
    assert_eq!(
        etcd.key_file.as_deref(),
        Some(std::path::Path::new("/d/server/tls/etcd/client.key"))
    );
    let named = run(&[("data-dir", "/d"), ("etcd-cafile", "/x/ca.crt")]).unwrap();
    assert_eq!(
        named.config.etcd.ca_file.as_deref(),
        Some(std::path::Path::new("/x/ca.crt"))
    );
    assert!(named.config.etcd.cert_file.is_none());
    let external = run(&[("etcd-endpoints", "https://10.0.0.1:2379")]).unwrap();
    assert!(external.config.etcd.ca_file.is_none());
}
