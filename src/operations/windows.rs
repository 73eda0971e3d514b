//! Each local full snapshot's point-in-time window (`delta::window`), attached to its listed
//! record for `ls` and the `ETCDSnapshotFile` resources (`snapshot::point_in_time`).
//!
//! Only local copies get one: segments live beside this node's snapshot dir, and a chain is
//! known only for a snapshot with a recorded revision. Every other record loses any window
//! entry it came with. A chain that cannot be read is logged; its snapshot is listed without a
//! window rather than failing the listing. The chain dirs are read off the async runtime's
//! threads: a day of 10-second segments is thousands of names per chain.

use std::path::Path;

use crate::delta::capture::anchor_of;
use crate::delta::chain::Anchor;
use crate::delta::window::window_beside;
use crate::snapshot::point_in_time::{self, PointInTime};
use crate::snapshot::{SnapshotRecord, Storage};

/// Sets the window of every record (none for S3 copies and snapshots without a chain).
pub(super) async fn attach_windows(snapshot_dir: &Path, records: &mut [SnapshotRecord]) {
    let anchors: Vec<Option<Anchor>> = records
        .iter()
        .map(|r| {
            (r.storage == Storage::Local)
                .then(|| anchor_of(r))
                .flatten()
        })
        .collect();
    let dir = snapshot_dir.to_path_buf();
    let read = move || -> Vec<Option<PointInTime>> {
        let window = |anchor: Anchor| window_of(&dir, &anchor);
        anchors.into_iter().map(|a| a.and_then(window)).collect()
    };
    let windows = tokio::task::spawn_blocking(read).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "failed to read the delta chains' windows; snapshots are listed without them");
        Vec::new()
    });
    for (i, record) in records.iter_mut().enumerate() {
        point_in_time::set(record, windows.get(i).copied().flatten().as_ref());
    }
}

/// One snapshot's window; a chain that cannot be read is logged and has none.
fn window_of(snapshot_dir: &Path, anchor: &Anchor) -> Option<PointInTime> {
    window_beside(snapshot_dir, anchor).unwrap_or_else(|e| {
        let error = crate::errors::error_chain(&e);
        tracing::warn!(snapshot = %anchor.file_name, %error, "failed to read the delta chain's window; the snapshot is listed without it");
        None
    })
}
