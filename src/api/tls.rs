//! The server's self-signed CA and serving certificate under `<data-dir>/server/tls`.
//!
//! Files are ours alone (`etcd-snapshot-ca.crt/.key`, `etcd-snapshot-serving.crt/.key`) so that
//! running on an RKE2 node's data dir never touches RKE2's own certificates. This module only
//! prepares TLS material and rustls configs; it never opens sockets. Which names the serving
//! certificate carries and when it is renewed are decided in `tls_policy`; `tls_live` serves it
//! and renews it while the server runs.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;

use super::tls_live::LiveCert;
use super::tls_policy::{self, Validity};
use crate::pki::{common_name, host_name, provider, set_validity};

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
    /// The certificate `config` serves; `tls_live::keep_renewed` replaces it in place.
    pub live: Arc<LiveCert>,
}

/// A serving certificate with its key, ready for rustls, and its validity.
pub struct ServingCert {
    pub key: Arc<CertifiedKey>,
    pub validity: Validity,
}

const CA_COMMON_NAME: &str = "etcd-snapshot-ca";
const SERVING_COMMON_NAME: &str = "etcd-snapshot-serving";
const CA_VALID_DAYS: u64 = 3650;
const SERVING_VALID_DAYS: u64 = 365;

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

/// Loads the CA and serving cert, creating them (keys 0600) when absent; the serving cert
/// names the loopback addresses and the host name.
pub fn load_or_create(tls_dir: &Path) -> Result<ServingTls, TlsError> {
    let names = tls_policy::serving_names(host_name().as_deref(), Ipv4Addr::LOCALHOST.into(), &[]);
    load_or_create_for(tls_dir, &names)
}

/// The names the server's certificate carries for `bind_address` and `tls-san`.
pub fn serving_names(bind_address: IpAddr, tls_san: &[String]) -> Vec<String> {
    tls_policy::serving_names(host_name().as_deref(), bind_address, tls_san)
}

/// Loads the CA and a serving cert for `names`, issuing a new serving cert when there is none,
/// it does not chain to the CA, lacks one of `names` or is due for renewal.
pub fn load_or_create_for(tls_dir: &Path, names: &[String]) -> Result<ServingTls, TlsError> {
    ensure_private_dir(tls_dir)?;
    let ca = load_or_create_ca(tls_dir)?;
    let ca_der =
        CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).map_err(|_| TlsError::Pem {
            path: ca_path(tls_dir),
        })?;
    let serving = match load_serving(tls_dir, &ca_der, names, SystemTime::now())? {
        Some(loaded) => loaded,
        None => create_serving(tls_dir, &ca, names)?,
    };
    let live = Arc::new(LiveCert::new(serving));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_cert_resolver(live.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServingTls {
        config: Arc::new(config),
        ca_pem: ca.cert_pem,
        live,
    })
}

/// Issues and stores a new serving cert for `names` from the existing CA (renewal while
/// running: a missing CA is an error, never a reason to create another one).
pub fn reissue(tls_dir: &Path, names: &[String]) -> Result<ServingCert, TlsError> {
    let ca = load_ca(tls_dir)?;
    create_serving(tls_dir, &ca, names)
}

/// The CA's certificate PEM and the issuer able to sign with its key.
struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn load_or_create_ca(tls_dir: &Path) -> Result<Ca, TlsError> {
    let (cert_path, key_path) = (ca_path(tls_dir), ca_key_path(tls_dir));
    if cert_path.exists() && key_path.exists() {
        return load_ca(tls_dir);
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

fn load_ca(tls_dir: &Path) -> Result<Ca, TlsError> {
    let (cert_path, key_path) = (ca_path(tls_dir), ca_key_path(tls_dir));
    let cert_pem = read_text(&cert_path)?;
    let key =
        KeyPair::from_pem(&read_text(&key_path)?).map_err(|_| TlsError::Pem { path: key_path })?;
    // The issuer is rebuilt from our fixed CA parameters: its subject and key identifier
    // (derived from the key) match the stored certificate, so new leaves chain to it.
    let issuer = Issuer::new(ca_params()?, key);
    Ok(Ca { cert_pem, issuer })
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

/// The stored serving cert, or None when absent, unreadable, not chaining to the CA, lacking
/// one of `names`, not matching its key or due for renewal at `now` (each means "issue anew").
fn load_serving(
    tls_dir: &Path,
    ca_der: &CertificateDer<'static>,
    names: &[String],
    now: SystemTime,
) -> Result<Option<ServingCert>, TlsError> {
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
    let renew = |reason: String| {
        tracing::info!(path = %cert_path.display(), %reason, "renewing API serving certificate");
        Ok(None)
    };
    let at = UnixTime::since_unix_epoch(since_epoch(now));
    if let Err(err) = verify_chain(&cert, ca_der, at) {
        return renew(err.to_string());
    }
    let Some((validity, sans)) = describe(&cert) else {
        return renew("its validity or names cannot be read".into());
    };
    let missing = tls_policy::missing_names(names, &sans);
    if !missing.is_empty() {
        return renew(format!("it does not name {}", missing.join(", ")));
    }
    if validity.renew_due(now) {
        return renew("it expires soon".into());
    }
    match certified(cert, key) {
        Ok(key) => Ok(Some(ServingCert { key, validity })),
        Err(err) => renew(format!("it does not match its key: {err}")),
    }
}

/// A certificate's validity and its DNS and IP subject alternative names.
fn describe(cert: &CertificateDer<'_>) -> Option<(Validity, Vec<String>)> {
    use x509_parser::extensions::GeneralName;
    let (_, x509) = x509_parser::parse_x509_certificate(cert).ok()?;
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = u64::try_from(t.timestamp()).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
    };
    let validity = Validity {
        not_before: time(x509.validity().not_before)?,
        not_after: time(x509.validity().not_after)?,
    };
    let mut names = Vec::new();
    let general_names = x509
        .subject_alternative_name()
        .ok()??
        .value
        .general_names
        .iter();
    for name in general_names {
        match name {
            GeneralName::DNSName(dns) => names.push(dns.to_string()),
            GeneralName::IPAddress(bytes) => names.extend(ip_from(bytes)),
            _ => {}
        }
    }
    Some((validity, names))
}

fn ip_from(bytes: &[u8]) -> Option<String> {
    let ip: IpAddr = match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok()?.into(),
        16 => <[u8; 16]>::try_from(bytes).ok()?.into(),
        _ => return None,
    };
    Some(ip.to_string())
}

/// The pair as rustls serves it; fails when the key is not the certificate's.
fn certified(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    CertifiedKey::from_der(vec![cert], key, &provider())
        .map(Arc::new)
        .map_err(TlsError::Rustls)
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

fn create_serving(tls_dir: &Path, ca: &Ca, names: &[String]) -> Result<ServingCert, TlsError> {
    let key = KeyPair::generate().map_err(TlsError::Generate)?;
    let params = serving_params(names)?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(TlsError::Generate)?;
    write_file(
        &serving_key_path(tls_dir),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(&serving_cert_path(tls_dir), cert.pem().as_bytes(), 0o644)?;
    tracing::info!(path = %serving_cert_path(tls_dir).display(), names = %names.join(","),
        "issued a new API serving certificate");
    let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let validity = validity_of(&params);
    Ok(ServingCert {
        key: certified(cert.der().clone(), key_der)?,
        validity,
    })
}

/// Serving cert for `names` (see `tls_policy::serving_names`).
fn serving_params(names: &[String]) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(names.to_vec()).map_err(TlsError::Generate)?;
    params.distinguished_name = common_name(SERVING_COMMON_NAME);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    set_validity(&mut params, SERVING_VALID_DAYS);
    Ok(params)
}

/// The validity `params` will give the certificate.
fn validity_of(params: &CertificateParams) -> Validity {
    let time =
        |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or_default());
    Validity {
        not_before: time(params.not_before.unix_timestamp()),
        not_after: time(params.not_after.unix_timestamp()),
    }
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

fn ensure_private_dir(dir: &Path) -> Result<(), TlsError> {
    crate::fsutil::ensure_private_dir(dir).map_err(|source| TlsError::Io {
        action: "create private directory",
        path: dir.to_path_buf(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    let io = |source| TlsError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let bytes = crate::fsutil::read_capped(path, crate::fsutil::SMALL_FILE_MAX).map_err(io)?;
    String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::fsutil::write_atomic(path, bytes, mode).map_err(|source| TlsError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
