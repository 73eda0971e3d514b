//! What each operation's report looks like on the wire: RKE2's `SnapshotResponse` and
//! `ETCDSnapshotFileList`, with our additive fields (`failed`, `removed`). Pure conversions, used
//! alike by the API handler and the direct-mode CLI.

use super::{DeleteReport, Listing, PruneReport, SaveOutcome};
use crate::api::wire::{EtcdSnapshotFileList, SnapshotResponse};

impl From<SaveOutcome> for SnapshotResponse {
    fn from(outcome: SaveOutcome) -> Self {
        SnapshotResponse {
            created: outcome.created,
            deleted: outcome.deleted,
            failed: outcome.failed,
            ..Default::default()
        }
    }
}

impl From<DeleteReport> for SnapshotResponse {
    fn from(report: DeleteReport) -> Self {
        SnapshotResponse {
            deleted: report.deleted,
            failed: report.failed,
            removed: report.removed,
            ..Default::default()
        }
    }
}

impl From<PruneReport> for SnapshotResponse {
    fn from(report: PruneReport) -> Self {
        SnapshotResponse {
            deleted: report.deleted,
            failed: report.failed,
            removed: report.removals,
            verdicts: report.verdicts,
            ..Default::default()
        }
    }
}

impl From<Listing> for EtcdSnapshotFileList {
    fn from(listing: Listing) -> Self {
        let mut list = EtcdSnapshotFileList::new(
            listing
                .records
                .iter()
                .map(|r| r.to_snapshot_file())
                .collect(),
        );
        list.failed = listing.failed;
        list
    }
}
