//! Connecting to etcd with optional TLS/mTLS from `--etcd-cafile/--etcd-certfile/--etcd-keyfile`.

use crate::config::EtcdSettings;

/// Errors connecting to etcd.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("failed to read etcd TLS file {path}")]
    ReadTls {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to connect to etcd at {endpoints}")]
    Connect {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
}

/// Connects to the configured endpoints (or the embedded member) and checks it answers.
pub async fn connect(settings: &EtcdSettings) -> Result<etcd_client::Client, ConnectError> {
    let _ = settings;
    todo!()
}
