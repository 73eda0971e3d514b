//! The API's `SnapshotHandler`: evaluates the config engine afresh with the request's layer on
//! top, then runs the operation. This is where a request meets the server's merged config.

use std::sync::Arc;

use crate::api::request::{PlannedOperation, plan_request};
use crate::api::server::{HandlerError, HandlerFuture, HandlerReply, SnapshotHandler};
use crate::api::wire::{EtcdSnapshotFileList, SnapshotRequest, SnapshotResponse};
use crate::config::ConfigEngine;
use crate::operations::{OperationError, Operations, SaveKind, error_chain};

/// Serves `POST /db/snapshot` with the shared `Operations`.
pub struct RequestHandler {
    pub engine: ConfigEngine,
    pub operations: Arc<Operations>,
}

impl SnapshotHandler for RequestHandler {
    fn handle(&self, request: SnapshotRequest) -> HandlerFuture<'_> {
        Box::pin(self.serve(request))
    }
}

impl RequestHandler {
    async fn serve(&self, request: SnapshotRequest) -> Result<HandlerReply, HandlerError> {
        let (operation, layer) = plan_request(&request).map_err(|e| bad_request(e.to_string()))?;
        let resolved = self
            .engine
            .evaluate(Some(&layer))
            .map_err(|errors| bad_request(errors.to_string().trim_end().to_string()))?;
        let config = &resolved.config;
        let ops = &self.operations;
        match operation {
            PlannedOperation::Save => {
                let outcome = ops
                    .save(config, SaveKind::OnDemand)
                    .await
                    .map_err(operation_failed)?;
                Ok(HandlerReply::Snapshot(SnapshotResponse {
                    created: outcome.created,
                    deleted: outcome.deleted,
                    failed: outcome.failed,
                }))
            }
            PlannedOperation::List => {
                let records = ops.list(config).await.map_err(operation_failed)?;
                let items = records.iter().map(|r| r.to_snapshot_file()).collect();
                Ok(HandlerReply::List(EtcdSnapshotFileList::new(items)))
            }
            PlannedOperation::Delete { names } => {
                let report = ops.delete(config, &names).await.map_err(operation_failed)?;
                Ok(HandlerReply::Snapshot(SnapshotResponse {
                    deleted: report.deleted,
                    failed: report.failed,
                    ..Default::default()
                }))
            }
            PlannedOperation::Prune { dry_run } => {
                let deleted = ops.prune(config, dry_run).await.map_err(operation_failed)?;
                Ok(HandlerReply::Snapshot(SnapshotResponse {
                    deleted,
                    ..Default::default()
                }))
            }
        }
    }
}

fn bad_request(message: String) -> HandlerError {
    HandlerError {
        status: 400,
        message,
    }
}

fn operation_failed(error: OperationError) -> HandlerError {
    let message = error_chain(&error);
    tracing::error!(error = %message, "snapshot request failed");
    HandlerError {
        status: if error.is_bad_request() { 400 } else { 500 },
        message,
    }
}
