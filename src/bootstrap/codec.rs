//! The bootstrap data model and its k3s JSON form: `{"<Go field>": {"Timestamp": <RFC3339Nano>,
//! "Content": <base64>}}`, plus the legacy `{"<Go field>": <base64>}` form on decode.
//!
//! Pure: no file or etcd access. File content is secret, so `Debug` shows only names, sizes and
//! timestamps.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use super::BootstrapError;
use super::files::BOOTSTRAP_FILES;

/// Go's zero `time.Time`, which is what k3s writes when it has no timestamp.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The bootstrap files by Go field name (`ServerCA`, `PasswdFile`, ...). Names outside the table
/// are kept, so data passes through unchanged, but are never written to disk.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BootstrapData {
    pub files: BTreeMap<String, BootstrapFile>,
}

/// One file: its bytes and modification time. The time decides, on reconcile, whether disk or
/// datastore is newer; None for data from the legacy form (it had no times).
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapFile {
    pub timestamp: Option<DateTime<Utc>>,
    pub content: Vec<u8>,
}

impl BootstrapData {
    /// The JSON k3s stores (encrypted) and serves from `/v1-<prog>/server-bootstrap`, fields in
    /// the order k3s writes them.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising strings and maps of strings into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes the current form, falling back to the legacy one (as k3s detects it: by the
    /// current form failing). The error reported is the current form's.
    pub fn from_json(json: &[u8]) -> Result<Self, BootstrapError> {
        let current: Result<BTreeMap<String, WireFile>, _> = serde_json::from_slice(json);
        match current {
            Ok(wire) => decode_current(wire),
            Err(err) => match serde_json::from_slice::<BTreeMap<String, Option<String>>>(json) {
                Ok(legacy) => decode_legacy(legacy),
                Err(_) => Err(BootstrapError::Json(err)),
            },
        }
    }
}

impl fmt::Debug for BootstrapData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.files.iter()).finish()
    }
}

impl fmt::Debug for BootstrapFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapFile")
            .field("timestamp", &self.timestamp.map(format_timestamp))
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .finish()
    }
}

impl Serialize for BootstrapData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let rank = |name: &str| {
            BOOTSTRAP_FILES
                .iter()
                .position(|spec| spec.field == name)
                .unwrap_or(usize::MAX)
        };
        let mut entries: Vec<_> = self.files.iter().collect();
        entries.sort_by_key(|(name, _)| (rank(name), name.as_str()));
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (name, file) in entries {
            map.serialize_entry(name, file)?;
        }
        map.end()
    }
}

impl Serialize for BootstrapFile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let timestamp = self
            .timestamp
            .map(format_timestamp)
            .unwrap_or_else(|| GO_ZERO_TIME.to_owned());
        let mut file = serializer.serialize_struct("BootstrapFile", 2)?;
        file.serialize_field("Timestamp", &timestamp)?;
        file.serialize_field("Content", &STANDARD.encode(&self.content))?;
        file.end()
    }
}

/// One entry of the current form as decoded; Go writes `null` for a nil byte slice.
#[derive(Deserialize)]
struct WireFile {
    #[serde(rename = "Timestamp", default)]
    timestamp: Option<String>,
    #[serde(rename = "Content", default)]
    content: Option<String>,
}

fn decode_current(wire: BTreeMap<String, WireFile>) -> Result<BootstrapData, BootstrapError> {
    let mut files = BTreeMap::new();
    for (field, entry) in wire {
        let content = decode_content(&field, entry.content.as_deref())?;
        let timestamp = match entry.timestamp.as_deref() {
            None => None,
            Some(text) => parse_timestamp(text).map_err(|source| BootstrapError::Timestamp {
                field: field.clone(),
                value: text.to_owned(),
                source,
            })?,
        };
        files.insert(field, BootstrapFile { timestamp, content });
    }
    Ok(BootstrapData { files })
}

fn decode_legacy(
    legacy: BTreeMap<String, Option<String>>,
) -> Result<BootstrapData, BootstrapError> {
    let mut files = BTreeMap::new();
    for (field, content) in legacy {
        let content = decode_content(&field, content.as_deref())?;
        let file = BootstrapFile {
            timestamp: None,
            content,
        };
        files.insert(field, file);
    }
    Ok(BootstrapData { files })
}

fn decode_content(field: &str, content: Option<&str>) -> Result<Vec<u8>, BootstrapError> {
    STANDARD
        .decode(content.unwrap_or_default())
        .map_err(|source| BootstrapError::Content {
            field: field.to_owned(),
            source,
        })
}

/// Go's RFC3339Nano in UTC: fraction digits with trailing zeros trimmed, none for whole seconds.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    let seconds = time.format("%Y-%m-%dT%H:%M:%S");
    let nanos = time.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{seconds}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{seconds}.{}Z", fraction.trim_end_matches('0'))
}

/// Parses any RFC 3339 time (k3s writes the node's local offset); Go's zero time means "none".
fn parse_timestamp(text: &str) -> Result<Option<DateTime<Utc>>, chrono::ParseError> {
    let parsed = DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc);
    let zero = DateTime::parse_from_rfc3339(GO_ZERO_TIME)?.with_timezone(&Utc);
    Ok((parsed != zero).then_some(parsed))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn file(secs: i64, nanos: u32, content: &[u8]) -> BootstrapFile {
        BootstrapFile {
            timestamp: Some(Utc.timestamp_opt(secs, nanos).unwrap()),
            content: content.to_vec(),
        }
    }

    #[test]
    fn timestamps_follow_go_rfc3339nano() {
        let at = |nanos| format_timestamp(Utc.timestamp_opt(1_700_000_000, nanos).unwrap());
        assert_eq!(at(0), "2023-11-14T22:13:20Z");
        assert_eq!(at(500_000_000), "2023-11-14T22:13:20.5Z");
        assert_eq!(at(123_456_789), "2023-11-14T22:13:20.123456789Z");
        assert_eq!(at(1_000), "2023-11-14T22:13:20.000001Z");
        // k3s writes local offsets; they mean the same instant.
        let local = parse_timestamp("2023-11-15T00:13:20.5+02:00").unwrap();
        assert_eq!(
            local,
            Some(Utc.timestamp_opt(1_700_000_000, 500_000_000).unwrap())
        );
        assert_eq!(parse_timestamp(GO_ZERO_TIME).unwrap(), None);
    }

    #[test]
    fn json_round_trip_in_table_order() {
        let mut data = BootstrapData::default();
        data.files
            .insert("ServiceKey".into(), file(1_700_000_000, 7, b"key"));
        data.files
            .insert("ETCDServerCA".into(), file(1_700_000_001, 0, b"ca\n"));
        let json = data.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.find("ETCDServerCA").unwrap() < text.find("ServiceKey").unwrap());
        assert!(text.contains(r#""Content":"Y2EK""#), "{text}");
        assert!(text.contains(r#""Timestamp":"2023-11-14T22:13:20.000000007Z""#));
        assert_eq!(BootstrapData::from_json(&json).unwrap(), data);
    }

    #[test]
    fn legacy_form_decodes_without_timestamps() {
        let data = BootstrapData::from_json(br#"{"ServerCA":"Y2EK","IPSECKey":null}"#).unwrap();
        assert_eq!(data.files["ServerCA"].content, b"ca\n");
        assert_eq!(data.files["ServerCA"].timestamp, None);
        assert!(data.files["IPSECKey"].content.is_empty());
        // Re-encoded, a missing time is Go's zero time, which decodes back to none.
        assert_eq!(BootstrapData::from_json(&data.to_json()).unwrap(), data);
    }

    #[test]
    fn bad_input_names_the_field_and_hides_content() {
        let bad = br#"{"ServerCA":{"Timestamp":"2023-11-14T22:13:20Z","Content":"%%"}}"#;
        match BootstrapData::from_json(bad) {
            Err(BootstrapError::Content { field, .. }) => assert_eq!(field, "ServerCA"),
            other => panic!("expected a content error, got {other:?}"),
        }
        let bad = br#"{"ServerCA":{"Timestamp":"yesterday","Content":""}}"#;
        assert!(matches!(
            BootstrapData::from_json(bad),
            Err(BootstrapError::Timestamp { .. })
        ));
        assert!(matches!(
            BootstrapData::from_json(b"[1,2]"),
            Err(BootstrapError::Json(_))
        ));
        let mut data = BootstrapData::default();
        data.files
            .insert("ServerCAKey".into(), file(0, 0, b"PRIVATE KEY"));
        let debug = format!("{data:?}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
        assert!(debug.contains("<11 bytes>"), "{debug}");
    }
}
