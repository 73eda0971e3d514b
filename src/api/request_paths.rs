//! Which paths an API request may make the server touch: its `dir`, and an S3 `endpointCA`
//! given as a file path. The server runs as root and a token holder is not, so a request path
//! is honoured only inside what the operator listed, after symlinks and `..` are resolved.
//!
//! The decisions are pure (`allowed_dir`, `ca_dir_allows`, with the canonicaliser passed in);
//! `read_request_ca` is the one I/O step, and it refuses without reading anything that is not a
//! regular file of at most `MAX_CA_BYTES`. Refusals never say whether a path exists.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest CA bundle read from a path a request names.
pub const MAX_CA_BYTES: u64 = 1024 * 1024;

/// Why a request's path is refused (the API answers 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error(
        "the request's dir {dir:?} is neither the snapshot dir nor one of etcd-snapshot-allowed-dirs (the server's setting listing the directories requests may use)"
    )]
    DirNotAllowed { dir: String },
    #[error(
        "the request's endpointCA {path:?} is not a regular file of at most 1 MiB in one of etcd-snapshot-allowed-ca-dirs (send the CA as inline PEM instead)"
    )]
    CaNotAllowed { path: String },
}

/// The directory a request's `dir` resolves to, if the operator allows it: the configured
/// snapshot dir (as written, or after canonicalisation) or one of `allowed`. `canonical`
/// resolves symlinks and `..` (None: the path does not resolve). A relative path is refused:
/// it would depend on the server's working directory.
pub fn allowed_dir(
    requested: &str,
    configured: &Path,
    allowed: &[PathBuf],
    canonical: impl Fn(&Path) -> Option<PathBuf>,
) -> Result<PathBuf, PathError> {
    let refused = || PathError::DirNotAllowed {
        dir: requested.to_string(),
    };
    let path = Path::new(requested);
    if !path.is_absolute() {
        return Err(refused());
    }
    // RKE2's CLI restating the server's own dir, which need not exist yet (the default is
    // created on the first save).
    if path == configured {
        return Ok(configured.to_path_buf());
    }
    let wanted = canonical(path).ok_or_else(refused)?;
    std::iter::once(configured)
        .chain(allowed.iter().map(PathBuf::as_path))
        .filter_map(&canonical)
        .find(|dir| *dir == wanted)
        .ok_or_else(refused)
}

/// True when the canonical `file` lies inside (at any depth) one of the canonical `dirs`.
pub fn ca_dir_allows(file: &Path, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|dir| file.starts_with(dir) && file != dir)
}

/// Reads the CA file a request names, if it lies in one of `allowed` (after symlinks and `..`)
/// and is a regular file of at most `MAX_CA_BYTES`. The check is made on the opened file
/// itself, opened without following a last symlink and without blocking on a FIFO, so
/// nothing else is ever read.
pub fn read_request_ca(requested: &str, allowed: &[PathBuf]) -> Result<String, PathError> {
    let refused = || PathError::CaNotAllowed {
        path: requested.to_string(),
    };
    let path = Path::new(requested);
    if !path.is_absolute() {
        return Err(refused());
    }
    let dirs: Vec<PathBuf> = allowed
        .iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .collect();
    let file = std::fs::canonicalize(path).map_err(|_| refused())?;
    if !ca_dir_allows(&file, &dirs) {
        return Err(refused());
    }
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(&file)
        .map_err(|_| refused())?;
    let bytes = crate::fsutil::read_open_capped(opened, MAX_CA_BYTES).map_err(|_| refused())?;
    String::from_utf8(bytes).map_err(|_| refused())
}

/// True when an endpoint CA value is PEM text rather than a path (the S3 client's rule).
pub fn is_inline_pem(value: &str) -> bool {
    value.contains("-----BEGIN")
}

#[cfg(test)]
#[path = "request_paths_tests.rs"]
mod tests;
