//! The bucket's side of a point-in-time restore, so one works from a new host that has only the
//! token and the S3 settings: the S3 copies that anchor a chain (their recorded revision read
//! from their `.metadata` object) with their chains' segments by name, and, during the replay,
//! each segment that is not on disk downloaded just before it is read.
//!
//! Downloads go into the replay's own dir (0700, removed afterwards), one segment at a time:
//! each is streamed to a temp file, checked against the SHA-256 recorded with the object, read
//! and checked like a local segment, and removed once applied, so memory holds one network chunk
//! while downloading and disk one segment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ReplayError;
use super::chains::{PointInTime, RemoteChain, plan_point_in_time};
use crate::config::DesiredConfig;
use crate::config::restore_to::RestoreTo;
use crate::delta::capture::anchor_of;
use crate::delta::chain::parse_segment_file_name;
use crate::delta::files::{ChainDir, SegmentFile};
use crate::delta::names::parse_segment_name;
use crate::store::s3::{S3Error, S3Store};

fn s3_err(action: &'static str) -> impl FnOnce(S3Error) -> ReplayError {
    move |source| ReplayError::S3 {
        action,
        source: Box::new(source),
    }
}

/// `plan_point_in_time` over the snapshot dir and, with `etcd-s3` on, the bucket.
pub async fn plan_with_bucket(
    config: &DesiredConfig,
    restore_path: Option<&str>,
    to: &RestoreTo,
) -> Result<PointInTime, ReplayError> {
    let remote = match &config.s3 {
        Some(s3) => {
            let store = S3Store::connect(s3).await.map_err(s3_err("reach"))?;
            remote_chains(&store, restore_path).await?
        }
        None => Vec::new(),
    };
    plan_point_in_time(config, restore_path, to, remote)
}

/// The bucket's chains whose S3 copy has a recorded revision (only `only`'s when given), each
/// with its segments by range; objects that are not segment files are skipped. One listing of
/// the chains, one of the snapshots, and one metadata read per snapshot with a chain.
async fn remote_chains(
    store: &S3Store,
    only: Option<&str>,
) -> Result<Vec<RemoteChain>, ReplayError> {
    let mut chains = store.list_chains().await.map_err(s3_err("list"))?;
    let mut found = Vec::new();
    for mut record in store.list().await.map_err(s3_err("list"))? {
        if only.is_some_and(|name| name != record.file_name) {
            continue;
        }
        let Some(objects) = chains.remove(&record.file_name) else {
            continue;
        };
        let extra = store
            .read_extra_metadata(&record.file_name)
            .await
            .map_err(s3_err("read"))?;
        record.metadata = extra.map().cloned();
        let Some(anchor) = anchor_of(&record) else {
            continue;
        };
        let segments: BTreeMap<(i64, i64), String> = objects
            .into_iter()
            .filter_map(|o| Some((parse_segment_file_name(&o.name)?, o.name)))
            .collect();
        found.push(RemoteChain { anchor, segments });
    }
    Ok(found)
}

/// The segments the replay downloads into its own dir (those on disk are read where they are).
pub(super) struct SegmentSource {
    /// The bucket and the dir downloads go to, when the plan has segments only in S3.
    remote: Option<(S3Store, ChainDir)>,
    /// The download of the segment being read, removed when the next is asked for.
    downloaded: Option<PathBuf>,
}

impl SegmentSource {
    /// Connects to the bucket only when the plan needs it; downloads go under `work_dir`.
    pub(super) async fn new(
        config: &DesiredConfig,
        point: &PointInTime,
        work_dir: &Path,
    ) -> Result<Self, ReplayError> {
        let remote = match (&config.s3, point.from_s3.is_empty()) {
            (Some(s3), false) => {
                let store = S3Store::connect(s3).await.map_err(s3_err("reach"))?;
                let dir = ChainDir::new(&work_dir.join("snapshots"), &point.plan.anchor.file_name)?;
                crate::fsutil::create_dir_all_mode(dir.path(), 0o700).map_err(|source| {
                    ReplayError::Io {
                        action: "create the segment download dir",
                        path: dir.path().to_path_buf(),
                        source,
                    }
                })?;
                Some((store, dir))
            }
            _ => None,
        };
        Ok(Self {
            remote,
            downloaded: None,
        })
    }

    /// Segment `range` downloaded from the bucket, when the plan has it only there (`None`
    /// when it has it nowhere); the previous download is removed first.
    pub(super) async fn download(
        &mut self,
        point: &PointInTime,
        range: (i64, i64),
    ) -> Result<Option<SegmentFile>, ReplayError> {
        self.remove_download();
        let (Some(name), Some((store, dir))) = (point.from_s3.get(&range), &self.remote) else {
            return Ok(None);
        };
        let Some(parsed) = parse_segment_name(name) else {
            return Ok(None);
        };
        let anchor = &point.plan.anchor.file_name;
        tracing::info!(snapshot = %anchor, segment = %name, "downloading a delta segment from S3");
        let path = store
            .download_segment(anchor, name, dir.path())
            .await
            .map_err(s3_err("download"))?;
        self.downloaded = Some(path.clone());
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(Some(SegmentFile {
            from: parsed.from,
            to: parsed.to,
            form: parsed.form,
            path,
            size,
        }))
    }

    fn remove_download(&mut self) {
        if let Some(path) = self.downloaded.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for SegmentSource {
    fn drop(&mut self) {
        self.remove_download();
    }
}
