//! Getting a snapshot's database image into a file the walker can read with positioned reads,
//! hashing it on the way.
//!
//! A plain local file is read in place. Data that can only be read forward (the entry of a
//! `.zip`, an S3 object's body) is *spilled*: streamed through the SHA-256 trailer check into an
//! anonymous temp file (created 0600 in the temp dir, unlinked at once, so nothing is left
//! behind even on a crash), then walked. Memory stays one read buffer; disk use is the
//! database's size in the temp dir. The temp dir must not lie inside the data dir.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::report::Check;
use crate::hex::encode as hex;
use crate::snapshot::image::{ImageCheck, ImageKind};
use crate::snapshot::save::SaveError;

/// Read buffer: large sequential reads, constant memory whatever the size.
const READ_BUFFER: usize = 1 << 20;
const TRAILER_LEN: u64 = 32;

/// The outcome of reading an image once from start to end.
pub struct Streamed {
    /// What the image is, by its first bytes.
    pub kind: ImageKind,
    /// Bytes read (the file, or the zip entry).
    pub size: u64,
    /// The `trailer` check (`image` for a SQLite image: its header against its length).
    pub check: Check,
    /// The database's size (everything before the trailer) and its SHA-256, when the trailer
    /// matched (a SQLite image: its size and the SHA-256 of all of it, when well formed).
    pub verified: Option<(u64, String)>,
    /// SHA-256 of every byte read.
    pub whole_sha256: String,
}

/// Reads `reader` to the end through the trailer check, copying every byte to `spill` when
/// given. An error reading is returned as is (the caller knows what was being read).
pub fn stream(reader: &mut dyn Read, mut spill: Option<&mut File>) -> io::Result<Streamed> {
    let mut check = ImageCheck::sniffing();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut size = 0u64;
    let mut tail = [0u8; TRAILER_LEN as usize];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        check.update(chunk);
        keep_tail(&mut tail, chunk);
        size += n as u64;
        if let Some(file) = spill.as_deref_mut() {
            file.write_all(chunk)?;
        }
    }
    // One SHA-256 pass serves both: the whole file's hash is the database hash's state plus
    // the trailer (hashing twice doubled inspect's time on a warm file).
    let whole_sha256 = hex(&check.whole_sha256());
    let (kind, result) = match check.verify() {
        Ok((kind, db_size)) => (kind, Ok(db_size)),
        Err(e @ SaveError::SqliteImage { .. }) => (ImageKind::Sqlite, Err(e)),
        Err(e) => (ImageKind::Etcd, Err(e)),
    };
    let (check, verified) = match kind {
        ImageKind::Etcd => trailer_verdict(result, size, &tail),
        ImageKind::Sqlite => sqlite_verdict(result, &whole_sha256),
    };
    Ok(Streamed {
        kind,
        size,
        check,
        verified,
        whole_sha256,
    })
}

/// Keeps the last 32 bytes seen.
fn keep_tail(tail: &mut [u8; TRAILER_LEN as usize], chunk: &[u8]) {
    let len = tail.len();
    if chunk.len() >= len {
        tail.copy_from_slice(&chunk[chunk.len() - len..]);
    } else {
        tail.copy_within(chunk.len().., 0);
        tail[len - chunk.len()..].copy_from_slice(chunk);
    }
}

/// The `trailer` check from the trailer comparison. Pure.
pub fn trailer_verdict(
    result: Result<u64, SaveError>,
    size: u64,
    tail: &[u8],
) -> (Check, Option<(u64, String)>) {
    match result {
        Ok(db_size) => {
            let sha = hex(tail);
            let detail = format!("sha256 {sha} matches the {db_size}-byte database");
            (Check::new("trailer", true, detail), Some((db_size, sha)))
        }
        Err(SaveError::ChecksumMismatch { expected, actual }) => {
            let detail = format!(
                "sha256 mismatch: the trailer says {expected}, the database hashes to {actual}"
            );
            (Check::new("trailer", false, detail), None)
        }
        Err(_) => {
            let detail = format!(
                "{size} bytes is not a database followed by a 32-byte sha256 trailer \
                 (pages*512+32 bytes): truncated, or a raw database without a trailer"
            );
            (Check::new("trailer", false, detail), None)
        }
    }
}

/// The `image` check of a SQLite image from its header check. Pure.
pub fn sqlite_verdict(
    result: Result<u64, SaveError>,
    whole_sha256: &str,
) -> (Check, Option<(u64, String)>) {
    match result {
        Ok(db_size) => {
            let detail = format!("a {db_size}-byte SQLite database: its header matches its length");
            let verified = Some((db_size, whole_sha256.to_string()));
            (Check::new("image", true, detail), verified)
        }
        Err(SaveError::SqliteImage { detail }) => (Check::new("image", false, detail), None),
        Err(e) => (Check::new("image", false, e.to_string()), None),
    }
}

/// Streams a local file once through the trailer check, with positioned reads so the same
/// handle can be walked at the same time on another thread.
pub fn stream_file(file: &File) -> io::Result<Streamed> {
    struct At<'a> {
        file: &'a File,
        offset: u64,
    }
    impl Read for At<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.file.read_at(buf, self.offset)?;
            self.offset += n as u64;
            Ok(n)
        }
    }
    stream(&mut At { file, offset: 0 }, None)
}

/// Where spilled copies go: `TMPDIR` (or /tmp), refused when it lies inside `data_dir`, which
/// `inspect` never writes into.
pub fn spill_dir(data_dir: &Path) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir();
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
    let data = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    if canonical.starts_with(&data) {
        return Err(format!(
            "the temp dir {} is inside the data dir {}; set TMPDIR to a dir outside it",
            dir.display(),
            data.display()
        ));
    }
    Ok(dir)
}

/// An anonymous read-write file in `dir`: created new (0600, never through a symlink) under a
/// unique name and unlinked at once, so it vanishes with the handle.
pub fn anonymous_file(dir: &Path) -> io::Result<File> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!(
        ".etcd-snapshot-inspect-{}-{nanos}",
        std::process::id()
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// The single entry of a snapshot `.zip`, checked as a restore checks it: exactly one entry, a
/// plain file name, a regular file. Errors are the `archive` check's detail.
pub fn zip_entry<R: Read + io::Seek>(
    archive: &mut zip::ZipArchive<R>,
) -> Result<zip::read::ZipFile<'_, R>, String> {
    if archive.len() != 1 {
        return Err(format!(
            "the zip holds {} entries, a snapshot zip holds one",
            archive.len()
        ));
    }
    let entry = archive
        .by_index(0)
        .map_err(|e| format!("the zip entry cannot be read: {e}"))?;
    let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
    crate::snapshot::verify::archive::check_entry_name(&name)
        .map_err(|reason| format!("unsafe entry name {name:?}: {reason}"))?;
    if entry.is_dir() || entry.is_symlink() {
        return Err(format!("the entry {name:?} is not a regular file"));
    }
    Ok(entry)
}

/// Spills the single entry of the zip read from `zip_file` into an anonymous file in `dir`.
/// Returns the spill and the trailer verdict, or the `archive` check that failed.
pub fn spill_zip(zip_file: File, dir: &Path) -> Result<(File, Streamed), SpillFailure> {
    let mut archive = zip::ZipArchive::new(io::BufReader::new(zip_file))
        .map_err(|e| SpillFailure::Archive(format!("not a readable zip archive: {e}")))?;
    let mut entry = zip_entry(&mut archive).map_err(SpillFailure::Archive)?;
    let mut spill = anonymous_file(dir).map_err(SpillFailure::Spill)?;
    // A read error here is the zip's own check failing (bad deflate data or CRC mismatch):
    // damage, reported as the `archive` check. Write errors are the spill's.
    let streamed = stream_to(&mut entry, &mut spill)?;
    Ok((spill, streamed))
}

fn stream_to(reader: &mut dyn Read, spill: &mut File) -> Result<Streamed, SpillFailure> {
    struct Tracked<'a> {
        inner: &'a mut dyn Read,
        failed: bool,
    }
    impl Read for Tracked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.inner.read(buf).inspect_err(|_| self.failed = true)
        }
    }
    let mut tracked = Tracked {
        inner: reader,
        failed: false,
    };
    stream(&mut tracked, Some(spill)).map_err(|e| {
        if tracked.failed {
            SpillFailure::Archive(format!("the zip entry is corrupt: {e}"))
        } else {
            SpillFailure::Spill(e)
        }
    })
}

/// Why a spill did not produce an image.
#[derive(Debug)]
pub enum SpillFailure {
    /// The archive is damaged: a failed check, exit 1.
    Archive(String),
    /// Writing the temp copy failed.
    Spill(io::Error),
}
