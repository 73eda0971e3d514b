//! `etcd-snapshot server`: wires the long-running tasks together and owns shutdown.
//!
//! Start order: token, snapshot dir hygiene, embedded etcd (when no endpoint is configured), TLS
//! and the API listener, config watcher, scheduler. Shutdown (first SIGTERM/SIGINT): stop taking
//! work, let a running snapshot and in-flight requests finish, then stop the embedded etcd. A
//! second signal aborts at once.

pub mod handler;
mod startup;
mod tasks;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::tls::TlsError;
use crate::config::{ConfigEngine, DesiredConfig, Resolved};
use crate::errors::error_chain;
use crate::etcd::embedded::{EmbeddedError, EmbeddedEtcd, EmbeddedOptions};
use crate::kube::{KubeAccess, KubeError};
use crate::operations::{OperationError, Operations};
use crate::restore::reset::{self, ResetOutcome};
use crate::restore::{ResetError, RestoreError};
use crate::token::TokenError;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("failed to set up Kubernetes access")]
    Kube(#[source] KubeError),
    #[error("failed to load the server token")]
    Token(#[source] TokenError),
    #[error("failed to prepare the snapshot dir")]
    SnapshotDir(#[source] OperationError),
    #[error("failed to start the embedded etcd")]
    Embedded(#[source] EmbeddedError),
    #[error("failed to prepare the API's TLS certificates")]
    Tls(#[source] TlsError),
    #[error("failed to listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("aborted by a second shutdown signal while work was still running")]
    Aborted,
    #[error("stopped by a shutdown signal while the embedded etcd was starting")]
    StoppedWhileStarting,
    #[error("cluster reset failed")]
    Reset(#[source] ResetError),
    #[error("another etcd-snapshot server runs with this data dir (it holds {lock})")]
    AlreadyRunning { lock: std::path::PathBuf },
    #[error("failed to lock {lock}")]
    Lock {
        lock: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the server until a shutdown signal; `resolved` is the engine's first evaluation.
pub async fn run(engine: ConfigEngine, resolved: Resolved) -> Result<(), DaemonError> {
    for warning in &resolved.warnings {
        tracing::warn!("{warning}");
    }
    let config = resolved.config.clone();
    if let Some(outcome) = cluster_reset_if_asked(&config).await? {
        for line in reset::report_lines(&config, &outcome) {
            tracing::info!("{line}");
        }
        return Ok(());
    }
    // Before anything is created: a kubeconfig that cannot be loaded is a misconfiguration.
    let kube = kube_access(&config).await?;
    let node = startup::claim_node(&config, kube).await?;
    // Claim the API port before starting etcd: a port clash should not start and stop a member.
    let api = startup::bind_api(&config).await?;
    // Signals are taken from here on: one that arrives while etcd starts stops the start (the
    // half-started member is killed with it), and one during the rest of the startup is
    // handled as a normal shutdown once the server runs.
    let mut signals = Signals::take()?;
    let etcd_cancel = CancellationToken::new();
    let embedded = tokio::select! {
        started = start_etcd(&config, etcd_cancel.clone()) => started?,
        _ = signals.next() => return Err(DaemonError::StoppedWhileStarting),
    };
    if embedded.is_some() {
        // A normal start after a reset: the member runs, so the reset is complete.
        if node.reset_flag_found {
            reset::clear_reset_flag(&config);
        }
        sync_bootstrap(&config, &node.token).await;
    }

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let address = api.address;
    tasks::spawn_all(engine, resolved, &node, api, &tracker, &cancel);
    tracing::info!(
        node = %config.node_name,
        api = %address,
        etcd = %config.etcd.client_endpoints().join(","),
        snapshot_dir = %config.snapshot.dir.display(),
        schedule = %config.snapshot.schedule,
        scheduled_snapshots = !config.snapshot.disabled,
        "etcd-snapshot server started"
    );

    let signal = signals.next().await;
    tracing::info!("received {signal}; finishing running work before exit");
    cancel.cancel();
    tracker.close();
    tokio::select! {
        _ = tracker.wait() => {}
        _ = signals.next() => return Err(DaemonError::Aborted),
    }
    if let Some(etcd) = embedded {
        etcd_cancel.cancel();
        etcd.shutdown().await;
    }
    tracing::info!("etcd-snapshot server stopped");
    Ok(())
}

/// SIGTERM and SIGINT, taken together: both mean "shut down".
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn take() -> Result<Self, DaemonError> {
        let term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
        let int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
        Ok(Self { term, int })
    }

    /// Waits for the next of either; its name, for the log.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// `--cluster-reset`: resets (and restores) instead of serving; the caller exits afterwards.
/// `--cluster-reset-restore-path` alone is refused, as RKE2 does (and so is
/// `--cluster-reset-restore-to`).
async fn cluster_reset_if_asked(
    config: &DesiredConfig,
) -> Result<Option<ResetOutcome>, DaemonError> {
    let asked = &config.reset;
    if !asked.cluster_reset {
        if asked.restore_path.is_some() {
            return Err(DaemonError::Reset(
                RestoreError::RestorePathWithoutReset.into(),
            ));
        }
        if asked.restore_to.is_some() {
            return Err(DaemonError::Reset(
                RestoreError::RestoreToWithoutReset.into(),
            ));
        }
        return Ok(None);
    }
    tracing::info!(restore_path = ?asked.restore_path, restore_to = ?asked.restore_to, "cluster reset requested");
    reset::cluster_reset(config, asked.restore_path.as_deref())
        .await
        .map(Some)
        .map_err(DaemonError::Reset)
}

/// Says at once whether the configured bucket is usable (missing bucket, denied credentials,
/// bad CA, unreachable endpoint), instead of at the first snapshot. Not fatal: snapshots are
/// still taken locally and uploaded once S3 works.
async fn check_s3_at_startup(operations: Arc<Operations>, config: DesiredConfig) {
    match operations.check_s3(&config).await {
        None => {}
        Some(Ok(bucket)) => tracing::info!(%bucket, "S3 bucket reachable"),
        Some(Err(e)) => tracing::error!(
            error = %error_chain(&e),
            "S3 is not usable; snapshots are kept locally and copied once it works"
        ),
    }
}

/// Kubernetes access, said once: where it comes from, or that Kubernetes features are off.
/// An explicit kubeconfig that cannot be loaded stops the server: it is a misconfiguration.
async fn kube_access(config: &DesiredConfig) -> Result<KubeAccess, DaemonError> {
    let access = KubeAccess::from_config(config)
        .await
        .map_err(DaemonError::Kube)?;
    let secret = config
        .s3
        .as_ref()
        .and_then(|s3| s3.config_secret.as_deref());
    match (access.is_enabled(), secret) {
        (true, _) => tracing::info!(from = %access.origin(), "Kubernetes API access configured"),
        (false, None) => tracing::info!(
            "Kubernetes features are off: no --kubeconfig, KUBECONFIG or pod service account"
        ),
        (false, Some(name)) => tracing::error!(
            secret = %name,
            "etcd-s3-config-secret is set but there is no Kubernetes access (--kubeconfig, KUBECONFIG or a pod service account): S3 copies will fail until there is"
        ),
    }
    Ok(access)
}

/// Keeps the cluster's bootstrap files (when this node has any) in etcd, encrypted with the
/// token, so every snapshot carries them. Failure only warns: snapshots still work, and the
/// next save tries again.
async fn sync_bootstrap(config: &DesiredConfig, token: &secrecy::SecretString) {
    if let Err(e) = crate::bootstrap::sync::sync_from_disk(config, token).await {
        tracing::warn!(error = %error_chain(&e), "failed to store the bootstrap data in etcd");
    }
}

/// Starts the embedded etcd when no endpoint is configured; otherwise checks the configured one
/// answers (a warning only: etcd may come up after us).
async fn start_etcd(
    config: &DesiredConfig,
    cancel: CancellationToken,
) -> Result<Option<EmbeddedEtcd>, DaemonError> {
    let etcd = &config.etcd;
    if etcd.is_embedded() {
        let options = EmbeddedOptions {
            binary: etcd.binary.clone(),
            data_dir: config.etcd_data_dir(),
            tls_dir: config.server_dir().join("tls").join("etcd"),
            name: config.node_name.clone(),
            client_address: etcd.client_address,
            peer_address: etcd.peer_address,
            join: etcd.join_endpoint.clone(),
            initial_cluster: None,
        };
        tracing::info!(binary = %options.binary.display(), data_dir = %options.data_dir.display(), "starting embedded etcd");
        let embedded = EmbeddedEtcd::start(options, cancel)
            .await
            .map_err(DaemonError::Embedded)?;
        return Ok(Some(embedded));
    }
    if let Err(e) = crate::etcd::client::connect(etcd).await {
        tracing::warn!(error = %error_chain(&e), "etcd is not reachable yet; snapshots will fail until it is");
    }
    Ok(None)
}
