//! Unit tests of `sources.rs`: object identity, the cache, the per-object decisions and the
//! bounded runner. Requests against a real server are in tests/it/s3/sources.rs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn s3_row(name: &str, size: u64) -> SnapshotRecord {
    SnapshotRecord {
        file_name: name.into(),
        location: format!("s3://b/f/{name}"),
        node_name: S3_NODE_NAME.into(),
        storage: Storage::S3,
        size,
        created_unix: 1_700_000_000,
        compressed: false,
        ready: true,
        error: None,
        token_hash: None,
        metadata: None,
    }
}

fn source(node: &str) -> Source {
    Source {
        node_name: node.into(),
        token_hash: Some("0123456789ab".into()),
    }
}

fn known(node: &str, extra: ExtraMetadata) -> Known {
    Known {
        source: source(node),
        extra,
        etag: None,
    }
}

fn extra(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn id(record: &SnapshotRecord) -> ObjectId {
    object_id(record, "b", &KeyLayout::new("f")).expect("an object of this store")
}

#[test]
fn metadata_fills_node_and_token_and_absent_values_fall_back() {
    let full = HashMap::from([
        ("rke2-node-name".to_string(), "server-1".to_string()),
        ("rke2-token-hash".to_string(), "0123456789ab".to_string()),
        ("rke2-cluster-id".to_string(), "uid".to_string()),
    ]);
    assert_eq!(Source::from_metadata(&full), source("server-1"));
    let spelled = HashMap::from([("Rke2-Node-Name".to_string(), "server-2".to_string())]);
    assert_eq!(Source::from_metadata(&spelled).node_name, "server-2");
    let empty = HashMap::from([
        ("rke2-node-name".to_string(), String::new()),
        ("rke2-token-hash".to_string(), String::new()),
    ]);
    for metadata in [empty, HashMap::new()] {
        let got = Source::from_metadata(&metadata);
        assert_eq!(got.node_name, S3_NODE_NAME);
        assert_eq!(got.token_hash, None);
    }
}

#[test]
fn only_ready_rows_of_this_bucket_and_folder_are_objects() {
    let layout = KeyLayout::new("f");
    let row = s3_row("a-n1-1", 10);
    assert!(object_id(&row, "b", &layout).is_some());
    assert!(object_id(&row, "other", &layout).is_none());
    assert!(object_id(&row, "b", &KeyLayout::new("g")).is_none());
    let failed = SnapshotRecord {
        ready: false,
        ..row.clone()
    };
    assert!(object_id(&failed, "b", &layout).is_none());
    let local = SnapshotRecord {
        storage: Storage::Local,
        ..row
    };
    assert!(object_id(&local, "b", &layout).is_none());
}

#[test]
fn a_changed_size_or_time_is_another_object() {
    let row = s3_row("a-n1-1", 10);
    let resized = s3_row("a-n1-1", 11);
    let retimed = SnapshotRecord {
        created_unix: 1,
        ..row.clone()
    };
    assert_ne!(id(&row), id(&resized));
    assert_ne!(id(&row), id(&retimed));
    assert_eq!(id(&row), id(&row.clone()));
}

#[test]
fn the_cache_forgets_objects_no_longer_listed_and_clones_share_it() {
    let cache = SourceCache::default();
    let (a, b, c) = (
        s3_row("a-n1-1", 1),
        s3_row("b-n1-2", 2),
        s3_row("c-n1-3", 3),
    );
    cache.insert(id(&a), known("n1", ExtraMetadata::Missing));
    cache.insert(id(&b), known("n2", ExtraMetadata::Missing));
    let clone = cache.clone();
    clone.insert(id(&c), known("n3", ExtraMetadata::Missing));
    assert_eq!(cache.len(), 3);

    cache.retain_listed(&HashSet::from([id(&b), id(&c)]));
    assert_eq!(clone.len(), 2);
    assert_eq!(cache.get(&id(&a)), None);
    assert_eq!(
        cache.get(&id(&b)),
        Some(known("n2", ExtraMetadata::Missing))
    );

    cache.retain_listed(&HashSet::new());
    assert!(clone.is_empty());
}

#[test]
fn the_objects_values_replace_whatever_the_row_carried() {
    let mut row = SnapshotRecord {
        metadata: Some(extra(&[("from", "local copy")])),
        ..s3_row("a-n1-1", 1)
    };
    let uploaded = extra(&[("from", "s3")]);
    known("n1", ExtraMetadata::Found(Some(uploaded.clone()))).apply(&mut row);
    assert_eq!(row.metadata, Some(uploaded));
    assert_eq!(row.node_name, "n1");
    assert_eq!(row.token_hash.as_deref(), Some("0123456789ab"));
    // No metadata object (or an invalid one) means no metadata, not the row's own.
    for none in [ExtraMetadata::Missing, ExtraMetadata::Found(None)] {
        let mut row = SnapshotRecord {
            metadata: Some(extra(&[("from", "local copy")])),
            ..s3_row("a-n1-1", 1)
        };
        known("n1", none).apply(&mut row);
        assert_eq!(row.metadata, None);
    }
}

#[test]
fn a_missing_metadata_object_is_final_only_for_settled_snapshots() {
    let created = 1_700_000_000;
    let missing = known("n1", ExtraMetadata::Missing);
    assert!(missing.awaits_metadata(created, created));
    assert!(missing.awaits_metadata(created, created + METADATA_SETTLE_SECS - 1));
    assert!(!missing.awaits_metadata(created, created + METADATA_SETTLE_SECS));
    // A clock behind the name's timestamp keeps looking rather than settle early.
    assert!(missing.awaits_metadata(created, created - 60));
    for found in [
        ExtraMetadata::Found(None),
        ExtraMetadata::Found(Some(extra(&[("k", "v")]))),
    ] {
        assert!(!known("n1", found).awaits_metadata(created, created));
    }
}

#[test]
fn hits_are_applied_and_misses_keep_a_known_uploader_in_listing_order() {
    let cache = SourceCache::default();
    let (settled, young, fresh) = (
        s3_row("a-n1-1", 1),
        s3_row("b-n1-2", 2),
        s3_row("c-n1-3", 3),
    );
    let now = settled.created_unix + 60;
    let settled_extra = extra(&[("k", "v")]);
    cache.insert(
        id(&settled),
        known("n1", ExtraMetadata::Found(Some(settled_extra.clone()))),
    );
    cache.insert(id(&young), known("n2", ExtraMetadata::Missing));
    let mut records = vec![fresh.clone(), young.clone(), settled.clone()];
    let rows = HashMap::from([
        (id(&settled), vec![2]),
        (id(&fresh), vec![0]),
        (id(&young), vec![1]),
    ]);
    let misses = apply_hits(&mut records, rows, &cache, now, &HashMap::new());
    assert_eq!(records[2].metadata, Some(settled_extra));
    assert_eq!(records[2].node_name, "n1");
    assert_eq!(records[0], fresh, "misses are not touched yet");
    let order: Vec<(usize, Option<String>)> = misses
        .iter()
        .map(|m| (m.rows[0], m.source.as_ref().map(|s| s.node_name.clone())))
        .collect();
    assert_eq!(order, [(0, None), (1, Some("n2".to_string()))]);
}

#[test]
fn an_object_rewritten_under_its_name_and_size_is_read_again() {
    let cache = SourceCache::default();
    let row = s3_row("a-n1-1", 1);
    let now = row.created_unix + 60;
    let read = |etag: Option<&str>| Known {
        etag: etag.map(str::to_string),
        ..known("n1", ExtraMetadata::Found(Some(extra(&[("k", "v")]))))
    };
    let listed = |etag: &str| HashMap::from([(row.location.clone(), etag.to_string())]);
    let misses = |cached: Known, etags: &HashMap<String, String>| {
        cache.insert(id(&row), cached);
        let rows = HashMap::from([(id(&row), vec![0])]);
        let mut records = vec![row.clone()];
        apply_hits(&mut records, rows, &cache, now, etags)
    };
    // The same ETag, or one side without any (a store that did not list): a hit.
    assert!(misses(read(Some("\"1\"")), &listed("\"1\"")).is_empty());
    assert!(misses(read(None), &listed("\"1\"")).is_empty());
    assert!(misses(read(Some("\"1\"")), &HashMap::new()).is_empty());
    // Another ETag: a miss that reads the object whole again.
    let missed = misses(read(Some("\"1\"")), &listed("\"2\""));
    assert_eq!(missed.len(), 1);
    assert!(missed[0].source.is_none());
}

#[tokio::test]
async fn run_bounded_keeps_the_limit_and_the_item_order() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let items: Vec<usize> = (0..30).collect();
    let results = run_bounded(items, 8, |item| {
        let (running, peak) = (running.clone(), peak.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            // Let the other tasks start before this one finishes.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            running.fetch_sub(1, Ordering::SeqCst);
            item * 2
        }
    })
    .await;
    assert_eq!(results, (0..30).map(|i| Some(i * 2)).collect::<Vec<_>>());
    assert_eq!(peak.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn run_bounded_with_nothing_to_do_returns_nothing() {
    let results: Vec<Option<u8>> = run_bounded(Vec::<u8>::new(), 8, |b| async move { b }).await;
    assert!(results.is_empty());
}
