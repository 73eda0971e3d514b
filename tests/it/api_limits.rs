//! Integration tests: the API server's limits against slow and numerous clients. A real
//! `serve_with()` on 127.0.0.1:0 with short deadlines, raw TCP and TLS clients that stall.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_snapshot::api::server::{
    ApiState, HandlerFuture, HandlerReply, Limits, SnapshotHandler, serve_with,
};
use etcd_snapshot::api::tls;
use etcd_snapshot::api::wire::{SnapshotRequest, SnapshotResponse};
use etcd_snapshot::telemetry::metrics::Metrics;
use secrecy::SecretString;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::api_hardening::connect_to;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const DEADLINE: Duration = Duration::from_secs(1);

/// Every request succeeds at once.
struct Ok200;

impl SnapshotHandler for Ok200 {
    fn handle(&self, _: SnapshotRequest) -> HandlerFuture<'_> {
        Box::pin(async { Ok(HandlerReply::Snapshot(SnapshotResponse::default())) })
    }
}

/// Starts a server with one-second deadlines and `max_connections`; returns its port, the
/// CA file and what keeps it alive.
async fn start(dir: &Path, max_connections: usize) -> (u16, std::path::PathBuf, CancellationToken) {
    let tls_dir = dir.join("tls");
    let material = tls::load_or_create(&tls_dir).unwrap();
    let state = Arc::new(ApiState {
        token: SecretString::from(TOKEN),
        handler: Arc::new(Ok200),
        metrics: Arc::new(Metrics::new()),
        ca_pem: material.ca_pem.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cancel = CancellationToken::new();
    let limits = Limits {
        handshake: DEADLINE,
        headers: DEADLINE,
        body: DEADLINE,
        max_connections,
    };
    tokio::spawn(serve_with(
        listener,
        material.config,
        state,
        cancel.clone(),
        limits,
    ));
    (port, tls::ca_path(&tls_dir), cancel)
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
/// Fails if it is still open after `within`.
async fn until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> (String, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "the connection is still open after {within:?}"
    );
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

/// `GET /healthz` on a fresh connection; the status line.
async fn healthz(port: u16, ca: &Path) -> String {
    let mut tls = connect_to(port, ca).await.expect("connect");
    let request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    tls.write_all(request.as_bytes()).await.unwrap();
    let (reply, _) = until_closed(&mut tls, Duration::from_secs(5)).await;
    reply.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_within_the_deadline_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca, _cancel) = start(dir.path(), 16).await;
    let limit = DEADLINE * 4;

    // No TLS handshake at all.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // Headers that never end.
    let mut slow_headers = connect_to(port, &ca).await.unwrap();
    slow_headers
        .write_all(b"POST /db/snapshot HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A body that never completes (10 of 100 bytes).
    let mut slow_body = connect_to(port, &ca).await.unwrap();
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("server:{TOKEN}")
        )
    );
    let head = format!(
        "POST /db/snapshot HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 100\r\n\r\n{{\"operati"
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    // An idle connection that never sends a request.
    let mut idle = connect_to(port, &ca).await.unwrap();

    // Meanwhile everyone else is served at once.
    assert_eq!(healthz(port, &ca).await, "HTTP/1.1 200 OK");

    let (_, took) = until_closed(&mut silent, limit).await;
    assert!(took <= limit, "{took:?}");
    until_closed(&mut slow_headers, limit).await;
    let (reply, _) = until_closed(&mut slow_body, limit).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        reply.contains("request body not received within"),
        "{reply}"
    );
    until_closed(&mut idle, limit).await;
    assert_eq!(healthz(port, &ca).await, "HTTP/1.1 200 OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_and_the_cap_frees_up() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca, _cancel) = start(dir.path(), 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect_to(port, &ca).await.unwrap());
    }
    // A third is closed at once: its handshake fails well before any deadline.
    let started = Instant::now();
    let third = connect_to(port, &ca).await;
    assert!(third.is_err(), "a connection beyond the cap was served");
    assert!(started.elapsed() < DEADLINE, "{:?}", started.elapsed());
    // The held ones are idle, so the server drops them within the deadline; then it serves.
    for stream in &mut held {
        until_closed(stream, DEADLINE * 4).await;
    }
    // The server frees a slot when it has finished with a connection: a bounded poll. The
    // probe is itself a request, so no probe connection holds the slot the request needs (a
    // probe that only connected could still be counted when the request came).
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut tls) = connect_to(port, &ca).await {
            let request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            if tls.write_all(request.as_bytes()).await.is_ok() {
                let (reply, _) = until_closed(&mut tls, Duration::from_secs(5)).await;
                if reply.starts_with("HTTP/1.1 200 OK") {
                    break;
                }
            }
        }
        assert!(Instant::now() < until, "the cap never freed up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
