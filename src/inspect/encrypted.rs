//! Inspecting an encrypted snapshot (`…[.zip].age`, or any file that starts with the age
//! header): its plaintext is decrypted on the fly with the given identities into an anonymous
//! spill (like a zip entry's, see `source`), hashed on the way, and inspected as the plaintext
//! snapshot would be. The report says it was encrypted and to which key fingerprints (the
//! save's record, or the S3 object's metadata: the age header itself names no key).
//!
//! Three outcomes are kept apart. No identity, or none that opens the file: no verdict on the
//! snapshot at all (a usage error, exit 2, naming the fingerprints it needs and those given), so
//! a monitoring script never calls a whole snapshot damaged for want of a key. A header that is
//! not age, or a chunk that fails authentication (altered or truncated): the `decryption` check
//! fails (exit 1). The plaintext's SHA-256 is compared with the one recorded at save when known.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

use secrecy::SecretString;

use super::report::{Check, InspectReport};
use super::source::{self, Streamed};
use super::{InspectError, from_spill, inspect_zip, is_zip};
use crate::crypt::{CryptError, Fingerprint, Identities, decrypting_reader, is_age_header};
use crate::snapshot::name::{is_encrypted_name, without_age};

/// What is known of an encrypted snapshot before it is opened.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The fingerprints it was encrypted to (empty: not recorded).
    pub recipients: Vec<Fingerprint>,
    /// The plaintext's SHA-256 recorded at save.
    pub plaintext_sha256: Option<String>,
}

/// True when the file must be decrypted before it can be read: its name ends in `.age` or its
/// first bytes are the age header (a file the `age` tool wrote under another name).
pub fn is_encrypted(file: &File, name: &str) -> bool {
    if is_encrypted_name(name) {
        return true;
    }
    let mut prefix = [0u8; crate::crypt::AGE_MAGIC.len()];
    let mut read = 0;
    while read < prefix.len() {
        match std::os::unix::fs::FileExt::read_at(file, &mut prefix[read..], read as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    is_age_header(&prefix[..read])
}

/// Decrypts `input` (an encrypted snapshot named `source_name` in reports, `size` bytes) into a
/// spill in the temp dir and inspects the plaintext.
pub fn inspect(
    input: File,
    source_name: String,
    size: u64,
    recorded: Recorded,
    data_dir: &Path,
    token: Option<&SecretString>,
    identities: Option<&Identities>,
) -> Result<InspectReport, InspectError> {
    let dir = source::spill_dir(data_dir).map_err(|reason| InspectError::SpillDir {
        name: source_name.clone(),
        reason,
    })?;
    let spill_err = |source| InspectError::Spill {
        name: source_name.clone(),
        source,
    };
    let label = name_of(&source_name).to_string();
    let mut reader = match decrypting_reader(input, identities, &label, &recorded.recipients) {
        Ok(reader) => reader,
        Err(e @ (CryptError::IdentityRequired { .. } | CryptError::NoMatchingIdentity { .. })) => {
            return Err(InspectError::Identity(Box::new(e)));
        }
        Err(e) => {
            let check = Check::new("decryption", false, crate::errors::error_chain(&e));
            return Ok(mark(failed(source_name, size, check), &recorded));
        }
    };
    let mut spill = source::anonymous_file(&dir).map_err(spill_err)?;
    let streamed = match spill_plaintext(&mut reader, &mut spill) {
        Ok(streamed) => streamed,
        Err(Failure::Damaged(detail)) => {
            let check = Check::new("decryption", false, detail);
            return Ok(mark(failed(source_name, size, check), &recorded));
        }
        Err(Failure::Spill(e)) => return Err(spill_err(e)),
    };
    let check = decryption_check(&streamed.whole_sha256, recorded.plaintext_sha256.as_deref());
    let report = if is_zip(without_age(&label)) {
        spill.rewind().map_err(spill_err)?;
        let mut report = inspect_zip(spill, source_name, size, data_dir, token)?;
        report.healthy &= check.ok;
        report.checks.insert(0, check);
        report
    } else {
        from_spill(&spill, source_name, size, streamed, vec![check], token)
    };
    Ok(mark(report, &recorded))
}

/// The `decryption` check of a file whose every chunk authenticated. Pure.
pub fn decryption_check(plaintext_sha256: &str, recorded: Option<&str>) -> Check {
    match recorded {
        Some(r) if r.eq_ignore_ascii_case(plaintext_sha256) => Check::new(
            "decryption",
            true,
            format!(
                "every age chunk authenticates; the plaintext's sha256 {plaintext_sha256} matches the one recorded at save"
            ),
        ),
        Some(r) => Check::new(
            "decryption",
            false,
            format!(
                "plaintext sha256 mismatch: recorded at save {r}, the decrypted file hashes to {plaintext_sha256}"
            ),
        ),
        None => Check::new(
            "decryption",
            true,
            format!(
                "every age chunk authenticates; plaintext sha256 {plaintext_sha256} (none recorded to compare)"
            ),
        ),
    }
}

/// Sets the report's encryption fields.
fn mark(mut report: InspectReport, recorded: &Recorded) -> InspectReport {
    report.encrypted = true;
    report.encrypted_to = recorded
        .recipients
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    report
}

fn failed(source_name: String, size: u64, check: Check) -> InspectReport {
    super::report::assemble(source_name, size, None, vec![check], None)
}

fn name_of(location: &str) -> &str {
    location.rsplit('/').next().unwrap_or(location)
}

enum Failure {
    /// A chunk failed authentication, or the file ends early: the `decryption` check's detail.
    Damaged(String),
    /// Writing the temp copy failed.
    Spill(io::Error),
}

/// Streams the plaintext into `spill` through the trailer check and the whole-file hash,
/// telling a failed read (damage) from a failed write (the temp dir).
fn spill_plaintext(reader: &mut dyn Read, spill: &mut File) -> Result<Streamed, Failure> {
    struct Counted<'a> {
        inner: &'a mut dyn Read,
        read: u64,
        failed: bool,
    }
    impl Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf).inspect_err(|_| self.failed = true)?;
            self.read += n as u64;
            Ok(n)
        }
    }
    let mut counted = Counted {
        inner: reader,
        read: 0,
        failed: false,
    };
    source::stream(&mut counted, Some(spill)).map_err(|e| {
        if counted.failed {
            Failure::Damaged(format!(
                "the encrypted file is altered or truncated: it fails authentication after {} bytes of plaintext ({e})",
                counted.read
            ))
        } else {
            Failure::Spill(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decryption_check_compares_the_recorded_plaintext_digest() {
        let sum = "ab".repeat(32);
        assert!(decryption_check(&sum, Some(&sum.to_uppercase())).ok);
        assert!(decryption_check(&sum, None).ok);
        let mismatch = decryption_check(&sum, Some(&"cd".repeat(32)));
        assert!(!mismatch.ok && mismatch.detail.contains("mismatch"));
    }
}
