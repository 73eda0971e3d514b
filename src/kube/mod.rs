//! The Kubernetes integration: API access, the S3 config Secret, and the `ETCDSnapshotFile`
//! CustomResourceDefinition and resources.
//!
//! `access` builds the client (`--kubeconfig`, `KUBECONFIG`, in-cluster, or none), `s3_secret`
//! reads the S3 config Secret afresh for each operation, `extra_metadata` the
//! ConfigMap stored with each snapshot, `crd` describes the resource and
//! `resources` keeps each server's `ETCDSnapshotFile`s in step with its snapshots, with their
//! Events and the CRD's installation. This module must not take over work of the snapshot
//! pipeline, the stores or the API server.

pub mod access;
pub mod crd;
pub mod extra_metadata;
pub mod resources;
pub mod s3_secret;

pub use access::{KubeAccess, KubeError};
