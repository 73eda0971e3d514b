//! Fuzz target `config_values`: every value a config file, drop-in, environment variable, flag,
//! request or S3 Secret can carry, parsed for each key kind of the key table, and whole YAML
//! files (structured from the real key names, mutated from the shipped example, or random).
//!
//! Properties: no parse panics, whatever the text; a parsed value renders to text that parses
//! back to the same rendering (what `config show` prints is valid config); YAML alias bombs and
//! deep nesting are refused within bounded memory; the value of a secret key never appears in
//! a warning, an error or `Debug` output, whether the file is well-formed or not.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use secrecy::SecretString;

use super::file::parse;
use super::keys::{self, Kind};
use super::layer::{RawValue, Source};
use super::resolve::{HostFacts, resolve_with};
use super::value::{self, Value};
use crate::fuzz_support::{Fuzz, hostile_text, mutated_text};

/// A secret value no parser would produce by accident.
const MARKER: &str = "Qz7SecretMarker";

const KINDS: &[Kind] = &[
    Kind::Bool,
    Kind::Int,
    Kind::Port,
    Kind::String,
    Kind::Name,
    Kind::Path,
    Kind::PathList,
    Kind::StringList,
    Kind::Cron,
    Kind::Url,
    Kind::ProxyUrl,
    Kind::IpAddr,
    Kind::SocketAddr,
    Kind::LogFormat,
    Kind::Secret,
    // Kind::Duration has its own target, `fuzz_config_durations`.
];

/// Text near each kind's valid forms, plus anything at all.
fn value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => hostile_text(40),
        1 => "[0-9]{1,25}",
        1 => "-?[0-9.]{1,25}(ns|us|µs|ms|s|m|h|d|)([0-9.]{1,6}(ns|us|ms|s|m|h))?",
        1 => "(@(hourly|daily|weekly|every [0-9]{1,4}[smh])|[0-9*/,-]{1,6}( [0-9*/,-]{1,6}){4})",
        1 => "(https?://)?[a-z0-9.:@\\[\\]]{0,24}(/[a-z]{0,4})?",
        1 => "[0-9a-f:.\\[\\]]{1,40}",
        1 => prop::sample::select(vec!["true", "False", "t", "1", "0", "json", "TEXT", "none"])
            .prop_map(String::from),
    ]
}

fn raw_value() -> impl Strategy<Value = RawValue> {
    prop_oneof![
        4 => value_text().prop_map(RawValue::String),
        1 => any::<bool>().prop_map(RawValue::Bool),
        1 => any::<i64>().prop_map(RawValue::Int),
        1 => prop::collection::vec(value_text(), 0..4).prop_map(RawValue::List),
        1 => value_text().prop_map(|s| RawValue::Secret(SecretString::from(s))),
    ]
}

/// A parsed value's rendering is itself valid input that renders the same.
fn value_round_trip(kind: Kind, raw: RawValue) -> TestCaseResult {
    let Ok(parsed) = value::parse(kind, &raw) else {
        return Ok(());
    };
    if matches!(parsed, Value::Secret(_) | Value::Proxy(_)) {
        prop_assert!(!value::render(&parsed).contains(MARKER));
        return Ok(());
    }
    let shown = value::render(&parsed);
    let again = value::parse(kind, &RawValue::String(shown.clone()));
    prop_assert!(
        again.is_ok(),
        "{:?} renders as {:?}: {:?}",
        kind,
        shown,
        again
    );
    prop_assert_eq!(value::render(&again.unwrap()), shown);
    Ok(())
}

/// One YAML value in a shape the file parser must handle.
fn yaml_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        value_text().prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[a-z0-9./:-]{0,20}",
        any::<i64>().prop_map(|i| i.to_string()),
        Just("1e400".to_string()),
        Just("~".to_string()),
        Just("yes".to_string()),
        Just("0x1F".to_string()),
        Just("!!binary aGk=".to_string()),
        Just("&a x".to_string()),
        Just("*a".to_string()),
    ];
    prop_oneof![
        4 => scalar.clone(),
        1 => prop::collection::vec(scalar.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => scalar.prop_map(|s| format!("{{nested: {s}}}")),
    ]
}

/// A YAML file of real key names (secret keys get the marker) with hostile values.
fn structured_yaml() -> impl Strategy<Value = String> {
    let names: Vec<String> = keys::file_names().collect();
    let entry = prop_oneof![
        6 => (prop::sample::select(names), yaml_value()),
        1 => ("[a-z-]{1,20}", yaml_value()),
    ];
    prop::collection::vec(entry, 0..12).prop_map(|entries| {
        let mut text = String::new();
        for (name, value) in entries {
            let secret = keys::lookup(&name).is_some_and(|spec| spec.is_secret());
            let value = if secret {
                format!("{MARKER}-{name}")
            } else {
                value
            };
            text.push_str(&format!("{name}: {value}\n"));
        }
        text
    })
}

/// A YAML alias bomb ("billion laughs"): `levels` levels of `fan` references each.
fn alias_bomb(levels: usize, fan: usize) -> String {
    let mut text = "a0: &a0 [\"lol\"]\n".to_string();
    for level in 1..=levels {
        let refs = vec![format!("*a{}", level - 1); fan].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    text
}

fn yaml_text() -> impl Strategy<Value = String> {
    let example = include_str!("../../examples/config.yaml");
    prop_oneof![
        3 => structured_yaml(),
        2 => mutated_text(example),
        1 => hostile_text(200),
        1 => (1usize..3000).prop_map(|d| format!("etcd-s3-bucket: {}{}", "[".repeat(d), "]".repeat(d))),
    ]
}

/// Parses a file and resolves it as the only layer: no panic, no secret in any message.
fn file_any(text: String) -> TestCaseResult {
    let source = Source::File("/etc/etcd-snapshot/config.yaml".into());
    let loaded = parse(&text, &source);
    let mut said: Vec<String> = loaded.warnings.clone();
    said.extend(loaded.errors.iter().map(|e| e.to_string()));
    said.push(format!("{loaded:?}"));
    let host = HostFacts {
        hostname: Some("fuzz".into()),
    };
    match resolve_with(&[&loaded.layer], &host) {
        Ok(resolved) => {
            said.push(format!("{resolved:?}"));
            said.extend(resolved.shown.iter().map(|v| v.value.clone()));
        }
        Err(errors) => said.push(errors.to_string()),
    }
    for text in said {
        prop_assert!(!text.contains(MARKER), "a secret value leaked: {text}");
    }
    Ok(())
}

fn secret_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    let names: Vec<String> = keys::all()
        .iter()
        .filter(|k| k.name.starts_with("etcd-s3"))
        .map(|k| k.name.to_string())
        .chain(["etcd-s3-endpoint-ca-name".to_string(), "bogus".to_string()])
        .collect();
    prop::collection::btree_map(prop::sample::select(names), value_text(), 0..10).prop_map(
        |mut map| {
            for (key, value) in map.iter_mut() {
                if keys::lookup(key).is_some_and(|spec| spec.is_secret()) {
                    *value = format!("{MARKER}{value}");
                }
            }
            map
        },
    )
}

/// PEM-ish text for the Secret's inline CA and the CA ConfigMap's values.
fn pem_text() -> impl Strategy<Value = String> {
    let cert = rcgen::generate_simple_self_signed(vec!["fuzz.example".into()])
        .expect("certificate")
        .cert
        .pem();
    prop_oneof![
        2 => Just(cert.clone()),
        3 => mutated_text(&cert),
        1 => hostile_text(80).prop_map(|t| format!("-----BEGIN CERTIFICATE-----\n{t}")),
        1 => hostile_text(40),
    ]
}

fn secret_any(
    mut map: BTreeMap<String, String>,
    inline_ca: Option<String>,
    configmap: Option<BTreeMap<String, String>>,
) -> TestCaseResult {
    use super::secret::{ObjectData, resolve_secret_s3};
    if let Some(ca) = inline_ca {
        map.insert("etcd-s3-endpoint-ca".into(), ca);
    }
    let base = crate::fuzz_support::s3_base();
    let secret = ObjectData {
        name: "s3-config",
        entries: &map,
    };
    let cm = configmap.as_ref().map(|entries| ObjectData {
        name: "s3-ca",
        entries,
    });
    let said = match resolve_secret_s3(secret, cm, &base) {
        Ok(found) => format!("{found:?} {:?} {:?}", found.warnings, found.shown),
        Err(errors) => format!("{errors} {errors:?}"),
    };
    prop_assert!(!said.contains(MARKER), "a secret value leaked: {said}");
    Ok(())
}

#[test]
fn fuzz_config_values() {
    let mut fuzz = Fuzz::new("config_values", 4);
    let kind = prop::sample::select(KINDS.to_vec());
    fuzz.check("value_round_trip", 1024, (kind, raw_value()), |(k, raw)| {
        value_round_trip(k, raw)
    });
    fuzz.check("yaml_files", 256, yaml_text(), file_any);
    // Expensive cases (up to the parser's node budget each), so few of them in CI.
    let bomb = (1usize..12, 2usize..12).prop_map(|(l, f)| alias_bomb(l, f));
    fuzz.check("yaml_alias_bombs", 3, bomb, file_any);
    let configmap = prop::option::of(prop::collection::btree_map("[a-z.]{1,8}", pem_text(), 0..3));
    fuzz.check(
        "s3_secret_data",
        192,
        (secret_map(), prop::option::of(pem_text()), configmap),
        |(map, ca, cm)| secret_any(map, ca, cm),
    );
    fuzz.finish();
}

/// Go durations from config values: huge values are refused, never a panic (an `f64` sum once
/// panicked on `600000000000000000000h`), and every accepted value renders to text that reads
/// back as the same duration (past 2^53 ns an `f64` sum rounded `600020101000200130000ms`).
#[test]
fn fuzz_config_durations() {
    let mut fuzz = Fuzz::new("config_durations", 1);
    let duration = "[0-9]{1,25}(\\.[0-9]{0,5})?(ns|us|ms|s|m|h)([0-9]{1,25}(ns|us|ms|s|m|h)){0,3}";
    fuzz.check("duration_values", 256, duration, |text| {
        value_round_trip(Kind::Duration, RawValue::String(text))
    });
    fuzz.finish();
}

/// `cluster-reset-restore-to` values: `latest`, revisions and RFC 3339 times, mutated and
/// random. No panic; a revision reads back as itself; a time reads back to the millisecond.
#[test]
fn fuzz_config_restore_to() {
    use super::restore_to::{RestoreTo, parse_restore_to};
    let mut fuzz = Fuzz::new("config_restore_to", 3);
    let text = prop_oneof![
        "(latest|LATEST|[0-9]{1,21}|-[0-9]{1,3})",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
        hostile_text(64),
    ];
    fuzz.check("restore_to_text", 512, text, |text| {
        let _ = parse_restore_to(&text);
        Ok(())
    });
    fuzz.check("restore_to_revision", 256, 1i64..=i64::MAX, |r| {
        prop_assert_eq!(
            parse_restore_to(&r.to_string()),
            Some(RestoreTo::Revision(r))
        );
        Ok(())
    });
    let ms = -62_135_596_800_000i64..253_402_300_799_999;
    fuzz.check("restore_to_time", 256, ms, |ms| {
        let text = crate::delta::target::rfc3339_ms(ms);
        let parsed = parse_restore_to(&text);
        prop_assert!(
            matches!(parsed, Some(RestoreTo::Time { unix_ms, .. }) if unix_ms == ms),
            "{text}"
        );
        Ok(())
    });
    fuzz.finish();
}
