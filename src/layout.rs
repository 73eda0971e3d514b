//! The on-disk layout: every path this product reads or writes under a data dir or beside a
//! snapshot dir, as pure functions of those dirs. Nothing here touches the file system except
//! `SnapshotDirLayout::open`, which asks one question (is the work dir on the snapshot dir's
//! file system?).
//!
//! A snapshot dir holds snapshots and nothing else: RKE2 lists every regular file in
//! `server/db/snapshots` as a snapshot (and would publish our lock or temp files as
//! ETCDSnapshotFile resources). Everything else lives in hidden siblings, as RKE2 lays out its
//! own `.metadata`:
//!
//! ```text
//! <data-dir>/server/                       server_dir
//!   etcd-snapshot.lock                     the server's lifetime lock (restore waits on it)
//!   token, tls/, db/etcd/                  token, TLS material, the embedded member
//!   db/snapshots/                          snapshot dir (default): snapshots only
//!   db/.metadata/<snapshot>                each snapshot's extra metadata (RKE2's layout)
//!   db/.encryption/<snapshot>              an encrypted snapshot's record (key fingerprints)
//!   db/.s3-pending/<snapshot>.json         uploads that failed
//!   db/.deltas/<snapshot>/<from>-<to>.seg  delta segments chained from a full snapshot
//!   db/.etcd-snapshot/                     work dir: the writers' lock, `<snapshot>.part` temp files
//!                                          (and `<snapshot>.image.part`, a SQLite datastore's copy)
//! ```
//!
//! A configured snapshot dir gets the same siblings in its own parent. Temp files are published
//! by link or rename, which Linux does only within one mount: when the parent is on another
//! mount (the snapshot dir is a mount point, e.g. a container's host-path volume), the work dir
//! is the snapshot dir itself, as it was before this layout (lock `.etcd-snapshot.lock`, temp
//! files `<snapshot>.part`).

use std::path::{Path, PathBuf};

/// The metadata dir's name, beside the snapshot dir (RKE2's).
pub const METADATA_DIR: &str = ".metadata";
/// The encryption record dir's name, beside the snapshot dir.
pub const ENCRYPTION_DIR: &str = ".encryption";
/// The failed-upload marker dir's name, beside the snapshot dir.
pub const PENDING_DIR: &str = ".s3-pending";
/// The delta segment dir's name, beside the snapshot dir: one chain dir per full snapshot.
pub const DELTAS_DIR: &str = ".deltas";
/// The work dir's name, beside the snapshot dir: lock and temp files.
pub const WORK_DIR: &str = ".etcd-snapshot";
/// The writers' lock file inside the work dir.
pub const WORK_LOCK_FILE: &str = "writer.lock";
/// The writers' lock file when the work dir is the snapshot dir itself (and before this
/// layout): a dotfile.
pub const LEGACY_LOCK_FILE: &str = ".etcd-snapshot.lock";
/// Suffix of a snapshot being written.
pub const PART_SUFFIX: &str = ".part";
/// Before `.part`: a SQLite datastore's private copy, from which the snapshot is then written.
pub const IMAGE_SUFFIX: &str = ".image";

/// `<snapshot-dir>/../<name>`; a dir without a parent (`/`) gets `<dir>/../<name>`.
fn sibling(snapshot_dir: &Path, name: &str) -> PathBuf {
    match snapshot_dir.parent() {
        Some(parent) => parent.join(name),
        None => snapshot_dir.join("..").join(name),
    }
}

/// The metadata dir that belongs to a snapshot dir: `<snapshot-dir>/../.metadata`.
pub fn metadata_dir_for(snapshot_dir: &Path) -> PathBuf {
    sibling(snapshot_dir, METADATA_DIR)
}

/// The encryption record dir of a snapshot dir: `<snapshot-dir>/../.encryption`.
pub fn encryption_dir_for(snapshot_dir: &Path) -> PathBuf {
    sibling(snapshot_dir, ENCRYPTION_DIR)
}

/// The delta segment dir of a snapshot dir: `<snapshot-dir>/../.deltas`.
pub fn deltas_dir_for(snapshot_dir: &Path) -> PathBuf {
    sibling(snapshot_dir, DELTAS_DIR)
}

/// The chain dir of one full snapshot: `<snapshot-dir>/../.deltas/<anchor file name>`. The
/// caller checks `anchor` is a plain file name (`delta::segment::check_anchor`).
pub fn chain_dir_for(snapshot_dir: &Path, anchor: &str) -> PathBuf {
    deltas_dir_for(snapshot_dir).join(anchor)
}

/// The failed-upload marker dir of a snapshot dir: `<snapshot-dir>/../.s3-pending`.
pub fn pending_dir_for(snapshot_dir: &Path) -> PathBuf {
    match snapshot_dir.parent() {
        Some(parent) => parent.join(PENDING_DIR),
        // Kept as it always was for `/`: markers beside nothing, inside the dir's parent-less self.
        None => snapshot_dir.join(PENDING_DIR),
    }
}

/// Where one snapshot dir's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDirLayout {
    /// Snapshots only.
    pub snapshots: PathBuf,
    /// `<snapshot-dir>/../.metadata`.
    pub metadata: PathBuf,
    /// `<snapshot-dir>/../.s3-pending`.
    pub pending: PathBuf,
    /// Lock and temp files: `<snapshot-dir>/../.etcd-snapshot`, or the snapshot dir itself when
    /// that sibling would be on another file system.
    pub work: PathBuf,
}

impl SnapshotDirLayout {
    /// The layout with the work dir beside the snapshot dir (`work_beside`) or inside it.
    pub fn new(snapshot_dir: &Path, work_beside: bool) -> Self {
        Self {
            snapshots: snapshot_dir.to_path_buf(),
            metadata: metadata_dir_for(snapshot_dir),
            pending: pending_dir_for(snapshot_dir),
            work: if work_beside {
                sibling(snapshot_dir, WORK_DIR)
            } else {
                snapshot_dir.to_path_buf()
            },
        }
    }

    /// The layout of an existing snapshot dir: the work dir goes beside it unless the dir is a
    /// mount point (then no rename from the sibling into it could work).
    pub fn open(snapshot_dir: &Path) -> Self {
        Self::new(snapshot_dir, shares_fs_with_parent(snapshot_dir))
    }

    /// True when lock and temp files live outside the snapshot dir.
    pub fn work_is_beside(&self) -> bool {
        self.work != self.snapshots
    }

    /// `<snapshot-dir>/<file_name>`: where a published snapshot lives.
    pub fn snapshot_path(&self, file_name: &str) -> PathBuf {
        self.snapshots.join(file_name)
    }

    /// `<metadata>/<file_name>`: a snapshot's extra-metadata JSON.
    pub fn metadata_path(&self, file_name: &str) -> PathBuf {
        self.metadata.join(file_name)
    }

    /// `<snapshot-dir>/../.encryption/<file_name>`: an encrypted snapshot's record.
    pub fn encryption_path(&self, file_name: &str) -> PathBuf {
        encryption_dir_for(&self.snapshots).join(file_name)
    }

    /// `<work>/<file_name>.part`: a snapshot while it is written.
    pub fn temp_path(&self, file_name: &str) -> PathBuf {
        self.work.join(format!("{file_name}{PART_SUFFIX}"))
    }

    /// `<work>/<file_name>.image.part`: the consistent copy of a SQLite datastore that the
    /// snapshot `file_name` is written from.
    pub fn image_temp_path(&self, file_name: &str) -> PathBuf {
        self.work
            .join(format!("{file_name}{IMAGE_SUFFIX}{PART_SUFFIX}"))
    }

    /// The node-wide writers' lock file.
    pub fn lock_path(&self) -> PathBuf {
        if self.work_is_beside() {
            self.work.join(WORK_LOCK_FILE)
        } else {
            self.work.join(LEGACY_LOCK_FILE)
        }
    }
}

/// Whether `dir` and its parent are on one mount, so a file can be linked or renamed from one
/// into the other. False for `/`, a mount point (a file system, or a bind mount as a container's
/// host-path volume is, where Linux refuses such a rename even within one file system), or a dir
/// that cannot be inspected: then everything stays inside the dir, which always works.
fn shares_fs_with_parent(dir: &Path) -> bool {
    let Some(parent) = dir.parent() else {
        return false;
    };
    match (mount_of(dir), mount_of(parent)) {
        (Some(d), Some(p)) => d == p,
        _ => false,
    }
}

/// The mount a path is on: its mount id (Linux 5.8 and later; `None` before) and its device.
fn mount_of(path: &Path) -> Option<(Option<u64>, u32, u32)> {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    let stat = statx(CWD, path, AtFlags::empty(), StatxFlags::MNT_ID).ok()?;
    let has_mount_id = stat.stx_mask & StatxFlags::MNT_ID.bits() != 0;
    Some((
        has_mount_id.then_some(stat.stx_mnt_id),
        stat.stx_dev_major,
        stat.stx_dev_minor,
    ))
}

/// The paths under a data dir (RKE2's `server/` tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirLayout {
    data_dir: PathBuf,
}

impl DataDirLayout {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
        }
    }
    /// `<data-dir>/server`.
    pub fn server_dir(&self) -> PathBuf {
        self.data_dir.join("server")
    }
    /// `<data-dir>/server/etcd-snapshot.lock`: held by a running server for its whole life, and
    /// by a restore, reset or rollback, so they never run at the same time.
    pub fn server_lock_path(&self) -> PathBuf {
        self.server_dir().join("etcd-snapshot.lock")
    }
    /// `<data-dir>/server/db`.
    pub fn db_dir(&self) -> PathBuf {
        self.server_dir().join("db")
    }
    /// `<data-dir>/server/db/etcd`: the embedded member's data.
    pub fn etcd_data_dir(&self) -> PathBuf {
        self.db_dir().join("etcd")
    }
    /// `<data-dir>/server/db/snapshots`: the default snapshot dir.
    pub fn default_snapshot_dir(&self) -> PathBuf {
        self.db_dir().join("snapshots")
    }
    /// `<data-dir>/server/token`.
    pub fn token_path(&self) -> PathBuf {
        self.server_dir().join("token")
    }
    /// `<data-dir>/server/tls`.
    pub fn tls_dir(&self) -> PathBuf {
        self.server_dir().join("tls")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_dir_gets_its_work_dir_under_server_db() {
        let data = DataDirLayout::new(Path::new("/var/lib/rancher/rke2"));
        let dir = data.default_snapshot_dir();
        assert_eq!(dir, Path::new("/var/lib/rancher/rke2/server/db/snapshots"));
        let layout = SnapshotDirLayout::new(&dir, true);
        let db = Path::new("/var/lib/rancher/rke2/server/db");
        assert_eq!(layout.metadata, db.join(".metadata"));
        assert_eq!(layout.pending, db.join(".s3-pending"));
        assert_eq!(layout.work, db.join(".etcd-snapshot"));
        assert_eq!(layout.lock_path(), db.join(".etcd-snapshot/writer.lock"));
        assert_eq!(
            layout.temp_path("s-n1-1.zip"),
            db.join(".etcd-snapshot/s-n1-1.zip.part")
        );
        assert_eq!(layout.snapshot_path("s-n1-1.zip"), dir.join("s-n1-1.zip"));
        assert_eq!(
            layout.metadata_path("s-n1-1.zip"),
            db.join(".metadata/s-n1-1.zip")
        );
        assert_eq!(
            chain_dir_for(&dir, "s-n1-1.zip"),
            db.join(".deltas/s-n1-1.zip")
        );
    }

    #[test]
    fn a_snapshot_dir_on_its_own_file_system_keeps_its_work_files_inside() {
        let layout = SnapshotDirLayout::new(Path::new("/mnt/backups"), false);
        assert!(!layout.work_is_beside());
        assert_eq!(
            layout.lock_path(),
            Path::new("/mnt/backups/.etcd-snapshot.lock")
        );
        assert_eq!(
            layout.temp_path("a-n-1"),
            Path::new("/mnt/backups/a-n-1.part")
        );
        // The metadata stays RKE2's sibling either way.
        assert_eq!(layout.metadata, Path::new("/mnt/.metadata"));
    }

    #[test]
    fn open_puts_the_work_dir_beside_a_dir_on_the_parents_file_system() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("snapshots");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(
            SnapshotDirLayout::open(&dir).work,
            root.path().join(".etcd-snapshot")
        );
        // `/` has no parent: nothing can go beside it; `/proc` is a mount point of its own.
        assert!(!SnapshotDirLayout::open(Path::new("/")).work_is_beside());
        assert!(!SnapshotDirLayout::open(Path::new("/proc")).work_is_beside());
    }

    #[test]
    fn data_dir_paths_are_rke2s() {
        let data = DataDirLayout::new(Path::new("/d"));
        assert_eq!(
            data.server_lock_path(),
            Path::new("/d/server/etcd-snapshot.lock")
        );
        assert_eq!(data.etcd_data_dir(), Path::new("/d/server/db/etcd"));
        assert_eq!(data.token_path(), Path::new("/d/server/token"));
        assert_eq!(data.tls_dir(), Path::new("/d/server/tls"));
    }
}
