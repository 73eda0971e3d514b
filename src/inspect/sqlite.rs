//! `inspect` of a SQLite datastore's snapshot (k3s/RKE2's kine `state.db`): the same report
//! as for etcd, filled from the database instead of a bbolt walk.
//!
//! Checks: the image's header against its length (`image`, done while it was read), SQLite's
//! `integrity_check`, and the `kine` table's shape; with a token, whether the bootstrap data
//! under its key opens with it (`token`, as for etcd). Figures: kine's revision (the highest
//! row id) and row count, the live keys (the latest row of each name, deleted rows excluded)
//! and their per-resource table (`/registry/<resource>`, grouped as for etcd).
//!
//! The image is opened read-only and immutable by `datastore::kine` (nothing is written beside
//! it); the grouping holds at most [`MAX_GROUPS`] prefixes and one bootstrap value.

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::mvcc::{printable, resource_of};
use super::report::{self, Check, InspectReport, SqliteFigures};
use super::tally::{GroupCount, Tally};
use crate::bootstrap::crypto::storage_key;
use crate::bootstrap::token_password;
use crate::datastore::kine::{self, KineSummary};
use crate::datastore::save::unhealthy_detail;
use crate::errors::error_chain;
use crate::snapshot::image::ImageKind;

/// Distinct prefixes followed; keys beyond are counted under [`OVERFLOW_GROUP`].
const MAX_GROUPS: usize = 10_000;
const OVERFLOW_GROUP: &str = "(more prefixes)";
/// The bootstrap prefix kine stores k3s's bootstrap data under.
const BOOTSTRAP_PREFIX: &[u8] = b"/bootstrap/";
/// Largest bootstrap value read (a real one is a few KiB).
const MAX_BOOTSTRAP_VALUE: i64 = 16 << 20;

/// Builds the report of a SQLite image at `image` (a plain file, or a spilled copy), after the
/// `checks` that reading it made.
pub fn report(
    image: &Path,
    source: String,
    file_size: u64,
    sha256: Option<String>,
    mut checks: Vec<Check>,
    token: Option<&SecretString>,
) -> InspectReport {
    let mut report = report::assemble(source, file_size, sha256, Vec::new(), None);
    report.datastore = ImageKind::Sqlite;
    let read_ok = checks.iter().all(|c| c.ok);
    if read_ok {
        match read(image, token) {
            Ok(found) => {
                checks.extend(found.checks);
                report.live_keys = found.live_keys;
                report.resources = found.resources;
                report.resources_complete = true;
                report.bootstrap.keys = found.bootstrap_keys;
                report.bootstrap.present = !report.bootstrap.keys.is_empty();
                report.bootstrap.token_decrypts = found.token_decrypts;
                report.sqlite = Some(figures(&found.summary));
            }
            Err(e) => checks.push(Check::new("sqlite", false, error_chain(&e))),
        }
    }
    report.healthy = checks.iter().all(|c| c.ok);
    report.checks = checks;
    report
}

/// [`report`] of an image spilled into an unlinked temp file (a zip entry, an S3 object, a
/// decrypted copy): SQLite opens files by name (and resolves `/proc/self/fd` links to the
/// deleted name), so the image is copied to a named private file beside the spill (0600,
/// created new, never through a symlink) for the read, and that file is removed after it.
pub fn report_spilled(
    spill: &std::fs::File,
    source: String,
    file_size: u64,
    sha256: Option<String>,
    mut checks: Vec<Check>,
    token: Option<&SecretString>,
) -> InspectReport {
    match named_copy(spill) {
        Ok(named) => report(named.0.as_path(), source, file_size, sha256, checks, token),
        Err(e) => {
            checks.push(Check::new(
                "sqlite",
                false,
                format!("failed to copy the image for SQLite: {e}"),
            ));
            report(Path::new(""), source, file_size, sha256, checks, token)
        }
    }
}

/// A named file removed on drop.
struct Named(std::path::PathBuf);

impl Drop for Named {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn named_copy(spill: &std::fs::File) -> std::io::Result<Named> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = std::env::temp_dir().join(format!(
        ".etcd-snapshot-inspect-{}-{nanos}.db",
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)?;
    let named = Named(path);
    let mut reader = spill.try_clone()?;
    reader.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut reader, &mut file)?;
    Ok(named)
}

fn figures(summary: &KineSummary) -> SqliteFigures {
    SqliteFigures {
        revision: summary.revision,
        rows: summary.rows,
        page_size: summary.page_size,
        pages: summary.pages,
    }
}

/// What reading the database found.
struct Found {
    summary: KineSummary,
    checks: Vec<Check>,
    live_keys: u64,
    resources: Vec<GroupCount>,
    bootstrap_keys: Vec<String>,
    token_decrypts: Option<bool>,
}

fn read(
    image: &Path,
    token: Option<&SecretString>,
) -> Result<Found, crate::datastore::DatastoreError> {
    let summary = kine::summarize(image)?;
    let detail = if summary.integrity_ok() {
        "PRAGMA integrity_check: ok".to_string()
    } else {
        format!("PRAGMA integrity_check: {}", summary.integrity.join("; "))
    };
    let integrity = Check::new("integrity", summary.integrity_ok(), detail);
    let shape = match &summary.shape_problem {
        None => Check::new("kine", true, format!("kine's table, {} rows", summary.rows)),
        Some(_) => Check::new("kine", false, unhealthy_detail(&summary)),
    };
    let mut found = Found {
        checks: vec![integrity, shape],
        summary,
        live_keys: 0,
        resources: Vec::new(),
        bootstrap_keys: Vec::new(),
        token_decrypts: None,
    };
    if found.summary.shape_problem.is_some() {
        return Ok(found);
    }
    let conn = kine::open_image(image)?;
    let mut groups = Groups::default();
    kine::for_each_live_key(&conn, image, |name, len| {
        found.live_keys += 1;
        groups.add(name, len);
        if name.starts_with(BOOTSTRAP_PREFIX) && found.bootstrap_keys.len() < 100 {
            found.bootstrap_keys.push(printable(name));
        }
    })?;
    found.resources = groups.into_counts();
    if let Some(token) = token {
        let check = token_check(&conn, image, token, &found.bootstrap_keys)?;
        found.token_decrypts = Some(check.ok);
        found.checks.push(check);
    }
    Ok(found)
}

/// The `token` check, as for etcd: the bootstrap value under this token's key opens with it.
fn token_check(
    conn: &rusqlite::Connection,
    image: &Path,
    token: &SecretString,
    bootstrap_keys: &[String],
) -> Result<Check, crate::datastore::DatastoreError> {
    let mut tally = Tally::default();
    for key in bootstrap_keys {
        tally.bootstrap.insert(key.clone(), Some(Vec::new()));
    }
    if let Ok(password) = token_password(token.expose_secret()) {
        let key = storage_key(password.expose_secret());
        let value = kine::live_value(conn, image, &key, MAX_BOOTSTRAP_VALUE)?;
        if let Some(value) = value {
            tally.bootstrap.insert(key, Some(value));
        }
    }
    Ok(super::identity::token_check(token, &tally))
}

/// Live keys and bytes per resource prefix, bounded.
#[derive(Default)]
struct Groups(BTreeMap<String, (u64, u64)>);

impl Groups {
    fn add(&mut self, name: &[u8], bytes: u64) {
        let mut prefix = resource_of(name);
        if !self.0.contains_key(&prefix) && self.0.len() >= MAX_GROUPS {
            prefix = OVERFLOW_GROUP.into();
        }
        let entry = self.0.entry(prefix).or_default();
        entry.0 += 1;
        entry.1 += bytes;
    }

    /// Largest byte count first, as for etcd.
    fn into_counts(self) -> Vec<GroupCount> {
        let mut out: Vec<GroupCount> = self
            .0
            .into_iter()
            .map(|(prefix, (keys, bytes))| GroupCount {
                prefix,
                keys,
                bytes,
            })
            .collect();
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.prefix.cmp(&b.prefix)));
        out
    }
}
