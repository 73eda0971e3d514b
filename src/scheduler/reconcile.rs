//! The reconcile loop: every `etcd-snapshot-reconcile-interval` (and shortly after start) it
//! makes S3 catch up with the local snapshot dir, so an upload that failed during an outage is
//! made up without anyone running a command, and brings the `ETCDSnapshotFile` resources in
//! line with the stores (a snapshot file removed by hand loses its resource here).
//!
//! It follows config changes like the cron loop: the interval, and S3 being switched on or off,
//! take effect without a restart. A failed pass is logged and retried on the next one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Resolved;
use crate::errors::error_chain;
use crate::operations::Operations;

/// The first pass comes soon after start: a failure from before a restart is made up quickly,
/// without delaying startup itself.
const FIRST_PASS_DELAY: Duration = Duration::from_secs(5);

/// Runs until `cancel`.
pub async fn run(
    ops: Arc<Operations>,
    mut config: watch::Receiver<Arc<Resolved>>,
    cancel: CancellationToken,
) {
    let mut wait = FIRST_PASS_DELAY;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
                // S3 may just have been switched on: look soon, then settle on the interval.
                wait = FIRST_PASS_DELAY;
                continue;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        let current = Arc::clone(&config.borrow_and_update());
        wait = current.config.snapshot.reconcile_interval;
        let pass = ops.reconcile(&current.config);
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            result = pass => result,
        };
        if ops.resources_awaiting_first_sync() {
            // The apiserver or the CRD was not ready: try again soon, as RKE2 does at start.
            wait = FIRST_PASS_DELAY;
        }
        match result {
            Ok(report) => {
                for name in &report.uploaded {
                    tracing::info!(snapshot = %name, "reconcile copied a missing snapshot to S3");
                }
                for failed in &report.failed {
                    tracing::warn!(snapshot = %failed.name, error = %failed.message, "reconcile could not copy a snapshot to S3; retrying on the next pass");
                }
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "snapshot reconcile failed; retrying on the next pass")
            }
        }
    }
}
