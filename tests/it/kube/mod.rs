//! The Kubernetes integration against the API stand-in (`fakes::kube_api`) and kubectl: the CRD,
//! ETCDSnapshotFile resources and Events, node discovery, the S3 config Secret, the server's
//! controllers, and a full snapshot's point-in-time window on its resource (`window`).

mod crd;
mod encryption_secret;
mod kubectl;
mod nodes;
mod resources;
mod secret;
mod server;
mod window;
