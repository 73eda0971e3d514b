//! The segment uploader: every `etcd-snapshot-delta-period` it runs one upload pass
//! (`Operations::upload_segments`), which copies the published delta segments S3 lacks. The
//! same pass is the backfill: segments left behind by an outage, a restart or S3 being switched
//! on later go on the first pass that reaches S3.
//!
//! It follows config changes: a change drops the S3 session and what was known to be in the
//! bucket (maybe another bucket now). A pass that finds S3 off or no segments does nothing. A
//! failed pass is logged and retried on the next one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Resolved;
use crate::operations::{Operations, SegmentsInS3};

/// The shortest wait between passes, whatever the period.
const SHORTEST_WAIT: Duration = Duration::from_secs(1);

/// Runs until `cancel`.
pub async fn run(
    ops: Arc<Operations>,
    mut config: watch::Receiver<Arc<Resolved>>,
    cancel: CancellationToken,
) {
    let mut state = SegmentsInS3::default();
    loop {
        let current = Arc::clone(&config.borrow_and_update());
        let wait = current.config.snapshot.delta.period.max(SHORTEST_WAIT);
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
                state.reset();
                continue;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        let pass = ops.upload_segments(&current.config, &mut state);
        let report = tokio::select! {
            _ = cancel.cancelled() => return,
            report = pass => report,
        };
        if !report.uploaded.is_empty() {
            tracing::debug!(
                uploaded = report.uploaded.len(),
                pending = report.pending,
                "delta segments uploaded to S3"
            );
        }
        for failed in &report.failed {
            tracing::warn!(what = %failed.name, error = %failed.message, pending = report.pending, "delta segment upload pass failed; retrying on the next pass");
        }
    }
}
