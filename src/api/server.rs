//! HTTPS server for the snapshot API. Authenticates `server:<token>`, decodes RKE2 requests and
//! hands them to a `SnapshotHandler`; never runs snapshot logic itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::wire::{EtcdSnapshotFileList, SnapshotRequest, SnapshotResponse};
use crate::telemetry::metrics::Metrics;

/// A successful reply.
#[derive(Debug, Clone)]
pub enum HandlerReply {
    Snapshot(SnapshotResponse),
    List(EtcdSnapshotFileList),
}

/// A failed request: HTTP status and a message safe to show to the client.
#[derive(Debug, Clone)]
pub struct HandlerError {
    pub status: u16,
    pub message: String,
}

/// Boxed future returned by handlers.
pub type HandlerFuture<'a> =
    Pin<Box<dyn Future<Output = Result<HandlerReply, HandlerError>> + Send + 'a>>;

/// Runs snapshot operations for the API.
pub trait SnapshotHandler: Send + Sync + 'static {
    fn handle(&self, request: SnapshotRequest) -> HandlerFuture<'_>;
}

/// Everything the server needs.
pub struct ApiState {
    pub token: SecretString,
    pub handler: Arc<dyn SnapshotHandler>,
    pub metrics: Arc<Metrics>,
    /// PEM of the serving CA, returned by `GET /cacerts`.
    pub ca_pem: String,
}

/// Serves until `cancel`; in-flight requests are allowed to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<ApiState>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let _ = (listener, tls, state, cancel);
    todo!()
}
