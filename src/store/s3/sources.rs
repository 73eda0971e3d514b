//! Who uploaded each listed S3 snapshot: the `Rke2-Node-Name` and `Rke2-Token-Hash` user
//! metadata of the objects, filled into listing rows for the `ETCDSnapshotFile` resources.
//!
//! `S3Store::list` makes no request per object; `fill_sources` adds one HeadObject for each
//! object it has not seen before and remembers the answer in a `SourceCache`, so a periodic
//! reconcile costs HEADs only for new uploads. The values depend on the object alone, so every
//! node derives the same resource for the same object. This file never lists, deletes or
//! decides what a resource looks like (`kube::resources` does), and one object failing never
//! fails the call.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::JoinSet;

use super::error::S3Error;
use super::keys::{KeyLayout, location};
use super::store::{META_NODE_NAME, META_TOKEN_HASH, S3_NODE_NAME, S3Store};
use crate::snapshot::{SnapshotRecord, Storage};

/// The most HeadObject requests one `fill_sources` call has in flight: enough to hide the
/// round-trip time on a first listing of a large folder, few enough not to get throttled.
pub const MAX_IN_FLIGHT: usize = 8;

/// The uploader of one object, as the resources need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `Rke2-Node-Name`, or `s3` when the object has none (or an empty one).
    pub node_name: String,
    /// `Rke2-Token-Hash`; `None` when absent or empty (our uploads without a known token write
    /// an empty value, and an empty annotation would say nothing).
    pub token_hash: Option<String>,
}

impl Source {
    /// From HeadObject's user metadata. S3 returns the keys lower-cased; the match ignores case
    /// so a server that keeps RKE2's spelling reads the same.
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Self {
        let field = |wanted: &str| {
            metadata
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| value.as_str())
                .filter(|value| !value.is_empty())
        };
        Self {
            node_name: field(META_NODE_NAME).unwrap_or(S3_NODE_NAME).to_string(),
            token_hash: field(META_TOKEN_HASH).map(str::to_string),
        }
    }

    fn apply(&self, record: &mut SnapshotRecord) {
        record.node_name = self.node_name.clone();
        record.token_hash = self.token_hash.clone();
    }
}

/// What the cache keys on. Objects are immutable under their name in practice (names embed the
/// creation time), so location + listed size + created time identify one upload; a re-upload
/// that changes the size is a new entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjectId {
    location: String,
    size: u64,
    created_unix: i64,
}

/// Remembers each object's uploader metadata across listings, so only new objects cost a
/// HeadObject. Clones share one map. Bounded: every `fill_sources` call forgets the objects its
/// rows no longer list, so one cache should follow one store's listings (a caller listing two
/// stores keeps two caches).
#[derive(Debug, Clone, Default)]
pub struct SourceCache {
    entries: Arc<Mutex<HashMap<ObjectId, Source>>>,
}

impl SourceCache {
    /// How many objects are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    // Every change is one map operation, so a panic elsewhere cannot leave the map half
    // updated: a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectId, Source>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, id: &ObjectId) -> Option<Source> {
        self.lock().get(id).cloned()
    }

    fn insert(&self, id: ObjectId, source: Source) {
        self.lock().insert(id, source);
    }

    /// Forgets every object not in `listed`.
    fn retain_listed(&self, listed: &HashSet<ObjectId>) {
        self.lock().retain(|id, _| listed.contains(id));
    }
}

impl S3Store {
    /// Fills `node_name` (from `Rke2-Node-Name`; `s3` when absent or empty) and `token_hash`
    /// (from `Rke2-Token-Hash`; `None` when absent or empty) of this store's listed S3 rows in
    /// `records`, with a HeadObject only for objects not in `cache`, at most `MAX_IN_FLIGHT` at
    /// once. Local rows, failure rows and rows of another bucket or folder are left alone. A
    /// HeadObject that fails (e.g. the object was deleted since the listing) leaves the row as
    /// listed, is not remembered, and is returned as (file name, error); it never fails the call.
    pub async fn fill_sources(
        &self,
        records: &mut [SnapshotRecord],
        cache: &SourceCache,
    ) -> Vec<(String, S3Error)> {
        let bucket = &self.client().bucket;
        // Rows per object: a listing holds each object once, but a merged one might not.
        let mut rows: HashMap<ObjectId, Vec<usize>> = HashMap::new();
        for (index, record) in records.iter().enumerate() {
            if let Some(id) = object_id(record, bucket, self.layout()) {
                rows.entry(id).or_default().push(index);
            }
        }
        cache.retain_listed(&rows.keys().cloned().collect());
        let mut misses = Vec::new();
        for (id, indices) in rows {
            match cache.get(&id) {
                Some(source) => indices.iter().for_each(|&i| source.apply(&mut records[i])),
                None => misses.push((id, indices)),
            }
        }
        // Oldest first, so errors come back in listing order.
        misses.sort_by_key(|(_, indices)| indices[0]);
        let keys: Vec<String> = misses
            .iter()
            .map(|(_, indices)| self.layout().object_key(&records[indices[0]].file_name))
            .collect();
        let heads = run_bounded(keys, MAX_IN_FLIGHT, |key| {
            let store = self.clone();
            async move { store.head(&key).await }
        })
        .await;
        let mut errors = Vec::new();
        for ((id, indices), head) in misses.into_iter().zip(heads) {
            match head {
                Ok(metadata) => {
                    let source = Source::from_metadata(&metadata);
                    indices.iter().for_each(|&i| source.apply(&mut records[i]));
                    cache.insert(id, source);
                }
                Err(e) => errors.push((records[indices[0]].file_name.clone(), e)),
            }
        }
        errors
    }
}

/// The cache key of `record` when it is a listed object of this bucket and folder: an S3 row
/// that is ready (failure rows stand for uploads that never happened) and whose location is
/// where this layout puts its name.
fn object_id(record: &SnapshotRecord, bucket: &str, layout: &KeyLayout) -> Option<ObjectId> {
    let ours = record.storage == Storage::S3
        && record.ready
        && record.location == location(bucket, &layout.object_key(&record.file_name));
    ours.then(|| ObjectId {
        location: record.location.clone(),
        size: record.size,
        created_unix: record.created_unix,
    })
}

/// Runs `work` on every item, at most `limit` at a time, and returns the results in item
/// order. Tasks are spawned only as slots free up, so a large first listing does not park
/// thousands of tasks; dropping the future aborts the ones running. A panicking task panics
/// the caller, as it would have without the spawn.
async fn run_bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, work: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    let mut running = JoinSet::new();
    let mut collect = |joined: Result<(usize, R), tokio::task::JoinError>| match joined {
        Ok((index, result)) => results[index] = Some(result),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    for (index, item) in items.into_iter().enumerate() {
        if running.len() >= limit.max(1)
            && let Some(joined) = running.join_next().await
        {
            collect(joined);
        }
        let task = work(item);
        running.spawn(async move { (index, task.await) });
    }
    while let Some(joined) = running.join_next().await {
        collect(joined);
    }
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
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
        cache.insert(id(&a), source("n1"));
        cache.insert(id(&b), source("n2"));
        let clone = cache.clone();
        clone.insert(id(&c), source("n3"));
        assert_eq!(cache.len(), 3);

        cache.retain_listed(&HashSet::from([id(&b), id(&c)]));
        assert_eq!(clone.len(), 2);
        assert_eq!(cache.get(&id(&a)), None);
        assert_eq!(cache.get(&id(&b)), Some(source("n2")));

        cache.retain_listed(&HashSet::new());
        assert!(clone.is_empty());
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
        assert_eq!(results, (0..30).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 8);
    }

    #[tokio::test]
    async fn run_bounded_with_nothing_to_do_returns_nothing() {
        let results: Vec<u8> = run_bounded(Vec::<u8>::new(), 8, |b| async move { b }).await;
        assert!(results.is_empty());
    }
}
