//! Full snapshots the delta capture asks for (`delta::capture::ReanchorRequest`): when it has
//! no full snapshot to chain from, or etcd compacted past its chain. Taken like a scheduled
//! snapshot (base `etcd-snapshot-name`, retention afterwards) on the daemon's tracker, so
//! shutdown lets it finish. A request that arrives while any save runs is dropped: that save
//! anchors the next chain, and the capture asks again if none appears.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Resolved;
use crate::delta::capture::ReanchorRequest;
use crate::errors::error_chain;
use crate::operations::{Operations, SaveKind};

/// Runs until `cancel` or until the capture's sender is gone.
pub async fn run(
    ops: Arc<Operations>,
    config: watch::Receiver<Arc<Resolved>>,
    mut requests: mpsc::Receiver<ReanchorRequest>,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => return,
            request = requests.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let guard = match ops.try_begin_write() {
            Some(guard) => guard,
            None if ops.save_running() => {
                tracing::info!(reason = ?request, "a snapshot is already running; it anchors the next delta chain");
                continue;
            }
            // A brief writer (reconcile, backfill, a drill's verdict): wait for it.
            None => tokio::select! {
                _ = cancel.cancelled() => return,
                guard = ops.begin_write() => guard,
            },
        };
        let current = Arc::clone(&config.borrow());
        let ops = Arc::clone(&ops);
        tracing::info!(reason = ?request, "taking a full snapshot to anchor the delta chain");
        tracker.spawn(async move {
            if let Err(e) = ops
                .save_locked(&current.config, SaveKind::Scheduled, guard)
                .await
            {
                tracing::error!(error = %error_chain(&e), "failed to take the full snapshot the delta chain needs");
            }
        });
    }
}
