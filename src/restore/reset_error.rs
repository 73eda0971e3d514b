//! Why a cluster reset, a restore or a rollback stopped, in the words an operator needs in the
//! worst hour: what failed, whether anything was changed, and what to run next.
//!
//! The step errors of the sibling files (`RestoreError`) and of the modules a reset uses (S3,
//! bootstrap data, the standalone etcd) are wrapped, never re-worded.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::RestoreError;
use crate::bootstrap::BootstrapError;
use crate::etcd::standalone::StandaloneError;
use crate::store::s3::S3Error;

/// The advice after a failure that happened once the live data dir was moved.
pub const ROLLBACK_HINT: &str =
    "run `etcd-snapshot restore --rollback` to put the previous data dir and certificates back";

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Step(#[from] RestoreError),
    #[error(
        "cluster reset applies to the embedded etcd this tool runs, but etcd-endpoints is set ({endpoints}); restore an external member with its own tools"
    )]
    ExternalEtcd { endpoints: String },
    #[error(
        "etcd is still running (something listens on {address}); stop the etcd-snapshot server before a cluster reset or restore"
    )]
    EtcdRunning { address: SocketAddr },
    #[error(
        "the S3 config Secret (etcd-s3-config-secret) cannot be used for a restore: give the S3 settings as flags or in the config file, or pass --etcd-s3=false and a local path"
    )]
    SecretForRestore,
    #[error("the restore path names an S3 object but etcd-s3 is off")]
    NoS3,
    #[error("failed to fetch the snapshot from S3; nothing was changed")]
    S3(#[from] S3Error),
    #[error(
        "snapshot {snapshot} was written by a server whose token hash is {recorded}, but this token's hash is {ours}: the token differs from the one that wrote the snapshot; pass that cluster's token with --token or --token-file. Nothing was changed"
    )]
    TokenHashMismatch {
        snapshot: String,
        recorded: String,
        ours: String,
    },
    #[error(
        "the token differs from the one that wrote the snapshot: its bootstrap data does not open with it; pass that cluster's token with --token or --token-file. Nothing was changed"
    )]
    WrongToken(#[source] BootstrapError),
    #[error("failed to read the snapshot's bootstrap data; nothing was changed")]
    Bootstrap(#[from] BootstrapError),
    #[error("the restored data did not pass its checks; nothing was changed")]
    Check(#[from] StandaloneError),
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to {step} after the restored data was put in place (previous data: {}); {ROLLBACK_HINT}",
        previous.as_ref().map_or("none".to_string(), |p| p.display().to_string())
    )]
    AfterSwap {
        step: &'static str,
        previous: Option<PathBuf>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "an etcd-snapshot server is running with this data dir (it holds {lock}); stop it before a cluster reset, restore or rollback"
    )]
    ServerRunning { lock: PathBuf },
    #[error(
        "the membership reset failed after etcd ran on the live data with --force-new-cluster; the data as it was is kept at {backup}: {ROLLBACK_HINT}"
    )]
    MembershipResetFailed {
        backup: PathBuf,
        #[source]
        source: Box<StandaloneError>,
    },
    #[error(
        "failed to put the restored data in place, and putting the previous data back failed too; the previous data is at {previous}: move it back to {live} by hand"
    )]
    InstallAndRollback {
        previous: PathBuf,
        live: PathBuf,
        /// Boxed: restore errors are large and this enum is every reset step's error.
        #[source]
        source: Box<RestoreError>,
    },
    #[error("no etcd data at {path} to reset; start the server once, or restore a snapshot")]
    NoData { path: PathBuf },
    #[error("nothing to roll back: no etcd-old-* backup in {dir}")]
    NothingToRollBack { dir: PathBuf },
    #[error(
        "the etcd data the last restore moved aside, {path}, is gone; nothing was rolled back \
         (to put back another backup, move it to server/db/etcd by hand with the server stopped)"
    )]
    RecordedBackupMissing { path: PathBuf },
    #[error("the snapshot verification stopped unexpectedly")]
    Task(#[from] tokio::task::JoinError),
    #[error("failed to find the server token")]
    Token(#[from] crate::token::TokenError),
    #[error(transparent)]
    Decrypt(#[from] super::decrypt::DecryptError),
    #[error(
        "the point-in-time restore stopped before the live data was touched; nothing was changed"
    )]
    Replay(#[source] Box<super::replay::ReplayError>),
    #[error("failed to read the encryption identities; nothing was changed")]
    Identity(#[source] crate::kube::encryption_secret::EncryptionSecretError),
}
