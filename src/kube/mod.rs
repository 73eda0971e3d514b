//! The Kubernetes integration: what this product declares to and (later) does in a cluster.
//!
//! Today it holds only the `ETCDSnapshotFile` CustomResourceDefinition, so that it can be
//! printed (`etcd-snapshot crd`) and committed under `manifests/`. It is meant to grow the
//! apiserver client, the S3 config Secret reader and the `ETCDSnapshotFile` reconciler; it must
//! not take over work of the snapshot pipeline, the stores or the API server.

pub mod crd;
