//! The CLI's client for the snapshot API: one HTTPS request, basic auth `server:<token>`.

use std::path::PathBuf;

use secrecy::SecretString;

use super::wire::{EtcdSnapshotFileList, SnapshotRequest, SnapshotResponse};

/// Errors talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there: the CLI may fall back to direct mode.
    #[error("no snapshot server answers at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server at {url} rejected the token (401 Unauthorized)")]
    Unauthorized { url: String },
    #[error("the server at {url} answered {status}: {message}")]
    Server {
        url: String,
        status: u16,
        message: String,
    },
    #[error("failed to talk to the snapshot server at {url}: {detail}")]
    Protocol { url: String, detail: String },
}

/// A decoded reply.
#[derive(Debug, Clone)]
pub enum ClientReply {
    Snapshot(SnapshotResponse),
    List(EtcdSnapshotFileList),
}

/// Client for one server URL.
pub struct ApiClient {
    pub url: String,
    pub token: SecretString,
    /// CA to trust; when absent or unreadable the server's `/cacerts` is fetched first.
    pub ca_file: Option<PathBuf>,
    pub timeout: std::time::Duration,
}

impl ApiClient {
    /// Sends one request.
    pub async fn send(&self, request: &SnapshotRequest) -> Result<ClientReply, ClientError> {
        let _ = request;
        todo!()
    }
}
