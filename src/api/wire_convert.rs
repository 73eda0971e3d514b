//! The edge: the operations' reports and the stores' records as RKE2's wire shapes
//! (`SnapshotResponse`, `ETCDSnapshotFileList`, `ETCDSnapshotFile`), with our additive fields
//! (`failed`, `removed`). Pure conversions, used alike by the API handler and the direct-mode
//! CLI; the domain types below them know nothing of the wire.

use super::{
    DrillCheck, DrillVerdictWire, EtcdSnapshotError, EtcdSnapshotFile, EtcdSnapshotFileList,
    EtcdSnapshotSpec, EtcdSnapshotStatus, FailedItem, ObjectMeta, RemovedChain, RemovedCopy,
    RetentionVerdict, SnapshotResponse,
};
use crate::api::client::ClientReply;
use crate::api::server::HandlerReply;
use crate::operations::{
    self, CopyVerdict, DeleteReport, Listing, PruneReport, Removal, SaveOutcome, VerifyReport,
};
use crate::restore::drill::DrillReport;
use crate::snapshot::record::rfc3339;
use crate::snapshot::{SnapshotRecord, Storage};

impl SnapshotRecord {
    /// The `ETCDSnapshotFile` RKE2's `list` returns for this record.
    pub fn to_snapshot_file(&self) -> EtcdSnapshotFile {
        EtcdSnapshotFile {
            api_version: "k3s.cattle.io/v1".into(),
            kind: "ETCDSnapshotFile".into(),
            metadata: ObjectMeta {
                name: self.list_key(),
                ..Default::default()
            },
            spec: EtcdSnapshotSpec {
                snapshot_name: self.file_name.clone(),
                node_name: self.node_name.clone(),
                location: self.location.clone(),
                metadata: self.user_metadata(),
                s3: None,
            },
            status: EtcdSnapshotStatus {
                size: Some(self.size.to_string()),
                creation_time: Some(self.created_rfc3339()),
                ready_to_use: Some(self.ready),
                error: self.error.as_ref().map(|message| EtcdSnapshotError {
                    time: Some(self.created_rfc3339()),
                    message: Some(message.clone()),
                }),
                verification: None,
                point_in_time: None,
            },
        }
    }
}

impl From<operations::FailedItem> for FailedItem {
    fn from(item: operations::FailedItem) -> Self {
        FailedItem {
            name: item.name,
            message: item.message,
        }
    }
}

impl From<Removal> for RemovedCopy {
    fn from(removal: Removal) -> Self {
        RemovedCopy {
            name: removal.name,
            location: removal.location,
            reason: removal.reason,
            delta_chain: removal.chain.map(|chain| RemovedChain {
                location: chain.location,
                segments: chain.segments as u64,
                bytes: chain.bytes,
            }),
        }
    }
}

/// A copy's verdict as `prune` reports it.
impl From<CopyVerdict> for RetentionVerdict {
    fn from(copy: CopyVerdict) -> Self {
        let verdict = copy.verdict;
        RetentionVerdict {
            storage: match copy.storage {
                Storage::Local => "local",
                Storage::S3 => "s3",
            }
            .into(),
            location: copy.location,
            created: rfc3339(verdict.created_unix),
            action: if verdict.keep { "keep" } else { "remove" }.into(),
            rule: verdict.rule.code().into(),
            reason: verdict.rule.to_string(),
            name: verdict.file_name,
        }
    }
}

/// A drill as `verify` reports it.
impl From<DrillReport> for DrillVerdictWire {
    fn from(d: DrillReport) -> Self {
        DrillVerdictWire {
            reason: operations::drill_reason(&d),
            storage: match d.storage {
                Storage::Local => "local",
                Storage::S3 => "s3",
            }
            .into(),
            result: d.result.word().into(),
            duration_seconds: d.duration_secs,
            checks: d
                .checks
                .into_iter()
                .map(|c| DrillCheck {
                    name: c.name,
                    ok: c.ok,
                    detail: c.detail,
                })
                .collect(),
            name: d.name,
            location: d.location,
        }
    }
}

impl From<VerifyReport> for SnapshotResponse {
    fn from(report: VerifyReport) -> Self {
        SnapshotResponse {
            drills: wire(report.drills),
            not_found: report.not_found,
            failed: wire(report.failed),
            ..Default::default()
        }
    }
}

fn wire<T, W: From<T>>(items: Vec<T>) -> Vec<W> {
    items.into_iter().map(W::from).collect()
}

impl From<SaveOutcome> for SnapshotResponse {
    fn from(outcome: SaveOutcome) -> Self {
        SnapshotResponse {
            created: outcome.created,
            deleted: outcome.deleted,
            failed: wire(outcome.failed),
            ..Default::default()
        }
    }
}

impl From<DeleteReport> for SnapshotResponse {
    fn from(report: DeleteReport) -> Self {
        SnapshotResponse {
            deleted: report.deleted,
            failed: wire(report.failed),
            removed: wire(report.removed),
            ..Default::default()
        }
    }
}

impl From<PruneReport> for SnapshotResponse {
    fn from(report: PruneReport) -> Self {
        SnapshotResponse {
            deleted: report.deleted,
            failed: wire(report.failed),
            removed: wire(report.removals),
            verdicts: wire(report.verdicts),
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
                .map(|r| super::list::list_item(r, listing.s3.as_ref()))
                .collect(),
        );
        list.failed = wire(listing.failed);
        list
    }
}

/// An operation's report as the API server sends it.
impl From<operations::Report> for HandlerReply {
    fn from(report: operations::Report) -> Self {
        match report {
            operations::Report::Listed(listing) => HandlerReply::List(listing.into()),
            other => HandlerReply::Snapshot(response(other)),
        }
    }
}

/// An operation's report run in this process, as the CLI would have received it.
impl From<operations::Report> for ClientReply {
    fn from(report: operations::Report) -> Self {
        match report {
            operations::Report::Listed(listing) => ClientReply::List(listing.into()),
            other => ClientReply::Snapshot(response(other)),
        }
    }
}

/// The `SnapshotResponse` of a save, delete or prune (a listing has none: empty).
fn response(report: operations::Report) -> SnapshotResponse {
    match report {
        operations::Report::Saved(outcome) => outcome.into(),
        operations::Report::Deleted(report) => report.into(),
        operations::Report::Pruned(report) => report.into(),
        operations::Report::Verified(report) => report.into(),
        operations::Report::Listed(_) => SnapshotResponse::default(),
    }
}
