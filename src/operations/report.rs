//! What the operations report: the domain results of save, list, delete, prune, verify and
//! reconcile, and the planned request `Operations::run` takes. They know nothing of the wire;
//! `api::wire` turns them into RKE2's `SnapshotResponse` and `ETCDSnapshotFileList`.

use crate::snapshot::retention::Verdict;
use crate::snapshot::{SnapshotRecord, Storage};

/// What a save did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveOutcome {
    pub created: Vec<String>,
    /// Removed by retention after a scheduled save.
    pub deleted: Vec<String>,
    /// Parts that failed although the snapshot itself was kept.
    pub failed: Vec<FailedItem>,
}

/// What a delete did, per requested name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteReport {
    /// Names deleted from at least one place.
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
    pub failed: Vec<FailedItem>,
    /// Every copy removed.
    pub removed: Vec<Removal>,
}

/// One copy delete or retention removed (or would remove, in a dry run), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub name: String,
    /// A local path or `s3://bucket/key`.
    pub location: String,
    /// Why retention chose it; absent for an explicit delete.
    pub reason: Option<String>,
    /// The delta chain that went (or would go) with a local full snapshot.
    pub chain: Option<ChainRemoval>,
}

/// A full snapshot's delta chain, removed with it (`delta::retention`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRemoval {
    /// The chain dir.
    pub location: String,
    pub segments: usize,
    pub bytes: u64,
}

impl From<crate::delta::retention::ChainSummary> for ChainRemoval {
    fn from(summary: crate::delta::retention::ChainSummary) -> Self {
        ChainRemoval {
            location: summary.path.display().to_string(),
            segments: summary.segments,
            bytes: summary.bytes,
        }
    }
}

/// One thing that did not work inside an otherwise successful operation (or a store a listing
/// could not reach): what, and the error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedItem {
    pub name: String,
    pub message: String,
}

/// A request's operation, planned and validated by the caller (`api::request::plan_request`
/// for the API, the subcommand for the direct-mode CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedOperation {
    Save,
    List,
    Delete {
        names: Vec<String>,
    },
    Prune {
        dry_run: bool,
    },
    /// Restore drills of these snapshots' copies (this node's copies when empty).
    Verify {
        names: Vec<String>,
    },
}

/// What `Operations::run` did, per operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Saved(SaveOutcome),
    Listed(Listing),
    Deleted(DeleteReport),
    Pruned(PruneReport),
    Verified(VerifyReport),
}

/// What `verify` did: one drill per copy, in listing order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyReport {
    pub drills: Vec<crate::restore::drill::DrillReport>,
    /// Asked names no listed copy has.
    pub not_found: Vec<String>,
    /// Copies no verdict was reached or recorded for, and stores that could not be listed.
    pub failed: Vec<FailedItem>,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PruneReport {
    /// Names removed from at least one place, each once, oldest first.
    pub deleted: Vec<String>,
    pub removals: Vec<Removal>,
    pub failed: Vec<FailedItem>,
    /// Every snapshot retention considered, per store, newest first.
    pub verdicts: Vec<CopyVerdict>,
}

/// Retention's verdict on one copy, and which store holds it where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyVerdict {
    pub storage: Storage,
    /// A local path or `s3://bucket/key`.
    pub location: String,
    pub verdict: Verdict,
}

impl PruneReport {
    pub(super) fn add(&mut self, removal: Removal) {
        if !self.deleted.contains(&removal.name) {
            self.deleted.push(removal.name.clone());
        }
        self.removals.push(removal);
    }
}

/// What a listing found: every copy, plus the stores that could not be listed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub records: Vec<SnapshotRecord>,
    pub failed: Vec<FailedItem>,
    /// The public S3 settings listed items carry as `spec.s3` (None when S3 is off).
    pub s3: Option<crate::kube::resources::S3Spec>,
}

/// What a reconcile pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcileReport {
    /// Local snapshots uploaded because S3 lacked them.
    pub uploaded: Vec<String>,
    pub failed: Vec<FailedItem>,
}
