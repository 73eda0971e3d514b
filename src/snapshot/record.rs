//! One row of a snapshot listing, wherever the snapshot lives.
//!
//! Stores produce `SnapshotRecord`s; the CLI table, `-o json|yaml` and the Kubernetes resources
//! consume them. Pure data and formatting only; its `ETCDSnapshotFile` wire form is made at the
//! edge (`api::wire`, `to_snapshot_file`).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses the metadata file format: one JSON object whose values are all strings (what a save
/// writes from the ConfigMap's `.data`). The one parser for both the local file and the S3
/// object, so both copies of a snapshot read alike.
pub fn parse_metadata(bytes: &[u8]) -> Result<BTreeMap<String, String>, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// The prefix of the metadata entries this tool records itself (the keyspace hash, the drill
/// verdict); reserved, so a ConfigMap entry with it is not shown as the user's.
pub const OWN_PREFIX: &str = "etcd-snapshot-";

/// True for an entry this tool recorded (any key case: S3 lower-cases user metadata).
pub fn is_own_entry(key: &str) -> bool {
    key.as_bytes()
        .get(..OWN_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(OWN_PREFIX.as_bytes()))
}

/// Where a copy of a snapshot lives (`local` / `s3` in JSON and YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    Local,
    S3,
}

/// A snapshot copy as listed from a store.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRecord {
    /// The file (or object base) name, including `.zip` when compressed.
    pub file_name: String,
    /// `file:///abs/path` or `s3://bucket/key`.
    pub location: String,
    /// The node holding the copy (local) or that uploaded it (S3).
    pub node_name: String,
    pub storage: Storage,
    pub size: u64,
    /// Unix seconds: the timestamp in the name, or the file's mtime when the name has none.
    pub created_unix: i64,
    pub compressed: bool,
    /// False for a recorded failure (e.g. an upload that did not happen).
    pub ready: bool,
    pub error: Option<String>,
    pub token_hash: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
}

impl SnapshotRecord {
    /// RKE2's list key: `local-<name>` / `s3-<name>` with characters outside `[-._a-zA-Z0-9]`
    /// replaced by `_`.
    pub fn list_key(&self) -> String {
        let prefix = match self.storage {
            Storage::Local => "local-",
            Storage::S3 => "s3-",
        };
        let sanitized: String = self
            .file_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{prefix}{sanitized}")
    }

    /// The extra metadata from the ConfigMap, as RKE2 shows it in `spec.metadata`: the entries
    /// this tool records beside it (reserved prefix [`OWN_PREFIX`]) are left out; None when
    /// nothing remains.
    pub fn user_metadata(&self) -> Option<BTreeMap<String, String>> {
        let map: BTreeMap<String, String> = self
            .metadata
            .iter()
            .flatten()
            .filter(|(key, _)| !is_own_entry(key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!map.is_empty()).then_some(map)
    }

    /// For an encrypted copy (`.age`): the key fingerprints recorded with it (the
    /// `Etcd-Snapshot-Encryption-Fingerprints` entry its save wrote into the metadata record and
    /// the S3 object), empty when none are recorded or the entry is malformed. None for a
    /// plaintext copy.
    pub fn encrypted_to(&self) -> Option<Vec<crate::crypt::Fingerprint>> {
        if !super::name::is_encrypted_name(&self.file_name) {
            return None;
        }
        let key = super::encryption_record::META_FINGERPRINTS;
        let recorded = self
            .metadata
            .iter()
            .flatten()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| crate::crypt::keys::parse_list(v));
        Some(recorded.unwrap_or_default())
    }

    /// The creation time in RFC 3339 (UTC, whole seconds), as RKE2 prints it.
    pub fn created_rfc3339(&self) -> String {
        rfc3339(self.created_unix)
    }
}

#[cfg(test)]
impl SnapshotRecord {
    /// A complete, successful copy with the seed's size and time, for unit tests.
    pub(crate) fn example(file_name: &str, location: &str, node: &str, storage: Storage) -> Self {
        SnapshotRecord {
            file_name: file_name.into(),
            location: location.into(),
            node_name: node.into(),
            storage,
            size: 8_937_504,
            created_unix: 1_754_906_881,
            compressed: false,
            ready: true,
            error: None,
            token_hash: None,
            metadata: None,
        }
    }
}

/// Unix seconds as RFC 3339 UTC with a `Z` suffix.
pub fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_file_format_is_a_json_object_of_strings() {
        let map = parse_metadata(br#"{"cluster":"c1","spec":"{\"a\":1}"}"#).expect("valid");
        assert_eq!(map.get("cluster").map(String::as_str), Some("c1"));
        assert_eq!(map.get("spec").map(String::as_str), Some(r#"{"a":1}"#));
        for invalid in [&b"not json"[..], br#"{"n":1}"#, br#"["a"]"#, b""] {
            assert!(parse_metadata(invalid).is_err(), "{invalid:?}");
        }
    }

    fn record(name: &str) -> SnapshotRecord {
        SnapshotRecord {
            size: 42,
            ..SnapshotRecord::example(name, &format!("file:///d/{name}"), "n1", Storage::Local)
        }
    }

    #[test]
    fn list_key_sanitizes_like_rke2() {
        assert_eq!(record("on-demand-n1-1").list_key(), "local-on-demand-n1-1");
        assert_eq!(record("a b+c").list_key(), "local-a_b_c");
    }

    #[test]
    fn own_entries_stay_out_of_the_users_metadata() {
        let mut r = record("x-n1-1");
        r.metadata = Some(BTreeMap::from([
            ("etcd-snapshot-hashkv".to_string(), "1".to_string()),
            ("team".to_string(), "a".to_string()),
        ]));
        let shown = r.user_metadata().unwrap();
        assert_eq!(shown.keys().collect::<Vec<_>>(), ["team"]);
        r.metadata = Some(BTreeMap::from([("ETCD-Snapshot-x".into(), "1".into())]));
        assert_eq!(r.user_metadata(), None);
        assert!(!is_own_entry("etcd-snap") && !is_own_entry("ééééééé-snapshot-"));
    }

    #[test]
    fn encrypted_copies_name_the_recorded_fingerprints_and_nothing_else() {
        let mut r = record("x-n1-1.zip.age");
        assert_eq!(r.encrypted_to(), Some(vec![]));
        r.metadata = Some(BTreeMap::from([(
            "etcd-snapshot-encryption-fingerprints".to_string(),
            "age1:0123456789abcdef".to_string(),
        )]));
        let fp = r.encrypted_to().unwrap();
        assert_eq!(fp.len(), 1);
        assert_eq!(fp[0].as_str(), "age1:0123456789abcdef");
        r.metadata = Some(BTreeMap::from([(
            "Etcd-Snapshot-Encryption-Fingerprints".to_string(),
            "age1:<script>".to_string(),
        )]));
        assert_eq!(r.encrypted_to(), Some(vec![]), "hostile values never pass");
        r.file_name = "x-n1-1.zip".into();
        assert_eq!(r.encrypted_to(), None);
    }
}
