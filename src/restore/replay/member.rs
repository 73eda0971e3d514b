//! The replay member: the full snapshot restored (without a revision bump, so revisions line up
//! with the chain) into the replay's own dir, started on free loopback ports with throwaway
//! certificates and request limits raised to take any transaction the source cluster took, its
//! leases kept alive while the replay runs, and its result saved as a snapshot file for the
//! normal restore.
//!
//! The replay sends one transaction at a time, so each waits for the member's WAL fsync. The
//! member is thrown away after the replay (a crash just means replaying again), so its WAL goes
//! to a private dir on a RAM file system (`/dev/shm`) when one has room, where fsync costs
//! nothing: 1.7x the replay rate in a measurement here.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
/// no lease the chain records is that short), so no lease expires mid-replay (an expiry would
/// delete keys at a revision the chain does not have).
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(500);
/// Limits the source cluster may have been raised to: one original revision is one
/// transaction here, whatever its size or number of operations.
const EXTRA_FLAGS: [&str; 3] = [
    "--max-txn-ops=16777216",
    "--max-request-bytes=536870912",
    "--quota-backend-bytes=8589934592",
];

/// Restores `snapshot` (a plain database file) into `dir/member` with `tool`.
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
        skip_hash_check: false,
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

/// Where a RAM file system is looked for.
const RAM_FS: &str = "/dev/shm";
/// `statfs` type of tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// Room the WAL may need: etcd keeps up to five 64 MiB files plus those since its last
/// snapshot; with less free, the WAL stays on disk.
const RAM_WAL_ROOM: u64 = 2 << 30;

/// Whether a file system of type `fs_type` with `available` bytes takes the member's WAL.
pub fn takes_wal(fs_type: i64, available: u64) -> bool {
    fs_type == TMPFS_MAGIC && available >= RAM_WAL_ROOM
}

/// The member's WAL dir on the RAM file system (0700), removed with what is in it on drop.
pub struct RamWal(PathBuf);

impl RamWal {
    /// Moves the restored member's WAL (`<data_dir>/member/wal`) to a new dir on the RAM file
    /// system, when there is one with room, and links it back; `None` leaves it where it is.
    pub fn take(data_dir: &Path, unique: &str) -> Option<RamWal> {
        let stat = rustix::fs::statfs(RAM_FS).ok()?;
        let available = (stat.f_bavail as u64).saturating_mul(stat.f_bsize as u64);
        if !takes_wal(stat.f_type as i64, available) {
            return None;
        }
        // Named by process and a counter too, and created exclusively: two replays in the same
        // second (other restores on this host, parallel tests) must never share a WAL dir.
        static TAKEN: AtomicU64 = AtomicU64::new(0);
        let n = TAKEN.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let wal = RamWal(Path::new(RAM_FS).join(format!("{MEMBER}-{unique}-{pid}-{n}-wal")));
        match wal.fill_from(&data_dir.join("member").join("wal")) {
            Ok(()) => Some(wal),
            Err(e) => {
                tracing::info!(error = %e, "the replay member's WAL stays on disk");
                None
            }
        }
    }

    /// Copies every file of `from` into the new dir and puts a link to it in `from`'s place,
    /// so the member finds its WAL where the restore tool wrote it.
    fn fill_from(&self, from: &Path) -> std::io::Result<()> {
        std::fs::DirBuilder::new().mode(0o700).create(&self.0)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            std::fs::copy(entry.path(), self.0.join(entry.file_name()))?;
        }
        std::fs::remove_dir_all(from)?;
        std::os::unix::fs::symlink(&self.0, from)
    }
}

impl RamWal {
    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RamWal {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "failed to remove the replay member's WAL");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_replays_in_the_same_second_get_wal_dirs_of_their_own() {
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        for dir in &dirs {
            let wal = dir.path().join("member/wal");
            std::fs::create_dir_all(&wal).unwrap();
            std::fs::write(wal.join("0.wal"), dir.path().to_string_lossy().as_bytes()).unwrap();
        }
        let taken: Vec<_> = dirs.iter().map(|d| RamWal::take(d.path(), "5")).collect();
        let [Some(a), Some(b)] = &taken[..] else {
            // No tmpfs with room here: the WAL stays on disk, nothing to share.
            return;
        };
        assert_ne!(a.path(), b.path());
        for (wal, dir) in [(a, &dirs[0]), (b, &dirs[1])] {
            let text = std::fs::read_to_string(wal.path().join("0.wal")).unwrap();
            assert_eq!(text, dir.path().to_string_lossy());
        }
        let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
        drop(taken);
        assert!(!pa.exists() && !pb.exists());
    }

    #[test]
    fn only_a_tmpfs_with_room_takes_the_wal() {
        assert!(takes_wal(TMPFS_MAGIC, RAM_WAL_ROOM));
        assert!(!takes_wal(TMPFS_MAGIC, RAM_WAL_ROOM - 1));
        assert!(!takes_wal(0xEF53, u64::MAX), "ext4 is a disk");
    }
}
