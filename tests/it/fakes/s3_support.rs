//! An in-process S3 server for tests: s3s + s3s-fs on 127.0.0.1:0, plain HTTP or HTTPS.
//!
//! s3s checks SigV4 signatures (a wrong secret gets `SignatureDoesNotMatch`), runs inside the
//! test process (no external binary to install) and stores objects as files in a temp dir, so
//! each test gets its own server, port and buckets. A bucket is a directory under the root.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use etcd_snapshot::config::desired::{BucketLookup, S3Proxy, S3Settings};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::PrivateKeyDer;
use secrecy::SecretString;
use tempfile::TempDir;
use tokio_rustls::TlsAcceptor;

pub const ACCESS_KEY: &str = "etcd-snapshot-test";
pub const SECRET_KEY: &str = "test-secret-key-do-not-leak";

/// The key pairs a server accepts, changeable while it runs: granting a new pair and revoking
/// the old one is how a credential rotation looks from the S3 side.
#[derive(Clone, Default)]
pub struct KeyRing(Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>);

impl KeyRing {
    pub fn grant(&self, access: &str, secret: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(access.to_string(), secret.to_string());
    }

    pub fn revoke(&self, access: &str) {
        self.0.lock().unwrap().remove(access);
    }
}

#[async_trait::async_trait]
impl s3s::auth::S3Auth for KeyRing {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<s3s::auth::SecretKey> {
        let secret = self.0.lock().unwrap().get(access_key).cloned();
        secret
            .map(s3s::auth::SecretKey::from)
            .ok_or_else(|| s3s::s3_error!(InvalidAccessKeyId))
    }
}

/// An outage planned at a chosen request: when a request line contains `pattern`, `access` is
/// revoked from `ring` before the request is served, so it and every later one fail.
struct Trip {
    pattern: String,
    ring: KeyRing,
    access: String,
}

/// How the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP (`--etcd-s3-insecure`).
    Plain,
    /// HTTPS with a certificate signed by a private CA (`ca_pem`).
    PrivateCa,
    /// HTTPS with a self-signed certificate (only `--etcd-s3-skip-ssl-verify` accepts it).
    SelfSigned,
}

/// A running server; stops when dropped.
pub struct S3Server {
    pub addr: SocketAddr,
    pub root: TempDir,
    pub tls: Tls,
    /// The CA that signed the server certificate (`Tls::PrivateCa`).
    pub ca_pem: Option<String>,
    /// Every request served, as `<METHOD> <path>` (e.g. `HEAD /bucket` for a connect).
    pub requests: Arc<std::sync::Mutex<Vec<String>>>,
    trips: Arc<std::sync::Mutex<Vec<Trip>>>,
    /// How DeleteObjects is answered (see `s3_etags`): unsupported, or refusing chosen keys.
    pub deletes: super::s3_etags::DeleteRules,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    /// Starts a server on a free loopback port (call inside a tokio runtime).
    pub async fn start(tls: Tls) -> Self {
        Self::start_with(tls, None).await
    }

    /// With `domain`, virtual-host-style requests (`<bucket>.<domain>`) are understood too.
    pub async fn start_with(tls: Tls, domain: Option<&str>) -> Self {
        Self::start_custom(tls, domain, 0, (ACCESS_KEY, SECRET_KEY)).await
    }

    /// On a given loopback port (a test reserves it first and starts S3 later: an outage).
    pub async fn start_on(tls: Tls, port: u16) -> Self {
        Self::start_custom(tls, None, port, (ACCESS_KEY, SECRET_KEY)).await
    }

    /// Accepting only the given key pair (e.g. the seed's `test` / `secret`).
    pub async fn start_with_keys(tls: Tls, access: &str, secret: &str) -> Self {
        Self::start_custom(tls, None, 0, (access, secret)).await
    }

    /// Accepting whatever key pairs `ring` holds at the time of each request (rotation tests).
    pub async fn start_with_ring(tls: Tls, ring: KeyRing) -> Self {
        Self::start_auth(tls, None, 0, ring).await
    }

    async fn start_custom(tls: Tls, domain: Option<&str>, port: u16, keys: (&str, &str)) -> Self {
        let ring = KeyRing::default();
        ring.grant(keys.0, keys.1);
        Self::start_auth(tls, domain, port, ring).await
    }

    async fn start_auth(tls: Tls, domain: Option<&str>, port: u16, ring: KeyRing) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let root = tempfile::tempdir().expect("temp dir");
        let deletes = super::s3_etags::DeleteRules::default();
        let backend = super::s3_etags::ListingEtags::new(root.path(), deletes.clone());
        let mut builder = s3s::service::S3ServiceBuilder::new(backend);
        builder.set_auth(ring);
        if let Some(domain) = domain {
            // The Host header carries the port, so the base domain must too.
            let base = format!("{domain}:{}", addr.port());
            builder.set_host(s3s::host::SingleDomain::new(&base).expect("domain"));
        }
        let s3 = builder.build();
        let requests: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let log = requests.clone();
        let trips: Arc<std::sync::Mutex<Vec<Trip>>> = Arc::default();
        let armed = trips.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
            let line = format!("{} {}", req.method(), req.uri().path());
            armed.lock().expect("trips").retain(|trip| {
                let fire = line.contains(&trip.pattern);
                if fire {
                    trip.ring.revoke(&trip.access);
                }
                !fire
            });
            log.lock().expect("request log").push(line);
            hyper::service::Service::call(&s3, req)
        });
        let (acceptor, ca_pem) = match tls {
            Tls::Plain => (None, None),
            Tls::PrivateCa => {
                let (config, ca) = server_tls(true);
                (Some(TlsAcceptor::from(Arc::new(config))), ca)
            }
            Tls::SelfSigned => (Some(TlsAcceptor::from(Arc::new(server_tls(false).0))), None),
        };
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let service = service.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            root,
            tls,
            ca_pem,
            requests,
            trips,
            deletes,
            task,
        }
    }

    /// Plans an outage: the first request whose `<METHOD> <path>` contains `pattern` makes
    /// `ring` (the server's, from `start_with_ring`) forget `access` before it is served, so it
    /// and every later request with that key fail until the key is granted again.
    pub fn revoke_on(&self, pattern: &str, ring: &KeyRing, access: &str) {
        self.trips.lock().expect("trips").push(Trip {
            pattern: pattern.to_string(),
            ring: ring.clone(),
            access: access.to_string(),
        });
    }

    /// How many requests so far were `<method> <path>`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let line = format!("{method} {path}");
        let requests = self.requests.lock().expect("request log");
        requests.iter().filter(|r| **r == line).count()
    }

    /// Creates an empty bucket.
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir(self.root.path().join(name)).expect("create bucket dir");
    }

    /// Writes an object directly into the backing dir (for keys the store must ignore).
    pub fn put_raw(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let path = self.root.path().join(bucket).join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write object");
    }

    /// Replaces an object's bytes and gives it a new ETag, keeping its user metadata: what a
    /// real S3 shows after another client rewrote the object under the same key (a
    /// re-encryption, say). `put_raw` alone keeps the old ETag (s3s-fs stores it beside the
    /// object), which no real store would do for new bytes. The new ETag is 32 hex digits of
    /// the bytes' SHA-256 (ETags are opaque to clients).
    pub fn rewrite(&self, bucket: &str, key: &str, bytes: &[u8]) {
        use sha2::Digest;
        self.put_raw(bucket, key, bytes);
        let info = super::s3_etags::info_path(self.root.path(), bucket, key);
        let mut map: serde_json::Map<String, serde_json::Value> = std::fs::read(&info)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let digest = sha2::Sha256::digest(bytes);
        let etag: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        map.insert("e_tag".into(), serde_json::Value::String(etag));
        std::fs::write(&info, serde_json::to_vec(&map).unwrap()).expect("write object info");
    }

    /// An object's bytes read straight from the backing dir (None when there is none).
    pub fn read_raw(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.path().join(bucket).join(key)).ok()
    }

    /// True when the object exists in the backing dir.
    pub fn has_object(&self, bucket: &str, key: &str) -> bool {
        self.root.path().join(bucket).join(key).is_file()
    }

    /// s3s-fs's bookkeeping files of multipart uploads that were neither completed nor aborted
    /// (it has no ListMultipartUploads): upload records, stored parts, pending metadata.
    pub fn pending_uploads(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .expect("read server root")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(".upload") || name.contains(".upload-"))
            .collect()
    }

    /// Settings reaching this server with the right credentials, path style, short timeout.
    pub fn settings(&self, bucket: &str, folder: &str) -> S3Settings {
        S3Settings {
            endpoint: self.addr.to_string(),
            endpoint_ca: None,
            skip_ssl_verify: false,
            access_key: Some(SecretString::from(ACCESS_KEY)),
            secret_key: Some(SecretString::from(SECRET_KEY)),
            session_token: None,
            bucket: bucket.into(),
            bucket_lookup: BucketLookup::Path,
            region: "us-east-1".into(),
            folder: folder.into(),
            proxy: S3Proxy::Disabled,
            insecure: self.tls == Tls::Plain,
            timeout: Duration::from_secs(30),
            retention: 5,
            retention_rules: Default::default(),
            config_secret: None,
        }
    }
}

/// A rustls server config for 127.0.0.1/localhost; with `use_ca` the leaf is signed by a fresh
/// CA whose PEM is returned, otherwise it is self-signed.
pub(crate) fn server_tls(use_ca: bool) -> (rustls::ServerConfig, Option<String>) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(names).expect("params");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (cert, ca_pem) = if use_ca {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca, ca_key);
        let cert = leaf.signed_by(&key, &issuer).expect("leaf cert");
        (cert, Some(ca_cert.pem()))
    } else {
        (leaf.self_signed(&key).expect("self-signed cert"), None)
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server cert");
    (config, ca_pem)
}

/// Writes `len` bytes of a repeatable, non-constant pattern to `path`.
pub fn write_pattern(path: &Path, len: usize) -> Vec<u8> {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(path, &bytes).expect("write test file");
    bytes
}

/// A minimal forward proxy: absolute-form HTTP requests are forwarded, `CONNECT` is tunnelled.
/// It records each connection's first request line, so tests can prove traffic went through it.
/// Every host name is dialled on 127.0.0.1 (keeping the port), so virtual-host names such as
/// `bucket.localhost` work without DNS.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub seen: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProxy {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = proxy_connection(client, log).await;
                });
            }
        });
        Self { addr, seen, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("proxy log").clone()
    }
}

async fn proxy_connection(
    mut client: tokio::net::TcpStream,
    log: Arc<std::sync::Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Read the request head byte by byte, so nothing after it is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let line = text.lines().next().unwrap_or_default().to_string();
    log.lock().expect("proxy log").push(line.clone());
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    if method == "CONNECT" {
        let mut upstream = tokio::net::TcpStream::connect(loopback(target)).await?;
        client.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    } else {
        let authority = target
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default();
        let mut upstream = tokio::net::TcpStream::connect(loopback(authority)).await?;
        upstream.write_all(&head).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    }
    Ok(())
}

/// `127.0.0.1:<port of authority>`.
fn loopback(authority: &str) -> String {
    let port = authority.rsplit_once(':').map_or("80", |(_, p)| p);
    format!("127.0.0.1:{port}")
}
