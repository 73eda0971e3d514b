//! HTTPS server for the snapshot API. Authenticates `server:<token>`, decodes RKE2 requests and
//! hands them to a `SnapshotHandler`; never runs snapshot logic itself.
//!
//! Routes: `POST /db/snapshot` (authenticated), `GET /metrics`, `GET /healthz` and
//! `GET /cacerts` (unauthenticated, as the CLI needs the CA before it can verify anything).
//! Error bodies are Kubernetes `Status` objects whose message is meant for the client.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth;
use super::wire::{EtcdSnapshotFileList, SnapshotRequest, SnapshotResponse, StatusBody};
use crate::telemetry::exposition;
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

/// Largest accepted request body.
const MAX_BODY: usize = 1024 * 1024;

/// What one client may take of the server: slow or numerous clients must not pin connections
/// (and file descriptors) forever, nor keep others out for longer than a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A client that has not finished its TLS handshake by then is dropped.
    pub handshake: Duration,
    /// Time to send a request's headers, and the longest an idle connection is kept.
    pub headers: Duration,
    /// Time to send a request's body once its headers are in (answered 408).
    pub body: Duration,
    /// Connections served at once; a connection beyond them is closed at once, so a client
    /// holding many idle ones delays others by one `headers` deadline at most.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            headers: Duration::from_secs(30),
            body: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

type Body = Full<Bytes>;

/// Serves until `cancel` with the default `Limits`; in-flight requests are allowed to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<ApiState>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, tls, state, cancel, Limits::default()).await
}

/// `serve` with explicit limits.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<ApiState>,
    cancel: CancellationToken,
    limits: Limits,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tracing::info!(address = %listener.local_addr()?, "snapshot API listening");
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::debug!(%peer, limit = limits.max_connections, "too many API connections; closing the new one");
                    continue;
                };
                let conn =
                    serve_connection(tcp, acceptor.clone(), state.clone(), cancel.clone(), limits);
                connections.spawn(async move {
                    if let Err(detail) = conn.await {
                        tracing::debug!(%peer, %detail, "API connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "failed to accept an API connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    tracing::info!("snapshot API stopped");
    Ok(())
}

/// One connection: TLS handshake, then HTTP/1 until the client leaves or we shut down.
async fn serve_connection(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<ApiState>,
    cancel: CancellationToken,
    limits: Limits,
) -> Result<(), String> {
    let tls = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        tls = tokio::time::timeout(limits.handshake, acceptor.accept(tcp)) => tls,
    };
    let tls = tls
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|err| format!("TLS handshake failed: {err}"))?;
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(req, &state, limits.body).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.headers);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result.map_err(|err| err.to_string()),
        _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    // Lets the request in flight (if any) complete; idle connections close at once.
    conn.await.map_err(|err| err.to_string())
}

/// Dispatches one request.
async fn route(
    req: Request<Incoming>,
    state: &ApiState,
    body_deadline: Duration,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let response = match (path.as_str(), &method) {
        ("/db/snapshot", &Method::POST) => snapshot(req, state, body_deadline).await,
        ("/metrics", &Method::GET) => {
            let accept = req.headers().get(header::ACCEPT);
            let format = exposition::negotiate(accept.and_then(|v| v.to_str().ok()));
            let body = state.metrics.render_as(format);
            text(StatusCode::OK, format.content_type(), body)
        }
        ("/healthz", &Method::GET) => text(StatusCode::OK, "text/plain", "ok".into()),
        ("/cacerts", &Method::GET) => text(
            StatusCode::OK,
            "application/x-pem-file",
            state.ca_pem.clone(),
        ),
        ("/db/snapshot", _) => method_not_allowed("POST"),
        ("/metrics" | "/healthz" | "/cacerts", _) => method_not_allowed("GET"),
        _ => status(
            StatusCode::NOT_FOUND,
            format!("the path {path} does not exist"),
        ),
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), "API request");
    response
}

/// `POST /db/snapshot`.
async fn snapshot(
    req: Request<Incoming>,
    state: &ApiState,
    body_deadline: Duration,
) -> Response<Body> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let expected = crate::token::password_part(state.token.expose_secret());
    if !auth::basic_auth_matches(authorization, "server", expected) {
        let mut response = status(
            StatusCode::UNAUTHORIZED,
            "invalid or missing credentials".into(),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"etcd-snapshot\""),
        );
        return response;
    }
    let read = Limited::new(req.into_body(), MAX_BODY).collect();
    let Ok(read) = tokio::time::timeout(body_deadline, read).await else {
        let message = format!("request body not received within {body_deadline:?}");
        let mut response = status(StatusCode::REQUEST_TIMEOUT, message);
        let close = HeaderValue::from_static("close");
        response.headers_mut().insert(header::CONNECTION, close);
        return response;
    };
    let body = match read {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            let message = format!("request body exceeds {MAX_BODY} bytes");
            return status(StatusCode::PAYLOAD_TOO_LARGE, message);
        }
        Err(err) => {
            return status(
                StatusCode::BAD_REQUEST,
                format!("failed to read request body: {err}"),
            );
        }
    };
    let request = match decode_request(&body) {
        Ok(request) => request,
        Err(message) => return status(StatusCode::BAD_REQUEST, message),
    };
    match state.handler.handle(request).await {
        Ok(HandlerReply::Snapshot(reply)) => json(StatusCode::OK, &reply),
        Ok(HandlerReply::List(list)) => json(StatusCode::OK, &list),
        Err(err) => {
            let code = StatusCode::from_u16(err.status)
                .ok()
                .filter(|c| c.is_client_error() || c.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            status(code, err.message)
        }
    }
}

/// Decodes a request body; the error is a message for the client.
fn decode_request(body: &[u8]) -> Result<SnapshotRequest, String> {
    let request: SnapshotRequest =
        serde_json::from_slice(body).map_err(|err| format!("invalid request body: {err}"))?;
    if request.operation.is_none() {
        return Err(
            "invalid request body: missing operation (save, list, prune, delete or verify)".into(),
        );
    }
    Ok(request)
}

fn text(code: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json<T: serde::Serialize>(code: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(body) => text(code, "application/json", body),
        Err(err) => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to encode reply: {err}"),
        ),
    }
}

/// A Kubernetes `Status` error response.
fn status(code: StatusCode, message: String) -> Response<Body> {
    let body = StatusBody::failure(code.as_u16(), reason(code), message);
    let encoded = serde_json::to_string(&body).unwrap_or_default();
    text(code, "application/json", encoded)
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = status(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed, use {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// The Kubernetes `StatusReason` for an HTTP code.
fn reason(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        408 => "Timeout",
        409 => "Conflict",
        413 => "RequestEntityTooLarge",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        500..=599 => "InternalError",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::Operation;

    #[test]
    fn decode_accepts_rke2_bodies_and_rejects_bad_ones() {
        let req = decode_request(br#"{"operation":"save","name":["x"],"compress":true}"#).unwrap();
        assert_eq!(req.operation, Some(Operation::Save));
        assert_eq!(req.compress, Some(true));
        let err = decode_request(br#"{"operation":"explode"}"#).unwrap_err();
        assert!(err.contains("unknown variant"), "{err}");
        let err = decode_request(b"{}").unwrap_err();
        assert!(err.contains("missing operation"), "{err}");
        let err = decode_request(b"not json").unwrap_err();
        assert!(err.starts_with("invalid request body"), "{err}");
    }

    #[test]
    fn status_body_carries_code_reason_and_message() {
        let response = status(StatusCode::CONFLICT, "busy".into());
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = response.into_body();
        let bytes = collect_body(body);
        let parsed: StatusBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, StatusBody::failure(409, "Conflict", "busy"));
    }

    fn collect_body(body: Body) -> Bytes {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async { body.collect().await.unwrap().to_bytes() })
    }
}

#[cfg(test)]
#[path = "server_fuzz.rs"]
mod fuzz;
