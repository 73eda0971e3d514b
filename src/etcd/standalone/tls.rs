//! The one-off member's TLS: a throwaway CA and certificates in a private temp directory, made
//! for this run and removed with it.
//!
//! The member serves TLS only and requires client certificates, like the embedded one, but it
//! must not depend on the node's own CAs: a restore replaces them (with the snapshot's) while the
//! member runs, and a reset runs before anything checked them. A throwaway CA that exists only
//! for the member's lifetime gives the same protection (no other local user holds a client
//! certificate it trusts) with no such coupling.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::SystemTime;

use ring::rand::SecureRandom;

use super::StandaloneError;
use crate::etcd::certs::{self, CaPolicy, EtcdTlsFiles, MemberNames};

/// The throwaway directory and its files; the directory is removed on drop.
#[derive(Debug)]
pub(super) struct ThrowawayTls {
    pub files: EtcdTlsFiles,
}

impl ThrowawayTls {
    /// Creates a fresh 0700 directory under the temp dir and issues a CA and certificates for
    /// a member on `peer_ip` (and loopback) in it.
    pub fn create(peer_ip: IpAddr) -> Result<Self, StandaloneError> {
        let dir = fresh_dir()?;
        let me = Self {
            files: EtcdTlsFiles::new(&dir),
        };
        let names = MemberNames {
            host: None,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            peer_ip,
        };
        certs::ensure(
            &me.files,
            &names,
            CaPolicy::CreateWhenAbsent,
            SystemTime::now(),
        )
        .map_err(StandaloneError::Certs)?;
        Ok(me)
    }
}

impl Drop for ThrowawayTls {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(self.files.dir()) {
            tracing::warn!(dir = %self.files.dir().display(), error = %e,
                "failed to remove the one-off etcd's throwaway certificates");
        }
    }
}

/// `<temp>/etcd-snapshot-standalone-<random>`, created (not reused) with mode 0700.
fn fresh_dir() -> Result<PathBuf, StandaloneError> {
    let mut random = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| StandaloneError::TlsDir {
            dir: std::env::temp_dir(),
            source: std::io::Error::other("no randomness for the directory name"),
        })?;
    let suffix = crate::hex::encode(&random);
    let dir = std::env::temp_dir().join(format!("etcd-snapshot-standalone-{suffix}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| StandaloneError::TlsDir {
            dir: dir.clone(),
            source,
        })?;
    Ok(dir)
}
