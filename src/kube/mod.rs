//! The Kubernetes integration: what this product declares to and does in a cluster.
//!
//! It holds the `ETCDSnapshotFile` CustomResourceDefinition (printed by `etcd-snapshot crd` and
//! committed under `manifests/`) and the `ETCDSnapshotFile` resources each server keeps in step
//! with its snapshots, with their Events and the CRD's installation. It is meant to grow the
//! apiserver client and the S3 config Secret reader; it must not take over work of the snapshot
//! pipeline, the stores or the API server.

pub mod crd;
pub mod resources;
