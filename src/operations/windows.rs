//! Each local full snapshot's point-in-time window (`delta::window`), attached to its listed
//! record for `ls` and the `ETCDSnapshotFile` resources (`snapshot::point_in_time`).
//!
//! Only local copies get one: segments live beside this node's snapshot dir, and a chain is
//! known only for a snapshot with a recorded revision. Every other record loses any window
//! entry it came with. A chain that cannot be read is logged; its snapshot is listed without a
//! window rather than failing the listing.

use crate::delta::capture::anchor_of;
use crate::delta::window::window_beside;
use crate::snapshot::point_in_time;
use crate::snapshot::{SnapshotRecord, Storage};

/// Sets the window of every record (none for S3 copies and snapshots without a chain).
pub(super) fn attach_windows(snapshot_dir: &std::path::Path, records: &mut [SnapshotRecord]) {
    for record in records.iter_mut() {
        let anchor = (record.storage == Storage::Local)
            .then(|| anchor_of(record))
            .flatten();
        let window = anchor.and_then(|anchor| match window_beside(snapshot_dir, &anchor) {
            Ok(window) => window,
            Err(e) => {
                let error = crate::errors::error_chain(&e);
                tracing::warn!(snapshot = %anchor.file_name, %error, "failed to read the delta chain's window; the snapshot is listed without it");
                None
            }
        });
        point_in_time::set(record, window.as_ref());
    }
}
