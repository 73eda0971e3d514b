//! The server's self-signed CA and serving certificate under `<data-dir>/server/tls`.
//!
//! Files are ours alone (`etcd-snapshot-ca.crt/.key`, `etcd-snapshot-serving.crt/.key`) so that
//! running on an RKE2 node's data dir never touches RKE2's own certificates. This module only
//! prepares TLS material and rustls configs; it never opens sockets.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// Errors preparing TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to generate certificate")]
    Generate(#[source] rcgen::Error),
    #[error("failed to build TLS config")]
    Rustls(#[source] rustls::Error),
    #[error("invalid PEM in {path}")]
    Pem { path: PathBuf },
}

/// Serving material.
pub struct ServingTls {
    pub config: Arc<rustls::ServerConfig>,
    pub ca_pem: String,
}

const CA_COMMON_NAME: &str = "etcd-snapshot-ca";
const SERVING_COMMON_NAME: &str = "etcd-snapshot-serving";
const CA_VALID_DAYS: u64 = 3650;
const SERVING_VALID_DAYS: u64 = 365;
/// A serving cert expiring sooner than this is replaced at start.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Path of the CA the CLI trusts.
pub fn ca_path(tls_dir: &Path) -> PathBuf {
    tls_dir.join("etcd-snapshot-ca.crt")
}

fn ca_key_path(tls_dir: &Path) -> PathBuf {
    tls_dir.join("etcd-snapshot-ca.key")
}

fn serving_cert_path(tls_dir: &Path) -> PathBuf {
    tls_dir.join("etcd-snapshot-serving.crt")
}

fn serving_key_path(tls_dir: &Path) -> PathBuf {
    tls_dir.join("etcd-snapshot-serving.key")
}

/// The rustls crypto provider every config here uses (ring; never the process default, so
/// an extra provider pulled in by a dependency cannot change our behaviour).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads the CA and serving cert, creating them (keys 0600) when absent.
pub fn load_or_create(tls_dir: &Path) -> Result<ServingTls, TlsError> {
    ensure_private_dir(tls_dir)?;
    let ca = load_or_create_ca(tls_dir)?;
    let ca_der =
        CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).map_err(|_| TlsError::Pem {
            path: ca_path(tls_dir),
        })?;
    let (cert, key) = match load_serving(tls_dir, &ca_der)? {
        Some(loaded) => loaded,
        None => create_serving(tls_dir, &ca)?,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServingTls {
        config: Arc::new(config),
        ca_pem: ca.cert_pem,
    })
}

/// The CA's certificate PEM and the issuer able to sign with its key.
struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn load_or_create_ca(tls_dir: &Path) -> Result<Ca, TlsError> {
    let (cert_path, key_path) = (ca_path(tls_dir), ca_key_path(tls_dir));
    if cert_path.exists() && key_path.exists() {
        let cert_pem = read_text(&cert_path)?;
        let key = KeyPair::from_pem(&read_text(&key_path)?)
            .map_err(|_| TlsError::Pem { path: key_path })?;
        // The issuer is rebuilt from our fixed CA parameters: its subject and key identifier
        // (derived from the key) match the stored certificate, so new leaves chain to it.
        let issuer = Issuer::new(ca_params()?, key);
        return Ok(Ca { cert_pem, issuer });
    }
    let key = KeyPair::generate().map_err(TlsError::Generate)?;
    let params = ca_params()?;
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(path = %cert_path.display(), "created a new API certificate authority");
    Ok(Ca {
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// Fixed CA parameters (validity aside they never change, see `load_or_create_ca`).
fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(TlsError::Generate)?;
    params.distinguished_name = common_name(CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALID_DAYS);
    Ok(params)
}

/// The stored serving cert and key, or None when absent, unreadable, not chaining to the CA
/// or expiring within `RENEW_BEFORE` (any of which means "issue a new one").
fn load_serving(
    tls_dir: &Path,
    ca_der: &CertificateDer<'static>,
) -> Result<Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>, TlsError> {
    let (cert_path, key_path) = (serving_cert_path(tls_dir), serving_key_path(tls_dir));
    if !cert_path.exists() || !key_path.exists() {
        return Ok(None);
    }
    let cert = CertificateDer::from_pem_slice(read_text(&cert_path)?.as_bytes());
    let key = PrivateKeyDer::from_pem_slice(read_text(&key_path)?.as_bytes());
    let (Ok(cert), Ok(key)) = (cert, key) else {
        tracing::warn!(path = %cert_path.display(), "replacing unreadable API serving certificate");
        return Ok(None);
    };
    let renew_at = SystemTime::now() + RENEW_BEFORE;
    if let Err(err) = verify_chain(
        &cert,
        ca_der,
        UnixTime::since_unix_epoch(since_epoch(renew_at)),
    ) {
        tracing::info!(path = %cert_path.display(), reason = %err,
            "renewing API serving certificate");
        return Ok(None);
    }
    Ok(Some((cert, key)))
}

/// Checks `cert` chains to `ca_der` and is valid for `localhost` at `at`.
fn verify_chain(
    cert: &CertificateDer<'_>,
    ca_der: &CertificateDer<'static>,
    at: UnixTime,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.clone())?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|err| rustls::Error::General(err.to_string()))?;
    let name = ServerName::try_from("localhost").expect("static name is valid");
    verifier
        .verify_server_cert(cert, &[], &name, &[], at)
        .map(|_| ())
}

fn create_serving(
    tls_dir: &Path,
    ca: &Ca,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let key = KeyPair::generate().map_err(TlsError::Generate)?;
    let params = serving_params(host_name())?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(TlsError::Generate)?;
    write_file(
        &serving_key_path(tls_dir),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(&serving_cert_path(tls_dir), cert.pem().as_bytes(), 0o644)?;
    tracing::info!(path = %serving_cert_path(tls_dir).display(),
        "issued a new API serving certificate");
    let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Ok((cert.der().clone(), key_der))
}

/// Serving cert for every loopback spelling plus the host name.
fn serving_params(host: Option<String>) -> Result<CertificateParams, TlsError> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(host.filter(|h| !names.contains(h)));
    let mut params = CertificateParams::new(names).map_err(TlsError::Generate)?;
    params.distinguished_name = common_name(SERVING_COMMON_NAME);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    set_validity(&mut params, SERVING_VALID_DAYS);
    Ok(params)
}

pub(crate) fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Valid from yesterday (tolerates small clock skew) for `days` days.
pub(crate) fn set_validity(params: &mut CertificateParams, days: u64) {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = ymd(today - chrono::Days::new(1));
    params.not_after = ymd(today + chrono::Days::new(days));
}

/// The kernel's host name, when it is a usable DNS name.
pub(crate) fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

fn ensure_private_dir(dir: &Path) -> Result<(), TlsError> {
    let io = |action, source| TlsError::Io {
        action,
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("create directory", e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io("restrict permissions of", e))
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::fsutil::write_atomic(path, bytes, mode).map_err(|source| TlsError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn create_then_reload_keeps_the_ca_and_serving_cert() {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("server").join("tls");
        let first = load_or_create(&tls_dir).unwrap();
        assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(mode(&tls_dir), 0o700);
        assert_eq!(mode(&ca_key_path(&tls_dir)), 0o600);
        assert_eq!(mode(&serving_key_path(&tls_dir)), 0o600);
        let serving = std::fs::read(serving_cert_path(&tls_dir)).unwrap();

        let second = load_or_create(&tls_dir).unwrap();
        assert_eq!(second.ca_pem, first.ca_pem);
        assert_eq!(std::fs::read(serving_cert_path(&tls_dir)).unwrap(), serving);
        assert_eq!(
            std::fs::read_to_string(ca_path(&tls_dir)).unwrap(),
            first.ca_pem
        );
    }

    #[test]
    fn serving_cert_chains_to_ca_and_renews_near_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path()).unwrap();
        let ca_der = CertificateDer::from_pem_slice(tls.ca_pem.as_bytes()).unwrap();
        let cert_pem = std::fs::read(serving_cert_path(dir.path())).unwrap();
        let cert = CertificateDer::from_pem_slice(&cert_pem).unwrap();
        let now = since_epoch(SystemTime::now());
        verify_chain(&cert, &ca_der, UnixTime::since_unix_epoch(now)).unwrap();
        let in_400_days = now + Duration::from_secs(400 * 24 * 3600);
        assert!(verify_chain(&cert, &ca_der, UnixTime::since_unix_epoch(in_400_days)).is_err());

        // A serving cert issued by another CA is replaced by one from ours; the CA stays.
        let other = tempfile::tempdir().unwrap();
        load_or_create(other.path()).unwrap();
        for path in [serving_cert_path, serving_key_path] {
            std::fs::copy(path(other.path()), path(dir.path())).unwrap();
        }
        let reloaded = load_or_create(dir.path()).unwrap();
        assert_eq!(reloaded.ca_pem, tls.ca_pem);
        let renewed = std::fs::read(serving_cert_path(dir.path())).unwrap();
        let renewed = CertificateDer::from_pem_slice(&renewed).unwrap();
        verify_chain(&renewed, &ca_der, UnixTime::since_unix_epoch(now)).unwrap();
    }

    #[test]
    fn serving_names_cover_loopback_and_host() {
        let params = serving_params(Some("node-a".into())).unwrap();
        let names: Vec<String> = params
            .subject_alt_names
            .iter()
            .map(|san| format!("{san:?}"))
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.iter().any(|n| n.contains("node-a")), "{names:?}");
        let without_dup = serving_params(Some("localhost".into())).unwrap();
        assert_eq!(without_dup.subject_alt_names.len(), 3);
    }
}
