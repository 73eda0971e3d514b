//! The server's self-signed CA and serving certificate under `<data-dir>/server/tls`.
//!
//! Files are ours alone (`etcd-snapshot-ca.crt/.key`, `etcd-snapshot-serving.crt/.key`) so that
//! running on an RKE2 node's data dir never touches RKE2's own certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors preparing TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to generate certificate")]
    Generate(#[source] rcgen::Error),
    #[error("failed to build TLS config")]
    Rustls(#[source] rustls::Error),
    #[error("invalid PEM in {path}")]
    Pem { path: PathBuf },
}

/// Serving material.
pub struct ServingTls {
    pub config: Arc<rustls::ServerConfig>,
    pub ca_pem: String,
}

/// Path of the CA the CLI trusts.
pub fn ca_path(tls_dir: &Path) -> PathBuf {
    tls_dir.join("etcd-snapshot-ca.crt")
}

/// Loads the CA and serving cert, creating them (keys 0600) when absent.
pub fn load_or_create(tls_dir: &Path) -> Result<ServingTls, TlsError> {
    let _ = tls_dir;
    todo!()
}
