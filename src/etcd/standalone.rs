//! A one-off etcd on an existing member's data dir, on loopback only: for checks after a
//! restore and for a membership reset (`--force-new-cluster`) before the live data is touched.
//!
//! Owns starting that child (same plumbing as the embedded member: death signal, own process
//! group, output forwarding), waiting until it answers, handing out a client, and stopping it.
//! `check` compares the running member with what the caller expects; `status` reads a snapshot
//! file's status with etcd's own tool; `tls` gives it a throwaway CA: it serves TLS only and
//! requires client certificates, like the embedded member. Nothing here decides *whether* to restore or reset, moves
//! data dirs, or supervises/restarts etcd: one run, then stop.

mod check;
mod error;
mod status;
mod tls;

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;
use tokio::task::JoinHandle;

use super::embedded::probe;
use super::embedded::process::{self, RecentOutput};
use super::embedded::startup::{client_tls, https_url};
use tls::ThrowawayTls;

pub use check::{
    MemberExpectation, MemberMismatch, MemberObservation, MemberReport, ObservedAlarm,
    ObservedMember, check_member, compare_member,
};
pub use error::StandaloneError;
pub use status::{SnapshotStatus, parse_snapshot_status, snapshot_status};

/// How much of etcd's newest output errors carry: a Go panic's message sits above its stack.
const KEPT_OUTPUT_BYTES: usize = 64 * 1024;
/// Pause between health probes while starting.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How long the client may take to dial / to answer once etcd is up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run the one-off member.
#[derive(Debug, Clone)]
pub struct StandaloneOptions {
    /// The etcd server binary (a bare name is searched on PATH).
    pub binary: PathBuf,
    /// An existing member's data dir (`member/wal` must exist: this never bootstraps a cluster).
    pub data_dir: PathBuf,
    /// Member name etcd is started with.
    pub name: String,
    /// Reset membership to this single member (the cluster-reset without a snapshot).
    pub force_new_cluster: bool,
    /// Client listener; None picks a free port on 127.0.0.1. Must be loopback.
    pub client_address: Option<SocketAddr>,
    /// Peer listener; None picks a free port on 127.0.0.1. Must be loopback.
    pub peer_address: Option<SocketAddr>,
    /// `--initial-advertise-peer-urls`; None uses the peer listener's URL. etcd ignores it for a
    /// member with a WAL (the recorded peer URL stays), so a restored member whose recorded peer
    /// URL is `http://127.0.0.1:2380` runs fine while listening elsewhere (checked on 3.4.23).
    pub initial_advertise_peer_url: Option<String>,
    /// How long etcd may take to answer before the start counts as failed.
    pub health_timeout: Duration,
    /// Run at the lowest CPU (and so IO) priority (`child::lower_priority`), as a restore drill
    /// does.
    pub low_priority: bool,
    /// More etcd flags, after the ones above (a replay member raises its request limits).
    pub extra_args: Vec<OsString>,
    /// Short raft timers (20 ms heartbeat, 200 ms election) for a throwaway single member on
    /// loopback: it elects itself within a tick or two instead of up to two seconds, and no peer
    /// exists whose latency the defaults are there to absorb.
    pub fast_election: bool,
}

impl StandaloneOptions {
    /// Free loopback ports, no force-new-cluster, a 60 s health timeout.
    pub fn new(binary: impl Into<PathBuf>, data_dir: impl Into<PathBuf>, name: &str) -> Self {
        Self {
            binary: binary.into(),
            data_dir: data_dir.into(),
            name: name.to_string(),
            force_new_cluster: false,
            client_address: None,
            peer_address: None,
            initial_advertise_peer_url: None,
            health_timeout: Duration::from_secs(60),
            low_priority: false,
            extra_args: Vec::new(),
            fast_election: false,
        }
    }
}

/// A running one-off etcd; killed when dropped without `stop`.
pub struct StandaloneEtcd {
    child: Option<Child>,
    client: etcd_client::Client,
    endpoint: String,
    client_address: SocketAddr,
    peer_address: SocketAddr,
    data_dir: PathBuf,
    recent: RecentOutput,
    forwarders: Vec<JoinHandle<()>>,
    /// Declared last: the certificates go only after the child was killed (drop order).
    _tls: ThrowawayTls,
}

impl std::fmt::Debug for StandaloneEtcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneEtcd")
            .field("pid", &self.pid())
            .field("endpoint", &self.endpoint)
            .field("peer_address", &self.peer_address)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl StandaloneEtcd {
    /// Starts etcd on `opts.data_dir` and waits (bounded) until it answers; fails fast, with
    /// etcd's last output, when it exits meanwhile.
    pub async fn start(opts: StandaloneOptions) -> Result<Self, StandaloneError> {
        let binary =
            process::find_binary(&opts.binary).ok_or_else(|| StandaloneError::BinaryNotFound {
                binary: opts.binary.clone(),
            })?;
        check_data_dir(&opts.data_dir)?;
        let client_address = listen_address(opts.client_address)?;
        let peer_address = listen_address(opts.peer_address)?;
        let throwaway = ThrowawayTls::create(peer_address.ip())?;
        let tls = client_tls(&throwaway.files).map_err(StandaloneError::ClientTls)?;
        let mut args = etcd_args(&opts, client_address, peer_address);
        args.extend(throwaway.files.etcd_flags());
        let recent = RecentOutput::bounded(usize::MAX, KEPT_OUTPUT_BYTES);
        let spawned = process::spawn_with_args(&binary, args, &recent).map_err(|source| {
            StandaloneError::Spawn {
                binary: binary.clone(),
                source,
            }
        })?;
        if opts.low_priority
            && let Some(pid) = spawned.child.id()
        {
            crate::child::lower_priority(pid);
        }
        let endpoint = https_url(client_address);
        tracing::info!(%endpoint, data_dir = %opts.data_dir.display(),
            force_new_cluster = opts.force_new_cluster, "starting standalone etcd");
        let mut child = spawned.child;
        if let Err(failure) = wait_healthy(&endpoint, &tls, &mut child, opts.health_timeout).await {
            process::terminate(&mut child).await;
            // Let the forwarders drain so the error carries etcd's last words.
            let drain = async {
                for task in spawned.forwarders {
                    let _ = task.await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
            return Err(failure.into_error(&opts, &endpoint, recent.describe()));
        }
        let client = connect(&endpoint, &tls).await?;
        tracing::info!(%endpoint, "standalone etcd is ready");
        Ok(Self {
            child: Some(child),
            client,
            endpoint,
            client_address,
            peer_address,
            data_dir: opts.data_dir,
            recent,
            forwarders: spawned.forwarders,
            _tls: throwaway,
        })
    }

    /// A client connected to this member (cheap to clone).
    pub fn client(&self) -> etcd_client::Client {
        self.client.clone()
    }

    /// `https://<client address>` (a client needs `client()`'s certificate to use it).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where etcd serves clients.
    pub fn client_address(&self) -> SocketAddr {
        self.client_address
    }

    /// Where etcd listens for peers (nobody joins; the listener is required).
    pub fn peer_address(&self) -> SocketAddr {
        self.peer_address
    }

    /// The etcd pid, None once it was stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// etcd's newest output (bounded), for logs.
    pub fn recent_output(&self) -> String {
        self.recent.describe()
    }

    /// SIGTERM, up to 10 s for etcd to exit, then SIGKILL; returns once it is gone.
    pub async fn stop(mut self) -> Result<ExitStatus, StandaloneError> {
        let status = match self.child.take() {
            Some(mut child) => process::terminate(&mut child).await,
            None => None,
        };
        for task in std::mem::take(&mut self.forwarders) {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        tracing::info!(?status, endpoint = %self.endpoint, "standalone etcd stopped");
        status.ok_or_else(|| StandaloneError::Stop {
            data_dir: self.data_dir.clone(),
        })
    }
}

impl Drop for StandaloneEtcd {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// The data dir must already hold a member: on an empty dir etcd would bootstrap a new, empty
/// cluster (and silently ignore `--force-new-cluster`).
fn check_data_dir(data_dir: &Path) -> Result<(), StandaloneError> {
    let reason = if !data_dir.is_dir() {
        "it does not exist"
    } else if !data_dir.join("member").join("wal").is_dir() {
        "it holds no etcd member (no member/wal)"
    } else {
        return Ok(());
    };
    Err(StandaloneError::DataDir {
        data_dir: data_dir.to_path_buf(),
        reason,
    })
}

/// The given address when it is loopback, else a port free a moment ago on 127.0.0.1.
fn listen_address(given: Option<SocketAddr>) -> Result<SocketAddr, StandaloneError> {
    match given {
        Some(address) if address.ip().is_loopback() => Ok(address),
        Some(address) => Err(StandaloneError::NotLoopback { address }),
        None => TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(StandaloneError::FreePort),
    }
}

/// etcd's command line: loopback listeners, advertised client URL loopback too (TLS flags are
/// added by the caller, with the throwaway files).
fn etcd_args(opts: &StandaloneOptions, client: SocketAddr, peer: SocketAddr) -> Vec<OsString> {
    let client = https_url(client);
    let peer = https_url(peer);
    let advertised_peer = opts
        .initial_advertise_peer_url
        .clone()
        .unwrap_or(peer.clone());
    let mut args =
        process::member_args(&opts.name, &opts.data_dir, &client, &peer, &advertised_peer);
    args.push("--initial-cluster".into());
    args.push(format!("{}={advertised_peer}", opts.name).into());
    if opts.force_new_cluster {
        args.push("--force-new-cluster".into());
    }
    if opts.fast_election {
        for arg in ["--heartbeat-interval", "20", "--election-timeout", "200"] {
            args.push(arg.into());
        }
    }
    args.extend(opts.extra_args.iter().cloned());
    args
}

/// Why a start did not become healthy.
enum StartFailure {
    Exited(String),
    TimedOut(Duration),
}

impl StartFailure {
    fn into_error(
        self,
        opts: &StandaloneOptions,
        endpoint: &str,
        output: String,
    ) -> StandaloneError {
        let data_dir = opts.data_dir.clone();
        match self {
            Self::Exited(status) => StandaloneError::Exited {
                data_dir,
                status,
                output,
            },
            Self::TimedOut(limit) => StandaloneError::Unhealthy {
                data_dir,
                endpoint: endpoint.to_string(),
                seconds: limit.as_secs(),
                output,
            },
        }
    }
}

/// Polls until the member answers a status call, it exits, or `limit` passes.
async fn wait_healthy(
    endpoint: &str,
    tls: &etcd_client::TlsOptions,
    child: &mut Child,
    limit: Duration,
) -> Result<(), StartFailure> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartFailure::Exited(status.to_string()));
        }
        if probe(endpoint, Some(tls)).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StartFailure::TimedOut(limit));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

async fn connect(
    endpoint: &str,
    tls: &etcd_client::TlsOptions,
) -> Result<etcd_client::Client, StandaloneError> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_tls(tls.clone());
    etcd_client::Client::connect([endpoint], Some(options))
        .await
        .map_err(|source| StandaloneError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests;
