//! The first half of a SQLite save: the consistent copy (`backup`) into the snapshot dir's
//! work dir as `<snapshot>.image.part`, checked (`kine`) before anything is published or
//! uploaded. The caller then streams it through the snapshot pipeline
//! (`snapshot::save_image`), with [`SqliteCopy::entries`] in the metadata record and on the S3
//! object, and drops it.
//!
//! The copy is removed when the [`SqliteCopy`] is dropped, whatever happened; a copy left by a
//! killed process is a temp file of its snapshot's name, removed by the snapshot dir's temp
//! cleanup (`LocalStore::cleanup_temp_files`) and never listed as a snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::DatastoreError;
use super::backup::{Copied, copy_database};
use super::kine::{KineSummary, summarize};
use crate::layout::SnapshotDirLayout;
use crate::snapshot::SnapshotName;
use crate::snapshot::image::ImageKind;

/// The kine revision (highest row id) of the copy, recorded with the snapshot.
pub const META_SQLITE_REVISION: &str = "etcd-snapshot-sqlite-revision";
/// The row count of the copy's kine table, recorded with the snapshot.
pub const META_SQLITE_ROWS: &str = "etcd-snapshot-sqlite-rows";

/// A checked, private copy of the database, removed on drop.
#[derive(Debug)]
pub struct SqliteCopy {
    path: PathBuf,
    pub copied: Copied,
    pub summary: KineSummary,
}

impl SqliteCopy {
    /// Copies `db` for snapshot `name` and checks the copy. The database must pass
    /// `integrity_check` and have kine's table: a copy that does not is removed, and no
    /// snapshot is made of it.
    pub async fn take(
        db: &Path,
        layout: &SnapshotDirLayout,
        name: &SnapshotName,
    ) -> Result<SqliteCopy, DatastoreError> {
        let db = db.to_path_buf();
        let path = layout.image_temp_path(&name.file_name());
        let work = layout.work.clone();
        tokio::task::spawn_blocking(move || take_blocking(&db, &work, path))
            .await
            .map_err(DatastoreError::Task)?
    }

    /// Where the copy is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries recorded with the snapshot: the datastore marker, the kine revision and
    /// the row count.
    pub fn entries(&self) -> BTreeMap<String, String> {
        let mut entries = ImageKind::Sqlite.marker_entries();
        entries.insert(
            META_SQLITE_REVISION.into(),
            self.summary.revision.to_string(),
        );
        entries.insert(META_SQLITE_ROWS.into(), self.summary.rows.to_string());
        entries
    }
}

impl Drop for SqliteCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn take_blocking(db: &Path, work: &Path, path: PathBuf) -> Result<SqliteCopy, DatastoreError> {
    crate::fsutil::create_dir_all_mode(work, 0o700).map_err(|source| DatastoreError::Io {
        action: "create the work dir",
        path: work.to_path_buf(),
        source,
    })?;
    // A copy a killed save left under this name (the writer lock is held: nobody else's).
    let _ = std::fs::remove_file(&path);
    // From here the copy is owned: any failure below removes it on drop.
    let mut copy = SqliteCopy {
        path,
        copied: Copied {
            pages: 0,
            page_size: 0,
            retries: 0,
        },
        summary: KineSummary::default(),
    };
    copy.copied = copy_database(db, &copy.path)?;
    copy.summary = summarize(&copy.path)?;
    if !copy.summary.healthy() {
        return Err(DatastoreError::Unhealthy {
            path: db.to_path_buf(),
            detail: unhealthy_detail(&copy.summary),
        });
    }
    Ok(copy)
}

/// What failed, for the error: the shape problem, else the integrity problems.
pub fn unhealthy_detail(summary: &KineSummary) -> String {
    match &summary.shape_problem {
        Some(problem) => format!("it is not a kine database: {problem}"),
        None => format!("integrity_check: {}", summary.integrity.join("; ")),
    }
}
