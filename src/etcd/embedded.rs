//! The embedded default: an `etcd` child process on loopback, supervised.
//!
//! Started when no `--etcd-endpoints` is configured. Restarted with backoff when it dies, stopped
//! cleanly on shutdown, and never left running after the server exits (a kernel death signal
//! covers our own crash; a pid file lets the next start stop a leftover). This module decides
//! when to (re)start and stop; `process` does the process plumbing; `startup` prepares its TLS
//! material and checks, before and after the spawn, that the member answering is ours. It never
//! touches the member's data beyond creating its directory.

pub(crate) mod process;
pub(crate) mod startup;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use etcd_client::TlsOptions;
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod join;

use process::RecentOutput;

/// How to run the embedded member.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub binary: PathBuf,
    /// `<data-dir>/server/db/etcd`.
    pub data_dir: PathBuf,
    /// `<data-dir>/server/tls/etcd`: its CAs and certificates (`etcd::certs`).
    pub tls_dir: PathBuf,
    /// Member name (the node name).
    pub name: String,
    pub client_address: SocketAddr,
    pub peer_address: SocketAddr,
    /// Join the cluster of the member at this client URL when the data dir is empty.
    pub join: Option<String>,
    /// Set by `start` after joining: the cluster to start in (`--initial-cluster-state
    /// existing`). Ignored by etcd once the data dir holds a member.
    pub initial_cluster: Option<String>,
}

/// Errors starting the embedded etcd.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("etcd binary {binary} not found (install etcd-server or pass --etcd-binary)")]
    BinaryNotFound { binary: PathBuf },
    #[error("failed to start embedded etcd")]
    Spawn(#[source] std::io::Error),
    #[error("embedded etcd did not become healthy within {seconds}s: {detail}")]
    Unhealthy { seconds: u64, detail: String },
    #[error("failed to join the etcd cluster")]
    Join(#[source] join::JoinError),
    #[error("failed to prepare the embedded etcd's certificates")]
    Certs(#[source] crate::etcd::certs::CertError),
    #[error("failed to load the embedded etcd's client certificate")]
    ClientTls(#[source] crate::etcd::client::ConnectError),
    #[error(
        "failed to start embedded etcd: {key} {address} is already in use (another etcd or \
         server on this host?); stop it or choose another {key}"
    )]
    PortInUse {
        key: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start embedded etcd: the etcd at {endpoint} is not this member: {reason}")]
    NotOurs { endpoint: String, reason: String },
}

/// How long a fresh start may take before it counts as failed.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between health probes while starting.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// First restart delay; doubled after each quick crash up to `MAX_BACKOFF`.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A member that ran this long before dying counts as stable: the backoff starts over.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// A running, supervised embedded etcd.
#[derive(Debug)]
pub struct EmbeddedEtcd {
    endpoint: String,
    /// Current etcd pid; 0 while it is down.
    pid: Arc<AtomicU32>,
    pid_file: PathBuf,
    stop: CancellationToken,
    supervisor: Option<JoinHandle<()>>,
}

impl EmbeddedEtcd {
    /// Starts etcd and waits (bounded) until it answers; supervision runs until `cancel`.
    pub async fn start(
        opts: EmbeddedOptions,
        cancel: CancellationToken,
    ) -> Result<Self, EmbeddedError> {
        let (binary, pid_file, tls) = prepare(&opts).await?;
        let mut opts = opts;
        let joining = join_if_new(&mut opts, &tls).await?;

        let recent = RecentOutput::default();
        let spawned = process::spawn(&binary, &opts, &recent).map_err(EmbeddedError::Spawn)?;
        let (mut child, forwarders) = (spawned.child, spawned.forwarders);
        let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
        process::write_pid_file(&pid_file, pid.load(Ordering::SeqCst));
        let endpoint = startup::https_url(opts.client_address);
        tracing::info!(%endpoint, data_dir = %opts.data_dir.display(), "starting embedded etcd");
        let ready = match wait_healthy(&endpoint, &tls, &mut child, &cancel).await {
            Ok(()) => startup::check_ours(&endpoint, &tls, &opts, &mut child).await,
            Err(detail) => Err(startup::Unready::Unhealthy(detail)),
        };
        if let Err(unready) = ready {
            process::terminate(&mut child).await;
            process::remove_pid_file(&pid_file);
            // Let the output forwarders drain so the error shows etcd's last words.
            let _ = tokio::time::timeout(Duration::from_secs(1), join_all(forwarders)).await;
            return Err(unready.into_error(&endpoint, &recent));
        }
        if let Err(e) = finish_join(&opts, &tls, joining).await {
            process::terminate(&mut child).await;
            process::remove_pid_file(&pid_file);
            return Err(EmbeddedError::Join(e));
        }
        tracing::info!(%endpoint, "embedded etcd is ready");

        let stop = cancel.child_token();
        let member = Member {
            binary,
            opts,
            child,
            started: Instant::now(),
            recent,
            pid: pid.clone(),
            pid_file: pid_file.clone(),
        };
        let supervisor = tokio::spawn(supervise(member, stop.clone()));
        Ok(Self {
            endpoint,
            pid,
            pid_file,
            stop,
            supervisor: Some(supervisor),
        })
    }

    /// `https://<client address>`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The running etcd's pid (None while it is being restarted or after shutdown).
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|&pid| pid != 0)
    }

    /// Where the pid is recorded for crash recovery (`<data-dir>.pid`).
    pub fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    /// Stops etcd (SIGTERM, then SIGKILL after a grace period) and waits for it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.await;
        }
    }
}

impl Drop for EmbeddedEtcd {
    /// Without `shutdown`, the supervisor still stops etcd (asynchronously); `kill_on_drop`
    /// backs that up if the runtime goes away first.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Everything before the spawn: the binary, the data dir, a crash leftover stopped, the ports
/// free, the certificates in place; returns the binary, the pid file and our client TLS.
async fn prepare(opts: &EmbeddedOptions) -> Result<(PathBuf, PathBuf, TlsOptions), EmbeddedError> {
    let binary =
        process::find_binary(&opts.binary).ok_or_else(|| EmbeddedError::BinaryNotFound {
            binary: opts.binary.clone(),
        })?;
    process::prepare_data_dir(&opts.data_dir).map_err(EmbeddedError::Spawn)?;
    let pid_file = process::pid_file_for(&opts.data_dir);
    process::stop_leftover(&pid_file, &opts.data_dir).await;
    startup::check_ports_free(opts)?;
    let tls = startup::prepare_tls(opts)?;
    Ok((binary, pid_file, tls))
}

/// Polls until the member answers a status call, it exits, or `HEALTH_TIMEOUT` passes.
async fn wait_healthy(
    endpoint: &str,
    tls: &TlsOptions,
    child: &mut Child,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + HEALTH_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("etcd exited with {status}"));
        }
        if probe(endpoint, Some(tls)).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("no answer at {endpoint}"));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err("cancelled while starting".into()),
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

/// A join endpoint is configured and this member has no data yet.
fn is_new_join(opts: &EmbeddedOptions) -> bool {
    opts.join.is_some() && !opts.data_dir.join("member").is_dir()
}

/// With a join endpoint and no data yet, adds this node to that cluster (as a learner) and sets
/// the `--initial-cluster` it starts with; true when it did.
async fn join_if_new(opts: &mut EmbeddedOptions, tls: &TlsOptions) -> Result<bool, EmbeddedError> {
    let Some(endpoint) = opts.join.clone().filter(|_| is_new_join(opts)) else {
        return Ok(false);
    };
    let peer = startup::https_url(opts.peer_address);
    let cluster = join::add_self(&endpoint, tls, &opts.name, &peer)
        .await
        .map_err(EmbeddedError::Join)?;
    tracing::info!(%endpoint, initial_cluster = %cluster, "joining an existing etcd cluster");
    opts.initial_cluster = Some(cluster);
    Ok(true)
}

/// Promotes this member when it joined as a learner. On the start that joined, failing to
/// promote is an error (the member could not serve snapshots). On later starts with the join
/// endpoint still configured, an earlier start may have been cut short before its promotion:
/// that is tried again, but the join endpoint being down, or anything else going wrong, only
/// warns, so a long-standing member never depends on one other server to start.
async fn finish_join(
    opts: &EmbeddedOptions,
    tls: &TlsOptions,
    joined_now: bool,
) -> Result<(), join::JoinError> {
    let Some(endpoint) = &opts.join else {
        return Ok(());
    };
    let peer = startup::https_url(opts.peer_address);
    let promoted = join::promote_self(endpoint, tls, &peer, join::PROMOTE_PATIENCE).await;
    match promoted {
        Err(e) if !joined_now => {
            tracing::warn!(error = %crate::errors::error_chain(&e), "could not check through the join endpoint whether this member still needs promoting; carrying on");
            Ok(())
        }
        other => other,
    }
}

/// Waits for every task (their results do not matter here).
async fn join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// True when the member answers a status call (over TLS with our client certificate when
/// `tls` is given).
pub(crate) async fn probe(endpoint: &str, tls: Option<&TlsOptions>) -> bool {
    let mut options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2));
    if let Some(tls) = tls {
        options = options.with_tls(tls.clone());
    }
    let attempt = async {
        let mut client = etcd_client::Client::connect([endpoint], Some(options)).await?;
        client.status().await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Ok(_))
    )
}

/// The supervised child and what is needed to start it again.
struct Member {
    binary: PathBuf,
    opts: EmbeddedOptions,
    child: Child,
    started: Instant,
    recent: RecentOutput,
    pid: Arc<AtomicU32>,
    pid_file: PathBuf,
}

/// Restarts etcd whenever it exits on its own; stops it when `stop` fires.
async fn supervise(mut member: Member, stop: CancellationToken) {
    let mut backoff = Backoff::default();
    loop {
        let exited = tokio::select! {
            status = member.child.wait() => Some(status),
            _ = stop.cancelled() => None,
        };
        let Some(status) = exited else {
            tracing::info!("stopping embedded etcd");
            let status = process::terminate(&mut member.child).await;
            tracing::info!(?status, "embedded etcd stopped");
            break;
        };
        member.pid.store(0, Ordering::SeqCst);
        let delay = backoff.after_exit(member.started.elapsed());
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        tracing::warn!(%status, restart_in = ?delay, output = %member.recent.describe(),
            "embedded etcd exited unexpectedly");
        if !restart(&mut member, &mut backoff, delay, &stop).await {
            break;
        }
    }
    member.pid.store(0, Ordering::SeqCst);
    process::remove_pid_file(&member.pid_file);
}

/// Waits `delay` and spawns etcd again, retrying with backoff; false when stopped meanwhile.
async fn restart(
    member: &mut Member,
    backoff: &mut Backoff,
    mut delay: Duration,
    stop: &CancellationToken,
) -> bool {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        match process::spawn(&member.binary, &member.opts, &member.recent) {
            Ok(process::Spawned { child, .. }) => {
                let pid = child.id().unwrap_or(0);
                member.child = child;
                member.started = Instant::now();
                member.pid.store(pid, Ordering::SeqCst);
                process::write_pid_file(&member.pid_file, pid);
                tracing::info!(pid, "embedded etcd restarted");
                return true;
            }
            Err(err) => {
                delay = backoff.after_exit(Duration::ZERO);
                tracing::warn!(error = %err, retry_in = ?delay, "failed to restart embedded etcd");
            }
        }
    }
}

/// Exponential restart delay: 1 s doubling to 30 s, reset once a run lasted `STABLE_AFTER`.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: INITIAL_BACKOFF,
        }
    }
}

impl Backoff {
    /// The delay before the next start, given how long the last run lasted.
    fn after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= STABLE_AFTER {
            self.next = INITIAL_BACKOFF;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_stable_run() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_secs(5);
        let delays: Vec<u64> = (0..7)
            .map(|_| backoff.after_exit(quick).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff.after_exit(STABLE_AFTER).as_secs(), 1);
        assert_eq!(backoff.after_exit(quick).as_secs(), 2);
    }
}
