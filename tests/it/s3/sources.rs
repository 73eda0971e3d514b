//! Who uploaded each S3 snapshot and its extra metadata, against the in-process S3 server of
//! `fakes/s3_support.rs`: `S3Store::fill_sources` reads `Rke2-Node-Name` / `Rke2-Token-Hash` and the
//! `.metadata/<name>` object per object, a second listing with the same `SourceCache` makes no
//! request, a failing read (a missing object) only reports, and an oversized metadata object
//! counts as none.

use std::collections::BTreeMap;
use std::path::Path;

use etcd_snapshot::snapshot::{SnapshotRecord, Storage};
use etcd_snapshot::store::s3::metadata::MAX_METADATA_BYTES;
use etcd_snapshot::store::s3::{ObjectMetadata, S3Store, SourceCache};

use crate::fakes::s3_support::{S3Server, Tls, write_pattern};

const BUCKET: &str = "snapshots";
const FOLDER: &str = "etcd";

async fn store(server: &S3Server, node: &str, token_hash: &str) -> S3Store {
    S3Store::connect(&server.settings(BUCKET, FOLDER))
        .await
        .expect("connect")
        .with_identity(node, "cluster-uid-1")
        .with_token_hash(token_hash)
}

/// Uploads `len` bytes as `name` with the uploader metadata RKE2 writes.
async fn upload(store: &S3Store, dir: &Path, name: &str, node: &str, token_hash: &str, len: usize) {
    let file = dir.join(name);
    write_pattern(&file, len);
    let metadata = ObjectMetadata {
        cluster_id: "cluster-uid-1".into(),
        node_name: node.into(),
        token_hash: token_hash.into(),
        sha256: None,
        extra: Default::default(),
    };
    store
        .upload_file(&file, name, &metadata)
        .await
        .expect("upload");
}

/// (node name, token hash) of the row named `name`.
fn source_of(records: &[SnapshotRecord], name: &str) -> (String, Option<String>) {
    let row = records
        .iter()
        .find(|r| r.file_name == name)
        .unwrap_or_else(|| panic!("{name} listed"));
    (row.node_name.clone(), row.token_hash.clone())
}

fn filled(node: &str, token_hash: &str) -> (String, Option<String>) {
    (node.to_string(), Some(token_hash.to_string()))
}

fn unfilled() -> (String, Option<String>) {
    ("s3".to_string(), None)
}

#[tokio::test]
async fn uploaders_are_filled_and_a_second_listing_uses_the_cache() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket(BUCKET);
    let one = store(&server, "server-1", "aaaaaaaaaaaa").await;
    let two = store(&server, "server-2", "bbbbbbbbbbbb").await;
    let dir = tempfile::tempdir().unwrap();
    upload(
        &one,
        dir.path(),
        "etcd-snapshot-server-1-1700000100",
        "server-1",
        "aaaaaaaaaaaa",
        64,
    )
    .await;
    upload(
        &two,
        dir.path(),
        "etcd-snapshot-server-2-1700000200",
        "server-2",
        "bbbbbbbbbbbb",
        64,
    )
    .await;
    // Uploaded without knowing node or token: both values are empty strings.
    upload(&one, dir.path(), "on-demand-x-1700000300", "", "", 64).await;
    // Written by some other tool: no user metadata at all.
    server.put_raw(
        BUCKET,
        &format!("{FOLDER}/etcd-snapshot-manual-1700000400"),
        b"raw",
    );

    let listed = one.list().await.expect("list");
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .iter()
            .all(|r| r.node_name == "s3" && r.token_hash.is_none())
    );
    // Rows fill_sources must not touch: a local copy and a failed upload.
    let local = SnapshotRecord {
        storage: Storage::Local,
        node_name: "server-1".into(),
        location: "file:///var/lib/etcd-snapshot-server-1-1700000100".into(),
        ..listed[0].clone()
    };
    let failed = SnapshotRecord {
        ready: false,
        error: Some("upload failed".into()),
        ..listed[1].clone()
    };
    let mut records = listed.clone();
    records.extend([local.clone(), failed.clone()]);

    let cache = SourceCache::default();
    let errors = two.fill_sources(&mut records, &cache).await;
    assert!(errors.is_empty(), "{errors:?}");
    let expect = |records: &[SnapshotRecord]| {
        assert_eq!(
            source_of(records, "etcd-snapshot-server-1-1700000100"),
            filled("server-1", "aaaaaaaaaaaa")
        );
        assert_eq!(
            source_of(records, "etcd-snapshot-server-2-1700000200"),
            filled("server-2", "bbbbbbbbbbbb")
        );
        assert_eq!(source_of(records, "on-demand-x-1700000300"), unfilled());
        assert_eq!(
            source_of(records, "etcd-snapshot-manual-1700000400"),
            unfilled()
        );
    };
    expect(&records);
    assert_eq!(records[4], local, "local row untouched");
    assert_eq!(records[5], failed, "failure row untouched");
    assert_eq!(cache.len(), 4);

    // Delete two objects: a HEAD on them now fails, so a cached fill proves none was made.
    one.delete("etcd-snapshot-server-2-1700000200")
        .await
        .expect("delete");
    one.delete("etcd-snapshot-manual-1700000400")
        .await
        .expect("delete");
    let mut again = listed.clone();
    let errors = one.fill_sources(&mut again, &cache).await;
    assert!(errors.is_empty(), "cached objects need no HEAD: {errors:?}");
    expect(&again);

    // The control: without the cache those two HEADs fail, are reported, and leave the rows.
    let mut fresh = listed.clone();
    let errors = one.fill_sources(&mut fresh, &SourceCache::default()).await;
    let failed: Vec<&str> = errors.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        failed,
        [
            "etcd-snapshot-server-2-1700000200",
            "etcd-snapshot-manual-1700000400"
        ]
    );
    assert!(errors.iter().all(|(_, e)| e.is_not_found()), "{errors:?}");
    assert_eq!(
        source_of(&fresh, "etcd-snapshot-server-2-1700000200"),
        unfilled()
    );
    assert_eq!(
        source_of(&fresh, "etcd-snapshot-server-1-1700000100"),
        filled("server-1", "aaaaaaaaaaaa")
    );

    // A listing without the deleted objects makes the cache forget them.
    let mut current = one.list().await.expect("list");
    assert!(one.fill_sources(&mut current, &cache).await.is_empty());
    assert_eq!(cache.len(), 2);
}

#[tokio::test]
async fn a_reupload_under_the_same_name_is_read_again() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket(BUCKET);
    let one = store(&server, "server-1", "aaaaaaaaaaaa").await;
    let dir = tempfile::tempdir().unwrap();
    let name = "etcd-snapshot-server-1-1700000500";
    upload(&one, dir.path(), name, "server-1", "aaaaaaaaaaaa", 64).await;
    let cache = SourceCache::default();
    let mut records = one.list().await.expect("list");
    assert!(one.fill_sources(&mut records, &cache).await.is_empty());
    assert_eq!(
        source_of(&records, name),
        filled("server-1", "aaaaaaaaaaaa")
    );

    upload(&one, dir.path(), name, "server-9", "cccccccccccc", 128).await;
    let mut records = one.list().await.expect("list");
    assert!(one.fill_sources(&mut records, &cache).await.is_empty());
    assert_eq!(
        source_of(&records, name),
        filled("server-9", "cccccccccccc")
    );
    assert_eq!(cache.len(), 1, "the replaced upload is forgotten");
}

#[tokio::test]
async fn more_objects_than_requests_in_flight_are_all_filled() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket(BUCKET);
    let one = store(&server, "server-1", "aaaaaaaaaaaa").await;
    let dir = tempfile::tempdir().unwrap();
    let count = 3 * etcd_snapshot::store::s3::sources::MAX_IN_FLIGHT + 1;
    for i in 0..count {
        let node = format!("server-{i}");
        let name = format!("etcd-snapshot-{node}-{}", 1_700_000_000 + i);
        upload(&one, dir.path(), &name, &node, &format!("{i:012}"), 32).await;
    }
    let mut records = one.list().await.expect("list");
    assert_eq!(records.len(), count);
    let errors = one
        .fill_sources(&mut records, &SourceCache::default())
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    for i in 0..count {
        let node = format!("server-{i}");
        let name = format!("etcd-snapshot-{node}-{}", 1_700_000_000 + i);
        assert_eq!(
            source_of(&records, &name),
            filled(&node, &format!("{i:012}"))
        );
    }
}

/// `spec.metadata` of the row named `name`.
fn metadata_of(records: &[SnapshotRecord], name: &str) -> Option<BTreeMap<String, String>> {
    records
        .iter()
        .find(|r| r.file_name == name)
        .unwrap_or_else(|| panic!("{name} listed"))
        .metadata
        .clone()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn metadata_key(name: &str) -> String {
    format!("{FOLDER}/.metadata/{name}")
}

#[tokio::test]
async fn extra_metadata_is_read_from_s3_once_per_object() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket(BUCKET);
    let one = store(&server, "server-1", "aaaaaaaaaaaa").await;
    let two = store(&server, "server-2", "bbbbbbbbbbbb").await;
    let dir = tempfile::tempdir().unwrap();
    let (with, without, invalid) = (
        "etcd-snapshot-server-1-1700000100",
        "etcd-snapshot-server-1-1700000200",
        "etcd-snapshot-server-1-1700000300",
    );
    for name in [with, without, invalid] {
        upload(&one, dir.path(), name, "server-1", "aaaaaaaaaaaa", 64).await;
    }
    let saved = br#"{"cluster":"c-1","spec":"{\"k\":1}"}"#;
    one.upload_metadata(with, saved.to_vec(), &Default::default())
        .await
        .expect("put");
    server.put_raw(BUCKET, &metadata_key(invalid), b"{not json");
    let expected = map(&[("cluster", "c-1"), ("spec", r#"{"k":1}"#)]);

    let listed = one.list().await.expect("list");
    assert!(listed.iter().all(|r| r.metadata.is_none()));
    // A row that already carries metadata (this node's local copy, say) is still read: the
    // object's value is the one every node sees.
    let mut records = listed.clone();
    records[1].metadata = Some(map(&[("from", "local copy")]));
    let cache = SourceCache::default();
    let errors = two.fill_sources(&mut records, &cache).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(metadata_of(&records, with), Some(expected.clone()));
    assert_eq!(metadata_of(&records, without), None);
    assert_eq!(
        metadata_of(&records, invalid),
        None,
        "invalid JSON only warns"
    );
    assert_eq!(cache.len(), 3);

    // Change what a GET or a HEAD would now answer: a cached fill shows none of it, so it made
    // neither request.
    server.put_raw(BUCKET, &metadata_key(with), br#"{"cluster":"changed"}"#);
    server.put_raw(BUCKET, &metadata_key(without), br#"{"late":"yes"}"#);
    one.delete(invalid).await.expect("delete");
    let mut again = listed.clone();
    let errors = one.fill_sources(&mut again, &cache).await;
    assert!(
        errors.is_empty(),
        "cached objects need no request: {errors:?}"
    );
    assert_eq!(metadata_of(&again, with), Some(expected));
    assert_eq!(metadata_of(&again, without), None);
    assert_eq!(
        source_of(&again, invalid),
        filled("server-1", "aaaaaaaaaaaa")
    );

    // The control: a fresh cache reads the changed objects and misses the deleted one.
    let mut fresh = listed.clone();
    let errors = one.fill_sources(&mut fresh, &SourceCache::default()).await;
    let failed: Vec<&str> = errors.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(failed, [invalid]);
    assert_eq!(
        metadata_of(&fresh, with),
        Some(map(&[("cluster", "changed")]))
    );
    assert_eq!(metadata_of(&fresh, without), Some(map(&[("late", "yes")])));
}

#[tokio::test]
async fn a_young_snapshot_without_metadata_is_read_again_until_it_appears() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket(BUCKET);
    let one = store(&server, "server-1", "aaaaaaaaaaaa").await;
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    let young = format!("etcd-snapshot-server-1-{now}");
    // Older than METADATA_SETTLE_SECS: no metadata object means none will come.
    let settled = format!(
        "etcd-snapshot-server-1-{}",
        now - etcd_snapshot::store::s3::sources::METADATA_SETTLE_SECS - 60
    );
    for name in [&young, &settled] {
        upload(&one, dir.path(), name, "server-1", "aaaaaaaaaaaa", 64).await;
    }
    let cache = SourceCache::default();
    let mut records = one.list().await.expect("list");
    assert!(one.fill_sources(&mut records, &cache).await.is_empty());
    assert_eq!(metadata_of(&records, &young), None);
    assert_eq!(metadata_of(&records, &settled), None);

    // The uploader's metadata object lands just after the snapshot object.
    let late = br#"{"k":"v"}"#.to_vec();
    one.upload_metadata(&young, late.clone(), &Default::default())
        .await
        .expect("put");
    one.upload_metadata(&settled, late, &Default::default())
        .await
        .expect("put");
    let mut records = one.list().await.expect("list");
    assert!(one.fill_sources(&mut records, &cache).await.is_empty());
    assert_eq!(metadata_of(&records, &young), Some(map(&[("k", "v")])));
    assert_eq!(
        metadata_of(&records, &settled),
        None,
        "remembered as absent"
    );
    assert_eq!(
        source_of(&records, &young),
        filled("server-1", "aaaaaaaaaaaa")
    );
}

#[tokio::test]
async fn an_oversized_metadata_object_counts_as_none_and_is_remembered() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket(BUCKET);
    let one = store(&server, "server-1", "aaaaaaaaaaaa").await;
    let dir = tempfile::tempdir().unwrap();
    let (large, at_limit) = (
        "etcd-snapshot-server-1-1700000100",
        "etcd-snapshot-server-1-1700000200",
    );
    for name in [large, at_limit] {
        upload(&one, dir.path(), name, "server-1", "aaaaaaaaaaaa", 64).await;
    }
    // Valid JSON of exactly the limit is read; one byte more is refused.
    let limit = MAX_METADATA_BYTES as usize;
    let padded = |len: usize| {
        let frame = br#"{"k":""}"#.len();
        format!(r#"{{"k":"{}"}}"#, "x".repeat(len - frame)).into_bytes()
    };
    server.put_raw(BUCKET, &metadata_key(at_limit), &padded(limit));
    server.put_raw(BUCKET, &metadata_key(large), &padded(limit + 1));

    // The oversized one counts as having no metadata: its uploader is still filled, nothing
    // fails, and it is remembered (it will not change; each pass would warn again).
    let cache = SourceCache::default();
    let mut records = one.list().await.expect("list");
    let errors = one.fill_sources(&mut records, &cache).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(metadata_of(&records, large), None);
    assert_eq!(
        source_of(&records, large),
        filled("server-1", "aaaaaaaaaaaa")
    );
    let read = metadata_of(&records, at_limit).expect("read at the limit");
    assert_eq!(read["k"].len(), limit - br#"{"k":""}"#.len());
    assert_eq!(cache.len(), 2, "both objects are remembered");
    let too_large = one.read_extra_metadata(large).await.expect("read");
    assert_eq!(too_large.map(), None);
}
