//! Building an `aws_sdk_s3::Client` from `S3Settings`, and the startup bucket check.
//!
//! Owns transport decisions: scheme, addressing style, trust roots, certificate checking,
//! proxy, timeouts, credentials and checksum behaviour. It never logs or returns credentials.
//! Object operations live in `store.rs`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Connector, tls::rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{SharedHttpClient, SharedHttpConnector, http_client_fn};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use secrecy::ExposeSecret;

use super::error::{S3Error, Target, to_error};
use super::insecure_tls;
use crate::config::desired::{BucketLookup, S3Proxy, S3Settings};

/// AWS's global endpoint, RKE2's default. Left to the SDK's own endpoint resolution (so the
/// region picks the regional endpoint) unless plain HTTP is asked for.
pub const AWS_DEFAULT_ENDPOINT: &str = "s3.amazonaws.com";

/// Longest wait for a TCP/TLS connection, so an unreachable endpoint fails fast even with a
/// long operation timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A configured SDK client bound to one bucket.
#[derive(Debug, Clone)]
pub struct S3Client {
    pub(super) sdk: aws_sdk_s3::Client,
    pub(super) bucket: String,
    /// `http(s)://<endpoint>`, for error messages.
    pub(super) endpoint: String,
    pub(super) timeout: Duration,
}

impl S3Client {
    /// Builds the client (no network traffic yet). Fails on settings that cannot work: a CA
    /// that holds no certificate, an unusable proxy, an empty bucket.
    pub async fn build(settings: &S3Settings) -> Result<Self, S3Error> {
        if settings.bucket.trim().is_empty() {
            return Err(S3Error::InvalidSettings {
                reason: "etcd-s3-bucket is not set".into(),
            });
        }
        crate::child::mask::remember_s3(settings);
        let scheme = if settings.insecure { "http" } else { "https" };
        let endpoint = format!("{scheme}://{}", settings.endpoint);
        let http = http_client(settings, &endpoint)?;
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(MAX_CONNECT_TIMEOUT))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(settings.region.clone()))
            .timeout_config(timeouts);
        if let (Some(access), Some(secret)) = (&settings.access_key, &settings.secret_key) {
            loader = loader.credentials_provider(Credentials::new(
                access.expose_secret(),
                secret.expose_secret(),
                settings
                    .session_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_string()),
                None,
                "etcd-s3-settings",
            ));
        }
        let shared = loader.load().await;
        // Where the credentials come from, never what they are.
        let static_keys = settings.access_key.is_some() && settings.secret_key.is_some();
        tracing::debug!(%endpoint, bucket = %settings.bucket, region = %settings.region,
            credentials = if static_keys { "static keys" } else { "AWS default chain" },
            "S3 client configured");
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(use_path_style(settings.bucket_lookup, &settings.endpoint))
            // MinIO, Ceph and older appliances reject the SDK's default aws-chunked trailers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if settings.endpoint != AWS_DEFAULT_ENDPOINT || settings.insecure {
            config = config.endpoint_url(endpoint.clone());
        }
        Ok(Self {
            sdk: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            endpoint,
            timeout: settings.timeout,
        })
    }

    /// Builds the client and checks that the bucket exists and the credentials may use it.
    pub async fn connect(settings: &S3Settings) -> Result<Self, S3Error> {
        let client = Self::build(settings).await?;
        client.check_bucket().await?;
        Ok(client)
    }

    /// HEAD on the bucket: a clear error for a missing bucket, denied credentials, a bad CA or
    /// an unreachable endpoint.
    pub async fn check_bucket(&self) -> Result<(), S3Error> {
        self.sdk
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| to_error(e, "check bucket", &self.target("")))?;
        Ok(())
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `http(s)://<endpoint>` as configured.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The underlying SDK client, for operations this crate does not wrap.
    pub fn sdk(&self) -> &aws_sdk_s3::Client {
        &self.sdk
    }

    pub(super) fn target<'a>(&'a self, key: &'a str) -> Target<'a> {
        Target {
            endpoint: &self.endpoint,
            bucket: &self.bucket,
            key,
            timeout: self.timeout,
        }
    }
}

/// Path style unless virtual-host style is asked for, or `auto` meets an AWS (or Aliyun, as in
/// RKE1) endpoint: IP and localhost endpoints cannot resolve `<bucket>.<host>`.
pub fn use_path_style(lookup: BucketLookup, endpoint: &str) -> bool {
    match lookup {
        BucketLookup::Path => true,
        BucketLookup::Dns => false,
        BucketLookup::Auto => {
            let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
            let host = host.to_ascii_lowercase();
            let aws = host == "amazonaws.com" || host.ends_with(".amazonaws.com");
            !(aws || host.contains("aliyun"))
        }
    }
}

/// The PEM bytes of `--etcd-s3-endpoint-ca`: inline PEM as is, anything else read as a file.
/// Fails unless at least one certificate parses.
pub fn endpoint_ca_pem(value: &str) -> Result<Vec<u8>, S3Error> {
    let value = value.trim();
    let (pem, what) = if value.contains("-----BEGIN") {
        (value.as_bytes().to_vec(), "inline PEM".to_string())
    } else {
        let path = PathBuf::from(value);
        let read = crate::fsutil::read_capped(&path, crate::fsutil::SMALL_FILE_MAX);
        let pem = read.map_err(|source| S3Error::ReadCa {
            path: path.clone(),
            source,
        })?;
        (pem, format!("file {}", path.display()))
    };
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .filter(Result::is_ok)
        .count();
    if certificates == 0 {
        return Err(S3Error::NoCertificates { what });
    }
    Ok(pem)
}

/// The HTTP client every S3 request (and the credential chain) goes through.
fn http_client(settings: &S3Settings, endpoint: &str) -> Result<SharedHttpClient, S3Error> {
    if settings.skip_ssl_verify {
        if matches!(settings.proxy, S3Proxy::Url(_)) {
            return Err(S3Error::InvalidSettings {
                reason: "etcd-s3-skip-ssl-verify cannot be combined with etcd-s3-proxy".into(),
            });
        }
        let env_proxy = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if env_proxy && settings.proxy == S3Proxy::FromEnv {
            tracing::warn!(
                "etcd-s3-skip-ssl-verify connects directly: the proxy environment variables are \
                 not used for S3"
            );
        }
        let connector = insecure_tls::connector().map_err(|e| S3Error::TlsSetup {
            endpoint: endpoint.to_string(),
            source: Box::new(e),
        })?;
        return Ok(http_client_fn(move |_, _| connector.clone()));
    }
    // The custom CA is added to the system roots, not put in their place.
    let mut trust = TrustStore::default();
    if let Some(ca) = &settings.endpoint_ca {
        trust = trust.with_pem_certificate(endpoint_ca_pem(ca)?);
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| S3Error::TlsSetup {
            endpoint: endpoint.to_string(),
            source: Box::new(e),
        })?;
    let proxy = match &settings.proxy {
        S3Proxy::FromEnv => ProxyConfig::from_env(),
        S3Proxy::Disabled => ProxyConfig::disabled(),
        S3Proxy::Url(url) => {
            ProxyConfig::all(url.as_str()).map_err(|e| S3Error::InvalidSettings {
                reason: format!("etcd-s3-proxy is not a usable proxy URL ({e})"),
            })?
        }
    };
    // Built on first use (it needs the SDK's connector settings), then shared so the
    // connection pool is reused across requests.
    let connector: Arc<OnceLock<SharedHttpConnector>> = Arc::default();
    Ok(http_client_fn(move |connector_settings, _| {
        connector
            .get_or_init(|| {
                SharedHttpConnector::new(
                    Connector::builder()
                        .connector_settings(connector_settings.clone())
                        .proxy_config(proxy.clone())
                        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                        .tls_context(context.clone())
                        .build(),
                )
            })
            .clone()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts one connection, returns its request head and answers 404.
    async fn one_request(listener: tokio::net::TcpListener) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await.expect("read") == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let reply = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        stream.write_all(reply).await.expect("reply");
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    }

    #[tokio::test]
    async fn proxy_credentials_reach_the_proxy_but_not_the_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = tokio::spawn(one_request(listener));
        let settings = S3Settings {
            endpoint: "127.0.0.1:9".into(),
            endpoint_ca: None,
            skip_ssl_verify: false,
            access_key: Some("AKIAEXAMPLE".into()),
            secret_key: Some("secret".into()),
            session_token: None,
            bucket: "b1".into(),
            bucket_lookup: BucketLookup::Path,
            region: "us-east-1".into(),
            folder: String::new(),
            proxy: S3Proxy::Url(format!("http://alice:s3cr3t@127.0.0.1:{port}")),
            insecure: true,
            timeout: Duration::from_secs(10),
            retention: 5,
            retention_rules: Default::default(),
            config_secret: None,
        };
        let client = S3Client::build(&settings).await.expect("client");
        let error = client
            .check_bucket()
            .await
            .expect_err("the proxy answers 404");
        let head = seen.await.expect("proxy task");
        // base64("alice:s3cr3t"): the URL's user info is sent as proxy credentials.
        assert!(
            head.contains("proxy-authorization: basic ywxpy2u6cznjcjn0"),
            "{head}"
        );
        let chain = super::super::error::error_chain(&error);
        assert!(
            !chain.contains("s3cr3t") && !chain.contains("alice"),
            "{chain}"
        );
    }

    #[test]
    fn auto_lookup_is_virtual_host_only_for_aws_and_aliyun() {
        assert!(!use_path_style(BucketLookup::Auto, "s3.amazonaws.com"));
        assert!(!use_path_style(
            BucketLookup::Auto,
            "s3.eu-west-3.amazonaws.com:443"
        ));
        assert!(!use_path_style(
            BucketLookup::Auto,
            "oss-cn-hangzhou.aliyuncs.com"
        ));
        assert!(use_path_style(BucketLookup::Auto, "127.0.0.1:9000"));
        assert!(use_path_style(BucketLookup::Auto, "minio.example.com"));
        assert!(use_path_style(BucketLookup::Path, "s3.amazonaws.com"));
        assert!(!use_path_style(BucketLookup::Dns, "127.0.0.1:9000"));
    }

    #[test]
    fn endpoint_ca_needs_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = endpoint_ca_pem(missing.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, S3Error::ReadCa { .. }), "{err}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = endpoint_ca_pem(junk.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, S3Error::NoCertificates { .. }), "{err}");
        let err = endpoint_ca_pem("-----BEGIN CERTIFICATE-----\ninvalid\n").unwrap_err();
        assert!(matches!(err, S3Error::NoCertificates { .. }), "{err}");

        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = cert.pem();
        assert_eq!(endpoint_ca_pem(&pem).unwrap(), pem.trim().as_bytes());
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, &pem).unwrap();
        assert_eq!(
            endpoint_ca_pem(file.to_str().unwrap()).unwrap(),
            pem.as_bytes()
        );
    }
}
