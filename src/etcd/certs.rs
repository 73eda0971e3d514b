//! TLS material for the embedded etcd, in RKE2's layout under `<data-dir>/server/tls/etcd/`:
//! the CAs `server-ca` and `peer-ca` (bootstrap files: created when absent, never replaced), and
//! the leaves issued from them, `server-client` (etcd's serving certificate), `peer-server-client`
//! (peer traffic, both ends) and `client` (what our own processes present to etcd).
//!
//! Leaves are issued again whenever `check::leaf_problem` finds a reason: missing, not from the
//! current CA (a restore writes the snapshot's CAs back), expiring, or not naming the addresses
//! the member serves on. Keys are 0600 in a 0700 directory, every file written crash-safely.
//! This module prepares files only; it never starts etcd or opens sockets.

mod check;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::pki::{common_name, set_validity};
pub use check::{Leaf, MemberNames, RENEW_BEFORE, Reissue, StoredLeaf, classify, leaf_problem};

const CA_VALID_DAYS: u64 = 3650;
const LEAF_VALID_DAYS: u64 = 365;
/// Leaf key and CA key files.
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

/// Errors preparing the etcd certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to generate the etcd {what} certificate")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error(
        "failed to load the etcd CA {cert}: it and {key} must be a PEM certificate and its \
         matching private key"
    )]
    BadCa { cert: PathBuf, key: PathBuf },
    #[error(
        "failed to load the etcd CA {cert}: its key {key} is missing; put the key back (a \
         server of the cluster has it) or remove {cert} to create a new CA for a new cluster"
    )]
    CaKeyMissing { cert: PathBuf, key: PathBuf },
    #[error(
        "failed to join the etcd cluster without its certificate authorities: copy {files} \
         from server/tls/etcd/ under the data dir of a server already in the cluster into \
         {dir} (files 0600, directory 0700), then start again"
    )]
    CasMissing { files: String, dir: PathBuf },
}

/// The two CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKind {
    Server,
    Peer,
}

impl CaKind {
    fn stem(self) -> &'static str {
        match self {
            Self::Server => "server-ca",
            Self::Peer => "peer-ca",
        }
    }

    /// The CA a leaf is issued from.
    pub fn of(leaf: Leaf) -> Self {
        match leaf {
            Leaf::Peer => Self::Peer,
            Leaf::Server | Leaf::Client => Self::Server,
        }
    }
}

/// What to do when a CA is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaPolicy {
    /// A new cluster: create it.
    CreateWhenAbsent,
    /// Joining an existing cluster: its CAs must have been copied here; creating new ones
    /// would make a member nobody trusts.
    RequireExisting,
}

/// The file layout of one member's etcd TLS directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTlsFiles {
    dir: PathBuf,
}

impl EtcdTlsFiles {
    /// The files in `dir` (`<data-dir>/server/tls/etcd` for the embedded member).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_cert(&self, ca: CaKind) -> PathBuf {
        self.dir.join(format!("{}.crt", ca.stem()))
    }

    pub fn ca_key(&self, ca: CaKind) -> PathBuf {
        self.dir.join(format!("{}.key", ca.stem()))
    }

    pub fn cert(&self, leaf: Leaf) -> PathBuf {
        self.dir.join(format!("{}.crt", leaf.stem()))
    }

    pub fn key(&self, leaf: Leaf) -> PathBuf {
        self.dir.join(format!("{}.key", leaf.stem()))
    }

    /// etcd's flags for serving with these files: TLS for client and peer traffic, both
    /// requiring a certificate from the matching CA (RKE2's flags).
    pub fn etcd_flags(&self) -> Vec<std::ffi::OsString> {
        let pairs = [
            ("--trusted-ca-file", self.ca_cert(CaKind::Server)),
            ("--cert-file", self.cert(Leaf::Server)),
            ("--key-file", self.key(Leaf::Server)),
            ("--peer-trusted-ca-file", self.ca_cert(CaKind::Peer)),
            ("--peer-cert-file", self.cert(Leaf::Peer)),
            ("--peer-key-file", self.key(Leaf::Peer)),
        ];
        let mut args: Vec<std::ffi::OsString> = vec![
            "--client-cert-auth".into(),
            "--peer-client-cert-auth".into(),
        ];
        for (flag, path) in pairs {
            args.push(flag.into());
            args.push(path.into_os_string());
        }
        args
    }
}

/// Makes sure the CAs exist (per `policy`) and every leaf is good for `names` at `now`,
/// issuing the ones that are not; returns each issued leaf with the reason.
pub fn ensure(
    files: &EtcdTlsFiles,
    names: &MemberNames,
    policy: CaPolicy,
    now: SystemTime,
) -> Result<Vec<(Leaf, Reissue)>, CertError> {
    if policy == CaPolicy::RequireExisting {
        require_cas(files)?;
    }
    ensure_private_dir(files.dir())?;
    let server_ca = load_or_create_ca(files, CaKind::Server)?;
    let peer_ca = load_or_create_ca(files, CaKind::Peer)?;
    let mut issued = Vec::new();
    for leaf in Leaf::ALL {
        let ca = match CaKind::of(leaf) {
            CaKind::Server => &server_ca,
            CaKind::Peer => &peer_ca,
        };
        let leaf_names = names.for_leaf(leaf);
        let cert = read_optional(&files.cert(leaf))?;
        let key = read_optional(&files.key(leaf))?;
        let stored = StoredLeaf {
            cert_pem: cert.as_deref(),
            key_pem: key.as_deref(),
        };
        let Some(reason) = leaf_problem(leaf, stored, ca.cert_pem.as_bytes(), &leaf_names, now)
        else {
            continue;
        };
        issue_leaf(files, leaf, ca, leaf_names)?;
        tracing::info!(path = %files.cert(leaf).display(), %reason, "issued an etcd certificate");
        issued.push((leaf, reason));
    }
    Ok(issued)
}

/// All four CA files must be there before a join.
fn require_cas(files: &EtcdTlsFiles) -> Result<(), CertError> {
    let all_there = [CaKind::Server, CaKind::Peer]
        .into_iter()
        .flat_map(|ca| [files.ca_cert(ca), files.ca_key(ca)])
        .all(|path| path.is_file());
    if all_there {
        return Ok(());
    }
    Err(CertError::CasMissing {
        files: "server-ca.crt, server-ca.key, peer-ca.crt and peer-ca.key".into(),
        dir: files.dir().to_path_buf(),
    })
}

/// A CA's certificate and the issuer able to sign with its key.
struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Loads a CA, or creates it when its certificate is absent. A key left without a certificate
/// can only come from our own creation cut short (the key is written first), so it is replaced.
fn load_or_create_ca(files: &EtcdTlsFiles, kind: CaKind) -> Result<Ca, CertError> {
    let (cert_path, key_path) = (files.ca_cert(kind), files.ca_key(kind));
    let bad = || CertError::BadCa {
        cert: cert_path.clone(),
        key: key_path.clone(),
    };
    if let Some(cert_pem) = read_optional(&cert_path)? {
        let Some(key_pem) = read_optional(&key_path)? else {
            return Err(CertError::CaKeyMissing {
                cert: cert_path,
                key: key_path,
            });
        };
        let cert_pem = String::from_utf8(cert_pem).map_err(|_| bad())?;
        let key_pem = String::from_utf8(key_pem).map_err(|_| bad())?;
        check_pair(&cert_pem, &key_pem).ok_or_else(bad)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|_| bad())?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|_| bad())?;
        return Ok(Ca { cert_pem, issuer });
    }
    let what = kind.stem();
    let generate = |source| CertError::Generate { what, source };
    let key = KeyPair::generate().map_err(generate)?;
    let params = ca_params(kind).map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    write(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
    write(&cert_path, cert.pem().as_bytes(), CERT_MODE)?;
    tracing::info!(path = %cert_path.display(), "created an etcd certificate authority");
    Ok(Ca {
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// Some(()) when the PEM certificate and key belong together.
fn check_pair(cert_pem: &str, key_pem: &str) -> Option<()> {
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).ok()?;
    let provider = crate::pki::provider();
    rustls::sign::CertifiedKey::from_der(vec![cert], key, &provider).ok()?;
    Some(())
}

/// RKE2's CA subject form, `etcd-server-ca@<unix seconds>`: a new CA never shares a subject
/// with the one it replaces.
fn ca_params(kind: CaKind) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    params.distinguished_name = common_name(&format!("etcd-{}@{}", kind.stem(), since.as_secs()));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALID_DAYS);
    Ok(params)
}

fn issue_leaf(
    files: &EtcdTlsFiles,
    leaf: Leaf,
    ca: &Ca,
    names: Vec<String>,
) -> Result<(), CertError> {
    let generate = |source| CertError::Generate {
        what: leaf.stem(),
        source,
    };
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::new(names).map_err(generate)?;
    params.distinguished_name = common_name(match leaf {
        Leaf::Server => "etcd-server",
        Leaf::Peer => "etcd-peer",
        Leaf::Client => "etcd-client",
    });
    params.extended_key_usages = match leaf {
        Leaf::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        // etcd's serving and peer certificates are used in both directions, as RKE2's are.
        Leaf::Server | Leaf::Peer => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    set_validity(&mut params, LEAF_VALID_DAYS);
    let cert = params.signed_by(&key, &ca.issuer).map_err(generate)?;
    // Key first: a start cut short here leaves a pair that does not match, which the next start
    // detects and replaces.
    write(&files.key(leaf), key.serialize_pem().as_bytes(), KEY_MODE)?;
    write(&files.cert(leaf), cert.pem().as_bytes(), CERT_MODE)
}

fn ensure_private_dir(dir: &Path) -> Result<(), CertError> {
    crate::fsutil::ensure_private_dir(dir).map_err(|source| CertError::Io {
        action: "create private directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// The file's bytes, None when it does not exist. Certificates and keys are small: anything
/// over 1 MiB is not one and is not read.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, CertError> {
    match crate::fsutil::read_capped(path, crate::fsutil::SMALL_FILE_MAX) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CertError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    crate::fsutil::write_atomic(path, bytes, mode).map_err(|source| CertError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
