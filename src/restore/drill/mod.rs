//! Restore drills: proof that a snapshot copy restores, by restoring it.
//!
//! A drill takes one copy (a local file, plain, zip or age-encrypted, or an S3 object, each
//! checked against its own bytes), and in a temp dir of its own outside the data dir (`$TMPDIR`,
//! refused when it is inside the data dir): downloads, decrypts or extracts it (`plain`), reads
//! it with `inspect`, restores it with the restore tool (told to skip its own hash pass:
//! `inspect`, beside it, checks the trailer, and the restore counts only when `inspect` passed)
//! into a throwaway member, starts that member (still beside `inspect`) on free loopback ports with
//! throwaway certificates at the lowest CPU and IO priority (`child::lower_priority`), and
//! checks that it serves the file's revision and key count, `HashKV` at the revision recorded at
//! save time (`snapshot::hashkv`), and every key once in paged reads. Everything it made goes
//! with the temp dir's guard, on success, failure and cancellation (a dropped future drops the
//! member, which kills etcd, and then the dir). It never deletes or changes the copy.
//!
//! `judge` decides from what was read and served (pure); `member` does the etcd I/O. A copy of a
//! SQLite datastore has no member to restore into: its drill is `inspect`'s read-only checks
//! (`integrity_check`, kine's table) on the prepared copy.

pub mod judge;
mod member;
pub mod plain;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::inspect::report::Check;
use crate::layout::metadata_dir_for;
use crate::snapshot::Storage;
use crate::snapshot::hashkv::HashKvRecord;
use crate::store::s3::{S3Error, S3Store};
use judge::Expected;
pub use plain::{IDENTITY_CHECK, Keys};

/// Why a drill could not reach a verdict (the snapshot's own faults are failed checks instead).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("failed to find snapshot {path}")]
    NotFound { path: PathBuf },
    #[error("failed to pick a temp dir for the drill: {0}")]
    TempDir(String),
    #[error("failed to create the drill's temp dir {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tool(#[from] crate::restore::RestoreError),
    #[error("failed to run {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the restore tool failed ({status}): {stderr}")]
    RestoreFailed { status: String, stderr: String },
    #[error("the restored member did not start")]
    Start(#[source] Box<crate::etcd::standalone::StandaloneError>),
    #[error("failed to read S3 object {name}")]
    S3 {
        name: String,
        #[source]
        source: Box<S3Error>,
    },
    #[error("failed to inspect the drill's copy")]
    Inspect(#[source] Box<crate::inspect::InspectError>),
    #[error("the drill task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// A drill's outcome on one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrillResult {
    /// Every check passed: the copy restores and serves what was saved.
    Passed,
    /// A check failed: the copy is damaged, or is not what was saved.
    Failed,
    /// An encrypted copy this host holds no key for: nothing is known about its bytes.
    CannotVerify,
}

impl DrillResult {
    /// From the checks (pure): all passed, or the `identity` check stopped the drill, or failed.
    pub fn of(checks: &[Check]) -> Self {
        if !checks.is_empty() && checks.iter().all(|c| c.ok) {
            DrillResult::Passed
        } else if checks.iter().any(|c| c.name == IDENTITY_CHECK && !c.ok) {
            DrillResult::CannotVerify
        } else {
            DrillResult::Failed
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            DrillResult::Passed => "passed",
            DrillResult::Failed => "failed",
            DrillResult::CannotVerify => "cannot-verify",
        }
    }
}

/// A drill's verdict on one copy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrillReport {
    /// The file name (an S3 object's base name).
    pub name: String,
    pub storage: Storage,
    /// `file:///...` or `s3://bucket/key`, as listed.
    pub location: String,
    pub passed: bool,
    pub result: DrillResult,
    pub checks: Vec<Check>,
    pub duration_secs: f64,
}

/// What a drill needs from the configuration.
#[derive(Debug, Clone)]
pub struct DrillSetup {
    /// The etcd binary (the restore tool is looked up beside it).
    pub etcd_binary: PathBuf,
    /// The live data dir: the drill's temp dir must be outside it.
    pub data_dir: PathBuf,
    /// Where the drill's temp dir goes; None: `$TMPDIR`.
    pub temp_dir: Option<PathBuf>,
    /// This host's keys for encrypted copies.
    pub keys: Keys,
}

/// Drills a local snapshot file (plain or `.zip`); the hash comes from its `.metadata` record.
pub async fn drill_local(setup: &DrillSetup, path: &Path) -> Result<DrillReport, DrillError> {
    if !path.is_file() {
        return Err(DrillError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let name = file_name(path);
    let recorded = local_record(path, &name);
    let location = format!("file://{}", path.display());
    let started = Instant::now();
    let work = WorkDir::create(setup)?;
    let checks = run_checks(setup, path, &name, &work, recorded).await?;
    Ok(report(name, Storage::Local, location, checks, started))
}

/// Drills S3 object `name`: downloaded (checked against the SHA-256 recorded at upload) into the
/// drill's temp dir; the hash comes from the object's user metadata.
pub async fn drill_s3(
    setup: &DrillSetup,
    store: &S3Store,
    name: &str,
) -> Result<DrillReport, DrillError> {
    let s3_err = |source: S3Error| DrillError::S3 {
        name: name.to_string(),
        source: Box::new(source),
    };
    let started = Instant::now();
    let metadata = store.object_metadata(name).await.map_err(s3_err)?;
    let recorded = parsed(HashKvRecord::from_entries(&metadata));
    let key = store.layout().object_key(name);
    let location = crate::store::s3::keys::location(store.client().bucket(), &key);
    let work = WorkDir::create(setup)?;
    let checks = match store.download(name, work.path()).await {
        Ok(path) => run_checks(setup, &path, name, &work, recorded).await?,
        Err(e @ (S3Error::ChecksumMismatch { .. } | S3Error::SizeMismatch { .. })) => {
            vec![Check::new("object", false, crate::errors::error_chain(&e))]
        }
        Err(e) => return Err(s3_err(e)),
    };
    Ok(report(
        name.to_string(),
        Storage::S3,
        location,
        checks,
        started,
    ))
}

fn report(
    name: String,
    storage: Storage,
    location: String,
    checks: Vec<Check>,
    started: Instant,
) -> DrillReport {
    let result = DrillResult::of(&checks);
    DrillReport {
        passed: result == DrillResult::Passed,
        result,
        name,
        storage,
        location,
        checks,
        duration_secs: started.elapsed().as_secs_f64(),
    }
}

/// The steps on a local copy; the first failed step ends the drill with its check.
async fn run_checks(
    setup: &DrillSetup,
    path: &Path,
    name: &str,
    work: &WorkDir,
    recorded: Option<Result<HashKvRecord, String>>,
) -> Result<Vec<Check>, DrillError> {
    let plain = match plain::prepare(&setup.keys, path, name, work.path()).await? {
        plain::Plain::File(p) => p,
        plain::Plain::Stop(check) => return Ok(vec![check]),
    };
    let (inspected, restored) = inspect_and_restore(setup, &plain, work).await?;
    let mut checks = vec![Check::new(
        "inspect",
        inspected.healthy,
        summary(&inspected),
    )];
    if inspected.datastore == crate::snapshot::image::ImageKind::Sqlite {
        // A SQLite copy has no member to restore into: `inspect` opened it read-only and ran
        // integrity_check and kine's checks on it, which are its drill.
        return Ok(checks);
    }
    let Some(status) = inspected.etcd_status.as_ref().filter(|_| inspected.healthy) else {
        return Ok(checks);
    };
    let expected = Expected {
        // A member starts at the last finished compaction when every revision up to it was
        // compacted away (the newest changes were deletions), above the file's highest key.
        revision: status
            .revision
            .max(inspected.finished_compact_revision.unwrap_or(0)),
        keys: inspected.live_keys,
        recorded,
    };
    let member = match restored {
        Ok(Restored::Started(member)) => member,
        Ok(Restored::NotStarted(detail)) => {
            checks.push(restored_check());
            checks.push(Check::new("serves", false, detail));
            return Ok(checks);
        }
        Err(DrillError::RestoreFailed { status, stderr }) => {
            checks.push(Check::new("restore", false, format!("{status}: {stderr}")));
            return Ok(checks);
        }
        Err(e) => return Err(e),
    };
    checks.push(restored_check());
    let record = expected.recorded.as_ref().and_then(|r| r.as_ref().ok());
    let observed = member::observe(&member, record).await;
    let _ = member.stop().await;
    match observed {
        Ok(observed) => {
            checks.push(Check::new(
                "serves",
                true,
                "the member started and answered",
            ));
            checks.extend(judge::judge(&expected, &observed));
        }
        Err(e) => checks.push(Check::new(
            "serves",
            false,
            format!("the member failed a read: {e}"),
        )),
    }
    Ok(checks)
}

fn restored_check() -> Check {
    Check::new("restore", true, "restored into a throwaway member")
}

/// The throwaway member after the restore: started, or why it did not start.
enum Restored {
    Started(Box<crate::etcd::standalone::StandaloneEtcd>),
    NotStarted(String),
}

/// Inspects the plain file while it is restored into the work dir and the restored member is
/// started: the inspect on this process's threads, the restore tool and then etcd on their own,
/// so on two cores the inspect costs almost nothing on top of them. Starting the member before
/// the inspect has passed is safe, as it is a throwaway in the drill's own dir; its answers are
/// only asked for, and the restore only counts, once the inspect passed (`run_checks`).
async fn inspect_and_restore(
    setup: &DrillSetup,
    plain: &Path,
    work: &WorkDir,
) -> Result<
    (
        crate::inspect::report::InspectReport,
        Result<Restored, DrillError>,
    ),
    DrillError,
> {
    let (file, data_dir) = (plain.to_path_buf(), setup.data_dir.clone());
    let inspect =
        tokio::task::spawn_blocking(move || crate::inspect::inspect_local(&file, &data_dir, None));
    let tool = crate::restore::select_restore_tool(&setup.etcd_binary).await?;
    let unique = format!("{}", std::process::id());
    let restore_and_start = async {
        let member_dir = member::restore(&tool, plain, work.path(), &unique).await?;
        Ok(match member::start(&setup.etcd_binary, &member_dir).await {
            Ok(member) => Restored::Started(Box::new(member)),
            Err(e) => Restored::NotStarted(crate::errors::error_chain(&e)),
        })
    };
    let (inspected, restored) = tokio::join!(inspect, restore_and_start);
    let inspected = inspected
        .map_err(DrillError::Task)?
        .map_err(|e| DrillError::Inspect(Box::new(e)))?;
    Ok((inspected, restored))
}

/// One line of what `inspect` found: its failed checks, or the figures.
fn summary(r: &crate::inspect::report::InspectReport) -> String {
    let failed: Vec<String> = r
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if !failed.is_empty() {
        return failed.join("; ");
    }
    if let Some(s) = &r.sqlite {
        return format!(
            "whole: SQLite, integrity_check ok, kine revision {}, {} live keys",
            s.revision, r.live_keys
        );
    }
    match &r.etcd_status {
        Some(s) => format!(
            "whole: revision {}, {} keys, {} bytes",
            s.revision, r.live_keys, s.total_size
        ),
        None => "no etcd status".into(),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The hash recorded in the local copy's `.metadata` record, if any.
fn local_record(path: &Path, name: &str) -> Option<Result<HashKvRecord, String>> {
    let dir = path.parent()?;
    let record = metadata_dir_for(dir).join(name);
    let bytes = crate::fsutil::read_capped(&record, crate::fsutil::SMALL_FILE_MAX).ok()?;
    match crate::snapshot::record::parse_metadata(&bytes) {
        Ok(map) => parsed(HashKvRecord::from_entries(&map)),
        Err(e) => Some(Err(format!(
            "{} is not a metadata record: {e}",
            record.display()
        ))),
    }
}

fn parsed(
    result: Result<Option<HashKvRecord>, crate::snapshot::hashkv::HashKvError>,
) -> Option<Result<HashKvRecord, String>> {
    match result {
        Ok(r) => r.map(Ok),
        Err(e) => Some(Err(e.to_string())),
    }
}

/// The drill's temp dir (0700, outside the data dir), removed with everything in it on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(setup: &DrillSetup) -> Result<Self, DrillError> {
        let base = match &setup.temp_dir {
            Some(dir) => outside(dir, &setup.data_dir)?,
            None => {
                crate::inspect::source::spill_dir(&setup.data_dir).map_err(DrillError::TempDir)?
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = base.join(format!(
            "etcd-snapshot-drill-{}-{nanos}",
            std::process::id()
        ));
        crate::fsutil::create_dir_all_mode(&path, 0o700).map_err(|source| {
            DrillError::CreateDir {
                path: path.clone(),
                source,
            }
        })?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

/// `dir` when it is not inside the data dir.
fn outside(dir: &Path, data_dir: &Path) -> Result<PathBuf, DrillError> {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if canonical(dir).starts_with(canonical(data_dir)) {
        return Err(DrillError::TempDir(format!(
            "{} is inside the data dir {}",
            dir.display(),
            data_dir.display()
        )));
    }
    Ok(dir.to_path_buf())
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "failed to remove the drill's temp dir");
        }
    }
}
