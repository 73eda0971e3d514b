//! The validated, typed configuration every operation runs with.
//!
//! `DesiredConfig` is only ever built by `config::resolve` from merged layers; nothing else
//! constructs it field by field outside tests. It holds no I/O handles: it is plain data that
//! can be cloned per operation and overlaid with an API request's explicit fields.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::scheduler::Schedule;

/// The whole merged configuration of one evaluation of the engine.
#[derive(Debug, Clone)]
pub struct DesiredConfig {
    /// `--config`: the main config file (its `.d` drop-in dir sits beside it).
    pub config_file: PathBuf,
    /// `--data-dir`: root of the RKE2-compatible layout (`server/db/...`, `server/token`).
    pub data_dir: PathBuf,
    /// `--node-name`: goes into snapshot names; defaults to the host name.
    pub node_name: String,
    /// `--token`: the server token given inline.
    pub token: Option<SecretString>,
    /// `--token-file`: a file holding the server token.
    pub token_file: Option<PathBuf>,
    pub etcd: EtcdSettings,
    pub snapshot: SnapshotSettings,
    pub api: ApiSettings,
    pub log: LogSettings,
}

/// How to reach etcd, or how to run the embedded one.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// `--etcd-endpoints`; empty means "run the embedded etcd".
    pub endpoints: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// `--etcd-binary`: the etcd executable for the embedded default.
    pub binary: PathBuf,
    /// `--etcd-client-address`: embedded etcd client listener (loopback by default).
    pub client_address: SocketAddr,
    /// `--etcd-peer-address`: embedded etcd peer listener (loopback by default).
    pub peer_address: SocketAddr,
}

impl EtcdSettings {
    /// True when no endpoint is configured and the server must start its own etcd.
    pub fn is_embedded(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoints to dial: the configured ones, or the embedded member's loopback listener.
    pub fn client_endpoints(&self) -> Vec<String> {
        if self.is_embedded() {
            vec![format!("http://{}", self.client_address)]
        } else {
            self.endpoints.clone()
        }
    }
}

/// Snapshot naming, placement, compression, retention and schedule.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// `--etcd-disable-snapshots`: no scheduled snapshots (on-demand still works).
    pub disabled: bool,
    /// `--etcd-snapshot-name`: base name of scheduled snapshots.
    pub scheduled_name: String,
    /// `--name`: base name of on-demand snapshots.
    pub on_demand_name: String,
    /// `--etcd-snapshot-compress` / `--snapshot-compress`.
    pub compress: bool,
    /// `--etcd-snapshot-dir` / `--dir`; defaults to `<data-dir>/server/db/snapshots`.
    pub dir: PathBuf,
    /// True when `dir` is the default (only the default dir is created automatically).
    pub dir_is_default: bool,
    /// `--etcd-snapshot-retention` / `--snapshot-retention`; 0 keeps everything.
    pub retention: u32,
    /// `--etcd-snapshot-schedule-cron`.
    pub schedule: Schedule,
}

impl SnapshotSettings {
    /// `<snapshot dir>/../.metadata`, a sibling of the snapshot dir, as RKE2 lays it out.
    pub fn metadata_dir(&self) -> PathBuf {
        metadata_dir_for(&self.dir)
    }
}

/// The metadata dir that belongs to a snapshot dir.
pub fn metadata_dir_for(snapshot_dir: &Path) -> PathBuf {
    match snapshot_dir.parent() {
        Some(parent) => parent.join(".metadata"),
        None => snapshot_dir.join("..").join(".metadata"),
    }
}

/// The authenticated snapshot API: where the server listens and where the CLI connects.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `--bind-address` (server).
    pub bind_address: IpAddr,
    /// `--supervisor-port` (server).
    pub supervisor_port: u16,
    /// `--etcd-server` (CLI): URL of the server to ask.
    pub server_url: String,
    /// `--etcd-token` (CLI): token to authenticate with; defaults to `<data-dir>/server/token`.
    pub token: Option<SecretString>,
}

/// Log output settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `--debug`: debug-level logs.
    pub debug: bool,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl DesiredConfig {
    /// `<data-dir>/server`.
    pub fn server_dir(&self) -> PathBuf {
        self.data_dir.join("server")
    }
    /// `<data-dir>/server/db`.
    pub fn db_dir(&self) -> PathBuf {
        self.server_dir().join("db")
    }
    /// `<data-dir>/server/db/etcd`: the embedded member's data.
    pub fn etcd_data_dir(&self) -> PathBuf {
        self.db_dir().join("etcd")
    }
    /// `<data-dir>/server/token`.
    pub fn token_path(&self) -> PathBuf {
        self.server_dir().join("token")
    }
    /// `<data-dir>/server/tls`.
    pub fn tls_dir(&self) -> PathBuf {
        self.server_dir().join("tls")
    }
    /// The default snapshot dir for a data dir.
    pub fn default_snapshot_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("server").join("db").join("snapshots")
    }
}
