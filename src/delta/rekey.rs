//! `etcd-snapshot rekey` for delta segments: every encrypted segment of every chain, on disk
//! (`.deltas/<snapshot>/` beside the snapshot dir) and in S3 (`store::s3::rekey_chains`), is
//! re-encrypted to the current recipients, so an old identity can be retired without breaking
//! a point-in-time restore of an existing chain.
//!
//! Only the age layer changes: its plaintext (the gzip stream of a `.seg.gz.age`, the segment
//! of a `.seg.age`) is streamed from the decrypting reader into a new age file naming the
//! current recipients in its header (`crypt::named`), so the name, the form and the segment's
//! own checksum stay as they were, and no plaintext reaches the disk. Which segments are done
//! is read from that header alone (segments have no record beside them): a rerun skips those
//! already naming the current recipients. Plain segments (written before encryption was on)
//! are left plain and reported so: encrypting one renames it, and a name change under a
//! running capture, uploader and replay is not done here.
//!
//! On disk the new copy is written to `.<name>.rekey.part` in the chain dir (a hidden temp name
//! no chain reader parses, removed by the next rekey or the server's start), fsynced, checked
//! (it parses as age and names the current recipients) and renamed over the original: the name
//! holds the old copy or the new one at every instant, never neither. Only published segments
//! are listed, so the capture's open segment (a temp file) is never touched, and a published
//! segment is never rewritten by the capture. Deciding what to do (`plan_segment`) is pure.

use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use super::files::{ChainDir, FilesError, SegmentFile, SegmentForm, parse_segment_name};
use super::stored::{HEADER_PREFIX, header_fingerprints, header_prefix, open_decrypting};
use crate::crypt::{EncryptingWriter, Fingerprint, Identities, Recipients, fingerprints_in_header};
use crate::fsutil;
use crate::store::S3Store;
use crate::store::rekey::{ALREADY_CURRENT, Action, CopyReport, pump_to_file, same_set};
use crate::store::s3::S3Error;
use crate::telemetry::progress::Operation;

/// Why a plain segment is skipped.
pub const LEFT_PLAIN: &str =
    "left plain (a segment written before encryption was on is not encrypted by rekey)";
/// The suffix of a segment's new copy in its chain dir: `.<name>.rekey.part`.
const TEMP_SUFFIX: &str = ".rekey.part";

/// What happened to one segment of `anchor`'s chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    pub anchor: String,
    pub copy: CopyReport,
}

/// Decides one segment. Pure. `named` are the fingerprints its age header names (empty for a
/// plain one); `current` the recipients' fingerprints (None when encryption is off).
pub fn plan_segment(
    form: SegmentForm,
    named: &[Fingerprint],
    current: Option<&[Fingerprint]>,
) -> Action {
    let Some(current) = current else {
        return Action::Skip("encryption is off: segments are left as they are");
    };
    if !form.encrypted {
        return Action::Skip(LEFT_PLAIN);
    }
    match same_set(named, current) {
        true => Action::Skip(ALREADY_CURRENT),
        false => Action::Reencrypt,
    }
}

/// Rekeys every published segment of every chain beside `snapshot_dir` (or, with `dry_run`,
/// says what it would do). Blocking.
pub fn rekey_local_segments(
    snapshot_dir: &Path,
    recipients: Option<&Recipients>,
    identities: Option<&Identities>,
    dry_run: bool,
) -> Result<Vec<SegmentReport>, FilesError> {
    let current = recipients.map(Recipients::fingerprints);
    let mut reports = Vec::new();
    for anchor in super::retention::chain_anchors(snapshot_dir)? {
        let chain = ChainDir::new(snapshot_dir, &anchor)?;
        if !dry_run {
            remove_leftovers(chain.path());
        }
        for segment in chain.list()? {
            let copy = rekey_local_one(
                &segment,
                current.as_deref(),
                recipients,
                identities,
                dry_run,
            );
            reports.push(SegmentReport {
                anchor: anchor.clone(),
                copy,
            });
        }
    }
    Ok(reports)
}

fn rekey_local_one(
    segment: &SegmentFile,
    current: Option<&[Fingerprint]>,
    recipients: Option<&Recipients>,
    identities: Option<&Identities>,
    dry_run: bool,
) -> CopyReport {
    let name = super::upload::file_name(segment).to_string();
    let named = match segment.form.encrypted {
        true => header_fingerprints(&segment.path),
        false => Ok(Vec::new()),
    };
    let (action, error) = match named {
        Ok(named) => {
            let action = plan_segment(segment.form, &named, current);
            let error = match (&action, dry_run, recipients) {
                (Action::Reencrypt, false, Some(r)) => {
                    replace_local(&segment.path, &name, r, identities).err()
                }
                _ => None,
            };
            (action, error)
        }
        Err(e) => (
            Action::Skip("unreadable"),
            Some(crate::errors::error_chain(&e)),
        ),
    };
    CopyReport {
        file_name: name.clone(),
        new_name: name,
        action,
        error,
    }
}

/// Writes the new copy of the segment at `path` beside it and renames it over the original.
fn replace_local(
    path: &Path,
    name: &str,
    recipients: &Recipients,
    identities: Option<&Identities>,
) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(".{name}{TEMP_SUFFIX}"));
    let _ = std::fs::remove_file(&temp);
    if let Err(e) = reencrypt_segment(path, &temp, recipients, identities) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    // A chain removed meanwhile (its snapshot deleted or pruned) is not brought back.
    if !path.exists() {
        let _ = std::fs::remove_file(&temp);
        return Err("the segment was removed while it was rekeyed".into());
    }
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        format!("failed to replace the segment with its new copy: {e}")
    })?;
    fsutil::sync_dir(dir).map_err(|e| format!("failed to fsync {}: {e}", dir.display()))
}

/// Removes the new copies an interrupted rekey left in a chain dir (never a published name).
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Streams the age plaintext of encrypted segment `source` (opened with `identities`) into a
/// new age file at `temp` naming `recipients`, fsyncs it and checks it. Blocking.
pub fn reencrypt_segment(
    source: &Path,
    temp: &Path,
    recipients: &Recipients,
    identities: Option<&Identities>,
) -> Result<(), String> {
    let mut reader =
        open_decrypting(source, identities).map_err(|e| crate::errors::error_chain(&e))?;
    let out = fsutil::create_new(temp, 0o600)
        .map_err(|e| format!("failed to create {}: {e}", temp.display()))?;
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let total = std::fs::metadata(source).ok().map(|m| m.len());
    let step = crate::telemetry::progress::reporter().start(Operation::Rekey, &name, total);
    let written = copy_named(&mut reader, out, recipients, &*step);
    step.finish(written.is_ok());
    written?;
    check_new_copy(temp, recipients)
}

/// Streams `reader` into `out` as an age file naming `recipients`, and fsyncs it.
fn copy_named(
    reader: &mut dyn Read,
    out: std::fs::File,
    recipients: &Recipients,
    step: &dyn crate::telemetry::progress::Step,
) -> Result<(), String> {
    let buffered = BufWriter::with_capacity(256 * 1024, out);
    let writer =
        EncryptingWriter::new_named(buffered, Some(recipients)).map_err(|e| e.to_string())?;
    let failed_read = "the original failed to decrypt to its end (damaged?)";
    pump_to_file(reader, writer, step, |_| {}, failed_read)
}

/// The new copy must be a well-formed age file naming exactly the current recipients before it
/// replaces anything (as the snapshot rekey, it cannot be decrypted here: the new identity is
/// not needed to rekey).
fn check_new_copy(temp: &Path, recipients: &Recipients) -> Result<(), String> {
    let file = std::fs::File::open(temp).map_err(|e| e.to_string())?;
    let prefix = header_prefix(&file).map_err(|e| e.to_string())?;
    age::Decryptor::new_buffered(io::BufReader::new(&prefix[..]))
        .map_err(|e| format!("the new copy does not read back as an age file: {e}"))?;
    let named = fingerprints_in_header(&prefix);
    match same_set(&named, &recipients.fingerprints()) {
        true => Ok(()),
        false => Err("the new copy's header does not name the current recipients".into()),
    }
}

/// Rekeys every encrypted segment object of every chain in the bucket (or, with `dry_run`, says
/// what it would do). `work` is a private local dir for one object's two copies. Where this
/// node's chain beside `snapshot_dir` holds the same segment (same chain, same name) already on
/// the current recipients, that file is the new copy: the bucket then holds the bytes the disk
/// does, and the server's uploader, which re-sends a segment whose size differs, leaves it.
pub async fn rekey_s3_segments(
    bucket: &S3Store,
    recipients: Option<&Recipients>,
    identities: Option<&Identities>,
    dry_run: bool,
    work: &Path,
    snapshot_dir: &Path,
) -> Result<Vec<SegmentReport>, S3Error> {
    let current = recipients.map(Recipients::fingerprints);
    let mut reports = Vec::new();
    for (anchor, objects) in bucket.list_chains().await? {
        for object in objects {
            let Some(segment) = parse_segment_name(&object.name) else {
                continue;
            };
            let copy = S3Segment {
                bucket,
                anchor: &anchor,
                name: &object.name,
                form: segment.form,
                local: crate::layout::chain_dir_for(snapshot_dir, &anchor).join(&object.name),
            };
            let copy = copy
                .rekey(current.as_deref(), recipients, identities, dry_run, work)
                .await;
            reports.push(SegmentReport {
                anchor: anchor.clone(),
                copy,
            });
        }
    }
    Ok(reports)
}

/// One segment object of a chain in the bucket.
struct S3Segment<'a> {
    bucket: &'a S3Store,
    anchor: &'a str,
    name: &'a str,
    form: SegmentForm,
    /// Where this node's copy of the segment would be.
    local: PathBuf,
}

impl S3Segment<'_> {
    async fn rekey(
        &self,
        current: Option<&[Fingerprint]>,
        recipients: Option<&Recipients>,
        identities: Option<&Identities>,
        dry_run: bool,
        work: &Path,
    ) -> CopyReport {
        let report = |action, error| CopyReport {
            file_name: self.name.to_string(),
            new_name: self.name.to_string(),
            action,
            error,
        };
        let named = match self.form.encrypted && current.is_some() {
            true => match self
                .bucket
                .chain_object_prefix(self.anchor, self.name, HEADER_PREFIX)
                .await
            {
                Ok(prefix) => fingerprints_in_header(&prefix),
                Err(e) => {
                    return report(
                        Action::Skip("unreadable"),
                        Some(crate::errors::error_chain(&e)),
                    );
                }
            },
            false => Vec::new(),
        };
        let action = plan_segment(self.form, &named, current);
        let error = match (&action, dry_run, recipients) {
            (Action::Reencrypt, false, Some(r)) => {
                let (r, ids, local) = (r.clone(), identities.cloned(), self.local.clone());
                let make = move |old: &Path, new: &Path| match current_copy(&local, &r) {
                    true => copy_checked(&local, new, &r),
                    false => reencrypt_segment(old, new, &r, ids.as_ref()),
                };
                let replaced = self
                    .bucket
                    .replace_chain_object(self.anchor, self.name, work, Box::new(make))
                    .await;
                replaced.err()
            }
            _ => None,
        };
        report(action, error)
    }
}

/// Whether `path` is an encrypted segment whose header names exactly `recipients`.
fn current_copy(path: &Path, recipients: &Recipients) -> bool {
    let encrypted = path
        .file_name()
        .and_then(|n| parse_segment_name(&n.to_string_lossy()))
        .is_some_and(|n| n.form.encrypted);
    encrypted
        && header_fingerprints(path).is_ok_and(|named| same_set(&named, &recipients.fingerprints()))
}

/// Copies `source` to `temp` (new, 0600), fsyncs and checks it like a re-encrypted copy.
fn copy_checked(source: &Path, temp: &Path, recipients: &Recipients) -> Result<(), String> {
    let mut from = std::fs::File::open(source)
        .map_err(|e| format!("failed to open {}: {e}", source.display()))?;
    let mut to = fsutil::create_new(temp, 0o600)
        .map_err(|e| format!("failed to create {}: {e}", temp.display()))?;
    io::copy(&mut from, &mut to)
        .map_err(|e| format!("failed to copy {}: {e}", source.display()))?;
    to.sync_all().map_err(|e| format!("failed to fsync: {e}"))?;
    check_new_copy(temp, recipients)
}

#[cfg(test)]
#[path = "rekey_tests.rs"]
mod tests;
