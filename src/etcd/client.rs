//! Connecting to etcd with optional TLS/mTLS from `--etcd-cafile/--etcd-certfile/--etcd-keyfile`.
//!
//! Owns connection options and the liveness check; it never reads or writes keys or snapshots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

use crate::config::EtcdSettings;

/// How long dialing an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may wait for its response to start. For the snapshot stream this covers
/// only the first response; the save pipeline watches the rest of the stream itself.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the snapshot stream may wait for its first response. etcd starts the stream only
/// once it can commit its backend, which waits for every reader holding the backend's read
/// lock: a `HashKV` (ours at save time, or etcd's own corruption check) or a defragmentation
/// over a large database can take minutes. Waiting for them beats failing the save.
const SNAPSHOT_START_TIMEOUT: Duration = Duration::from_secs(600);
/// HTTP/2 pings detect a silently dead connection during a long snapshot stream.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors connecting to etcd.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("failed to read etcd TLS file {path}")]
    ReadTls {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to configure etcd TLS: {reason}")]
    TlsConfig { reason: &'static str },
    #[error("failed to connect to etcd at {endpoints}")]
    Connect {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
}

/// Connects to the configured endpoints (or the embedded member) and checks it answers.
pub async fn connect(settings: &EtcdSettings) -> Result<etcd_client::Client, ConnectError> {
    connect_with(settings, REQUEST_TIMEOUT).await
}

/// `connect` for the snapshot stream, whose first response may wait for minutes
/// (`SNAPSHOT_START_TIMEOUT`); the save pipeline watches the rest of the stream itself.
pub async fn connect_for_snapshot(
    settings: &EtcdSettings,
) -> Result<etcd_client::Client, ConnectError> {
    connect_with(settings, SNAPSHOT_START_TIMEOUT).await
}

async fn connect_with(
    settings: &EtcdSettings,
    request_timeout: Duration,
) -> Result<etcd_client::Client, ConnectError> {
    let endpoints = settings.client_endpoints();
    let options = connect_options(settings, request_timeout)?;
    let connect_err = |source| ConnectError::Connect {
        endpoints: endpoints.join(","),
        source,
    };
    let mut client = etcd_client::Client::connect(&endpoints, Some(options))
        .await
        .map_err(connect_err)?;
    // Connecting is lazy; a status call proves an endpoint actually answers (and accepts our
    // certificate) before any real work starts.
    client.status().await.map_err(connect_err)?;
    Ok(client)
}

/// Timeouts and keep-alives always; TLS when a CA or a client certificate is configured.
fn connect_options(
    settings: &EtcdSettings,
    request_timeout: Duration,
) -> Result<ConnectOptions, ConnectError> {
    let options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(request_timeout)
        .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT);
    match tls_options(
        settings.ca_file.as_deref(),
        settings.cert_file.as_deref(),
        settings.key_file.as_deref(),
    )? {
        Some(tls) => Ok(options.with_tls(tls)),
        None => Ok(options),
    }
}

/// TLS from a CA file and a client certificate and key (either may be absent); None when no
/// file is given.
pub(crate) fn tls_options(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<TlsOptions>, ConnectError> {
    if ca.is_none() && cert.is_none() && key.is_none() {
        return Ok(None);
    }
    let mut tls = TlsOptions::new();
    if let Some(ca) = ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (cert, key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(ConnectError::TlsConfig {
                reason: "etcd client certificate and key must be given together",
            });
        }
    }
    Ok(Some(tls))
}

fn read(path: &Path) -> Result<Vec<u8>, ConnectError> {
    crate::fsutil::read_capped(path, crate::fsutil::SMALL_FILE_MAX).map_err(|source| {
        ConnectError::ReadTls {
            path: PathBuf::from(path),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str) -> EtcdSettings {
        EtcdSettings::plain(vec![endpoint.to_string()])
    }

    #[test]
    fn tls_needs_cert_and_key_together() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, b"pem").unwrap();
        assert!(tls_options(None, None, None).unwrap().is_none());
        assert!(tls_options(Some(&cert), None, None).unwrap().is_some());
        assert!(matches!(
            tls_options(None, Some(&cert), None),
            Err(ConnectError::TlsConfig { .. })
        ));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            tls_options(Some(&missing), None, None),
            Err(ConnectError::ReadTls { path, .. }) if path == missing
        ));
    }

    #[tokio::test]
    async fn unreachable_endpoint_fails_naming_it() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let Err(err) = connect(&settings(&endpoint)).await else {
            panic!("connected to {endpoint} where nothing listens");
        };
        assert!(err.to_string().contains(&endpoint), "{err}");
    }
}
