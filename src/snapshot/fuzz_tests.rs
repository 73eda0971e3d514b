//! Fuzz target `snapshot_names`: snapshot file names (from directory listings, S3 keys and user
//! requests), the listing record built from them, and the extra-metadata file format.
//!
//! Properties: no parser panics on any text; a formatted name parses back to the same name and
//! only for its own base and node; every name `validate_user_name` accepts is a plain file name
//! that carries a timestamp; list keys only hold RKE2's safe characters; the metadata file
//! format round-trips every map a save can write and refuses everything that is not one; the
//! recorded keyspace hash (`hashkv`) parses only the plain decimals a save writes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::name::{
    PART_SUFFIX, SnapshotName, base_of, belongs_to_node, timestamp_in_name, validate_user_name,
};
use super::record::{SnapshotRecord, Storage, parse_metadata, rfc3339};
use crate::fuzz_support::{Fuzz, hostile_text, mutated_text};

/// Base and node names as the config accepts them (`Kind::Name`): no `/`, whitespace or control.
fn name_part() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._é-]{1,24}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn snapshot_name() -> impl Strategy<Value = SnapshotName> {
    (
        name_part(),
        name_part(),
        0i64..=i64::MAX,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(base, node, unix, compressed, encrypted)| SnapshotName {
            base,
            node,
            unix,
            compressed,
            encrypted,
        })
}

/// Names near the real format: pieces of real names glued with hostile text.
fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        hostile_text(64),
        mutated_text("etcd-snapshot-node1-1754906881.zip"),
        (
            hostile_text(12),
            hostile_text(12),
            "[0-9+-]{0,25}",
            prop::sample::select(vec![
                "",
                ".zip",
                ".part",
                ".zip.part",
                "/",
                ".age",
                ".zip.age",
                ".age.zip",
                ".zip.age.part"
            ])
        )
            .prop_map(|(a, b, digits, suffix)| format!("{a}-{b}-{digits}{suffix}")),
    ]
}

fn round_trip(name: SnapshotName, other: String) -> TestCaseResult {
    let file = name.file_name();
    let parsed = SnapshotName::parse_exact(&file, &name.base, &name.node);
    prop_assert_eq!(parsed.as_ref(), Some(&name));
    prop_assert_eq!(timestamp_in_name(&file), Some(name.unix));
    prop_assert!(belongs_to_node(&file, &name.node));
    prop_assert_eq!(
        name.stem()
            + if name.compressed { ".zip" } else { "" }
            + if name.encrypted { ".age" } else { "" },
        file.clone()
    );
    if !name.base.starts_with('.') && !name.base.contains("..") && !name.node.contains("..") {
        prop_assert_eq!(validate_user_name(&file), Ok(()));
    }
    // Another base or node never matches (unless it names the same split of the file name).
    if other != name.base
        && let Some(p) = SnapshotName::parse_exact(&file, &other, &name.node)
    {
        prop_assert_eq!(p.file_name(), file.clone(), "{:?} re-formats", p);
    }
    Ok(())
}

fn parse_any(text: String, node: String) -> TestCaseResult {
    let stamp = timestamp_in_name(&text);
    if let Some(base) = base_of(&text, &node) {
        prop_assert!(!base.is_empty());
        let parsed = SnapshotName::parse_exact(&text, base, &node);
        prop_assert!(
            parsed.is_some(),
            "base_of found {base:?}, parse_exact disagrees"
        );
        let parsed = parsed.unwrap();
        prop_assert_eq!(Some(parsed.unix), stamp);
        prop_assert_eq!(
            parsed.compressed,
            text.ends_with(".zip") || text.ends_with(".zip.age")
        );
        prop_assert_eq!(parsed.encrypted, text.ends_with(".age"));
    }
    if validate_user_name(&text).is_ok() {
        prop_assert!(!text.is_empty() && !text.contains(['/', '\\', '\0']));
        prop_assert!(!text.starts_with('.') && !text.contains(".."));
        prop_assert!(!text.ends_with(PART_SUFFIX));
        prop_assert!(stamp.is_some_and(|s| s >= 0));
    }
    let mut record = SnapshotRecord::example(&text, "file:///x", &node, Storage::Local);
    record.created_unix = stamp.unwrap_or(i64::MIN);
    let key = record.list_key();
    prop_assert!(
        key.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    );
    let file = record.to_snapshot_file();
    prop_assert_eq!(file.spec.snapshot_name, text);
    Ok(())
}

fn metadata_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(hostile_text(16), hostile_text(64), 0..8)
}

/// What a save writes (`serde_json::to_vec` of the ConfigMap data) reads back unchanged.
fn metadata_round_trip(map: BTreeMap<String, String>) -> TestCaseResult {
    let bytes = serde_json::to_vec(&map).expect("a map of strings serialises");
    prop_assert_eq!(parse_metadata(&bytes).ok(), Some(map));
    Ok(())
}

/// Anything else parses to a map only if it is a JSON object of strings.
fn metadata_any(bytes: Vec<u8>) -> TestCaseResult {
    if let Ok(map) = parse_metadata(&bytes) {
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        let object = value.as_object().expect("an object");
        prop_assert_eq!(object.len(), map.len());
        prop_assert!(object.values().all(|v| v.is_string()));
    }
    Ok(())
}

/// Recorded hash values as they may come back from a metadata file or S3: real ones, mutated,
/// hostile.
fn hashkv_value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        mutated_text("18446744073709551615"),
        hostile_text(24),
    ])
}

/// No recorded value panics the parser; what parses is what a save writes (plain decimals),
/// and a written record reads back to itself whatever the key case.
fn hashkv_entries(
    (hash, revision, compact, case): (Option<String>, Option<String>, Option<String>, u8),
) -> TestCaseResult {
    use super::hashkv::{HashKvRecord, KEY_COMPACT_REVISION, KEY_HASH, KEY_REVISION};
    let keys = [KEY_HASH, KEY_REVISION, KEY_COMPACT_REVISION];
    let mut map = BTreeMap::new();
    for (i, (key, value)) in keys.iter().zip([&hash, &revision, &compact]).enumerate() {
        let key = if case & (1 << i) != 0 {
            key.to_ascii_uppercase()
        } else {
            key.to_string()
        };
        if let Some(value) = value {
            map.insert(key, value.clone());
        }
    }
    if let Ok(Some(record)) = HashKvRecord::from_entries(&map) {
        prop_assert_eq!(Some(&record.hash.to_string()), hash.as_ref());
        prop_assert_eq!(Some(&record.revision.to_string()), revision.as_ref());
        let again = HashKvRecord::from_entries(&record.entries()).ok().flatten();
        prop_assert_eq!(again, Some(record));
    }
    // The revision recorded without a hash: read back only from plain non-negative decimals.
    if let Some(value) = &revision {
        let key = super::hashkv::KEY_SNAPSHOT_REVISION.to_string();
        map.insert(key, value.clone());
        if let Some(read) = super::hashkv::recorded_revision(&map) {
            prop_assert!(value.bytes().all(|b| b.is_ascii_digit()), "{value:?}");
            prop_assert_eq!(value.parse::<i64>().ok(), Some(read));
        }
    }
    Ok(())
}

fn metadata_bytes() -> impl Strategy<Value = Vec<u8>> {
    let sample = br#"{"cluster":"c1","spec":"{\"a\":1}","region":"eu-west-1"}"#.to_vec();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        crate::fuzz_support::mutated(sample).prop_map(|(bytes, _)| bytes),
        // Deep nesting: refused by serde_json's recursion limit, not by the stack.
        (1usize..5000).prop_map(|depth| {
            let mut v = vec![b'['; depth];
            v.extend(std::iter::repeat_n(b']', depth));
            v
        }),
    ]
}

#[test]
fn fuzz_snapshot_names() {
    let mut fuzz = Fuzz::new("snapshot_names", 5);
    fuzz.check(
        "name_round_trip",
        512,
        (snapshot_name(), name_part()),
        |(name, other)| round_trip(name, other),
    );
    fuzz.check(
        "name_parsers",
        1024,
        (name_like(), prop_oneof![name_part(), hostile_text(8)]),
        |(text, node)| parse_any(text, node),
    );
    fuzz.check("rfc3339_any_time", 256, any::<i64>(), |unix| {
        let text = rfc3339(unix);
        prop_assert!(text.ends_with('Z'), "{text}");
        Ok(())
    });
    fuzz.check(
        "metadata_round_trip",
        256,
        metadata_map(),
        metadata_round_trip,
    );
    fuzz.check("metadata_any_bytes", 512, metadata_bytes(), metadata_any);
    fuzz.check(
        "hashkv_entries",
        512,
        (hashkv_value(), hashkv_value(), hashkv_value(), any::<u8>()),
        hashkv_entries,
    );
    fuzz.finish();
}
