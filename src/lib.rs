//! # etcd-snapshot
//!
//! Scheduled, verified, replicated etcd snapshots with an RKE2-compatible CLI and API.
//!
//! # Layout
//! Modules by domain, listed from the bottom up: a module uses only modules listed above it
//! (`module_graph_tests` fails on an import cycle between top-level modules, naming each edge).
//!
//! - `errors`, `hex`, `fsutil`, `layout`, `pki`, `tls_verify`, `deflate`: leaves with no
//!   `crate::` imports. One line per error with its sources (`error_chain`); lower-case hex;
//!   crash-safe writes and size-capped reads; every path under the data dir and beside a
//!   snapshot dir (`.metadata`, `.s3-pending`, the work dir with lock and temp files); the
//!   certificate helpers the API's and etcd's CAs share (crypto provider, host name,
//!   validity); the blind certificate verifier (skip-ssl-verify, `/cacerts` bootstrap); raw
//!   Deflate encoding (`deflate`: Huffman-only and greedy LZ77 blocks with dynamic codes, the
//!   zip writer's encoder).
//! - `telemetry`: logging (and its settings), Prometheus/OpenMetrics metrics and the CLI's
//!   `--progress` reporting; below everything it observes, so the save pipeline reports to it.
//! - `crypt`: age encryption of snapshots: recipients, identities, fingerprints, the encrypting
//!   writer of the save pipeline and the decrypting reader every read path uses, age headers
//!   that name their recipients (`crypt::named`), and a file's seal (`crypt::seal`: the digest
//!   of its header and nonce, which ties it to the save that checked its plaintext).
//! - `snapshot`: what a snapshot *is*: names (and the rounded "now" they carry), the streaming
//!   save pipeline (its parallel zip writer, `snapshot::zipstream`, picks LZ77, Huffman-only or
//!   stored Deflate per 64 KiB segment, encoded by `deflate`; `zipstream::pool` runs its workers and keeps their blocks
//!   in order), verification of a file (`snapshot::verify`, read-only, used by restore and
//!   the S3 backfill), retention planning, freshness (how stale the newest snapshot is), listing records, the
//!   keyspace hash recorded at save time (`snapshot::hashkv`), the drill verdict record
//!   (`snapshot::drill_record`), a full snapshot's point-in-time window as listed
//!   (`snapshot::point_in_time`).
//! - `config`: the layered config engine (`resolve` -> `DesiredConfig`), the key table, value
//!   parsing (cron `Schedule`, Go durations), file watching and hot reload, `config show`.
//! - `cli`: clap commands built from the config key table; argv -> `Invocation`.
//! - `token`: the server token (load, create, RKE2 forms, the token hash).
//! - `kube`: the Kubernetes integration: access, the S3 config Secret, the encryption Secret,
//!   `ETCDSnapshotFile`
//!   resources and Events, the CRD (installed only when opted in).
//! - `child`: every child process's environment (an allow-list) and masking secrets in their output.
//! - `store`: where snapshot copies live (`LocalStore`, `S3Store`) behind one seam
//!   (`SnapshotStore`): listing, deleting and pruning them; re-encrypting them (`rekey`).
//! - `etcd`: connecting to etcd (TLS, the plain-http rule lives in `config::etcd_check`); the
//!   embedded etcd child process, its certificates (`etcd::certs`, RKE2's `server/tls/etcd`),
//!   its startup identity check and its supervision.
//! - `bootstrap`: the cluster's confidential files, encrypted with the token, kept in etcd.
//! - `datastore`: where a snapshot's bytes come from: etcd, or a SQLite datastore (k3s/RKE2's
//!   kine `state.db`), chosen by `datastore-endpoint` or detected from the data dir
//!   (`datastore::choose`); the SQLite side's consistent online copy, its read-only checks
//!   (`datastore::kine`) and the live-writer lock check a restore makes (`datastore::writer`).
//! - `inspect`: reads a local or S3 snapshot without restoring it (trailer, bbolt walk, the
//!   figures of `etcdutl snapshot status`, resources, members, token and uploader checks); above
//!   the stores and bootstrap it reads through, below `restore` (the cheap revision read,
//!   `inspect::revision`, beside a restore; one-key lookups with their file offsets,
//!   `inspect::tree`, for the direct restore; `restore::drill`) and `commands` that use it.
//! - `delta`: point-in-time recovery's capture: the delta segment format (`delta::segment`,
//!   `docs/delta-segments.md`), the chain rules, and the server task that watches etcd from the
//!   newest full snapshot's revision and writes segments beside the snapshot dir (named by
//!   `delta::names`, compressed and encrypted as they stream by `delta::stored`), chain
//!   retention (a chain lives as long as its full snapshot), which segments go to S3
//!   (`delta::upload`), where a point-in-time restore goes (`delta::target`), and each chain's
//!   window record and the point-in-time window `ls` and the resources show (`delta::window`),
//!   and `rekey` of the encrypted segments on disk and in S3 (`delta::rekey`); above the
//!   stores, etcd and snapshot records it reads, below the drivers that wire it.
//! - `restore`: restore and cluster reset: free-space and tool checks, unzip, the restore tool,
//!   the data dir swap, rollback (snapshot checks come from `snapshot::verify`);
//!   `restore::direct`, an encrypted snapshot decrypted on every core straight into the staging
//!   dir where the tool's one change to the database is reproduced (etcd 3.4's tool), its
//!   trailer not hashed again when the file has its save's seal; `restore::unzip_encrypted`,
//!   a `.zip.age` decrypted on a read-ahead thread (`restore::read_ahead`) into the extraction;
//!   `restore::replay`, point-in-time restore (a delta chain, from disk or S3, written straight
//!   into a copy of the full snapshot's bbolt file, proven by a throwaway member, and its
//!   snapshot restored like any other); `restore::drill`,
//!   restore drills (a snapshot copy, plain, zipped or encrypted, restored into a throwaway
//!   low-priority member and checked against what was saved).
//! - `operations`: save/list/delete/prune/verify as one service shared by the API, the
//!   scheduler and the direct-mode CLI (`Operations::run` of a `PlannedOperation`, typed
//!   reports); S3 replication, the failed-upload markers and backfill; delta segments to S3 and
//!   their S3 chains following their snapshots (`segments`, `chains_s3`); retention runs; restore
//!   drills one at a time and their verdicts recorded (`store::verdict`), counted and evented.
//! - `api`: the edge over `operations`: the `POST /db/snapshot` HTTPS server (request limits,
//!   the credential and path rules a request must pass, the request planned as a
//!   `PlannedOperation`), its TLS material and live renewal, the CLI's client, and the wire
//!   types with every conversion into them (`api::wire`: reports, listings as
//!   `ETCDSnapshotFile`, retention verdicts).
//! - `scheduler`: the scheduled-snapshot loop (cron ticks, skips, config changes) and the
//!   restore-drill loop (`scheduler::drills`: its own schedule, after saves, cancelled on shutdown),
//!   and the delta segment uploader (`scheduler::segments`: one upload pass per delta period).
//! - `commands`: runs the client subcommands: ask the server, fall back to direct mode, print.
//! - `daemon`: wires the server's tasks together and owns shutdown.
//!
//! The threat model and what each surface guarantees are in `docs/security.md`; the fuzz
//! targets (`*fuzz*` test modules, harness in `fuzz_support`) sit beside the parsers they test.

pub mod api;
pub mod bootstrap;
pub mod child;
pub mod cli;
pub mod commands;
pub mod config;
pub mod crypt;
pub mod daemon;
pub mod datastore;
pub mod deflate;
pub mod delta;
pub mod errors;
pub mod etcd;
pub mod fsutil;
pub mod hex;
pub mod inspect;
pub mod kube;
pub mod layout;
pub mod operations;
pub mod pki;
pub mod restore;
pub mod scheduler;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod tls_verify;
pub mod token;

#[cfg(test)]
pub(crate) mod fuzz_support;
#[cfg(test)]
mod module_graph_tests;
