//! Fuzz target `s3_listings`: what an S3 endpoint returns about a folder (object keys of a
//! listing, HeadObject user metadata, the `.metadata/<name>` objects), none of which this
//! node wrote or can trust.
//!
//! Properties: the key layout never panics and names only direct, visible, non-temporary
//! children of the folder that carry a timestamp; every snapshot name round-trips through its
//! object key; a metadata key or a key of another folder is never taken for a snapshot;
//! `clean_folder` is idempotent and never leaves `.`, empty or (when rooted) `..` elements;
//! the uploader fields read from any user metadata; the metadata object is read whole up to
//! its cap and refused past it.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::read_capped;
use crate::fuzz_support::{Fuzz, hostile_text, mutated_text};
use crate::snapshot::name::{PART_SUFFIX, timestamp_in_name, validate_user_name};
use crate::store::s3::keys::{KeyLayout, METADATA_FOLDER, clean_folder};
use crate::store::s3::sources::Source;

fn folder() -> impl Strategy<Value = String> {
    prop_oneof![
        "(/|\\./|\\.\\./)?([a-z0-9.]{0,6}/{1,2}){0,4}[a-z0-9.]{0,6}",
        hostile_text(24),
        Just(String::new()),
        Just("/".to_string()),
    ]
}

fn listed_key(folder: String) -> impl Strategy<Value = String> {
    let layout = KeyLayout::new(&folder);
    let prefix = layout.list_prefix();
    prop_oneof![
        3 => "[a-z0-9.-]{0,12}-[0-9]{1,12}(\\.zip)?(\\.part)?"
            .prop_map(move |name| format!("{prefix}{name}")),
        1 => mutated_text(&layout.object_key("etcd-snapshot-n1-1754906881.zip")),
        1 => Just(layout.metadata_key("etcd-snapshot-n1-1754906881")),
        1 => hostile_text(48),
    ]
}

fn key_any(folder: String, key: String) -> TestCaseResult {
    let layout = KeyLayout::new(&folder);
    if let Some(name) = layout.snapshot_name(&key) {
        prop_assert!(key.ends_with(name));
        prop_assert_eq!(format!("{}{name}", layout.list_prefix()), key.clone());
        prop_assert!(!name.is_empty() && !name.contains('/'));
        prop_assert!(!name.starts_with('.') && !name.ends_with(PART_SUFFIX));
        prop_assert!(timestamp_in_name(name).is_some());
        prop_assert_eq!(layout.object_key(name), key.clone());
        // Another folder's layout never lists it, unless that folder cleans to the same one.
        let sibling = KeyLayout::new(&format!("{}-old", layout.folder()));
        prop_assert_eq!(sibling.snapshot_name(&key), None);
    }
    Ok(())
}

fn name_round_trip(folder: String, name: String) -> TestCaseResult {
    let layout = KeyLayout::new(&folder);
    if validate_user_name(&name).is_ok() {
        let key = layout.object_key(&name);
        prop_assert_eq!(layout.snapshot_name(&key), Some(name.as_str()));
        let meta = layout.metadata_key(&name);
        prop_assert_eq!(layout.snapshot_name(&meta), None);
        let in_metadata_folder = meta.contains(&format!("{METADATA_FOLDER}/"));
        prop_assert!(in_metadata_folder);
    }
    Ok(())
}

fn folder_clean(folder: String) -> TestCaseResult {
    let once = clean_folder(&folder);
    prop_assert_eq!(clean_folder(&once), once.clone());
    let rooted = once.starts_with('/');
    for element in once.split('/').skip(usize::from(rooted)) {
        if once != "/" && !once.is_empty() {
            prop_assert!(!element.is_empty() && element != ".", "{once:?}");
        }
        if rooted {
            prop_assert!(element != "..", "{once:?}");
        }
    }
    Ok(())
}

fn user_metadata(entries: Vec<(String, String)>) -> TestCaseResult {
    let map: HashMap<String, String> = entries.into_iter().collect();
    let source = Source::from_metadata(&map);
    prop_assert!(!source.node_name.is_empty());
    prop_assert!(source.token_hash.as_ref().is_none_or(|h| !h.is_empty()));
    let listed = map
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("rke2-node-name") && !v.is_empty());
    if listed.is_none() {
        prop_assert_eq!(source.node_name, "s3");
    }
    Ok(())
}

fn metadata_key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("rke2-node-name".to_string()),
        Just("Rke2-Node-Name".to_string()),
        Just("rke2-token-hash".to_string()),
        Just("RKE2-TOKEN-HASH".to_string()),
        hostile_text(16),
    ]
}

fn capped(size: usize, limit: u64) -> TestCaseResult {
    let body = ByteStream::from(vec![b'x'; size]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let read = runtime.block_on(read_capped(body, limit));
    prop_assert_eq!(read.is_ok(), size as u64 <= limit);
    if let Ok(bytes) = read {
        prop_assert_eq!(bytes.len(), size);
    }
    Ok(())
}

#[test]
fn fuzz_s3_listings() {
    let mut fuzz = Fuzz::new("s3_listings", 5);
    let keyed = folder().prop_flat_map(|f| (Just(f.clone()), listed_key(f)));
    fuzz.check("listed_keys", 1024, keyed, |(f, k)| key_any(f, k));
    let name = prop_oneof!["[a-z0-9._-]{1,16}-[0-9]{1,12}(\\.zip)?", hostile_text(24),];
    fuzz.check("name_round_trip", 512, (folder(), name), |(f, n)| {
        name_round_trip(f, n)
    });
    fuzz.check("clean_folder", 512, folder(), folder_clean);
    let entries = prop::collection::vec((metadata_key_name(), hostile_text(16)), 0..6);
    fuzz.check("user_metadata", 256, entries, user_metadata);
    fuzz.check("capped_read", 64, (0usize..4096, 0u64..4096), |(s, l)| {
        capped(s, l)
    });
    fuzz.finish();
}
