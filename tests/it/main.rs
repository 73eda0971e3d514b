//! Integration tests: one binary, modules by area. Real etcd (Debian `etcd-server`) on loopback
//! ports, real files, and the real `etcd-snapshot` binary.
//!
//! Areas with several files have a folder: `s3/` (the S3 store, replication, retention, sources,
//! sessions, progress of transfers), `kube/` (the Kubernetes integration against the API
//! stand-in), `restore/` (restore and cluster reset), `verify/` (restore drills: damage caught,
//! verdicts shown, drills started), `sqlite/` (SQLite datastores: save, inspect, consistency
//! under a writer, restore), and `fakes/` (the stand-ins other tests
//! run against: the signature-checking S3 server, the Kubernetes API, and their own tests).

mod fakes;
mod support;

mod api;
mod api_hardening;
mod api_limits;
mod api_tls;
mod bench_smoke;
mod bootstrap;
mod child_secrets;
mod cli;
mod config_engine;
mod delta;
mod drills;
mod drills_inside;
mod durations;
mod embedded_etcd;
mod encryption;
mod encryption_passphrase;
mod encryption_seal;
mod encryption_visible;
mod etcd_tls;
mod generate;
mod image;
mod inspect;
mod inspect_encrypted;
mod inspect_evidence;
mod kube;
mod kustomize;
mod ls_output;
mod ls_rke2_shape;
mod manifests;
mod metrics_format;
mod package;
mod pipeline;
mod progress;
mod restore;
mod retention;
mod s3;
mod server;
mod snapshot_dir;
mod sqlite;
mod standalone_etcd;
mod store_conformance;
mod verify;
