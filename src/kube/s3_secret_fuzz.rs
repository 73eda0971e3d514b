//! Fuzz target `kube_secret`: the S3 config Secret as the apiserver hands it over (`data` as
//! bytes, `stringData` as text), decoded into the key/value text the config engine parses.
//!
//! Properties: any Secret decodes or fails without panicking; it fails exactly when a `data`
//! value is not UTF-8, naming the key but never quoting the value; `stringData` wins over
//! `data`; and the decoded entries go through the Secret resolution without panicking.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::secret_entries;
use crate::config::secret::{ObjectData, resolve_secret_s3};
use crate::fuzz_support::{Fuzz, hostile_text};

/// A value the messages must never contain.
const MARKER: &str = "Qz7SecretMarker";
/// Put in front of the values of the secret keys only.
const HIDDEN: &str = "Zk9HiddenValue";

fn is_secret_key(key: &str) -> bool {
    ["access-key", "secret-key", "session-token"]
        .iter()
        .any(|k| key.ends_with(k))
}

/// Marks the values of secret keys, so a message quoting one is recognised.
fn hide<V: AsRef<[u8]>>(map: Option<BTreeMap<String, V>>) -> Option<BTreeMap<String, Vec<u8>>> {
    map.map(|m| {
        m.into_iter()
            .map(|(k, v)| {
                let mut value = if is_secret_key(&k) {
                    HIDDEN.as_bytes().to_vec()
                } else {
                    vec![]
                };
                value.extend_from_slice(v.as_ref());
                (k, value)
            })
            .collect()
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "etcd-s3-bucket",
            "etcd-s3-access-key",
            "etcd-s3-secret-key",
            "etcd-s3-session-token",
            "etcd-s3-endpoint",
            "etcd-s3-folder",
            "etcd-s3-timeout",
            "etcd-s3-endpoint-ca",
        ])
        .prop_map(String::from),
        hostile_text(12),
    ]
}

/// Bytes that are text most of the time, with the marker inside.
fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => hostile_text(24).prop_map(|t| format!("{MARKER}{t}").into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(|mut b| {
            b.extend_from_slice(MARKER.as_bytes());
            b
        }),
    ]
}

fn decode(
    data: Option<BTreeMap<String, Vec<u8>>>,
    string_data: Option<BTreeMap<String, String>>,
) -> TestCaseResult {
    let data = hide(data);
    let string_data = hide(string_data).map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).expect("text stays text")))
            .collect::<BTreeMap<_, _>>()
    });
    let secret = Secret {
        data: data
            .clone()
            .map(|d| d.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        string_data: string_data.clone(),
        ..Secret::default()
    };
    let all_text = data
        .iter()
        .flatten()
        .all(|(_, v)| std::str::from_utf8(v).is_ok());
    match secret_entries(&secret, "s3-config") {
        Err(e) => {
            prop_assert!(!all_text, "refused text data: {e}");
            prop_assert!(!e.to_string().contains(MARKER), "{e}");
        }
        Ok(entries) => {
            prop_assert!(all_text);
            for (k, v) in string_data.iter().flatten() {
                prop_assert_eq!(entries.get(k), Some(v));
            }
            let base = crate::fuzz_support::s3_base();
            let object = ObjectData {
                name: "s3-config",
                entries: &entries,
            };
            // Secret keys' values are never quoted (other keys' values may be).
            let said = match resolve_secret_s3(object, None, &base) {
                Ok(found) => format!("{found:?}"),
                Err(e) => format!("{e} {e:?}"),
            };
            prop_assert!(!said.contains(HIDDEN), "{said}");
        }
    }
    Ok(())
}

#[test]
fn fuzz_kube_secret() {
    let mut fuzz = Fuzz::new("kube_secret", 1);
    let data = prop::option::of(prop::collection::btree_map(key(), value_bytes(), 0..6));
    let string_data = prop::option::of(prop::collection::btree_map(key(), hostile_text(24), 0..3));
    fuzz.check("secret_objects", 512, (data, string_data), |(d, s)| {
        decode(d, s)
    });
    fuzz.finish();
}
