//! The server's startup steps before etcd runs, in the order `daemon::run` takes them: claim
//! this node's data dir (the lifetime lock, the token, the snapshot dir's leftovers), then the
//! API port and its TLS material. Each step fails with the `DaemonError` that names what could
//! not be claimed; nothing here starts a task.

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::SecretString;
use tokio::net::TcpListener;

use super::DaemonError;
use crate::api::tls::{self, ServingTls};
use crate::config::DesiredConfig;
use crate::kube::KubeAccess;
use crate::operations::Operations;
use crate::telemetry::metrics::Metrics;
use crate::token::load_or_create_server_token;

/// What the server holds for its whole life once it owns the data dir.
pub(super) struct Node {
    /// Held until exit: a restore, reset or rollback refuses to run meanwhile, and a second
    /// server on the same data dir refuses to start.
    _lock: File,
    /// A reset-flag was on disk at startup (cleared once the member runs).
    pub reset_flag_found: bool,
    pub token: SecretString,
    pub metrics: Arc<Metrics>,
    pub operations: Arc<Operations>,
}

/// Takes the data dir's lifetime lock, loads (or creates) the token and clears the snapshot
/// dir's stale temp files.
pub(super) async fn claim_node(
    config: &DesiredConfig,
    kube: KubeAccess,
) -> Result<Node, DaemonError> {
    let lock = config.server_lock_path();
    let lock = match crate::fsutil::try_lock_exclusive(&lock) {
        Ok(Some(file)) => file,
        Ok(None) => return Err(DaemonError::AlreadyRunning { lock }),
        Err(source) => return Err(DaemonError::Lock { lock, source }),
    };
    let reset_flag_found = crate::restore::reset_flag::reset_flag_path(&config.data_dir).exists();
    let token = load_or_create_server_token(config).map_err(DaemonError::Token)?;
    crate::child::mask::remember_token(&token);
    let metrics = Arc::new(Metrics::new());
    let operations = Arc::new(Operations::new(Arc::clone(&metrics)).with_kube(kube));
    operations
        .clean_temp_files(config)
        .await
        .map_err(DaemonError::SnapshotDir)?;
    Ok(Node {
        _lock: lock,
        reset_flag_found,
        token,
        metrics,
        operations,
    })
}

/// The API's bound port and the TLS it serves with.
pub(super) struct Api {
    pub serving_names: Vec<String>,
    pub serving: ServingTls,
    pub address: SocketAddr,
    pub listener: TcpListener,
}

/// Loads (or creates) the serving certificate for the configured names and binds the port.
pub(super) async fn bind_api(config: &DesiredConfig) -> Result<Api, DaemonError> {
    let serving_names = tls::serving_names(config.api.bind_address, &config.api.tls_san);
    let serving =
        tls::load_or_create_for(&config.tls_dir(), &serving_names).map_err(DaemonError::Tls)?;
    let address = SocketAddr::new(config.api.bind_address, config.api.supervisor_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| DaemonError::Bind { address, source })?;
    Ok(Api {
        serving_names,
        serving,
        address,
        listener,
    })
}
