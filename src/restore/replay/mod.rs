//! Point-in-time restore's replay: the full snapshot copied into a new database file with its
//! delta chain written in after it, each original revision stored exactly as etcd stored it
//! (same revision and sub-revisions, same create and mod revision, version and lease), then a
//! throwaway member restored from that file and started only to prove it (etcd's own keyspace
//! hash and revision against what the capture recorded), and the member's own snapshot handed to
//! the normal restore, which verifies, stages, proves and swaps it in with rollback exactly as
//! for any snapshot (revision bump included). Writing the file directly runs at disk speed; the
//! earlier replay through etcd, one ordered transaction per revision, was bounded near 3,000
//! events/s by etcd's round trip.
//!
//! Encrypted segments are opened with this host's identities: every one on disk on the path is
//! checked before the anchor is restored (`segment_keys`); one downloaded from S3 is checked as
//! it is read, still inside the throwaway member's work, before anything is swapped in. Each is
//! read through its layers.
//! Checks: each segment's checksum and header before any of it is applied (a corrupted one is
//! refused by name; a target before it never reads it); each revision must follow the one
//! before it (no gap between the snapshot and the chain, or inside it) and every put of a group
//! must carry the group's revision; at the last segment end passed, the recorded `HashKV` must
//! equal the member's; at the end the member's revision must be the target. Memory holds one
//! segment and one pending page per tree level.
//!
//! `chains` chooses the anchor and segments (`delta::target` decides), `s3` adds the bucket's
//! chains and downloads segments that are only there, `segments` reads one,
//! `apply` is the pure mapping of a group to bucket entries, `bolt_writer` writes a bbolt file
//! from sorted entries, `rebuild` copies the snapshot and appends the chain, `member` is the
//! throwaway etcd that checks the result.

mod apply;
mod bolt_writer;
mod chains;
mod error;
mod member;
mod rebuild;
mod s3;
mod segments;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use apply::REGRANTED_LEASE_TTL_SECS;
pub use chains::{PointInTime, RemoteChain, plan_point_in_time};
pub use error::ReplayError;
pub use s3::plan_with_bucket;

use crate::config::DesiredConfig;
use crate::crypt::Identities;
use crate::delta::chain::segment_file_name;
use crate::delta::segment::{Segment, SegmentHash};
use crate::delta::stored::check_keys;
use crate::delta::target::Goal;
use crate::etcd::standalone::StandaloneEtcd;
use apply::{HashVerdict, judge_hash};
use rebuild::Rebuild;

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
/// The snapshot with the chain written into it, before the member is restored from it.
const REBUILT_FILE: &str = "rebuilt.db";

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

/// The full snapshot a replay starts from: its plain database file, and whether an earlier step
/// already checked its trailer as it wrote it (a decrypted or extracted copy).
pub struct AnchorFile<'a> {
    pub path: &'a Path,
    pub checked: bool,
}

/// Replays `point` onto `snapshot` in `work_dir` (created here; removed with everything in it
/// when the result is dropped or on failure); encrypted segments are opened with `keys`
/// (`segment_keys`).
pub async fn replay(
    config: &DesiredConfig,
    snapshot: AnchorFile<'_>,
    work_dir: PathBuf,
    point: &PointInTime,
    keys: SegmentKeys,
) -> Result<Replayed, ReplayError> {
    let dir = WorkDir::create(work_dir)?;
    let tool = crate::restore::select_restore_tool(&config.etcd.binary)
        .await
        .map_err(|e| ReplayError::Tool(Box::new(e)))?;
    let started = std::time::Instant::now();
    let written = write_chain(config, snapshot, &dir.0, point, keys).await?;
    let written_in = started.elapsed();
    let unique = crate::snapshot::name::rounded_now_unix().to_string();
    let data = member::restore(&tool, &written.file, &dir.0, &unique).await?;
    // The tool copied it into the member; its space is needed for the member's snapshot.
    remove_quietly(&written.file);
    let etcd = member::start(&config.etcd.binary, &data).await?;
    let keep_alive = member::KeepAlive::start(etcd.client());
    let checked = check_member(&etcd, &written).await;
    let saved = match checked {
        Ok(()) => member::save_snapshot(&mut etcd.client(), &dir.0.join(SNAPSHOT_FILE)).await,
        Err(e) => Err(e),
    };
    // Kept alive until the snapshot is taken: an expiry in between would delete keys at a
    // revision the check did not see.
    keep_alive.stop().await;
    // Stopped (and waited for) before its dir goes, whatever happened.
    if let Err(e) = etcd.stop().await {
        tracing::warn!(error = %crate::errors::error_chain(&e), "failed to stop the replay member cleanly");
    }
    saved?;
    let report = written.report;
    tracing::info!(
        anchor = %report.anchor,
        target = report.target,
        segments = report.segments,
        events = report.events,
        hashes_checked = report.hashes_checked,
        written_secs = written_in.as_secs_f64(),
        "delta chain replayed"
    );
    Ok(Replayed { dir, report })
}

/// The rebuilt database file and what went into it.
struct Written {
    file: PathBuf,
    report: ReplayReport,
    /// The last segment end passed with a recorded hash: checked once, on the member (a hash
    /// covers every revision up to its own, so one check covers the chain, and each costs a
    /// pass over the whole keyspace).
    last_hash: Option<(PathBuf, i64, SegmentHash)>,
    /// The revision the member must report.
    wanted: i64,
}

/// Copies the snapshot and appends the plan's segments to it (`rebuild`), one segment in
/// memory at a time; the file work runs off the async threads.
async fn write_chain(
    config: &DesiredConfig,
    snapshot: AnchorFile<'_>,
    dir: &Path,
    point: &PointInTime,
    keys: SegmentKeys,
) -> Result<Written, ReplayError> {
    let (anchor, file) = (snapshot.path.to_path_buf(), dir.join(REBUILT_FILE));
    let (out, check_trailer) = (file.clone(), !snapshot.checked);
    let mut rebuild =
        tokio::task::spawn_blocking(move || Rebuild::copy_anchor(&anchor, &out, check_trailer))
            .await??;
    let mut source = s3::SegmentSource::new(config, point, dir).await?;
    let plan = &point.plan;
    let snapshot_revision = rebuild.snapshot_revision;
    if let Goal::Revision(target) = plan.goal
        && target < snapshot_revision
    {
        return Err(ReplayError::SnapshotAhead {
            snapshot_revision,
            target,
        });
    }
    let mut report = ReplayReport {
        anchor: plan.anchor.file_name.clone(),
        snapshot_revision,
        target: snapshot_revision,
        segments: 0,
        groups: 0,
        events: 0,
        hashes_checked: 0,
    };
    let (mut stopped, mut last_closed, mut last_hash) = (false, None, None);
    for &range in plan.path.iter().filter(|(_, to)| *to > snapshot_revision) {
        if plan.goal.reached_before_next(last_closed) {
            stopped = true;
            break;
        }
        let segment_file = match point.segment(range) {
            Some(file) => file.clone(),
            None => source
                .download(point, range)
                .await?
                .ok_or_else(|| missing(point, range))?,
        };
        let (anchor, keys, goal) = (plan.anchor.clone(), keys.clone(), plan.goal);
        let mut progress = Progress {
            target: report.target,
            groups: 0,
            events: 0,
        };
        let (back, progress, path, segment_stopped, footer) =
            tokio::task::spawn_blocking(move || {
                let (path, segment) =
                    segments::read_segment(&segment_file, &anchor, keys.as_deref())?;
                let stopped = append_segment(&mut rebuild, &segment, goal, &path, &mut progress)?;
                Ok::<_, ReplayError>((rebuild, progress, path, stopped, segment.footer))
            })
            .await??;
        rebuild = back;
        report.segments += 1;
        report.target = progress.target;
        report.groups += progress.groups;
        report.events += progress.events;
        last_closed = Some(footer.closed_unix_ms);
        stopped = segment_stopped;
        if let (false, Some(recorded)) = (stopped, footer.hashkv) {
            last_hash = Some((path, footer.to_revision, recorded));
        }
        if stopped {
            break;
        }
    }
    let target = plan
        .goal
        .finish(plan, report.target, stopped, last_closed)?;
    let wanted = match plan.goal {
        Goal::Revision(r) => r,
        Goal::Time(_) => target,
    };
    if last_hash.is_some() {
        report.hashes_checked = 1;
    }
    let file = tokio::task::spawn_blocking(move || rebuild.finish()).await??;
    Ok(Written {
        file,
        report,
        last_hash,
        wanted,
    })
}

/// What the groups of one segment added.
struct Progress {
    target: i64,
    groups: u64,
    events: u64,
}

/// Appends the segment's groups after the snapshot's revision, up to the goal; returns true
/// when the goal stopped it.
fn append_segment(
    rebuild: &mut Rebuild,
    segment: &Segment,
    goal: Goal,
    path: &Path,
    progress: &mut Progress,
) -> Result<bool, ReplayError> {
    for group in &segment.groups {
        if group.revision <= progress.target {
            continue; // already in the full snapshot
        }
        if goal.stops_before(group.revision, group.arrived_unix_ms) {
            return Ok(true);
        }
        rebuild.apply(group, path)?;
        progress.target = group.revision;
        progress.groups += 1;
        progress.events += group.events.len() as u64;
    }
    Ok(false)
}

/// The member started on the rebuilt database must serve the target revision, and its keyspace
/// hash must equal the one the capture recorded at the last segment end passed.
async fn check_member(etcd: &StandaloneEtcd, written: &Written) -> Result<(), ReplayError> {
    let mut client = etcd.client();
    if let Some((path, revision, recorded)) = &written.last_hash {
        check_hash(&mut client, path, *revision, *recorded).await?;
    }
    let got = member_revision(&mut client).await?;
    if got != written.wanted {
        return Err(ReplayError::FinalRevision {
            target: written.wanted,
            got,
        });
    }
    Ok(())
}

/// A segment on the plan's path that was not listed (removed since): named as a plain file.
fn missing(point: &PointInTime, (from, to): (i64, i64)) -> ReplayError {
    ReplayError::SegmentRead {
        path: point.chain.path().join(segment_file_name(from, to)),
        source: std::io::ErrorKind::NotFound.into(),
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "failed to remove the rebuilt database");
    }
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
