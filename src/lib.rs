//! # etcd-snapshot
//!
//! Scheduled, verified, replicated etcd snapshots with an RKE2-compatible CLI and API.
//!
//! # Layout
//! - `cli`: clap commands built from the config key table; argv -> `Invocation`.
//! - `config`: the layered config engine (`resolve` -> `DesiredConfig`), file watching, `config show`.
//! - `commands`: runs the client subcommands: ask the server, fall back to direct mode, print.
//! - `snapshot`: names, the streaming save pipeline, retention planning, listing records, the
//!   keyspace hash recorded at save time (`snapshot::hashkv`).
//! - `store`: where snapshot copies live (`LocalStore`), listing/deleting/pruning them.
//! - `operations`: save/list/delete/prune as one service shared by the API, the scheduler and
//!   the direct-mode CLI.
//! - `scheduler`: cron schedules and the scheduled-snapshot loop.
//! - `api`: the `POST /db/snapshot` HTTPS server (request limits, the credential and path rules
//!   a request must pass), its TLS material and live renewal, the CLI's client, wire types.
//! - `etcd`: connecting to etcd (TLS, the plain-http rule lives in `config::etcd_check`); the
//!   embedded etcd child process, its certificates (`etcd::certs`, RKE2's `server/tls/etcd`),
//!   its startup identity check and its supervision.
//! - `daemon`: wires the server's tasks together and owns shutdown.
//! - `tls_verify`: the blind certificate verifier (skip-ssl-verify, `/cacerts` bootstrap).
//! - `token`: the server token (load, create, RKE2 forms).
//! - `telemetry`: logging, Prometheus/OpenMetrics metrics and the CLI's `--progress` reporting.
//! - `child`: every child process's environment (an allow-list) and masking secrets in their output.
//! - `fsutil`: crash-safe file writes and size-capped reads.
//! - `layout`: every path under the data dir and beside a snapshot dir (pure functions).
//! - `bootstrap`: the cluster's confidential files, encrypted with the token, kept in etcd.
//! - `restore`: verified restore and cluster reset; `restore::drill`, restore drills (a snapshot
//!   copy restored into a throwaway low-priority member and checked against what was saved).
//! - `kube`: the Kubernetes integration: access, the S3 config Secret, `ETCDSnapshotFile`
//!   resources and Events, the CRD (installed only when opted in).
//!
//! The threat model and what each surface guarantees are in `docs/security.md`; the fuzz
//! targets (`*fuzz*` test modules, harness in `fuzz_support`) sit beside the parsers they test.

pub mod api;
pub mod bootstrap;
pub mod child;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod etcd;
pub mod fsutil;
pub mod kube;
pub mod layout;
pub mod operations;
pub mod restore;
pub mod scheduler;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod tls_verify;
pub mod token;

#[cfg(test)]
pub(crate) mod fuzz_support;
