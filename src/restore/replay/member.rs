//! The replay member: the rebuilt database (the full snapshot with the chain written into it)
//! restored without a revision bump into the replay's own dir, started on free loopback ports
//! with throwaway certificates and a backend quota that takes any database size, its leases kept
//! alive while it is checked, and its snapshot saved for the normal restore.
//!
//! The member takes no writes of the replay (they are already in its database, see `rebuild`);
//! it is there to prove the result: etcd's own keyspace hash and revision, then its snapshot.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::ReplayError;
use crate::etcd::standalone::{StandaloneEtcd, StandaloneOptions};
use crate::restore::run::{RestoreTarget, run_restore};
use crate::restore::tool::RestoreTool;

/// The member's name; the cluster token is unique per replay.
const MEMBER: &str = "etcd-snapshot-replay";
/// A member restored from a big snapshot rebuilds its index before answering.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// How often every lease of the member is kept alive: below etcd's shortest lease TTL (about
/// 2 s with the default election timeout; the fast election timers make it shorter still, but
/// no lease the chain records is that short), so no lease expires before the member is checked and saved (an expiry would
/// delete keys at a revision the chain does not have).
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(500);
/// A database over the default 2 GiB quota must still start and answer.
const EXTRA_FLAGS: [&str; 1] = ["--quota-backend-bytes=8589934592"];

/// Restores `snapshot` (the rebuilt database file, without a trailer) into `dir/member` with
/// `tool`.
pub async fn restore(
    tool: &RestoreTool,
    snapshot: &Path,
    dir: &Path,
    unique: &str,
) -> Result<PathBuf, ReplayError> {
    let target = RestoreTarget {
        data_dir: dir.join("member"),
        name: MEMBER.into(),
        peer_url: "https://127.0.0.1:2380".into(),
        cluster_token: format!("{MEMBER}-{unique}"),
        bump_revision: None,
        skip_hash_check: true,
    };
    run_restore(tool, snapshot, &target)
        .await
        .map_err(|e| ReplayError::Tool(Box::new(e)))?;
    Ok(target.data_dir)
}

/// Starts the restored member on free loopback ports.
pub async fn start(etcd_binary: &Path, data_dir: &Path) -> Result<StandaloneEtcd, ReplayError> {
    let mut options = StandaloneOptions::new(etcd_binary, data_dir, MEMBER);
    options.health_timeout = START_TIMEOUT;
    options.fast_election = true;
    options.extra_args = EXTRA_FLAGS.iter().map(|f| OsString::from(*f)).collect();
    StandaloneEtcd::start(options)
        .await
        .map_err(|e| ReplayError::Start(Box::new(e)))
}

/// Keeps every lease of the member alive until stopped.
pub struct KeepAlive {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl KeepAlive {
    pub fn start(client: etcd_client::Client) -> Self {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(keep_alive(client, cancel.clone()));
        Self { cancel, task }
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Every `KEEP_ALIVE_EVERY`: lists the leases, opens a keep-alive stream for each new one, and
/// refreshes them all. Failures are retried at the next round (a lease that does expire shows
/// up as a revision mismatch, which the replay refuses).
async fn keep_alive(mut client: etcd_client::Client, cancel: CancellationToken) {
    let mut keepers: HashMap<i64, (LeaseKeeper, LeaseKeepAliveStream)> = HashMap::new();
    let mut ticker = tokio::time::interval(KEEP_ALIVE_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Ok(listed) = client.leases().await {
            for id in listed.leases().iter().map(|l| l.id()) {
                if !keepers.contains_key(&id)
                    && let Ok(pair) = client.lease_keep_alive(id).await
                {
                    keepers.insert(id, pair);
                }
            }
        }
        for (keeper, stream) in keepers.values_mut() {
            if keeper.keep_alive().await.is_ok() {
                let _ = tokio::time::timeout(KEEP_ALIVE_EVERY, stream.message()).await;
            }
        }
    }
}

/// Streams the member's snapshot (etcd appends its SHA-256 trailer) into `path`, fsynced.
pub async fn save_snapshot(
    client: &mut etcd_client::Client,
    path: &Path,
) -> Result<u64, ReplayError> {
    let io = |action: &'static str| {
        let path = path.to_path_buf();
        move |source| ReplayError::Io {
            action,
            path,
            source,
        }
    };
    let etcd = |step: &'static str| move |source| ReplayError::Etcd { step, source };
    let mut stream = client
        .snapshot()
        .await
        .map_err(etcd("stream the replayed member's snapshot"))?;
    let file = crate::fsutil::create_new(path, 0o600).map_err(io("create"))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut written = 0u64;
    while let Some(message) = stream
        .message()
        .await
        .map_err(etcd("stream the replayed member's snapshot"))?
    {
        file.write_all(message.blob()).await.map_err(io("write"))?;
        written += message.blob().len() as u64;
    }
    file.sync_all().await.map_err(io("fsync"))?;
    Ok(written)
}
