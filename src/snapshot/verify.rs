//! Verifying a snapshot file: read-only checks that say whether a file is a complete etcd
//! snapshot (or a well-formed SQLite image, `image`), for a restore, an upload of a local
//! copy, or an inspection.
//!
//! Owns the streaming SHA-256 trailer check of a database file (reusing the save pipeline's
//! `TrailerCheck`, so save and verification agree byte for byte), the optional whole-file
//! checksum of a downloaded file, and reading a `.zip` snapshot's single entry in place
//! (`archive`). Reads only; never modifies, writes or removes anything. `restore` and the S3
//! backfill call down into it.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::image::{ImageCheck, ImageKind, SQLITE_MAGIC};
use super::save::SaveError;
use crate::hex::encode as hex;

#[path = "verify_archive.rs"]
pub mod archive;
#[path = "verify_error.rs"]
mod error;

pub use error::VerifyError;

/// etcd's trailer: a SHA-256 of the database image.
pub(crate) const TRAILER_LEN: u64 = 32;
/// Databases are whole pages; a snapshot file is `n * 512 + 32` bytes.
const PAGE_ALIGN: u64 = 512;
/// Read buffer: large sequential reads, constant memory whatever the file size.
const READ_BUFFER: usize = 1 << 20;
/// bbolt's meta page magic, a little-endian u32 right after the 16-byte page header.
pub(crate) const BOLT_MAGIC: u32 = 0xED0C_DAED;
pub(crate) const BOLT_MAGIC_OFFSET: usize = 16;

/// A snapshot file whose trailer matched its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSnapshot {
    pub path: PathBuf,
    /// Bytes on disk (database plus trailer).
    pub file_size: u64,
    /// Bytes of the database image: what the restored member's `member/snap/db` will hold.
    pub db_size: u64,
    /// The database's SHA-256 (the trailer), lowercase hex.
    pub sha256: String,
    /// SHA-256 of the whole file, when a recorded one was checked.
    pub file_sha256: Option<String>,
}

/// What a file's size says about its shape, before any byte is read. Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `n * 512 + 32` with at least one page: a database plus trailer.
    WithTrailer,
    /// Whole pages: a raw database copied out of a data dir, or damage that kept alignment.
    NoTrailer,
    /// Anything else, including files too small to be a database.
    Truncated,
}

/// Classifies a snapshot file by its size alone.
pub fn shape_of(size: u64) -> Shape {
    if size < PAGE_ALIGN + TRAILER_LEN {
        Shape::Truncated
    } else if size % PAGE_ALIGN == TRAILER_LEN {
        Shape::WithTrailer
    } else if size.is_multiple_of(PAGE_ALIGN) {
        Shape::NoTrailer
    } else {
        Shape::Truncated
    }
}

/// The checks that need no full read: the size has a database-plus-trailer shape and the first
/// page is a bbolt meta page. A restore runs them first, then [`verify_snapshot_file`] (or a
/// [`StreamCheck`] while it writes its own copy) beside the restore tool, which skips its hash.
pub fn quick_check(path: &Path) -> Result<(), VerifyError> {
    let (mut file, _) = open_shaped(path)?;
    let read_err = |source| VerifyError::ReadSnapshot {
        path: path.to_path_buf(),
        source,
    };
    let mut head = [0u8; BOLT_MAGIC_OFFSET + 4];
    file.read_exact(&mut head).map_err(read_err)?;
    if !has_bolt_magic(&head) {
        return Err(VerifyError::NotADatabase {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Verifies that `path` is a complete etcd snapshot: right shape, trailer equal to the SHA-256
/// of everything before it, and a bbolt database inside. Streams the file once.
pub fn verify_snapshot_file(path: &Path) -> Result<VerifiedSnapshot, VerifyError> {
    verify(path, None)
}

/// Like [`verify_snapshot_file`], and also checks the whole file against the SHA-256 recorded
/// when it was saved (a downloaded copy must be the file that was uploaded). Same single pass.
pub fn verify_snapshot_file_expecting(
    path: &Path,
    expected_file_sha256: &str,
) -> Result<VerifiedSnapshot, VerifyError> {
    verify(path, Some(expected_file_sha256))
}

/// Opens a snapshot whose size has the database-plus-trailer shape; returns it and its size.
fn open_shaped(path: &Path) -> Result<(File, u64), VerifyError> {
    let read_err = |source| VerifyError::ReadSnapshot {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    match shape_of(size) {
        Shape::WithTrailer => Ok((file, size)),
        Shape::NoTrailer => Err(no_trailer(path, size)),
        Shape::Truncated => Err(truncated(path, size)),
    }
}

fn verify(path: &Path, expected_file: Option<&str>) -> Result<VerifiedSnapshot, VerifyError> {
    let (mut file, size) = open_shaped(path)?;
    let scan = scan_database(&mut file, path, size, expected_file)?;
    let sha256 = trailer_hex(path, scan.db_size)?;
    Ok(VerifiedSnapshot {
        path: path.to_path_buf(),
        file_size: scan.db_size + TRAILER_LEN,
        db_size: scan.db_size,
        sha256,
        file_sha256: scan.file_sha256,
    })
}

/// What one pass over a database image found.
pub(crate) struct Scan {
    pub db_size: u64,
    /// SHA-256 of everything read, when an expected one was given (and matched).
    pub file_sha256: Option<String>,
}

/// Reads `reader` (a snapshot file, or the entry of its `.zip`) to the end once: the trailer
/// must equal the SHA-256 of everything before it, the first page must be a bbolt meta page,
/// and, when `expected_file` is given, everything read must hash to it. `path` and `size` (the
/// size the caller expects to read) name the snapshot in errors.
pub(crate) fn scan_database(
    reader: &mut impl Read,
    path: &Path,
    size: u64,
    expected_file: Option<&str>,
) -> Result<Scan, VerifyError> {
    let read_err = |source| VerifyError::ReadSnapshot {
        path: path.to_path_buf(),
        source,
    };
    let mut check = StreamCheck::new();
    let mut whole = expected_file.map(|_| Sha256::new());
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        check.update(&buf[..n]);
        if let Some(h) = whole.as_mut() {
            h.update(&buf[..n]);
        }
    }
    let db_size = check.finish_expecting(path, size)?;
    let file_sha256 = match (whole, expected_file) {
        (Some(h), Some(expected)) => {
            let actual = hex(&h.finalize());
            if !actual.eq_ignore_ascii_case(expected.trim()) {
                return Err(VerifyError::FileChecksumMismatch {
                    path: path.to_path_buf(),
                    expected: expected.trim().to_ascii_lowercase(),
                    actual,
                });
            }
            Some(actual)
        }
        _ => None,
    };
    Ok(Scan {
        db_size,
        file_sha256,
    })
}

/// The checks of a full read, fed one chunk at a time by a step that streams the snapshot
/// anyway (decrypting it, extracting it from its `.zip`): the trailer must equal the SHA-256 of
/// everything before it and the first page must be a bbolt meta page (or the data a well-formed
/// SQLite image). The restore tool can then skip its own hash pass over the written copy.
pub struct StreamCheck {
    check: ImageCheck,
    head: Vec<u8>,
    seen: u64,
}

impl Default for StreamCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamCheck {
    pub fn new() -> Self {
        Self {
            check: ImageCheck::sniffing(),
            head: Vec::with_capacity(BOLT_MAGIC_OFFSET + 4),
            seen: 0,
        }
    }

    /// The next bytes of the snapshot, in order.
    pub fn update(&mut self, chunk: &[u8]) {
        if self.head.len() < self.head.capacity() {
            let take = (self.head.capacity() - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.seen += chunk.len() as u64;
        self.check.update(chunk);
    }

    /// The verdict on everything fed, naming `path` in errors; returns the database size.
    /// A database without a trailer is refused as a file of that shape is (`NoTrailer`).
    pub fn finish(self, path: &Path) -> Result<u64, VerifyError> {
        let seen = self.seen;
        match self.finish_expecting(path, seen) {
            Err(VerifyError::Truncated { .. }) if shape_of(seen) == Shape::NoTrailer => {
                Err(no_trailer(path, seen))
            }
            other => other,
        }
    }

    /// As [`Self::finish`]; `size` is the size a truncation error reports.
    fn finish_expecting(self, path: &Path, size: u64) -> Result<u64, VerifyError> {
        let (kind, db_size) = self.check.verify().map_err(|e| match e {
            SaveError::ChecksumMismatch { expected, actual } => VerifyError::ChecksumMismatch {
                path: path.to_path_buf(),
                expected,
                actual,
            },
            SaveError::SqliteImage { detail } => VerifyError::BadSqlite {
                path: path.to_path_buf(),
                detail,
            },
            // The data changed size while it was read: report what was actually read.
            _ => truncated(path, size),
        })?;
        if kind == ImageKind::Etcd && !has_bolt_magic(&self.head) {
            return Err(VerifyError::NotADatabase {
                path: path.to_path_buf(),
            });
        }
        Ok(db_size)
    }
}

/// Verifies a snapshot as it sits in the snapshot dir, without writing anything: a plain file
/// as [`verify_snapshot_file`] does; a `.zip` by reading its single entry through the same
/// checks (the archive's CRC included) without extracting it. Returns the database size.
/// Used before a snapshot is copied anywhere, so a file damaged on disk is never replicated.
///
/// An encrypted snapshot (`.age`) can only be checked as far as the server's public keys allow:
/// its age header must parse (the payload is authenticated chunk by chunk whenever it is
/// decrypted). Its database size is inside the ciphertext, so 0 is returned for it.
pub fn verify_stored_snapshot(path: &Path) -> Result<u64, VerifyError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if super::name::is_encrypted_name(&name) {
        return check_age_header(path).map(|()| 0);
    }
    if super::name::is_compressed_name(&name) {
        archive::verify_archive(path)
    } else if starts_like_sqlite(path)? {
        // A SQLite image has no trailer: its header and length are what can be checked.
        let (mut file, size) = open_plain(path)?;
        scan_database(&mut file, path, size, None).map(|scan| scan.db_size)
    } else {
        verify_snapshot_file(path).map(|verified| verified.db_size)
    }
}

/// True when the file starts with the SQLite magic (a SQLite datastore's snapshot).
pub fn starts_like_sqlite(path: &Path) -> Result<bool, VerifyError> {
    let (file, _) = open_plain(path)?;
    let mut head = Vec::with_capacity(SQLITE_MAGIC.len());
    file.take(SQLITE_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|source| VerifyError::ReadSnapshot {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(head == SQLITE_MAGIC)
}

fn open_plain(path: &Path) -> Result<(File, u64), VerifyError> {
    let read_err = |source| VerifyError::ReadSnapshot {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    Ok((file, size))
}

/// The file starts with a well-formed age v1 header (checked without any key).
fn check_age_header(path: &Path) -> Result<(), VerifyError> {
    let read_err = |source| VerifyError::ReadSnapshot {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    match age::Decryptor::new_buffered(io::BufReader::new(file)) {
        Ok(_) => Ok(()),
        Err(e) => Err(read_err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a well-formed age file: {e}"),
        ))),
    }
}

/// Reads the 32-byte trailer at `db_size` (already verified equal to the content's digest).
fn trailer_hex(path: &Path, db_size: u64) -> Result<String, VerifyError> {
    use std::io::{Seek, SeekFrom};
    let read_err = |source| VerifyError::ReadSnapshot {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    file.seek(SeekFrom::Start(db_size)).map_err(read_err)?;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.read_exact(&mut trailer).map_err(read_err)?;
    Ok(hex(&trailer))
}

/// True when the first page starts like a bbolt meta page.
fn has_bolt_magic(head: &[u8]) -> bool {
    head.get(BOLT_MAGIC_OFFSET..BOLT_MAGIC_OFFSET + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .is_some_and(|b| u32::from_le_bytes(b) == BOLT_MAGIC)
}

fn truncated(path: &Path, size: u64) -> VerifyError {
    VerifyError::Truncated {
        path: path.to_path_buf(),
        size,
    }
}

fn no_trailer(path: &Path, size: u64) -> VerifyError {
    VerifyError::NoTrailer {
        path: path.to_path_buf(),
        size,
    }
}
