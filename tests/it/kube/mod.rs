//! The Kubernetes integration against the API stand-in (`fakes::kube_api`) and kubectl: the CRD,
//! ETCDSnapshotFile resources and Events, node discovery, the S3 config Secret, the server's
//! controllers.

mod crd;
mod encryption_secret;
mod kubectl;
mod nodes;
mod resources;
mod secret;
mod server;
