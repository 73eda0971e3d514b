//! Why a point-in-time replay stopped: each message names the snapshot, segment or revision
//! involved and, where there is one, what would work instead. Nothing live is touched before a
//! replay succeeds, so none of these leaves anything changed.

use std::path::PathBuf;

use crate::delta::segment::{SegmentError, SegmentHash};
use crate::delta::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("failed to list the full snapshots in {dir}")]
    Listing {
        dir: PathBuf,
        #[source]
        source: Box<crate::store::StoreError>,
    },
    #[error(
        "snapshot {snapshot} has no recorded revision in {}, so no delta chain starts from it; restore it without --cluster-reset-restore-to",
        dir.display()
    )]
    NoRecordedRevision { snapshot: String, dir: PathBuf },
    #[error(transparent)]
    Files(#[from] crate::delta::files::FilesError),
    #[error("failed to {action} the delta chains in S3")]
    S3 {
        action: &'static str,
        #[source]
        source: Box<crate::store::s3::S3Error>,
    },
    #[error("failed to read delta segment {path}")]
    SegmentRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refused delta segment {path}: it is corrupted; a restore to a revision before {from} does not read it"
    )]
    Segment {
        path: PathBuf,
        from: i64,
        #[source]
        source: SegmentError,
    },
    #[error(
        "refused delta segment {path}: it cannot be read back through its compression or encryption; a restore to a revision before {from} does not read it"
    )]
    Stored {
        path: PathBuf,
        from: i64,
        #[source]
        source: Box<crate::delta::stored::StoredError>,
    },
    #[error("refused encrypted delta segment {path} before replaying anything")]
    SegmentKeys {
        path: PathBuf,
        #[source]
        source: Box<crate::delta::stored::StoredError>,
    },
    #[error("failed to read the encryption identities for the delta chain's encrypted segments")]
    Identities(#[source] Box<crate::kube::encryption_secret::EncryptionSecretError>),
    #[error("refused delta segment {path}: its {field} is {found}, expected {expected}")]
    Misplaced {
        path: PathBuf,
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("failed to restore the full snapshot into the replay member")]
    Tool(#[source] Box<crate::restore::RestoreError>),
    #[error("the replay member did not start")]
    Start(#[source] Box<crate::etcd::standalone::StandaloneError>),
    #[error("failed to {step} in the replay member")]
    Etcd {
        step: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error(
        "the full snapshot already holds revision {snapshot_revision}, after the target revision {target}; choose an older snapshot with --cluster-reset-restore-path"
    )]
    SnapshotAhead { snapshot_revision: i64, target: i64 },
    #[error(
        "{path} continues with revision {revision} where revision {expected} was due: the chain does not continue the snapshot there"
    )]
    RevisionGap {
        path: PathBuf,
        revision: i64,
        expected: i64,
    },
    #[error("the full snapshot {path} cannot be replayed onto: {detail}")]
    Anchor { path: PathBuf, detail: String },
    #[error("the full snapshot failed its check")]
    AnchorCheck(#[source] Box<crate::snapshot::verify::VerifyError>),
    #[error(
        "after replaying {path}, the member's keyspace hash at revision {revision} is {observed:?}, but the capture recorded {recorded:?}: the replay does not reproduce the cluster"
    )]
    HashMismatch {
        path: PathBuf,
        revision: i64,
        recorded: SegmentHash,
        observed: SegmentHash,
    },
    #[error("the replay ended at revision {got}, not at the target revision {target}")]
    FinalRevision { target: i64, got: i64 },
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the segment reader stopped unexpectedly")]
    Task(#[from] tokio::task::JoinError),
}
