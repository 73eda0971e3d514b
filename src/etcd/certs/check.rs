//! The pure half of the etcd certificates: which names each leaf must carry, and whether a
//! stored leaf is still good or why it must be issued again.
//!
//! Nothing here touches the disk. `leaf_problem` takes the PEM text already read, the current
//! CA and the time, and answers with a `Reissue` reason or nothing; the caller does the I/O.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, InconsistentKeys};

use crate::pki::provider;

/// A leaf expiring sooner than this is issued again at start.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The three leaf certificates of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// `server-client.crt`: etcd's client-facing serving certificate (from server-ca).
    Server,
    /// `peer-server-client.crt`: etcd's peer certificate, both ends of peer traffic (peer-ca).
    Peer,
    /// `client.crt`: what our own processes present to etcd (server-ca).
    Client,
}

impl Leaf {
    pub const ALL: [Leaf; 3] = [Leaf::Server, Leaf::Peer, Leaf::Client];

    /// File name without extension, RKE2's.
    pub fn stem(self) -> &'static str {
        match self {
            Self::Server => "server-client",
            Self::Peer => "peer-server-client",
            Self::Client => "client",
        }
    }

    /// Whether etcd serves with it (so it needs names and the server usage).
    pub fn serves(self) -> bool {
        !matches!(self, Self::Client)
    }

    /// Whether it is presented as a client certificate (to etcd, or to another peer).
    pub fn authenticates(self) -> bool {
        !matches!(self, Self::Server)
    }
}

/// Where the member listens, for the serving certificates' names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberNames {
    /// The host name (a DNS name in the certificates), when known.
    pub host: Option<String>,
    pub client_ip: IpAddr,
    pub peer_ip: IpAddr,
}

impl MemberNames {
    /// The subject alternative names `leaf` must carry: every loopback spelling, the host name
    /// and the address it serves on (an unspecified address names no host, so it adds nothing).
    pub fn for_leaf(&self, leaf: Leaf) -> Vec<String> {
        let ip = match leaf {
            Leaf::Server => self.client_ip,
            Leaf::Peer => self.peer_ip,
            Leaf::Client => return Vec::new(),
        };
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let extra = [
            self.host.clone(),
            (!ip.is_unspecified()).then(|| ip.to_string()),
        ];
        for name in extra.into_iter().flatten() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// Why a leaf is (re)issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reissue {
    Missing,
    Unreadable,
    /// The key file does not belong to the certificate (e.g. a start cut short between them).
    KeyMismatch,
    /// Not signed by the current CA (a restore wrote the snapshot's CAs back, or a CA was
    /// replaced).
    NotFromCa,
    /// Expired, or expiring within `RENEW_BEFORE`.
    Expiring,
    /// A name the member serves on is not covered (its address changed).
    NameMissing(String),
    /// Lacks the server or client usage etcd checks.
    WrongUsage,
    /// Refused for another reason, as the verifier put it.
    Invalid(String),
}

impl fmt::Display for Reissue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("it does not exist"),
            Self::Unreadable => f.write_str("it is not a readable PEM certificate and key"),
            Self::KeyMismatch => f.write_str("its key file does not match it"),
            Self::NotFromCa => f.write_str("it was not issued by the current CA"),
            Self::Expiring => write!(
                f,
                "it expires within {} days",
                RENEW_BEFORE.as_secs() / 86400
            ),
            Self::NameMissing(name) => write!(f, "it does not name {name}"),
            Self::WrongUsage => f.write_str("it lacks the server or client usage"),
            Self::Invalid(why) => write!(f, "it is refused: {why}"),
        }
    }
}

/// The stored PEM of one leaf, as read (None for a missing file).
#[derive(Debug, Clone, Copy)]
pub struct StoredLeaf<'a> {
    pub cert_pem: Option<&'a [u8]>,
    pub key_pem: Option<&'a [u8]>,
}

/// Why `stored` cannot be used as `leaf` under `ca_pem` at `now`, or None when it can.
/// `names` are the names a serving leaf must carry.
pub fn leaf_problem(
    leaf: Leaf,
    stored: StoredLeaf<'_>,
    ca_pem: &[u8],
    names: &[String],
    now: SystemTime,
) -> Option<Reissue> {
    let (Some(cert_pem), Some(key_pem)) = (stored.cert_pem, stored.key_pem) else {
        return Some(Reissue::Missing);
    };
    let cert = CertificateDer::from_pem_slice(cert_pem);
    let key = PrivateKeyDer::from_pem_slice(key_pem);
    let (Ok(cert), Ok(key)) = (cert, key) else {
        return Some(Reissue::Unreadable);
    };
    if let Err(e) = rustls::sign::CertifiedKey::from_der(vec![cert.clone()], key, &provider()) {
        return Some(match e {
            rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => Reissue::KeyMismatch,
            _ => Reissue::Unreadable,
        });
    }
    let Ok(ca) = CertificateDer::from_pem_slice(ca_pem) else {
        return Some(Reissue::NotFromCa);
    };
    let renew_at = now.checked_add(RENEW_BEFORE).unwrap_or(now);
    for at in [now, renew_at] {
        let at = UnixTime::since_unix_epoch(
            at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        if let Err(e) = verify(leaf, &cert, &ca, names, at) {
            return Some(e);
        }
    }
    None
}

/// Verifies `cert` as etcd and its clients will: chain, validity at `at`, usage, names.
fn verify(
    leaf: Leaf,
    cert: &CertificateDer<'static>,
    ca: &CertificateDer<'static>,
    names: &[String],
    at: UnixTime,
) -> Result<(), Reissue> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|_| Reissue::NotFromCa)?;
    let roots = Arc::new(roots);
    if leaf.serves() {
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| Reissue::Invalid(e.to_string()))?;
        for name in names {
            let server_name = ServerName::try_from(name.as_str())
                .map_err(|_| Reissue::NameMissing(name.clone()))?;
            verifier
                .verify_server_cert(cert, &[], &server_name, &[], at)
                .map_err(|e| classify(&e, name))?;
        }
    }
    if leaf.authenticates() {
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| Reissue::Invalid(e.to_string()))?;
        verifier
            .verify_client_cert(cert, &[], at)
            .map_err(|e| classify(&e, ""))?;
    }
    Ok(())
}

/// What a verifier's refusal means for the leaf; `name` is the name being checked.
pub fn classify(error: &rustls::Error, name: &str) -> Reissue {
    use CertificateError as E;
    let rustls::Error::InvalidCertificate(cert_error) = error else {
        return Reissue::Invalid(error.to_string());
    };
    match cert_error {
        E::Expired | E::ExpiredContext { .. } | E::NotValidYet | E::NotValidYetContext { .. } => {
            Reissue::Expiring
        }
        E::UnknownIssuer | E::BadSignature => Reissue::NotFromCa,
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            Reissue::NameMissing(name.to_string())
        }
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => Reissue::WrongUsage,
        other => Reissue::Invalid(format!("{other:?}")),
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
