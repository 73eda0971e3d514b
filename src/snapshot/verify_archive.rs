//! Reading a `.zip` snapshot in place: the archive checks (exactly one entry, a plain file name
//! of a regular file) and verifying that entry without extracting it. The restore's extraction
//! opens archives through the same checks.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use super::VerifyError;
use crate::snapshot::name::PART_SUFFIX;

/// Checks that a zip entry name is a plain file name, safe to join onto a directory.
///
/// Pure. Returns the reason when it is not.
pub fn check_entry_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.contains('/') || name.contains('\\') {
        return Err("the name contains a directory separator");
    }
    if name == "." || name == ".." || name.contains("..") {
        return Err("the name contains '..'");
    }
    if name.contains('\0') {
        return Err("the name contains a NUL byte");
    }
    if name.ends_with(PART_SUFFIX) {
        return Err("the name is a temporary file name");
    }
    Ok(())
}

/// Reads the archive's single entry through the snapshot checks (trailer, bbolt page, and the
/// archive's own CRC, which the zip reader checks at the end of the entry) without writing it
/// anywhere. Returns the database size.
pub fn verify_archive(zip_path: &Path) -> Result<u64, VerifyError> {
    let mut archive = open_archive(zip_path)?;
    let mut entry = archive
        .by_index(0)
        .map_err(|source| not_a_zip(zip_path, source))?;
    checked_name(zip_path, &entry)?;
    let size = entry.size();
    let scan = super::scan_database(&mut entry, zip_path, size, None)?;
    Ok(scan.db_size)
}

pub(crate) type Archive = zip::ZipArchive<BufReader<File>>;

/// Opens `zip_path` as an archive holding exactly one entry.
pub(crate) fn open_archive(zip_path: &Path) -> Result<Archive, VerifyError> {
    let file = File::open(zip_path).map_err(|source| VerifyError::OpenArchive {
        zip: zip_path.to_path_buf(),
        source,
    })?;
    archive_from(BufReader::new(file), zip_path)
}

/// Reads `reader` as an archive holding exactly one entry; `zip_path` names it in errors
/// (a decrypting reader's archive is the encrypted file's).
pub(crate) fn archive_from<R: Read + Seek>(
    reader: R,
    zip_path: &Path,
) -> Result<zip::ZipArchive<R>, VerifyError> {
    let archive = zip::ZipArchive::new(reader).map_err(|source| not_a_zip(zip_path, source))?;
    if archive.len() != 1 {
        return Err(VerifyError::EntryCount {
            zip: zip_path.to_path_buf(),
            entries: archive.len(),
        });
    }
    Ok(archive)
}

/// The entry's name, once it is known to be a plain file name of a regular file.
pub(crate) fn checked_name<R: Read>(
    zip_path: &Path,
    entry: &zip::read::ZipFile<'_, R>,
) -> Result<String, VerifyError> {
    let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
    let unsafe_entry = |reason| VerifyError::UnsafeEntry {
        zip: zip_path.to_path_buf(),
        name: name.clone(),
        reason,
    };
    check_entry_name(&name).map_err(unsafe_entry)?;
    if entry.is_dir() || entry.is_symlink() {
        return Err(unsafe_entry("the entry is not a regular file"));
    }
    Ok(name)
}

pub(crate) fn not_a_zip(zip_path: &Path, source: zip::result::ZipError) -> VerifyError {
    VerifyError::NotAZip {
        zip: zip_path.to_path_buf(),
        source,
    }
}
