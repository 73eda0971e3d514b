//! The one error type of the standalone etcd: starting it, checking it, reading a snapshot's
//! status. Messages name the object (data dir, endpoint, program, snapshot); sources are chained.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::MemberMismatch;

/// Errors running the one-off member, checking it, or reading a snapshot's status.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error("failed to find etcd binary {binary}")]
    BinaryNotFound { binary: PathBuf },
    #[error("failed to use etcd data dir {data_dir}: {reason}")]
    DataDir {
        data_dir: PathBuf,
        reason: &'static str,
    },
    #[error("failed to listen on {address}: a standalone etcd listens on loopback only")]
    NotLoopback { address: SocketAddr },
    #[error("failed to create the one-off etcd's certificate directory {dir}")]
    TlsDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to issue the one-off etcd's certificates")]
    Certs(#[source] crate::etcd::certs::CertError),
    #[error("failed to load the one-off etcd's client certificate")]
    ClientTls(#[source] crate::etcd::client::ConnectError),
    #[error("failed to pick a free loopback port")]
    FreePort(#[source] std::io::Error),
    #[error("failed to start etcd {binary}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start etcd on {data_dir}: it exited with {status}; {output}")]
    Exited {
        data_dir: PathBuf,
        status: String,
        output: String,
    },
    #[error(
        "failed to start etcd on {data_dir}: no answer at {endpoint} within {seconds}s; {output}"
    )]
    Unhealthy {
        data_dir: PathBuf,
        endpoint: String,
        seconds: u64,
        output: String,
    },
    #[error("failed to connect to etcd at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("failed to stop etcd on {data_dir}")]
    Stop { data_dir: PathBuf },
    #[error("failed to read {what} from etcd")]
    Query {
        what: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error("failed to read {what} from etcd: the response has no header")]
    NoHeader { what: &'static str },
    #[error("failed to verify the etcd member: {}", join(.differences))]
    Member { differences: Vec<MemberMismatch> },
    #[error("failed to run {program} snapshot status on {snapshot}")]
    StatusTool {
        program: PathBuf,
        snapshot: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to read the status of snapshot {snapshot} with {program}: exited with {status}: {stderr}"
    )]
    StatusFailed {
        program: PathBuf,
        snapshot: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("failed to parse the status of snapshot {snapshot} printed by {program}")]
    StatusParse {
        program: PathBuf,
        snapshot: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn join(differences: &[MemberMismatch]) -> String {
    let texts: Vec<String> = differences.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

impl StandaloneError {
    /// True when trying again may help (etcd slow to answer, a dropped connection); false for
    /// what needs a change first (a bad data dir or binary, a member that differs, a bad snapshot).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unhealthy { .. } | Self::Connect { .. } | Self::Query { .. }
        )
    }
}
