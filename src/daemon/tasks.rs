//! The server's long-running tasks, started once etcd is up: config hot reload, the scheduler
//! (saves, and restore drills on their own schedule), the delta capture and the full snapshots
//! it asks for, the CRD install, the S3 startup check, resource reconciling, certificate renewal
//! and the API itself. All run on the daemon's tracker and stop on its cancel token.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::RequestHandler;
use super::startup::{Api, Node};
use crate::api::server::{ApiState, serve};
use crate::config::{ConfigEngine, Resolved};
use crate::errors::error_chain;

/// Spawns every task; `resolved` is the configuration in force now.
pub(super) fn spawn_all(
    engine: ConfigEngine,
    resolved: Resolved,
    node: &Node,
    api: Api,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) {
    let config = resolved.config.clone();
    let operations = &node.operations;
    let (config_tx, config_rx) = watch::channel(Arc::new(resolved));
    tracker.spawn(crate::config::watch::run(
        engine.clone(),
        config_tx,
        cancel.clone(),
    ));
    tracker.spawn(crate::scheduler::run(
        Arc::clone(operations),
        config_rx.clone(),
        tracker.clone(),
        cancel.clone(),
    ));
    {
        let operations = Arc::clone(operations);
        let install = config.install_crd;
        tracker.spawn(async move { operations.install_resource_definition(install).await });
    }
    if config.s3.is_some() {
        tracker.spawn(super::check_s3_at_startup(
            Arc::clone(operations),
            config.clone(),
        ));
    }
    tracker.spawn(crate::scheduler::drills::run(
        Arc::clone(operations),
        config_rx.clone(),
        tracker.clone(),
        cancel.clone(),
    ));
    spawn_delta(node, &config_rx, tracker, cancel);
    tracker.spawn(crate::scheduler::reconcile::run(
        Arc::clone(operations),
        config_rx.clone(),
        cancel.clone(),
    ));
    let state = Arc::new(ApiState {
        token: node.token.clone(),
        handler: Arc::new(RequestHandler {
            engine,
            operations: Arc::clone(operations),
            last_good: config_rx.clone(),
            tracker: tracker.clone(),
            cancel: cancel.clone(),
        }),
        metrics: Arc::clone(&node.metrics),
        ca_pem: api.serving.ca_pem.clone(),
    });
    tracker.spawn(crate::api::tls_live::keep_renewed(
        config.tls_dir(),
        api.serving_names,
        Arc::clone(&api.serving.live),
        cancel.clone(),
    ));
    let api_cancel = cancel.clone();
    let (listener, serving) = (api.listener, api.serving.config);
    tracker.spawn(async move {
        if let Err(e) = serve(listener, serving, state, api_cancel).await {
            tracing::error!(error = %error_chain(&e), "snapshot API server stopped");
        }
    });
}

/// The delta capture, the full snapshots it asks for to anchor its chains, and the segment
/// uploader to S3. The first two idle while `etcd-snapshot-delta` is off. A SQLite datastore has no etcd to watch: neither runs.
fn spawn_delta(
    node: &Node,
    config_rx: &watch::Receiver<Arc<Resolved>>,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) {
    let sqlite = crate::datastore::select(&config_rx.borrow().config)
        .sqlite_path()
        .is_some();
    if sqlite {
        tracing::info!("delta capture watches etcd: not started for a SQLite datastore");
        return;
    }
    let (reanchor_tx, reanchor_rx) = tokio::sync::mpsc::channel(1);
    tracker.spawn(crate::delta::capture::run(
        config_rx.clone(),
        Arc::clone(&node.metrics),
        node.operations.kube().clone(),
        reanchor_tx,
        cancel.clone(),
    ));
    tracker.spawn(crate::scheduler::reanchor::run(
        Arc::clone(&node.operations),
        config_rx.clone(),
        reanchor_rx,
        tracker.clone(),
        cancel.clone(),
    ));
    // Copies published segments to S3 (a pass does nothing while S3 is off).
    tracker.spawn(crate::scheduler::segments::run(
        Arc::clone(&node.operations),
        config_rx.clone(),
        cancel.clone(),
    ));
}
