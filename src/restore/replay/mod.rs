//! Point-in-time restore's replay: the full snapshot restored into a throwaway member, its delta
//! chain replayed into it one etcd transaction per original revision (so every revision, create
//! and mod revision and version comes out identical), the result checked, and the member's own
//! snapshot handed to the normal restore, which verifies, stages, proves and swaps it in with
//! rollback exactly as for any snapshot (revision bump included).
//!
//! Encrypted segments are opened with this host's identities: every one on disk on the path is
//! checked before the anchor is restored (`segment_keys`); one downloaded from S3 is checked as
//! it is read, still inside the throwaway member's work, before anything is swapped in. Each is
//! read through its layers.
//! Checks: each segment's checksum and header before any of it is applied (a corrupted one is
//! refused by name; a target before it never reads it); each transaction must land at its
//! original revision; at the last segment end passed, the recorded `HashKV` must equal the
//! member's; at the end the member's revision must be the target. Memory holds one segment.
//!
//! `chains` chooses the anchor and segments (`delta::target` decides), `s3` adds the bucket's
//! chains and downloads segments that are only there, `segments` reads one,
//! `apply` is the pure mapping of a group to a transaction, `member` the throwaway etcd.

mod apply;
mod chains;
mod error;
mod member;
mod s3;
mod segments;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use apply::REGRANTED_LEASE_TTL_SECS;
pub use chains::{PointInTime, RemoteChain, plan_point_in_time};
pub use error::ReplayError;
pub use s3::plan_with_bucket;

use crate::config::DesiredConfig;
use crate::crypt::Identities;
use crate::delta::chain::segment_file_name;
use crate::delta::segment::{RevisionGroup, Segment, SegmentHash};
use crate::delta::stored::check_keys;
use crate::delta::target::Goal;
use crate::etcd::standalone::StandaloneEtcd;
use apply::{HashVerdict, group_txn, judge_hash, leases_to_grant};

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub anchor: String,
    /// The revision the full snapshot itself holds.
    pub snapshot_revision: i64,
    /// The revision replayed to.
    pub target: i64,
    pub segments: usize,
    pub groups: u64,
    pub events: u64,
    /// Segment ends whose recorded `HashKV` was compared (and matched): the last one passed.
    pub hashes_checked: usize,
}

/// The replayed member's snapshot, in the replay's dir (removed on drop).
pub struct Replayed {
    dir: WorkDir,
    pub report: ReplayReport,
}

impl Replayed {
    pub fn snapshot(&self) -> PathBuf {
        self.dir.0.join(SNAPSHOT_FILE)
    }
}

const SNAPSHOT_FILE: &str = "replayed.db";

/// The identities the replay opens encrypted segments with.
pub type SegmentKeys = Option<Arc<Identities>>;

/// The pre-flight of the chain's encrypted segments, before anything is restored or applied:
/// reads this host's identities (the identity file's and the encryption Secret's, as for
/// snapshots) when any segment on the plan's path is encrypted, and opens each one's header
/// with them. A segment none opens is refused by name, with the fingerprints it needs. Segments
/// only in S3 are not downloaded for this: their names say they are encrypted (so identities are
/// read), and their headers are checked when the replay downloads them.
pub async fn segment_keys(
    config: &DesiredConfig,
    point: &PointInTime,
) -> Result<SegmentKeys, ReplayError> {
    let encrypted: Vec<PathBuf> = point.encrypted_segments().map(|f| f.path.clone()).collect();
    if encrypted.is_empty() && !point.encrypted_in_s3() {
        return Ok(None);
    }
    let identities = crate::kube::encryption_secret::command_identities(config)
        .await
        .map_err(|e| ReplayError::Identities(Box::new(e)))?
        .map(Arc::new);
    let keys = identities.clone();
    tokio::task::spawn_blocking(move || {
        encrypted.into_iter().try_for_each(|path| {
            check_keys(&path, keys.as_deref()).map_err(|source| ReplayError::SegmentKeys {
                path,
                source: Box::new(source),
            })
        })
    })
    .await??;
    Ok(identities)
}

/// Replays `point` onto `snapshot` (the anchor's plain database file) in `work_dir` (created
/// here; removed with everything in it when the result is dropped or on failure); encrypted
/// segments are opened with `keys` (`segment_keys`).
pub async fn replay(
    config: &DesiredConfig,
    snapshot: &Path,
    work_dir: PathBuf,
    point: &PointInTime,
    keys: SegmentKeys,
) -> Result<Replayed, ReplayError> {
    let dir = WorkDir::create(work_dir)?;
    let tool = crate::restore::select_restore_tool(&config.etcd.binary)
        .await
        .map_err(|e| ReplayError::Tool(Box::new(e)))?;
    let unique = crate::snapshot::name::rounded_now_unix().to_string();
    let data = member::restore(&tool, snapshot, &dir.0, &unique).await?;
    // Dropped after the member stopped (declared before it).
    let _wal = member::RamWal::take(&data, &unique);
    let etcd = member::start(&config.etcd.binary, &data).await?;
    let keep_alive = member::KeepAlive::start(etcd.client());
    let replayed = match s3::SegmentSource::new(config, point, &dir.0).await {
        Ok(mut source) => run(&etcd, point, keys, &mut source).await,
        Err(e) => Err(e),
    };
    keep_alive.stop().await;
    let saved = match replayed {
        Ok(report) => member::save_snapshot(&mut etcd.client(), &dir.0.join(SNAPSHOT_FILE))
            .await
            .map(|_| report),
        Err(e) => Err(e),
    };
    // Stopped (and waited for) before its dir goes, whatever happened.
    if let Err(e) = etcd.stop().await {
        tracing::warn!(error = %crate::errors::error_chain(&e), "failed to stop the replay member cleanly");
    }
    let report = saved?;
    tracing::info!(
        anchor = %report.anchor,
        target = report.target,
        segments = report.segments,
        events = report.events,
        hashes_checked = report.hashes_checked,
        "delta chain replayed"
    );
    Ok(Replayed { dir, report })
}

/// Streams the plan's segments into the member, one at a time.
async fn run(
    etcd: &StandaloneEtcd,
    point: &PointInTime,
    keys: SegmentKeys,
    source: &mut s3::SegmentSource,
) -> Result<ReplayReport, ReplayError> {
    let mut client = etcd.client();
    let plan = &point.plan;
    let snapshot_revision = member_revision(&mut client).await?;
    if let Goal::Revision(target) = plan.goal
        && target < snapshot_revision
    {
        return Err(ReplayError::SnapshotAhead {
            snapshot_revision,
            target,
        });
    }
    let listed = client.leases().await.map_err(etcd_err("list the leases"))?;
    let mut leases: BTreeSet<i64> = listed.leases().iter().map(|l| l.id()).collect();
    let mut report = ReplayReport {
        anchor: plan.anchor.file_name.clone(),
        snapshot_revision,
        target: snapshot_revision,
        segments: 0,
        groups: 0,
        events: 0,
        hashes_checked: 0,
    };
    let (mut stopped, mut last_closed) = (false, None);
    // The last segment end passed with a recorded hash: checked once, at the end (a hash
    // covers every revision up to its own, so one check covers the chain, and each costs a
    // pass over the whole keyspace, longer than the replay of a segment on a large database).
    let mut last_hash = None;
    for &range in plan.path.iter().filter(|(_, to)| *to > snapshot_revision) {
        if plan.goal.reached_before_next(last_closed) {
            stopped = true;
            break;
        }
        let file = match point.segment(range) {
            Some(file) => file.clone(),
            None => source
                .download(point, range)
                .await?
                .ok_or_else(|| missing(point, range))?,
        };
        let (anchor, keys) = (plan.anchor.clone(), keys.clone());
        let (path, segment) = tokio::task::spawn_blocking(move || {
            segments::read_segment(&file, &anchor, keys.as_deref())
        })
        .await??;
        report.segments += 1;
        last_closed = Some(segment.footer.closed_unix_ms);
        let mut replay = SegmentReplay {
            client: &mut client,
            leases: &mut leases,
            report: &mut report,
            path: &path,
        };
        stopped = replay.apply(&segment, plan.goal).await?;
        if let (false, Some(recorded)) = (stopped, segment.footer.hashkv) {
            last_hash = Some((path, segment.footer.to_revision, recorded));
        }
        if stopped {
            break;
        }
    }
    if let Some((path, revision, recorded)) = last_hash {
        check_hash(&mut client, &path, revision, recorded).await?;
        report.hashes_checked += 1;
    }
    let target = plan
        .goal
        .finish(plan, report.target, stopped, last_closed)?;
    let got = member_revision(&mut client).await?;
    let wanted = match plan.goal {
        Goal::Revision(r) => r,
        Goal::Time(_) => target,
    };
    if got != wanted {
        return Err(ReplayError::FinalRevision {
            target: wanted,
            got,
        });
    }
    Ok(report)
}

/// A segment on the plan's path that was not listed (removed since): named as a plain file.
fn missing(point: &PointInTime, (from, to): (i64, i64)) -> ReplayError {
    ReplayError::SegmentRead {
        path: point.chain.path().join(segment_file_name(from, to)),
        source: std::io::ErrorKind::NotFound.into(),
    }
}

/// One segment being applied to the member.
struct SegmentReplay<'a> {
    client: &'a mut etcd_client::Client,
    leases: &'a mut BTreeSet<i64>,
    report: &'a mut ReplayReport,
    path: &'a Path,
}

impl SegmentReplay<'_> {
    /// Applies the segment's groups after the member's revision, up to the goal; returns true
    /// when the goal stopped it.
    async fn apply(&mut self, segment: &Segment, goal: Goal) -> Result<bool, ReplayError> {
        for group in &segment.groups {
            if group.revision <= self.report.target {
                continue; // already in the full snapshot
            }
            if goal.stops_before(group.revision, group.arrived_unix_ms) {
                return Ok(true);
            }
            apply_group(self.client, group, self.leases, self.path).await?;
            self.report.target = group.revision;
            self.report.groups += 1;
            self.report.events += group.events.len() as u64;
        }
        Ok(false)
    }
}

/// Grants the group's new leases (same id, a short TTL), then applies its events in one
/// transaction, which must land at the group's revision.
async fn apply_group(
    client: &mut etcd_client::Client,
    group: &RevisionGroup,
    leases: &mut BTreeSet<i64>,
    path: &Path,
) -> Result<(), ReplayError> {
    for id in leases_to_grant(group, leases) {
        let options = etcd_client::LeaseGrantOptions::new().with_id(id);
        match client
            .lease_grant(REGRANTED_LEASE_TTL_SECS, Some(options))
            .await
        {
            Ok(_) => {}
            Err(e) if e.to_string().contains("lease already exists") => {}
            Err(source) => {
                return Err(ReplayError::Etcd {
                    step: "grant a lease",
                    source,
                });
            }
        }
        leases.insert(id);
    }
    let response = client
        .txn(group_txn(group))
        .await
        .map_err(etcd_err("apply a revision"))?;
    let got = response.header().map_or(0, |h| h.revision());
    if got != group.revision {
        return Err(ReplayError::RevisionMismatch {
            path: path.to_path_buf(),
            revision: group.revision,
            got,
        });
    }
    Ok(())
}

/// The member's `HashKV` at `revision` against the recorded one (compacting the member first
/// when the source had compacted further).
async fn check_hash(
    client: &mut etcd_client::Client,
    path: &Path,
    revision: i64,
    recorded: SegmentHash,
) -> Result<(), ReplayError> {
    let mut observed = hash_at(client, revision).await?;
    if let HashVerdict::CompactFirst(compact) = judge_hash(recorded, observed) {
        let options = etcd_client::CompactionOptions::new().with_physical();
        client
            .compact(compact, Some(options))
            .await
            .map_err(etcd_err("compact"))?;
        observed = hash_at(client, revision).await?;
    }
    match judge_hash(recorded, observed) {
        HashVerdict::Match => Ok(()),
        _ => Err(ReplayError::HashMismatch {
            path: path.to_path_buf(),
            revision,
            recorded,
            observed,
        }),
    }
}

async fn hash_at(
    client: &mut etcd_client::Client,
    revision: i64,
) -> Result<SegmentHash, ReplayError> {
    let answer = client
        .hash_kv(revision)
        .await
        .map_err(etcd_err("compute the keyspace hash"))?;
    Ok(SegmentHash {
        hash: answer.hash(),
        compact_revision: answer.compact_version(),
    })
}

async fn member_revision(client: &mut etcd_client::Client) -> Result<i64, ReplayError> {
    let status = client
        .status()
        .await
        .map_err(etcd_err("read the revision"))?;
    Ok(status.header().map_or(0, |h| h.revision()))
}

fn etcd_err(step: &'static str) -> impl FnOnce(etcd_client::Error) -> ReplayError {
    move |source| ReplayError::Etcd { step, source }
}

/// The replay's dir (0700), removed with everything in it on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(path: PathBuf) -> Result<Self, ReplayError> {
        crate::fsutil::create_dir_all_mode(&path, 0o700).map_err(|source| ReplayError::Io {
            action: "create the replay dir",
            path: path.clone(),
            source,
        })?;
        Ok(Self(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "failed to remove the replay dir");
        }
    }
}
