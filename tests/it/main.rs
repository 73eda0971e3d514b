//! Integration tests: one binary, modules by area. Real etcd (Debian `etcd-server`) on loopback
//! ports, real files, and the real `etcd-snapshot` binary.

mod s3_support;
mod support;

mod api;
mod api_hardening;
mod api_limits;
mod api_tls;
mod bootstrap;
mod child_secrets;
mod cli;
mod cluster_reset;
mod cluster_reset_peers;
mod config_engine;
mod crd;
mod drills;
mod durations;
mod embedded_etcd;
mod etcd_tls;
mod inspect;
mod inspect_evidence;
mod kube_api;
mod kube_api_tests;
mod kube_nodes;
mod kube_resources;
mod kube_secret;
mod kube_server;
mod kube_support;
mod kubectl;
mod ls_output;
mod manifests;
mod pipeline;
mod restore;
mod retention;
mod s3;
mod s3_ops;
mod s3_retention;
mod s3_session;
mod s3_sources;
mod server;
mod snapshot_dir;
mod standalone_etcd;
mod store_conformance;
