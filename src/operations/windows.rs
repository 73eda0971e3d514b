//! Each full snapshot's point-in-time window (`delta::window`), attached to its listed record
//! for `ls` and the `ETCDSnapshotFile` resources (`snapshot::point_in_time`).
//!
//! A local copy's window comes from its chain dir beside this node's snapshot dir. An S3 copy's
//! comes from its chain's objects in the bucket (listed once per listing, `S3Chains`), with the
//! time of its end from this node's record of the same chain when that record describes exactly
//! that end. A chain is known only for a snapshot with a recorded revision; every other record
//! loses any window entry it came with. A chain that cannot be read is logged; its snapshot is
//! listed without a window rather than failing the listing. The chain dirs are read off the
//! async runtime's threads: a day of 10-second segments is thousands of names per chain.

use std::collections::BTreeMap;
use std::path::Path;

use crate::delta::capture::anchor_of;
use crate::delta::chain::Anchor;
use crate::delta::window::{record_beside, remote_window, window_beside};
use crate::snapshot::point_in_time::{self, PointInTime};
use crate::snapshot::{SnapshotRecord, Storage};
use crate::store::s3::S3Store;
use crate::store::s3::deltas::ChainObject;

/// The bucket's chains by anchor name, as `S3Store::list_chains` gives them.
pub(super) type S3Chains = BTreeMap<String, Vec<ChainObject>>;

/// The bucket's chains for the S3 copies' windows; None (logged) when they cannot be listed,
/// so those copies are listed without windows. Not listed at all when no S3 copy in `records`
/// could anchor a chain (none has a recorded revision): the chains folder can hold tens of
/// thousands of segment objects.
pub(super) async fn list_s3_chains(
    store: &S3Store,
    records: &[SnapshotRecord],
) -> Option<S3Chains> {
    if !records.iter().any(|r| s3_anchor(r).is_some()) {
        return None;
    }
    match store.list_chains().await {
        Ok(chains) => Some(chains),
        Err(e) => {
            let error = crate::errors::error_chain(&e);
            tracing::warn!(%error, "failed to list the delta chains in S3; S3 copies are listed without their point-in-time windows");
            None
        }
    }
}

/// The anchor of an S3 copy that is there (a failed upload's row may carry the local copy's
/// metadata).
fn s3_anchor(record: &SnapshotRecord) -> Option<Anchor> {
    (record.storage == Storage::S3 && record.ready)
        .then(|| anchor_of(record))
        .flatten()
}

/// What one record's window is read from.
enum Source {
    None,
    Local(Anchor),
    /// The S3 copy's anchor and the names of its chain's objects.
    S3(Anchor, Vec<String>),
}

/// Sets the window of every record: local copies from their chain dirs, S3 copies from
/// `s3_chains` when given (none without it, and none for snapshots without a chain).
pub(super) async fn attach_windows(
    snapshot_dir: &Path,
    records: &mut [SnapshotRecord],
    s3_chains: Option<&S3Chains>,
) {
    let sources: Vec<Source> = records
        .iter()
        .map(|r| match (r.storage, anchor_of(r)) {
            (Storage::Local, Some(anchor)) => Source::Local(anchor),
            (Storage::S3, Some(anchor)) if r.ready => {
                match s3_chains.and_then(|c| c.get(&r.file_name)) {
                    Some(objects) => {
                        let names = objects.iter().map(|o| o.name.clone()).collect();
                        Source::S3(anchor, names)
                    }
                    None => Source::None,
                }
            }
            _ => Source::None,
        })
        .collect();
    let dir = snapshot_dir.to_path_buf();
    let read = move || -> Vec<Option<PointInTime>> {
        sources
            .into_iter()
            .map(|source| match source {
                Source::None => None,
                Source::Local(anchor) => window_of(&dir, &anchor),
                Source::S3(anchor, names) => {
                    let record = record_beside(&dir, &anchor);
                    let names = names.iter().map(String::as_str);
                    Some(remote_window(&anchor, names, record.as_ref()))
                }
            })
            .collect()
    };
    let windows = tokio::task::spawn_blocking(read).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "failed to read the delta chains' windows; snapshots are listed without them");
        Vec::new()
    });
    for (i, record) in records.iter_mut().enumerate() {
        point_in_time::set(record, windows.get(i).copied().flatten().as_ref());
    }
}

/// One local snapshot's window; a chain that cannot be read is logged and has none.
fn window_of(snapshot_dir: &Path, anchor: &Anchor) -> Option<PointInTime> {
    window_beside(snapshot_dir, anchor).unwrap_or_else(|e| {
        let error = crate::errors::error_chain(&e);
        tracing::warn!(snapshot = %anchor.file_name, %error, "failed to read the delta chain's window; the snapshot is listed without it");
        None
    })
}
