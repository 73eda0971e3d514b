use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;
use crate::config::desired::BucketLookup;

fn base() -> S3Settings {
    let layer = {
        let mut l = Layer::new();
        l.set("etcd-s3", RawValue::Bool(true), Source::Default);
        l.set(
            "etcd-s3-config-secret",
            RawValue::String("s3".into()),
            Source::Default,
        );
        l.set("etcd-s3-retention", RawValue::Int(9), Source::Default);
        l
    };
    let host = HostFacts {
        hostname: Some("n".into()),
    };
    resolve_with(&[&layer], &host).unwrap().config.s3.unwrap()
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(vec!["ca.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem()
}

fn run(
    secret: &BTreeMap<String, String>,
    cm: Option<&BTreeMap<String, String>>,
) -> Result<SecretS3, ConfigErrors> {
    let secret = ObjectData {
        name: "s3-config",
        entries: secret,
    };
    let cm = cm.map(|entries| ObjectData {
        name: "s3-ca",
        entries,
    });
    resolve_secret_s3(secret, cm, &base())
}

#[test]
fn every_seed_key_is_read_with_its_type() {
    let secret = data(&[
        ("etcd-s3-endpoint", "minio.example.com:9000"),
        ("etcd-s3-skip-ssl-verify", "false"),
        ("etcd-s3-access-key", "AKIA"),
        ("etcd-s3-secret-key", "shh"),
        ("etcd-s3-session-token", "tok"),
        ("etcd-s3-bucket", "snaps"),
        ("etcd-s3-bucket-lookup-type", "path"),
        ("etcd-s3-folder", "rke2"),
        ("etcd-s3-region", "eu-west-1"),
        ("etcd-s3-insecure", "true"),
        ("etcd-s3-timeout", "90s"),
        ("etcd-s3-proxy", "none"),
        ("etcd-s3-retention", "3"),
    ]);
    let s = run(&secret, None).unwrap().settings;
    assert_eq!(s.endpoint, "minio.example.com:9000");
    assert_eq!(s.bucket, "snaps");
    assert_eq!(s.folder, "rke2");
    assert_eq!(s.region, "eu-west-1");
    assert_eq!(s.bucket_lookup, BucketLookup::Path);
    assert!(s.insecure && !s.skip_ssl_verify);
    assert_eq!(s.timeout, Duration::from_secs(90));
    assert_eq!(s.retention, 3);
    assert_eq!(s.access_key.unwrap().expose_secret(), "AKIA");
    assert_eq!(s.secret_key.unwrap().expose_secret(), "shh");
    assert_eq!(s.session_token.unwrap().expose_secret(), "tok");
    assert!(
        s.config_secret.is_none(),
        "the resolved block must not point at the Secret again"
    );
}

#[test]
fn absent_keys_take_the_defaults_and_the_configured_retention() {
    let s = run(&data(&[("etcd-s3-bucket", "b")]), None)
        .unwrap()
        .settings;
    assert_eq!(s.endpoint, "s3.amazonaws.com");
    assert_eq!(s.region, "us-east-1");
    assert_eq!(s.timeout, Duration::from_secs(300));
    assert_eq!(
        s.retention, 9,
        "retention comes from the config when the Secret has none"
    );
}

#[test]
fn bad_values_are_errors_naming_the_secret_and_key() {
    let secret = data(&[
        ("etcd-s3-bucket", "b"),
        ("etcd-s3-insecure", "maybe"),
        ("etcd-s3-timeout", "soon"),
    ]);
    let errors = run(&secret, None).unwrap_err();
    let text = errors.to_string();
    for key in ["etcd-s3-insecure", "etcd-s3-timeout"] {
        assert!(
            text.contains(&format!("Secret kube-system/s3-config key {key}")),
            "{text}"
        );
    }
    assert_eq!(errors.0.len(), 2, "{text}");
}

#[test]
fn a_missing_bucket_names_the_key() {
    let errors = run(&data(&[("etcd-s3-folder", "f")]), None).unwrap_err();
    assert_eq!(errors.0[0].key, "etcd-s3-bucket");
    assert!(errors.to_string().contains("Secret kube-system/s3-config"));
}

#[test]
fn inline_and_configmap_cas_are_joined_and_checked() {
    let (a, b) = (ca_pem(), ca_pem());
    let secret = data(&[
        ("etcd-s3-bucket", "b"),
        ("etcd-s3-endpoint-ca", &a),
        ("etcd-s3-endpoint-ca-name", "s3-ca"),
    ]);
    let cm = data(&[("ca.crt", &b)]);
    let got = run(&secret, Some(&cm)).unwrap();
    let ca = got.settings.endpoint_ca.unwrap();
    assert!(ca.contains(a.trim()) && ca.contains(b.trim()));
    let shown: Vec<_> = got.shown.iter().map(|v| v.key.as_str()).collect();
    assert!(shown.contains(&"etcd-s3-endpoint-ca") && shown.contains(&"etcd-s3-bucket"));

    let bad = data(&[("ca.crt", "-----BEGIN CERTIFICATE-----\nnope\n")]);
    let errors = run(&secret, Some(&bad)).unwrap_err().to_string();
    assert!(errors.contains("ConfigMap kube-system/s3-ca"), "{errors}");
    assert!(errors.contains("ConfigMap key ca.crt"), "{errors}");
}

#[test]
fn a_path_is_not_accepted_as_a_secret_ca() {
    let secret = data(&[
        ("etcd-s3-bucket", "b"),
        ("etcd-s3-endpoint-ca", "/etc/passwd"),
    ]);
    let errors = run(&secret, None).unwrap_err().to_string();
    assert!(errors.contains("not a file path"), "{errors}");
}

#[test]
fn unknown_keys_warn_and_secret_values_stay_redacted() {
    let secret = data(&[
        ("etcd-s3-bucket", "b"),
        ("etcd-s3-access-key", "AKIAVISIBLE"),
        ("etcd-s3-secret-key", "hunter2"),
        ("data-dir", "/tmp/elsewhere"),
    ]);
    let got = run(&secret, None).unwrap();
    assert!(
        got.warnings[0].contains("\"data-dir\""),
        "{:?}",
        got.warnings
    );
    let shown = format!("{:?} {:?}", got.shown, got.settings);
    for secret in ["AKIAVISIBLE", "hunter2"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn config_show_takes_the_secret_values_with_their_source() {
    let got = run(&data(&[("etcd-s3-bucket", "from-secret")]), None).unwrap();
    let mut shown = vec![ShownValue {
        key: "etcd-s3-bucket".into(),
        value: String::new(),
        source: Source::Default,
    }];
    overlay_shown(&mut shown, &got.shown);
    assert_eq!(shown[0].value, "from-secret");
    assert_eq!(
        shown[0].source.to_string(),
        "Secret kube-system/s3-config key etcd-s3-bucket"
    );
}

#[test]
fn the_seeds_example_secret_is_accepted_as_written() {
    // manifests/s3-config-secret.yaml, the seed's example: every key present, most empty.
    let secret = data(&[
        ("etcd-s3-endpoint", ""),
        ("etcd-s3-endpoint-ca", ""),
        ("etcd-s3-endpoint-ca-name", ""),
        ("etcd-s3-skip-ssl-verify", "false"),
        ("etcd-s3-access-key", "AWS_ACCESS_KEY_ID"),
        ("etcd-s3-secret-key", "AWS_SECRET_ACCESS_KEY"),
        ("etcd-s3-bucket", "bucket"),
        ("etcd-s3-folder", "folder"),
        ("etcd-s3-region", "us-east-1"),
        ("etcd-s3-insecure", "false"),
        ("etcd-s3-timeout", "5m"),
        ("etcd-s3-proxy", ""),
    ]);
    let s = run(&secret, None).unwrap().settings;
    assert_eq!(s.endpoint, "s3.amazonaws.com");
    assert_eq!((s.bucket.as_str(), s.folder.as_str()), ("bucket", "folder"));
    assert!(s.endpoint_ca.is_none());
    assert_eq!(s.timeout, Duration::from_secs(300));
}
