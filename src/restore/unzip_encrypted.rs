//! Extracting the database from a `.zip.age` snapshot without a decrypted copy of the archive
//! on disk: the age stream goes through a read-ahead (`read_ahead`, decrypting on one core)
//! into the zip reader (inflating on the other), and the entry is extracted and checked as a
//! plain `.zip`'s is (`unzip`). Before, the archive was decrypted into a file first and read
//! back, one pass after the other.
//!
//! A snapshot no identity opens is refused at its header. Damage the decryptor finds (a
//! changed or missing chunk) is reported as the encrypted file's, with its offset, whatever
//! the zip reader made of it; nothing is left in `dest_dir` either way.

use std::io;
use std::path::{Path, PathBuf};

use super::ResetError;
use super::decrypt::{DecryptError, open_decrypting};
use super::read_ahead::ReadAhead;
use super::unzip::OpenedArchive;
use super::verify::check_free_space;
use crate::crypt::{Fingerprint, Identities};

/// Extracts the database of the encrypted archive `input` into `dest_dir` (after checking
/// there is room for it), its trailer checked as it is written; returns its path.
pub fn extract_encrypted_checked(
    input: &Path,
    identities: Option<&Identities>,
    needed: &[Fingerprint],
    dest_dir: &Path,
) -> Result<PathBuf, ResetError> {
    let reader = open_decrypting(input, identities, needed)?;
    let ahead = ReadAhead::new(reader).map_err(|source| DecryptError::Io {
        action: "read",
        path: input.to_path_buf(),
        source,
    })?;
    let failure = ahead.failure();
    let extracted = OpenedArchive::from_reader(ahead, input).and_then(|mut archive| {
        check_free_space(dest_dir, archive.entry_size()?)?;
        archive.extract_checked(dest_dir)
    });
    extracted.map_err(|error| match failure.at() {
        Some(at) => DecryptError::Damaged {
            file: input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            plaintext_bytes: at,
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                crate::errors::error_chain(&error),
            ),
        }
        .into(),
        None => error.into(),
    })
}

#[cfg(test)]
#[path = "unzip_encrypted_tests.rs"]
mod tests;
