//! Integration tests: api. A real `serve()` on 127.0.0.1:0 with TLS from `load_or_create`, a
//! small in-test `SnapshotHandler`, and the real `ApiClient`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_snapshot::api::client::{ApiClient, ClientError, ClientReply};
use etcd_snapshot::api::server::{
    ApiState, HandlerError, HandlerFuture, HandlerReply, SnapshotHandler, serve,
};
use etcd_snapshot::api::tls;
use etcd_snapshot::api::wire::{
    EtcdSnapshotFile, EtcdSnapshotFileList, EtcdSnapshotSpec, EtcdSnapshotStatus, ObjectMeta,
    Operation, SnapshotRequest, SnapshotResponse,
};
use etcd_snapshot::telemetry::metrics::{Metrics, Status};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Saves "succeed" with a name derived from the request; delete fails with 409.
struct TestHandler;

impl SnapshotHandler for TestHandler {
    fn handle(&self, request: SnapshotRequest) -> HandlerFuture<'_> {
        Box::pin(async move {
            match request.operation {
                Some(Operation::Save) => {
                    let base = request.name.unwrap_or_default().join(",");
                    Ok(HandlerReply::Snapshot(SnapshotResponse {
                        created: vec![format!("{base}-node1-1700000000")],
                        ..Default::default()
                    }))
                }
                Some(Operation::List) => {
                    Ok(HandlerReply::List(EtcdSnapshotFileList::new(vec![listed(
                        "on-demand-node1-1700000000",
                    )])))
                }
                _ => Err(HandlerError {
                    status: 409,
                    message: "another snapshot operation is running".into(),
                }),
            }
        })
    }
}

fn listed(name: &str) -> EtcdSnapshotFile {
    EtcdSnapshotFile {
        api_version: "k3s.cattle.io/v1".into(),
        kind: "ETCDSnapshotFile".into(),
        metadata: ObjectMeta {
            name: format!("local-{name}"),
            ..Default::default()
        },
        spec: EtcdSnapshotSpec {
            snapshot_name: name.into(),
            node_name: "node1".into(),
            location: format!("file:///snapshots/{name}"),
            ..Default::default()
        },
        status: EtcdSnapshotStatus {
            size: Some("1024".into()),
            ready_to_use: Some(true),
            ..Default::default()
        },
    }
}

struct Server {
    url: String,
    ca_file: PathBuf,
    ca_pem: String,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(Arc::new(TestHandler)).await
    }

    async fn start_with(handler: Arc<dyn SnapshotHandler>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("tls");
        let material = tls::load_or_create(&tls_dir).unwrap();
        let metrics = Arc::new(Metrics::new());
        let state = Arc::new(ApiState {
            token: SecretString::from(TOKEN),
            handler,
            metrics: metrics.clone(),
            ca_pem: material.ca_pem.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, material.config, state, cancel.clone()));
        Self {
            url,
            ca_file: tls::ca_path(&tls_dir),
            ca_pem: material.ca_pem,
            metrics,
            cancel,
            task,
            _dir: dir,
        }
    }

    fn client(&self, token: &str, ca_file: Option<PathBuf>) -> ApiClient {
        ApiClient {
            url: self.url.clone(),
            token: SecretString::from(token.to_owned()),
            ca_file,
            timeout: Duration::from_secs(10),
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve() returns after cancel");
        result.unwrap().unwrap();
    }
}

fn request(operation: Operation) -> SnapshotRequest {
    SnapshotRequest {
        operation: Some(operation),
        name: (operation == Operation::Save).then(|| vec!["on-demand".into()]),
        ..Default::default()
    }
}

#[tokio::test]
async fn save_and_list_round_trip() {
    let server = Server::start().await;
    let client = server.client(TOKEN, Some(server.ca_file.clone()));
    match client.send(&request(Operation::Save)).await.unwrap() {
        ClientReply::Snapshot(reply) => {
            assert_eq!(reply.created, vec!["on-demand-node1-1700000000"]);
            assert!(reply.deleted.is_empty());
        }
        other => panic!("expected a snapshot reply, got {other:?}"),
    }
    match client.send(&request(Operation::List)).await.unwrap() {
        ClientReply::List(list) => {
            assert_eq!(
                list,
                EtcdSnapshotFileList::new(vec![listed("on-demand-node1-1700000000")])
            );
        }
        other => panic!("expected a list reply, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let server = Server::start().await;
    let client = server.client("not-the-token", Some(server.ca_file.clone()));
    let err = client.send(&request(Operation::Save)).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err:?}");
    assert!(!format!("{err:?}{err}").contains("not-the-token"));
    server.stop().await;
}

#[tokio::test]
async fn handler_error_reaches_the_client() {
    let server = Server::start().await;
    let client = server.client(TOKEN, Some(server.ca_file.clone()));
    match client.send(&request(Operation::Delete)).await.unwrap_err() {
        ClientError::Server {
            status, message, ..
        } => {
            assert_eq!(status, 409);
            assert_eq!(message, "another snapshot operation is running");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    // A request without an operation is rejected before the handler sees it.
    let err = client.send(&SnapshotRequest::default()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Server { status: 400, message, .. } if message.contains("operation")),
        "{err:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn client_without_ca_file_bootstraps_from_cacerts_only_when_the_token_pins_it() {
    let server = Server::start().await;
    // A bare token pins nothing: the server is not trusted on first use.
    let client = server.client(TOKEN, None);
    let err = client.send(&request(Operation::Save)).await.unwrap_err();
    assert!(matches!(&err, ClientError::Untrusted { .. }), "{err:?}");
    let reply = server.client(TOKEN, Some(server.ca_file.clone()));
    let reply = reply.send(&request(Operation::Save)).await.unwrap();
    assert!(matches!(reply, ClientReply::Snapshot(_)));
    // A configured CA file that cannot be read is never replaced by an unverified download.
    let client = server.client(TOKEN, Some(PathBuf::from("/nonexistent/ca.crt")));
    let err = client.send(&request(Operation::Save)).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Protocol { detail, .. } if detail.contains("cannot verify the server")),
        "{err:?}"
    );
    // A full K10 token pins the downloaded CA by its sha256.
    let hash: String = Sha256::digest(server.ca_pem.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let pinned = server.client(&format!("K10{hash}::server:{TOKEN}"), None);
    assert!(pinned.send(&request(Operation::Save)).await.is_ok());
    let wrong = server.client(&format!("K10{}::server:{TOKEN}", "0".repeat(64)), None);
    let err = wrong.send(&request(Operation::Save)).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Protocol { detail, .. } if detail.contains("CA hash")),
        "{err:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = ApiClient {
        url,
        token: SecretString::from(TOKEN),
        ca_file: None,
        timeout: Duration::from_secs(5),
    };
    let err = client.send(&request(Operation::List)).await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn unauthenticated_endpoints_answer() {
    let server = Server::start().await;
    server.metrics.observe_save(Status::Success, 0.5);
    let client = server.client("", Some(server.ca_file.clone()));
    let (status, body) = client.fetch("/healthz").await.unwrap();
    assert_eq!((status, body.as_ref()), (200, b"ok".as_ref()));
    let (status, body) = client.fetch("/metrics").await.unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains("etcd_snapshot_save_duration_seconds_count{status=\"success\"} 1"),
        "{text}"
    );
    let (status, body) = client.fetch("/cacerts").await.unwrap();
    assert_eq!((status, body.as_ref()), (200, server.ca_pem.as_bytes()));
    assert_eq!(client.fetch("/nope").await.unwrap().0, 404);
    assert_eq!(client.fetch("/db/snapshot").await.unwrap().0, 405);
    server.stop().await;
}

/// Blocks prune until released, to observe shutdown with a request in flight.
struct GateHandler {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl SnapshotHandler for GateHandler {
    fn handle(&self, _request: SnapshotRequest) -> HandlerFuture<'_> {
        Box::pin(async move {
            self.entered.notify_one();
            self.release.notified().await;
            Ok(HandlerReply::Snapshot(SnapshotResponse {
                deleted: vec!["old".into()],
                ..Default::default()
            }))
        })
    }
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let handler = GateHandler {
        entered: entered.clone(),
        release: release.clone(),
    };
    let server = Server::start_with(Arc::new(handler)).await;
    let client = server.client(TOKEN, Some(server.ca_file.clone()));
    let in_flight = tokio::spawn(async move { client.send(&request(Operation::Prune)).await });
    tokio::time::timeout(Duration::from_secs(10), entered.notified())
        .await
        .expect("the handler is reached");
    server.cancel.cancel();
    // New connections are refused once the listener is gone, while the old request waits.
    let late = server.client(TOKEN, Some(server.ca_file.clone()));
    tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(
            late.fetch("/healthz").await,
            Err(ClientError::Unreachable { .. })
        ) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the listener closes after cancel");
    assert!(
        !server.task.is_finished(),
        "serve() waits for the request in flight"
    );
    release.notify_one();
    let reply = in_flight.await.unwrap().unwrap();
    assert!(matches!(reply, ClientReply::Snapshot(r) if r.deleted == vec!["old"]));
    server.stop().await;
}
