//! rustls client configs for the CLI's client: one trusting the server's CA bundle, and one that
//! verifies nothing, used only to download `/cacerts` before the CA is known.
//!
//! The insecure config must never carry credentials; `client.rs` uses it for `GET /cacerts`
//! alone, and only when the token carries a CA hash the result must match.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::pki::provider;
use crate::tls_verify::AcceptAnyCertificate;

/// A client config trusting exactly the certificates in `ca_pem`.
pub fn trusting(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|err| format!("invalid CA bundle: {err}"))?;
        roots
            .add(cert)
            .map_err(|err| format!("invalid CA certificate: {err}"))?;
    }
    if roots.is_empty() {
        return Err("the CA bundle holds no certificate".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(finish(config))
}

/// A client config that accepts any server certificate (signatures are still checked, so the
/// handshake is well-formed, but the identity is not).
pub fn insecure() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    Ok(finish(config))
}

fn finish(mut config: rustls::ClientConfig) -> Arc<rustls::ClientConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusting_rejects_bundles_without_certificates() {
        assert!(trusting(b"").is_err());
        assert!(
            trusting(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
        let dir = tempfile::tempdir().unwrap();
        let tls = super::super::tls::load_or_create(dir.path()).unwrap();
        assert!(trusting(tls.ca_pem.as_bytes()).is_ok());
        assert!(insecure().is_ok());
    }
}
