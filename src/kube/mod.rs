//! The Kubernetes integration: API access, the S3 config Secret, the encryption Secret, and the
//! `ETCDSnapshotFile` CustomResourceDefinition and resources.
//!
//! `access` builds the client (`--kubeconfig`, `KUBECONFIG`, in-cluster, or none), `s3_secret`
//! reads the S3 config Secret afresh for each operation, `encryption_secret` the age keys of
//! `etcd-snapshot-encryption-secret` likewise, `extra_metadata` the
//! ConfigMap stored with each snapshot, `crd` describes the resource and
//! `resources` keeps each server's `ETCDSnapshotFile`s in step with its snapshots, with their
//! Events and the CRD's installation. This module must not take over work of the snapshot
//! pipeline, the stores or the API server.

pub mod access;
pub mod crd;
pub mod encryption_secret;
pub mod extra_metadata;
pub mod resources;
pub mod s3_secret;

pub use access::{KubeAccess, KubeError};
