//! The CLI's client for the snapshot API: one HTTPS request, basic auth `server:<token>`.
//!
//! Owns URL parsing, the trust decision (a CA file, or `GET /cacerts` pinned to the token's CA
//! hash; never trust on first use) and mapping replies to `ClientReply`/`ClientError`. Whether "unreachable"
//! means "fall back to direct mode" is the CLI's decision, not this module's. The token never
//! appears in errors or logs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use super::wire::{EtcdSnapshotFileList, Operation, SnapshotRequest, SnapshotResponse, StatusBody};
use super::{auth, client_tls};

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
    /// Nothing vouches for the server's certificate: it is never trusted on first use.
    #[error(
        "refusing to trust the server at {url}: no CA file is given and the token carries no CA \
         hash; pass --etcd-server-ca with the server's <data-dir>/server/tls/etcd-snapshot-ca.crt, \
         or use the token form K10<sha256 of that file>::server:<password>"
    )]
    Untrusted { url: String },
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
    /// CA to trust; when absent, the server's `/cacerts` is fetched and must match the token's
    /// CA hash (without one the client refuses). An unreadable file is never bypassed.
    pub ca_file: Option<PathBuf>,
    pub timeout: std::time::Duration,
}

/// Upper bound for the TCP connect, so a dead address is classified quickly as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply accepted (a list of many snapshots is well below this).
const MAX_REPLY: usize = 64 * 1024 * 1024;

/// `https://host[:port]` split into what the connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// Host without IPv6 brackets (for DNS/IP parsing and TLS SNI).
    host: String,
    port: u16,
    /// `host:port` as it goes into the `Host` header (IPv6 bracketed).
    authority: String,
}

impl ApiClient {
    /// Sends one request.
    pub async fn send(&self, request: &SnapshotRequest) -> Result<ClientReply, ClientError> {
        let body = serde_json::to_vec(request).map_err(|err| self.protocol(err))?;
        let (status, reply) = self
            .bounded(self.exchange(Method::POST, "/db/snapshot", Some(body)))
            .await?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                url: self.url.clone(),
            });
        }
        if !status.is_success() {
            return Err(ClientError::Server {
                url: self.url.clone(),
                status: status.as_u16(),
                message: error_message(&reply),
            });
        }
        let decoded = if request.operation == Some(Operation::List) {
            serde_json::from_slice(&reply).map(ClientReply::List)
        } else {
            serde_json::from_slice(&reply).map(ClientReply::Snapshot)
        };
        decoded.map_err(|err| self.protocol(format!("invalid reply: {err}")))
    }

    /// `GET <path>` without credentials (e.g. `/healthz`, `/metrics`), verified like `send`;
    /// returns the status code and body.
    pub async fn fetch(&self, path: &str) -> Result<(u16, Bytes), ClientError> {
        let (status, body) = self.bounded(self.exchange(Method::GET, path, None)).await?;
        Ok((status.as_u16(), body))
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| self.protocol(format!("no reply within {:?}", self.timeout)))?
    }

    /// One verified request; `body` present means an authenticated JSON POST.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let target = parse_url(&self.url).map_err(|detail| self.protocol(detail))?;
        let ca_pem = self.trusted_ca(&target).await?;
        let tls = client_tls::trusting(&ca_pem).map_err(|detail| self.protocol(detail))?;
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            let password = crate::token::password_part(self.token.expose_secret());
            let mut authorization =
                HeaderValue::from_str(auth::basic_auth_header("server", password).expose_secret())
                    .map_err(|_| {
                        self.protocol("the token contains characters not allowed in a header")
                    })?;
            authorization.set_sensitive(true);
            request = request
                .header(header::AUTHORIZATION, authorization)
                .header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|err| self.protocol(err))?;
        self.round_trip(&target, tls, request).await
    }

    /// The CA bundle to verify the server with: `ca_file`, or `/cacerts` fetched unverified and
    /// checked against the token's CA hash.
    async fn trusted_ca(&self, target: &Target) -> Result<Vec<u8>, ClientError> {
        let expected = match trust(self.ca_file.as_deref(), self.token.expose_secret()) {
            Trust::CaFile(path) => return self.read_ca_file(path).await,
            Trust::PinnedDownload(hash) => hash,
            // Nothing answering is still "unreachable" (direct mode may follow).
            Trust::Nothing if !answers(&self.url).await => {
                return Err(ClientError::Unreachable {
                    url: self.url.clone(),
                    source: std::io::ErrorKind::ConnectionRefused.into(),
                });
            }
            Trust::Nothing => {
                return Err(ClientError::Untrusted {
                    url: self.url.clone(),
                });
            }
        };
        let insecure = client_tls::insecure().map_err(|detail| self.protocol(detail))?;
        let request = Request::get("/cacerts")
            .body(Full::new(Bytes::new()))
            .map_err(|err| self.protocol(err))?;
        let (status, bundle) = self.round_trip(target, insecure, request).await?;
        if !status.is_success() {
            return Err(self.protocol(format!("GET /cacerts answered {status}")));
        }
        let actual = crate::hex::encode(&Sha256::digest(&bundle));
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(
                self.protocol("the server's CA bundle does not match the CA hash in the token")
            );
        }
        Ok(bundle.to_vec())
    }

    /// The configured CA file. One that cannot be read is never a reason to trust whatever
    /// answers: either nothing answers (direct mode may follow) or the client refuses.
    async fn read_ca_file(&self, path: &Path) -> Result<Vec<u8>, ClientError> {
        match crate::fsutil::read_capped(path, crate::fsutil::SMALL_FILE_MAX) {
            Ok(pem) => Ok(pem),
            Err(_) if !answers(&self.url).await => Err(ClientError::Unreachable {
                url: self.url.clone(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            }),
            Err(err) => Err(self.protocol(format!(
                "cannot verify the server: failed to read its CA file {}: {err}",
                path.display()
            ))),
        }
    }

    /// TCP + TLS + one HTTP/1.1 request; reads the whole reply.
    async fn round_trip(
        &self,
        target: &Target,
        tls: Arc<rustls::ClientConfig>,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let tcp = self.connect(target).await?;
        let name = ServerName::try_from(target.host.clone())
            .map_err(|_| self.protocol(format!("invalid server name {}", target.host)))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|err| self.protocol(format!("TLS handshake failed: {err}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| self.protocol(err))?;
        let driver = tokio::spawn(conn);
        let host = HeaderValue::from_str(&target.authority).map_err(|err| self.protocol(err))?;
        request.headers_mut().insert(header::HOST, host);
        let result = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_REPLY)
                .collect()
                .await;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body?.to_bytes()))
        }
        .await;
        driver.abort();
        result.map_err(|err| self.protocol(err))
    }

    /// Connects to the first address that accepts; refused/unreachable/timeout => Unreachable.
    async fn connect(&self, target: &Target) -> Result<TcpStream, ClientError> {
        let addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|err| self.protocol(format!("failed to resolve {}: {err}", target.host)))?;
        let limit = self.timeout.min(CONNECT_TIMEOUT);
        let mut last =
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to");
        for addr in addrs {
            match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(err)) => last = err,
                Err(_) => {
                    last = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connecting to {addr} timed out after {limit:?}"),
                    )
                }
            }
        }
        if is_unreachable(last.kind()) {
            Err(ClientError::Unreachable {
                url: self.url.clone(),
                source: last,
            })
        } else {
            Err(self.protocol(format!("failed to connect: {last}")))
        }
    }

    fn protocol(&self, detail: impl ToString) -> ClientError {
        ClientError::Protocol {
            url: self.url.clone(),
            detail: detail.to_string(),
        }
    }
}

/// Where the client's trust in the server's certificate comes from. Never from the server
/// alone: a downloaded CA is used only when the token pins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust<'a> {
    /// A CA file given to the client (`--etcd-server-ca`, or this node's for a loopback URL).
    CaFile(&'a Path),
    /// `/cacerts`, accepted only if its sha256 is this hash from a `K10<hash>::...` token.
    PinnedDownload(&'a str),
    /// Nothing: the client refuses.
    Nothing,
}

fn trust<'a>(ca_file: Option<&'a Path>, token: &'a str) -> Trust<'a> {
    match (ca_file, crate::token::ca_hash_of(token)) {
        (Some(path), _) => Trust::CaFile(path),
        (None, Some(hash)) => Trust::PinnedDownload(hash),
        (None, None) => Trust::Nothing,
    }
}

/// True when something accepts TCP connections at the URL's host and port (within 2 s).
pub async fn answers(url: &str) -> bool {
    let Ok(target) = parse_url(url) else {
        return false;
    };
    let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), connect).await,
        Ok(Ok(_))
    )
}

/// Connect errors meaning "no server there" (as opposed to a broken one).
fn is_unreachable(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | HostUnreachable
            | NetworkUnreachable
            | TimedOut
            | AddrNotAvailable
            | NotFound
    )
}

/// Parses `https://host[:port][/]`; the port defaults to 443.
fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("the server URL {url} must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in server URL {url}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("the server URL {url} has no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid port {p:?} in server URL {url}"))?,
        None => 443,
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Target {
        host: host.to_owned(),
        port,
        authority,
    })
}

/// The message of a `Status` error body, else the body text itself (shortened).
fn error_message(body: &[u8]) -> String {
    if let Ok(status) = serde_json::from_slice::<StatusBody>(body) {
        return status.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(512) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
