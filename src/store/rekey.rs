//! `etcd-snapshot rekey`: re-encrypts the local snapshot dir's copies to the current recipients,
//! so an old identity can be retired, and encrypts the plaintext copies a dir kept from before
//! encryption was turned on.
//!
//! One copy at a time, crash-safe and resumable: the new copy is streamed (decrypt -> encrypt)
//! into a `.part` temp file in the work dir, fsynced and checked (its age header parses), and
//! only then takes the original's place with a rename, which is
//! atomic: at every instant the name holds either the old copy (readable with the old
//! identity) or the new one (readable with the new), never a partial file. A plaintext copy
//! gets a new `.age` name; the plaintext is removed only after its `.age` twin is published. A
//! rerun skips what is already encrypted to the current recipients and finishes what an
//! interrupted run left. Deciding what to do with each copy (`plan`) is pure.

use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::local::LocalStore;
use crate::crypt::keys::join;
use crate::crypt::{CryptError, EncryptingWriter, Fingerprint, Identities, Recipients};
use crate::fsutil;
use crate::layout::SnapshotDirLayout;
use crate::snapshot::encryption_record::{EncryptionRecord, META_FINGERPRINTS};
use crate::snapshot::name::{AGE_SUFFIX, is_encrypted_name};
use crate::telemetry::progress::Operation;

/// Why a copy on the current recipients is skipped.
pub const ALREADY_CURRENT: &str = "already encrypted to the current recipients";

/// What rekey does with one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Re-encrypt an encrypted copy in place (same name).
    Reencrypt,
    /// Encrypt a plaintext copy to `<name>.age` and remove the plaintext.
    Encrypt,
    /// Leave it; the reason says why.
    Skip(&'static str),
}

/// Decides one copy. Pure. `recorded` are the fingerprints its record names (None when it has
/// no record); `current` the recipients' fingerprints (None when encryption is off).
pub fn plan(
    file_name: &str,
    recorded: Option<&[Fingerprint]>,
    current: Option<&[Fingerprint]>,
) -> Action {
    let Some(current) = current else {
        return Action::Skip("encryption is off: copies are left as they are");
    };
    if !is_encrypted_name(file_name) {
        return Action::Encrypt;
    }
    match recorded {
        Some(recorded) if same_set(recorded, current) => Action::Skip(ALREADY_CURRENT),
        _ => Action::Reencrypt,
    }
}

/// Why a plaintext copy that anchors a delta chain stays plaintext.
pub const ANCHORS_CHAIN: &str = "left plain: it anchors a delta chain, whose dir and segments name it (encrypting it renames it to .age and would cut the chain off)";

/// A plaintext copy that anchors a delta chain is not encrypted: the chain dir (locally
/// `.deltas/<name>`, in S3 `<folder>/.deltas/<name>/`) and every segment's header name the
/// snapshot's file name, and a point-in-time restore finds the chain by it. Pure.
pub fn keep_anchor_plain(action: Action, anchors_chain: bool) -> Action {
    match action {
        Action::Encrypt if anchors_chain => Action::Skip(ANCHORS_CHAIN),
        other => other,
    }
}

/// Whether two fingerprint lists name the same keys (order and repeats aside).
pub fn same_set(a: &[Fingerprint], b: &[Fingerprint]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// What happened to one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub file_name: String,
    /// The name after rekey (differs for an encrypted plaintext copy).
    pub new_name: String,
    pub action: Action,
    /// Set when the action failed; the original is then untouched.
    pub error: Option<String>,
}

/// Why rekey failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error("failed to list the snapshot dir")]
    List(#[source] super::local::StoreError),
    #[error("failed to read the encryption keys")]
    Keys(#[source] CryptError),
}

/// Rekeys every copy of this node in the store (or, with `dry_run`, says what it would do).
pub fn rekey_local(
    store: &LocalStore,
    recipients: Option<&Recipients>,
    identities: Option<&Identities>,
    dry_run: bool,
) -> Result<Vec<CopyReport>, RekeyError> {
    let current = recipients.map(Recipients::fingerprints);
    let mut reports = Vec::new();
    for record in store.list().map_err(RekeyError::List)? {
        let name = record.file_name;
        let path = store.dir().join(&name);
        // A record counts only for the copy it describes (see `EncryptionRecord::file_sha256`).
        let recorded = EncryptionRecord::read_beside(&path)
            .filter(|r| r.file_sha256.is_none() || r.file_sha256 == file_sha256(&path))
            .map(|r| r.recipients);
        let action = plan(&name, recorded.as_deref(), current.as_deref());
        let anchors_chain = crate::layout::chain_dir_for(store.dir(), &name).is_dir();
        let action = keep_anchor_plain(action, anchors_chain);
        let new_name = match action {
            Action::Encrypt => format!("{name}{AGE_SUFFIX}"),
            _ => name.clone(),
        };
        let error = match (&action, dry_run, recipients) {
            (Action::Skip(why), false, Some(r)) if *why == ALREADY_CURRENT => {
                // Heals a metadata record a crash left behind its copy (it is written last).
                record_fingerprints(store.layout(), &name, &r.fingerprints());
                None
            }
            (Action::Skip(_), _, _) | (_, true, _) | (_, _, None) => None,
            (_, false, Some(r)) => rekey_one(store.layout(), &name, &new_name, r, identities).err(),
        };
        reports.push(CopyReport {
            file_name: name,
            new_name,
            action,
            error,
        });
    }
    Ok(reports)
}

/// Streams `name` (decrypting it when encrypted) into `new_name` encrypted to `recipients`.
fn rekey_one(
    layout: &SnapshotDirLayout,
    name: &str,
    new_name: &str,
    recipients: &Recipients,
    identities: Option<&Identities>,
) -> Result<(), String> {
    let dir = layout.snapshots.as_path();
    let source = layout.snapshot_path(name);
    let dest = layout.snapshot_path(new_name);
    // In the work dir, like a save's temp file: never a stray file in the snapshot dir.
    let temp = layout.temp_path(new_name);
    fsutil::create_dir_all_mode(&layout.work, 0o700).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&temp);
    let result = reencrypt_file(&source, &temp, recipients, identities)
        .and_then(|digest| check_new_copy(&temp).map(|()| digest));
    let digest = match result {
        Ok(digest) => digest,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    let record = EncryptionRecord {
        recipients: recipients.fingerprints(),
        plaintext_sha256: Some(digest),
        file_sha256: file_sha256(&temp),
        // No seal: the plaintext was copied, not checked against its trailer.
        seal: None,
    };
    let record_path = layout.encryption_path(new_name);
    if let Some(enc_dir) = record_path.parent() {
        fsutil::create_dir_all_mode(enc_dir, 0o700).map_err(|e| e.to_string())?;
    }
    // The record first, naming the new copy's digest, then the rename: after a crash between
    // the two the record does not match the (old) copy, so the next run re-encrypts it.
    fsutil::write_atomic(&record_path, &record.to_json(), 0o600)
        .map_err(|e| format!("failed to write the encryption record of {new_name}: {e}"))?;
    std::fs::rename(&temp, &dest).map_err(|e| format!("failed to publish {new_name}: {e}"))?;
    fsutil::sync_dir(dir).map_err(|e| e.to_string())?;
    if new_name != name {
        copy_extra_metadata(layout, name, new_name);
    }
    // Listings and resources read the fingerprints from the metadata record.
    record_fingerprints(layout, new_name, &record.recipients);
    if new_name != name {
        std::fs::remove_file(&source)
            .map_err(|e| format!("failed to remove plaintext {name}: {e}"))?;
        let _ = std::fs::remove_file(layout.metadata_path(name));
        let _ = std::fs::remove_file(layout.encryption_path(name));
        fsutil::sync_dir(dir).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Writes the new copy of `source` (decrypted with `identities` when its name ends in `.age`)
/// to `temp`, encrypted to `recipients`, and fsyncs it; returns the plaintext's SHA-256. The
/// S3 rekey uses it on a downloaded object.
pub fn reencrypt_file(
    source: &Path,
    temp: &Path,
    recipients: &Recipients,
    identities: Option<&Identities>,
) -> Result<String, String> {
    let file = std::fs::File::open(source).map_err(|e| format!("failed to open: {e}"))?;
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut reader: Box<dyn Read> = if is_encrypted_name(&name) {
        let needed = EncryptionRecord::read_beside(source)
            .map(|r| r.recipients)
            .unwrap_or_default();
        let r = crate::crypt::decrypting_reader(file, identities, &name, &needed)
            .map_err(|e| chain(&e))?;
        Box::new(r)
    } else {
        Box::new(file)
    };
    let out = fsutil::create_new(temp, 0o600)
        .map_err(|e| format!("failed to create {}: {e}", temp.display()))?;
    let total = std::fs::metadata(source).ok().map(|m| m.len());
    let step = crate::telemetry::progress::reporter().start(Operation::Rekey, &name, total);
    let written = copy_encrypting(reader.as_mut(), out, recipients, &*step);
    step.finish(written.is_ok());
    written
}

/// Streams `reader` into `out` encrypted to `recipients`, fsyncs, and returns the plaintext's
/// SHA-256. `step` hears of every chunk read.
fn copy_encrypting(
    reader: &mut dyn Read,
    out: std::fs::File,
    recipients: &Recipients,
    step: &dyn crate::telemetry::progress::Step,
) -> Result<String, String> {
    let writer = EncryptingWriter::new(BufWriter::with_capacity(256 * 1024, out), Some(recipients))
        .map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    let failed_read = "the original failed to read back (damaged?)";
    pump_to_file(
        reader,
        writer,
        step,
        |chunk| hasher.update(chunk),
        failed_read,
    )?;
    Ok(crate::hex::encode(&hasher.finalize()))
}

/// Streams `reader` through `writer` (an age stream into a file) and fsyncs the file; `on_chunk`
/// sees every chunk of plaintext, `step` hears of it, and a read error is named `failed_read`.
/// Shared by the rekey of snapshots and of delta segments.
pub fn pump_to_file(
    reader: &mut dyn Read,
    mut writer: EncryptingWriter<BufWriter<std::fs::File>>,
    step: &dyn crate::telemetry::progress::Step,
    mut on_chunk: impl FnMut(&[u8]),
    failed_read: &str,
) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{failed_read}: {e}")),
        };
        on_chunk(&buf[..n]);
        step.advance(n as u64);
        writer
            .write_all(&buf[..n])
            .map_err(|e| format!("failed to write: {e}"))?;
    }
    let file = writer
        .finish()
        .and_then(|w| w.into_inner().map_err(io::IntoInnerError::into_error))
        .map_err(|e| format!("failed to write: {e}"))?;
    file.sync_all().map_err(|e| format!("failed to fsync: {e}"))
}

/// SHA-256 of a file, hex; None when it cannot be read.
fn file_sha256(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(crate::hex::encode(&hasher.finalize()))
}

/// The new copy must be a well-formed age file before it replaces anything.
fn check_new_copy(temp: &Path) -> Result<(), String> {
    let file = std::fs::File::open(temp).map_err(|e| e.to_string())?;
    age::Decryptor::new_buffered(io::BufReader::new(file))
        .map(|_| ())
        .map_err(|e| format!("the new copy does not read back as an age file: {e}"))
}

/// An error and its sources, `: `-joined (the reports print one line per copy).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Sets the fingerprint entry of `name`'s metadata record (creating the record when there is
/// none), keeping every other entry. Best effort: the record is informative.
fn record_fingerprints(layout: &SnapshotDirLayout, name: &str, fingerprints: &[Fingerprint]) {
    let path = layout.metadata_path(name);
    let mut map = match fsutil::read_capped(&path, 1024 * 1024) {
        Ok(bytes) => match crate::snapshot::record::parse_metadata(&bytes) {
            Ok(map) => map,
            // Not ours to rewrite: a malformed record is left as it is.
            Err(_) => return,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Default::default(),
        Err(_) => return,
    };
    let joined = join(fingerprints);
    if map.get(META_FINGERPRINTS) == Some(&joined) {
        return;
    }
    map.retain(|k, _| !k.eq_ignore_ascii_case(META_FINGERPRINTS));
    map.insert(META_FINGERPRINTS.to_string(), joined);
    if let (Some(parent), Ok(json)) = (path.parent(), serde_json::to_vec(&map)) {
        let _ = fsutil::create_dir_all_mode(parent, 0o700);
        let _ = fsutil::write_atomic(&path, &json, 0o600);
    }
}

fn copy_extra_metadata(layout: &SnapshotDirLayout, from: &str, to: &str) {
    if let Ok(bytes) = fsutil::read_capped(&layout.metadata_path(from), 1024 * 1024) {
        let _ = fsutil::write_atomic(&layout.metadata_path(to), &bytes, 0o600);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u8) -> Fingerprint {
        Fingerprint::parse(&format!("age1:{:016x}", n)).unwrap()
    }

    #[test]
    fn plan_follows_the_current_recipients() {
        let (a, b) = (vec![fp(1)], vec![fp(2)]);
        assert_eq!(
            plan("s-n-1.age", Some(&a), Some(&a)),
            Action::Skip(ALREADY_CURRENT)
        );
        assert_eq!(plan("s-n-1.zip.age", Some(&a), Some(&b)), Action::Reencrypt);
        assert_eq!(plan("s-n-1.age", None, Some(&b)), Action::Reencrypt);
        assert_eq!(plan("s-n-1.zip", None, Some(&b)), Action::Encrypt);
        assert!(matches!(plan("s-n-1.age", Some(&a), None), Action::Skip(_)));
        assert!(matches!(plan("s-n-1", None, None), Action::Skip(_)));
        let encrypt = plan("s-n-1.zip", None, Some(&b));
        assert_eq!(keep_anchor_plain(encrypt.clone(), false), Action::Encrypt);
        assert_eq!(
            keep_anchor_plain(encrypt, true),
            Action::Skip(ANCHORS_CHAIN)
        );
        assert_eq!(
            keep_anchor_plain(Action::Reencrypt, true),
            Action::Reencrypt
        );
    }
}
