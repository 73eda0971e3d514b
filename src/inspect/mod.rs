//! `inspect`: reads a snapshot without restoring it and says whether it is whole and what it
//! holds: the SHA-256 trailer, a structural walk of the bbolt file, etcd's `snapshot status`
//! figures, counts per Kubernetes resource, members, and the bootstrap data.
//!
//! Reading only: nothing is written except an anonymous temp copy (outside the data dir) when
//! the data can only be read forward (zip, S3); see `source`. The walk (`bbolt`) and the
//! decoders (`pages`, `mvcc`) are pure over positioned reads; `tally` adds up, `report` decides
//! and renders. For a local plain file the SHA-256 pass and the walk run on two threads.
//!
//! The API other modules build on (restore drills compare a restored member with it), kept
//! stable: [`inspect_local`] and [`inspect_s3`] return an [`InspectReport`] whose `healthy` is
//! the verdict (every entry of `checks` passed), `etcd_status` holds `revision`, `total_key`,
//! `total_size` and `hash` as `etcdutl snapshot status` (3.5) reports them, `live_keys` is the
//! number of keys a member restored from it serves, and `sha256` is the trailer when it matched.

pub mod bbolt;
pub mod encrypted;
pub mod identity;
pub mod meta;
pub mod mvcc;
pub mod pages;
pub mod report;
pub mod revision;
pub mod s3;
pub mod source;
pub mod sqlite;
pub mod tally;
pub mod tree;

#[cfg(test)]
mod fuzz_tests;

pub use s3::{inspect_s3, inspect_s3_decrypting};

use std::fs::File;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::bootstrap::crypto::storage_key;
use crate::bootstrap::token_password;
use crate::crypt::Identities;
use crate::snapshot::encryption_record::EncryptionRecord;
use crate::store::s3::S3Error;
use bbolt::Bounded;
use report::{Check, InspectReport};
use source::{SpillFailure, Streamed};

/// Why `inspect` could not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("failed to find snapshot {name:?}: {looked}")]
    NotFound { name: String, looked: String },
    #[error("failed to open snapshot {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to inspect {path}: it is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("failed to pick a temp dir for the copy of {name}: {reason}")]
    SpillDir { name: String, reason: String },
    #[error("failed to write the temp copy of {name}")]
    Spill {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read S3 object {name}")]
    S3 {
        name: String,
        #[source]
        source: Box<S3Error>,
    },
    #[error("failed to receive S3 object {name}")]
    S3Body {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to inspect S3 object {name}: etcd-s3 is not enabled")]
    S3Disabled { name: String },
    #[error("failed to decrypt the snapshot: no verdict without a key that opens it")]
    Identity(#[source] Box<crate::crypt::CryptError>),
}

impl InspectError {
    /// Errors in what was asked (exit 2) rather than in reading what exists.
    pub fn is_usage(&self) -> bool {
        match self {
            InspectError::NotFound { .. }
            | InspectError::NotAFile { .. }
            | InspectError::S3Disabled { .. }
            | InspectError::Identity(_)
            | InspectError::SpillDir { .. } => true,
            InspectError::S3 { source, .. } => source.is_not_found(),
            InspectError::Open { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Where the snapshot to inspect is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local(PathBuf),
    S3(String),
}

/// Resolves the argument: anything with a `/` is a path; a plain name is looked up in the
/// snapshot dir, then (with etcd-s3 on) taken as an S3 object name, then as a file in the
/// current dir.
pub fn resolve(arg: &str, snapshot_dir: &Path, s3_enabled: bool) -> Result<Target, InspectError> {
    if arg.contains('/') {
        return Ok(Target::Local(PathBuf::from(arg)));
    }
    let in_dir = snapshot_dir.join(arg);
    if crate::snapshot::name::validate_user_name(arg).is_ok() && in_dir.exists() {
        return Ok(Target::Local(in_dir));
    }
    if s3_enabled {
        return Ok(Target::S3(arg.to_string()));
    }
    if Path::new(arg).exists() {
        return Ok(Target::Local(PathBuf::from(arg)));
    }
    Err(InspectError::NotFound {
        name: arg.to_string(),
        looked: format!(
            "not in the snapshot dir {} nor the current dir, and etcd-s3 is off",
            snapshot_dir.display()
        ),
    })
}

fn is_zip(name: &str) -> bool {
    name.ends_with(crate::snapshot::name::ZIP_SUFFIX)
}

/// Inspects a local file (plain or `.zip`). Blocking. An encrypted file needs
/// [`inspect_local_decrypting`].
pub fn inspect_local(
    path: &Path,
    data_dir: &Path,
    token: Option<&SecretString>,
) -> Result<InspectReport, InspectError> {
    inspect_local_decrypting(path, data_dir, token, None)
}

/// Inspects a local file (plain, `.zip`, or either encrypted with age, which `identities`
/// open). Blocking.
pub fn inspect_local_decrypting(
    path: &Path,
    data_dir: &Path,
    token: Option<&SecretString>,
    identities: Option<&Identities>,
) -> Result<InspectReport, InspectError> {
    let open_err = |source| InspectError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    if !meta.is_file() {
        return Err(InspectError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let source = path.display().to_string();
    if encrypted::is_encrypted(&file, &source) {
        // The save's record names the keys (the age header cannot).
        let recorded = EncryptionRecord::read_beside(path)
            .map(|r| encrypted::Recorded {
                recipients: r.recipients,
                plaintext_sha256: r.plaintext_sha256,
            })
            .unwrap_or_default();
        let size = meta.len();
        return encrypted::inspect(file, source, size, recorded, data_dir, token, identities);
    }
    if is_zip(&source) {
        return inspect_zip(file, source, meta.len(), data_dir, token);
    }
    if starts_like_sqlite(&file) {
        return Ok(inspect_sqlite_plain(&file, path, source, token));
    }
    Ok(inspect_plain(&file, source, token))
}

/// True when the file starts with the SQLite magic (a SQLite datastore's snapshot).
fn starts_like_sqlite(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 16];
    file.read_exact_at(&mut head, 0).is_ok()
        && crate::snapshot::image::ImageKind::sniff(&head)
            == crate::snapshot::image::ImageKind::Sqlite
}

/// A plain SQLite image: read once for its image check and hash, then opened read-only.
fn inspect_sqlite_plain(
    file: &File,
    path: &Path,
    source: String,
    token: Option<&SecretString>,
) -> InspectReport {
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (checks, sha) = match source::stream_file(file) {
        Ok(s) => (vec![s.check], s.verified.map(|v| v.1)),
        Err(e) => (
            vec![Check::new("image", false, format!("read failed: {e}"))],
            None,
        ),
    };
    sqlite::report(path, source, size, sha, checks, token)
}

/// A plain file: the SHA-256 pass and the walk run side by side over the same handle.
fn inspect_plain(file: &File, source: String, token: Option<&SecretString>) -> InspectReport {
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    // The database is everything before a trailer; without one (damage) walk it all.
    let db_len = if size % 512 == 32 { size - 32 } else { size };
    let (streamed, walked) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| source::stream_file(file));
        let walked = walk(
            &Bounded {
                source: file,
                len: db_len,
            },
            token,
        );
        (hashing.join(), walked)
    });
    let (checks, sha) = match streamed {
        Ok(Ok(s)) => (vec![s.check], s.verified.map(|v| v.1)),
        Ok(Err(e)) => (
            vec![Check::new("trailer", false, format!("read failed: {e}"))],
            None,
        ),
        Err(_) => (
            vec![Check::new("trailer", false, "the hashing thread failed")],
            None,
        ),
    };
    finish(source, size, sha, checks, walked, token)
}

/// A zip (local, or an S3 object already spilled): its entry is spilled, then walked.
fn inspect_zip(
    zip: File,
    source: String,
    size: u64,
    data_dir: &Path,
    token: Option<&SecretString>,
) -> Result<InspectReport, InspectError> {
    let dir = source::spill_dir(data_dir).map_err(|reason| InspectError::SpillDir {
        name: source.clone(),
        reason,
    })?;
    match source::spill_zip(zip, &dir) {
        Ok((spill, streamed)) => {
            let archive = Check::new("archive", true, "one entry, CRC-32 matches");
            Ok(from_spill(
                &spill,
                source,
                size,
                streamed,
                vec![archive],
                token,
            ))
        }
        Err(SpillFailure::Archive(detail)) => {
            let checks = vec![Check::new("archive", false, detail)];
            Ok(report::assemble(source, size, None, checks, None))
        }
        Err(SpillFailure::Spill(e)) => Err(InspectError::Spill {
            name: source,
            source: e,
        }),
    }
}

/// Walks a spilled image whose trailer was checked while it was written.
fn from_spill(
    spill: &File,
    source: String,
    size: u64,
    streamed: Streamed,
    mut checks: Vec<Check>,
    token: Option<&SecretString>,
) -> InspectReport {
    let db_len = streamed.verified.as_ref().map_or(streamed.size, |v| v.0);
    let sha = streamed.verified.map(|v| v.1);
    checks.push(streamed.check);
    if streamed.kind == crate::snapshot::image::ImageKind::Sqlite {
        return sqlite::report_spilled(spill, source, size, sha, checks, token);
    }
    let walked = walk(
        &Bounded {
            source: spill,
            len: db_len,
        },
        token,
    );
    finish(source, size, sha, checks, walked, token)
}

/// Walks `src`, keeping the bootstrap value of `token`'s storage key.
fn walk(
    src: &dyn bbolt::PageSource,
    token: Option<&SecretString>,
) -> (bbolt::Structure, tally::Tally) {
    let mut tally = tally::Tally::default();
    tally.bootstrap_wanted = token
        .and_then(|t| token_password(t.expose_secret()).ok())
        .map(|p| storage_key(p.expose_secret()));
    let structure = bbolt::walk(src, &mut tally);
    (structure, tally)
}

/// Assembles the report and, with a token, checks that it decrypts the bootstrap data.
fn finish(
    source: String,
    size: u64,
    sha: Option<String>,
    mut checks: Vec<Check>,
    walked: (bbolt::Structure, tally::Tally),
    token: Option<&SecretString>,
) -> InspectReport {
    let verdict = token.map(|t| identity::token_check(t, &walked.1));
    if let Some(check) = &verdict {
        checks.push(check.clone());
    }
    let mut report = report::assemble(source, size, sha, checks, Some(walked));
    report.bootstrap.token_decrypts = verdict.map(|c| c.ok);
    report
}
