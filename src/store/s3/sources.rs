//! Who uploaded each listed S3 snapshot and what extra metadata it was saved with: the
//! `Rke2-Node-Name` and `Rke2-Token-Hash` user metadata of the objects and the
//! `<folder>/.metadata/<name>` object, filled into listing rows for the `ETCDSnapshotFile`
//! resources.
//!
//! `S3Store::list` makes no request per object; `fill_sources` adds one HeadObject and one
//! GetObject of the metadata object for each object it has not seen before, and remembers the
//! answers in a `SourceCache`, so a periodic reconcile costs requests only for new uploads. The
//! values depend on the objects alone, so every node derives the same resource for the same
//! object. This file never lists, deletes or decides what a resource looks like
//! (`kube::resources` does), and one object failing never fails the call.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::JoinSet;

use super::error::S3Error;
use super::keys::{KeyLayout, location};
use super::metadata::ExtraMetadata;
use super::store::{META_NODE_NAME, META_TOKEN_HASH, S3_NODE_NAME, S3Store};
use crate::snapshot::{SnapshotRecord, Storage};

/// The most objects one `fill_sources` call reads at once (a HeadObject and a GetObject each,
/// so twice as many requests): enough to hide the round-trip time on a first listing of a large
/// folder, few enough not to get throttled.
pub const MAX_IN_FLIGHT: usize = 8;

/// How long after a snapshot's time (the timestamp in its name) a missing metadata object is
/// still looked for on every pass. A save uploads the metadata object just after the snapshot
/// object, so a listing can see the snapshot a moment before its metadata; remembering that
/// absence would leave this node without the metadata for as long as the object is listed.
/// Older snapshots without one were saved without extra metadata: their absence is final.
pub const METADATA_SETTLE_SECS: i64 = 15 * 60;

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

/// Everything read about one object.
#[derive(Debug, Clone, PartialEq)]
struct Known {
    source: Source,
    extra: ExtraMetadata,
    /// The object's ETag in the listing it was read after (None when that store had not
    /// listed it). Names embed the creation time, but an object can still be rewritten under
    /// its name: `rekey` re-encrypts it, often at the same size, and rewrites its `.metadata`
    /// record. A listing with another ETag makes the entry stale.
    etag: Option<String>,
}

impl Known {
    /// Overwrites the row's uploader and metadata with the object's, even when the row already
    /// carried metadata: a row's own copy (e.g. this node's local file) may differ from what
    /// was uploaded (a metadata upload that failed), and only the object is the same on every
    /// node, so a pre-filled row never skips the read.
    fn apply(&self, record: &mut SnapshotRecord) {
        record.node_name = self.source.node_name.clone();
        record.token_hash = self.source.token_hash.clone();
        record.metadata = self.extra.map().cloned();
    }

    /// False when both this entry and the current listing have an ETag and they differ: the
    /// object was rewritten since it was read. Pure.
    fn is_current(&self, listed: Option<&str>) -> bool {
        match (self.etag.as_deref(), listed) {
            (Some(read), Some(listed)) => read == listed,
            _ => true,
        }
    }

    /// True when the metadata must be read again on the next pass (see `METADATA_SETTLE_SECS`).
    fn awaits_metadata(&self, created_unix: i64, now_unix: i64) -> bool {
        self.extra == ExtraMetadata::Missing && now_unix - created_unix < METADATA_SETTLE_SECS
    }
}

/// Remembers each object's uploader and extra metadata across listings, so only new objects
/// cost requests. Clones share one map. Bounded: every `fill_sources` call forgets the objects
/// its rows no longer list, so one cache should follow one store's listings (a caller listing
/// two stores keeps two caches).
#[derive(Debug, Clone, Default)]
pub struct SourceCache {
    entries: Arc<Mutex<HashMap<ObjectId, Known>>>,
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
    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectId, Known>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, id: &ObjectId) -> Option<Known> {
        self.lock().get(id).cloned()
    }

    fn insert(&self, id: ObjectId, known: Known) {
        self.lock().insert(id, known);
    }

    /// Forgets what was read about the object at `location` (its `.metadata` object was just
    /// rewritten, e.g. with a drill verdict), so the next listing reads it again.
    pub fn forget(&self, location: &str) {
        self.lock().retain(|id, _| id.location != location);
    }

    /// Forgets every object not in `listed`.
    fn retain_listed(&self, listed: &HashSet<ObjectId>) {
        self.lock().retain(|id, _| listed.contains(id));
    }
}

/// What one object still needs: both reads, or only its metadata when the uploader is known.
struct Miss {
    id: ObjectId,
    rows: Vec<usize>,
    source: Option<Source>,
}

/// Splits the listed objects into cache hits (applied to their rows at once) and misses, in
/// listing order so errors come back in that order. `etags` are the listing's, by location.
fn apply_hits(
    records: &mut [SnapshotRecord],
    rows: HashMap<ObjectId, Vec<usize>>,
    cache: &SourceCache,
    now_unix: i64,
    etags: &HashMap<String, String>,
) -> Vec<Miss> {
    let mut misses = Vec::new();
    for (id, indices) in rows {
        let listed = etags.get(&id.location).map(String::as_str);
        match cache.get(&id) {
            Some(known)
                if !known.awaits_metadata(id.created_unix, now_unix)
                    && known.is_current(listed) =>
            {
                indices.iter().for_each(|&i| known.apply(&mut records[i]));
            }
            known => misses.push(Miss {
                id,
                rows: indices,
                // A rewritten object is read whole again; one awaiting its metadata keeps the
                // uploader already read.
                source: known.filter(|k| k.is_current(listed)).map(|k| k.source),
            }),
        }
    }
    misses.sort_by_key(|miss| miss.rows[0]);
    misses
}

impl S3Store {
    /// Fills `node_name` (from `Rke2-Node-Name`; `s3` when absent or empty), `token_hash` (from
    /// `Rke2-Token-Hash`; `None` when absent or empty) and `metadata` (from the
    /// `<folder>/.metadata/<name>` object; `None` when there is none, it is invalid or it is over
    /// `MAX_METADATA_BYTES`) of this
    /// store's listed S3 rows in `records`. Objects not in `cache` cost a HeadObject and a
    /// GetObject, at most `MAX_IN_FLIGHT` objects at once. Local rows, failure rows and rows of
    /// another bucket or folder are left alone. A read that fails (e.g. the object was deleted
    /// since the listing) leaves the row as listed, is not remembered, and is returned as (file
    /// name, error); it never fails the call.
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
        let etags = self
            .listed_etags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let now = chrono::Utc::now().timestamp();
        let misses = apply_hits(records, rows, cache, now, &etags);
        let work: Vec<(String, Option<Source>)> = misses
            .iter()
            .map(|miss| (records[miss.rows[0]].file_name.clone(), miss.source.clone()))
            .collect();
        let reads = run_bounded(work, MAX_IN_FLIGHT, |(name, source)| {
            let store = self.clone();
            async move { store.read_object(&name, source).await }
        })
        .await;
        let mut errors = Vec::new();
        for (miss, read) in misses.into_iter().zip(reads) {
            let name = records[miss.rows[0]].file_name.clone();
            match read {
                Some(Ok(mut known)) => {
                    known.etag = etags.get(&miss.id.location).cloned();
                    miss.rows.iter().for_each(|&i| known.apply(&mut records[i]));
                    cache.insert(miss.id, known);
                }
                Some(Err(e)) => errors.push((name, e)),
                None => errors.push((name, S3Error::Settings("the read was cancelled".into()))),
            }
        }
        errors
    }

    /// The uploader (HeadObject, unless already `known`) and extra metadata (GetObject) of
    /// snapshot `name`, both requests at once; the first failure cancels the other.
    async fn read_object(&self, name: &str, known: Option<Source>) -> Result<Known, S3Error> {
        let (source, extra) = match known {
            Some(source) => (source, self.read_extra_metadata(name).await?),
            None => {
                let key = self.layout().object_key(name);
                let (head, extra) =
                    tokio::try_join!(self.head(&key), self.read_extra_metadata(name))?;
                (Source::from_metadata(&head), extra)
            }
        };
        Ok(Known {
            source,
            extra,
            etag: None,
        })
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
/// order, `None` for a task that was cancelled (the runtime shutting down). Tasks are spawned
/// only as slots free up, so a large first listing does not park thousands of tasks; dropping
/// the future aborts the ones running. A panicking task panics the caller, as it would have
/// without the spawn.
async fn run_bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, work: F) -> Vec<Option<R>>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    let mut running = JoinSet::new();
    let mut collect = |joined: Result<(usize, R), tokio::task::JoinError>| match joined {
        Ok((index, result)) => results[index] = Some(result),
        Err(e) => {
            if let Ok(panic) = e.try_into_panic() {
                std::panic::resume_unwind(panic)
            }
        }
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
    results
}

#[cfg(test)]
#[path = "sources_tests.rs"]
mod tests;
