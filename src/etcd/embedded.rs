//! The embedded default: an `etcd` child process on loopback, supervised.
//!
//! Started when no `--etcd-endpoints` is configured. Restarted with backoff when it dies, stopped
//! cleanly on shutdown, and never left running after the server exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

/// How to run the embedded member.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub binary: PathBuf,
    /// `<data-dir>/server/db/etcd`.
    pub data_dir: PathBuf,
    /// Member name (the node name).
    pub name: String,
    pub client_address: SocketAddr,
    pub peer_address: SocketAddr,
}

/// Errors starting the embedded etcd.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("etcd binary {binary} not found (install etcd-server or pass --etcd-binary)")]
    BinaryNotFound { binary: PathBuf },
    #[error("failed to start embedded etcd")]
    Spawn(#[source] std::io::Error),
    #[error("embedded etcd did not become healthy within {seconds}s: {detail}")]
    Unhealthy { seconds: u64, detail: String },
}

/// A running, supervised embedded etcd.
#[derive(Debug)]
pub struct EmbeddedEtcd {}

impl EmbeddedEtcd {
    /// Starts etcd and waits (bounded) until it answers; supervision runs until `cancel`.
    pub async fn start(
        opts: EmbeddedOptions,
        cancel: CancellationToken,
    ) -> Result<Self, EmbeddedError> {
        let _ = (opts, cancel);
        todo!()
    }
    /// `http://<client address>`.
    pub fn endpoint(&self) -> String {
        todo!()
    }
    /// Stops etcd (SIGTERM, then SIGKILL after a grace period) and waits for it.
    pub async fn shutdown(self) {
        todo!()
    }
}
