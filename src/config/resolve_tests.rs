//! Unit tests of `resolve`: the precedence table, defaults, error collection and redaction.

use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::*;
use crate::config::LogFormat;

fn host() -> HostFacts {
    HostFacts {
        hostname: Some("node-a".into()),
    }
}

fn s(text: &str) -> RawValue {
    RawValue::String(text.into())
}

fn run(layers: &[&Layer]) -> Result<Resolved, ConfigErrors> {
    resolve_with(layers, &host())
}

fn shown<'a>(r: &'a Resolved, key: &str) -> &'a ShownValue {
    r.shown
        .iter()
        .find(|v| v.key == key)
        .expect("every key is shown")
}

/// The sources of the five explicit layers, lowest precedence first.
fn layer_sources() -> [Source; 5] {
    [
        Source::File("/etc/etcd-snapshot/config.yaml".into()),
        Source::DropIn("/etc/etcd-snapshot/config.yaml.d/10-x.yaml".into()),
        Source::Env("ETCD_SNAPSHOT_X".into()),
        Source::Flag("--x".into()),
        Source::Request,
    ]
}

#[test]
fn precedence_table_each_layer_overrides_the_one_below() {
    // (key, value set by file, drop-in, env, flag, request; as rendered by `config show`)
    let table: &[(&str, [RawValue; 5], [&str; 5])] = &[
        (
            "etcd-snapshot-retention",
            [RawValue::Int(1), s("2"), s("3"), s("4"), RawValue::Int(5)],
            ["1", "2", "3", "4", "5"],
        ),
        (
            "etcd-snapshot-compress",
            [
                RawValue::Bool(true),
                s("f"),
                s("TRUE"),
                s("false"),
                RawValue::Bool(true),
            ],
            ["true", "false", "true", "false", "true"],
        ),
        (
            "etcd-snapshot-dir",
            [s("/a"), s("/b"), s("/c"), s("/d"), s("/e")],
            ["/a", "/b", "/c", "/d", "/e"],
        ),
        (
            "etcd-snapshot-schedule-cron",
            [
                s("0 1 * * *"),
                s("0 2 * * *"),
                s("@hourly"),
                s("*/5 * * * *"),
                s("@daily"),
            ],
            ["0 1 * * *", "0 2 * * *", "@hourly", "*/5 * * * *", "@daily"],
        ),
        (
            "etcd-endpoints",
            [
                RawValue::List(vec!["https://a:2379".into()]),
                s("https://b:2379"),
                s("https://c:2379,https://d:2379"),
                RawValue::List(vec!["https://e:2379".into()]),
                s(""),
            ],
            [
                "https://a:2379",
                "https://b:2379",
                "https://c:2379,https://d:2379",
                "https://e:2379",
                "",
            ],
        ),
        (
            "token",
            [s("one"), s("two"), s("three"), s("four"), s("five")],
            ["<redacted>"; 5],
        ),
    ];
    let sources = layer_sources();
    for (key, values, rendered) in table {
        let defaults = run(&[]).expect("defaults resolve");
        let default = shown(&defaults, key).clone();
        assert_eq!(default.source, Source::Default, "{key}");
        for top in 0..5 {
            let layers: Vec<Layer> = (0..=top)
                .map(|i| {
                    let mut layer = Layer::new();
                    layer.set(*key, values[i].clone(), sources[i].clone());
                    layer
                })
                .collect();
            let refs: Vec<&Layer> = layers.iter().collect();
            let r = run(&refs).unwrap_or_else(|e| panic!("{key} up to layer {top}: {e}"));
            let got = shown(&r, key);
            assert_eq!(got.value, rendered[top], "{key} up to layer {top}");
            assert_eq!(got.source, sources[top], "{key} up to layer {top}");
        }
    }
}

#[test]
fn defaults_build_the_documented_config() {
    let r = run(&[]).expect("defaults resolve");
    let c = &r.config;
    assert_eq!(
        c.config_file,
        PathBuf::from("/etc/etcd-snapshot/config.yaml")
    );
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/etcd-snapshot"));
    assert_eq!(c.node_name, "node-a");
    assert_eq!(
        c.snapshot.dir,
        PathBuf::from("/var/lib/etcd-snapshot/server/db/snapshots")
    );
    assert!(c.snapshot.dir_is_default);
    assert_eq!(c.snapshot.retention, 5);
    assert_eq!(c.snapshot.schedule.spec(), "0 */12 * * *");
    assert_eq!(c.snapshot.scheduled_name, "etcd-snapshot");
    assert_eq!(c.snapshot.on_demand_name, "on-demand");
    assert!(!c.snapshot.compress && !c.snapshot.disabled);
    assert!(c.etcd.is_embedded());
    assert_eq!(c.etcd.client_address.to_string(), "127.0.0.1:2379");
    assert_eq!(c.api.supervisor_port, 9345);
    assert_eq!(c.api.server_url, "https://127.0.0.1:9345");
    assert!(c.token.is_none() && c.api.token.is_none());
    assert_eq!(c.log.format, LogFormat::Text);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.shown.len(), keys::all().len());
}

#[test]
fn snapshot_dir_default_follows_data_dir() {
    let mut flags = Layer::new();
    flags.set("data-dir", s("/srv/x"), Source::Flag("-d".into()));
    let r = run(&[&flags]).expect("resolves");
    assert_eq!(
        r.config.snapshot.dir,
        PathBuf::from("/srv/x/server/db/snapshots")
    );
    assert!(r.config.snapshot.dir_is_default);
    let mut file = Layer::new();
    file.set(
        "etcd-snapshot-dir",
        s("/backups"),
        layer_sources()[0].clone(),
    );
    let r = run(&[&file, &flags]).expect("resolves");
    assert_eq!(r.config.snapshot.dir, PathBuf::from("/backups"));
    assert!(!r.config.snapshot.dir_is_default);
}

#[test]
fn every_error_is_reported_at_once() {
    let file = layer_sources()[0].clone();
    let mut layer = Layer::new();
    layer.set("etcd-snapshot-retention", RawValue::Int(-1), file.clone());
    layer.set("etcd-snapshot-schedule-cron", s("0 */12 * *"), file.clone());
    layer.set("supervisor-port", s("http"), file.clone());
    layer.set("etcd-snapshot-name", s("a/b"), file.clone());
    layer.set("etcd-certfile", s("/c.pem"), file.clone());
    let errors = run(&[&layer]).expect_err("invalid").0;
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    for key in [
        "etcd-snapshot-retention",
        "etcd-snapshot-schedule-cron",
        "supervisor-port",
        "etcd-snapshot-name",
        "etcd-certfile",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(errors.iter().all(|e| e.source == file));
    let cron = errors
        .iter()
        .find(|e| e.key == "etcd-snapshot-schedule-cron")
        .expect("cron");
    assert_eq!(cron.value.as_deref(), Some("0 */12 * *"));
    assert!(cron.expected.contains("5 fields"), "{}", cron.expected);
    let text = ConfigErrors(errors.clone()).to_string();
    assert!(text.starts_with("5 configuration problem(s)"), "{text}");
    assert!(
        text.contains("config file /etc/etcd-snapshot/config.yaml"),
        "{text}"
    );
}

#[test]
fn retention_must_be_a_non_negative_number() {
    for bad in [
        RawValue::Int(-3),
        s("-3"),
        s("five"),
        s("1.5"),
        RawValue::Bool(true),
    ] {
        let mut flags = Layer::new();
        flags.set(
            "etcd-snapshot-retention",
            bad.clone(),
            Source::Flag("--snapshot-retention".into()),
        );
        let errors = run(&[&flags]).expect_err("invalid retention").0;
        assert_eq!(errors.len(), 1, "{bad:?}");
        assert_eq!(errors[0].key, "etcd-snapshot-retention");
        assert_eq!(
            errors[0].source,
            Source::Flag("--snapshot-retention".into())
        );
        assert!(errors[0].expected.contains("non-negative integer"));
    }
    let mut flags = Layer::new();
    flags.set(
        "etcd-snapshot-retention",
        s("0"),
        Source::Flag("--snapshot-retention".into()),
    );
    assert_eq!(
        run(&[&flags])
            .expect("zero is valid")
            .config
            .snapshot
            .retention,
        0
    );
}

#[test]
fn false_from_a_higher_layer_beats_true_below() {
    let mut file = Layer::new();
    file.set(
        "etcd-snapshot-compress",
        RawValue::Bool(true),
        layer_sources()[0].clone(),
    );
    file.set("debug", RawValue::Bool(true), layer_sources()[0].clone());
    let mut flags = Layer::new();
    flags.set(
        "etcd-snapshot-compress",
        s("false"),
        Source::Flag("--snapshot-compress".into()),
    );
    flags.set("debug", s("false"), Source::Flag("--debug".into()));
    let r = run(&[&file, &flags]).expect("resolves");
    assert!(!r.config.snapshot.compress);
    assert!(!r.config.log.debug);
    assert_eq!(
        shown(&r, "etcd-snapshot-compress").source,
        Source::Flag("--snapshot-compress".into())
    );
}

#[test]
fn secrets_are_redacted_in_errors_and_show_but_reach_the_config() {
    let mut env = Layer::new();
    env.set(
        "token",
        RawValue::Secret("s3cr3t-token".into()),
        Source::Env("ETCD_SNAPSHOT_TOKEN".into()),
    );
    env.set(
        "etcd-token",
        s("client-s3cr3t"),
        Source::Env("ETCD_SNAPSHOT_ETCD_TOKEN".into()),
    );
    let r = run(&[&env]).expect("resolves");
    assert_eq!(
        r.config.token.as_ref().map(|t| t.expose_secret()),
        Some("s3cr3t-token")
    );
    assert_eq!(
        r.config.api.token.as_ref().map(|t| t.expose_secret()),
        Some("client-s3cr3t")
    );
    assert_eq!(shown(&r, "token").value, "<redacted>");
    assert_eq!(shown(&r, "etcd-token").value, "<redacted>");
    let everything = format!("{:?} {:?}", r.config, r.shown);
    assert!(!everything.contains("s3cr3t"), "{everything}");

    env.set(
        "token",
        RawValue::List(vec!["s3cr3t-a".into(), "s3cr3t-b".into()]),
        Source::Request,
    );
    let errors = run(&[&env]).expect_err("a list is not a token");
    let text = format!("{errors} {errors:?}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

#[test]
fn blank_optional_values_clear_lower_layers() {
    let mut file = Layer::new();
    file.set("etcd-cafile", s("/ca.pem"), layer_sources()[0].clone());
    let mut flags = Layer::new();
    flags.set("etcd-cafile", s(""), Source::Flag("--etcd-cafile".into()));
    // An external etcd: the embedded one would get our own CA as the default.
    flags.set(
        "etcd-endpoints",
        s("https://e:2379"),
        Source::Flag("--etcd-endpoints".into()),
    );
    let r = run(&[&file, &flags]).expect("resolves");
    assert_eq!(r.config.etcd.ca_file, None);
    assert_eq!(shown(&r, "etcd-cafile").value, "");
    // A blank value for a key that has a default is an error, not a silent default.
    let mut bad = Layer::new();
    bad.set("data-dir", s(""), Source::Flag("--data-dir".into()));
    assert!(run(&[&bad]).is_err());
}

#[test]
fn cross_key_checks() {
    let mut flags = Layer::new();
    flags.set(
        "etcd-endpoints",
        s("https://10.0.0.1:2379"),
        Source::Flag("--etcd-endpoints".into()),
    );
    flags.set(
        "etcd-keyfile",
        s("/k.pem"),
        Source::Flag("--etcd-keyfile".into()),
    );
    let errors = run(&[&flags]).expect_err("key without cert").0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "etcd-keyfile");
    assert!(errors[0].expected.contains("etcd-certfile"));
    flags.set(
        "etcd-certfile",
        s("/c.pem"),
        Source::Flag("--etcd-certfile".into()),
    );
    let r = run(&[&flags]).expect("both set");
    assert_eq!(r.config.etcd.cert_file, Some(PathBuf::from("/c.pem")));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);

    let mut same = Layer::new();
    same.set(
        "etcd-peer-address",
        s("127.0.0.1:2379"),
        Source::Flag("--etcd-peer-address".into()),
    );
    let errors = run(&[&same]).expect_err("same listener").0;
    assert_eq!(errors[0].key, "etcd-peer-address");
}

#[test]
fn missing_host_name_asks_for_node_name() {
    let errors = resolve_with(&[], &HostFacts::default())
        .expect_err("no host name")
        .0;
    assert_eq!(errors[0].key, "node-name");
    let mut flags = Layer::new();
    flags.set("node-name", s("n1"), Source::Flag("--node-name".into()));
    let r = resolve_with(&[&flags], &HostFacts::default()).expect("explicit node name");
    assert_eq!(r.config.node_name, "n1");
}

#[test]
fn alias_keys_in_a_layer_count_for_their_key() {
    let mut request = Layer::new();
    request.set("snapshot-retention", s("2"), Source::Request);
    request.set("dir", s("/d"), Source::Request);
    let r = run(&[&request]).expect("resolves");
    assert_eq!(r.config.snapshot.retention, 2);
    assert_eq!(r.config.snapshot.dir, PathBuf::from("/d"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn unknown_keys_in_a_layer_are_warnings() {
    let mut request = Layer::new();
    request.set("bogus", s("1"), Source::Request);
    let r = run(&[&request]).expect("resolves");
    assert_eq!(
        r.warnings,
        vec!["unknown key \"bogus\" from API request, ignored".to_string()]
    );
}
