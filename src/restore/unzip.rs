//! Extracting the one database file from a snapshot's `.zip` form.
//!
//! Opens the archive through the snapshot layer's checks (`snapshot::verify::archive`: exactly
//! one entry, a plain file name) and owns the crash-safe write of the extracted file (intact
//! data, checked by the archive's CRC) into the directory it is given. It writes nowhere
//! else, leaves nothing behind on failure, and never decides where that directory is (`plan`).
//! A restore extracts with [`extract_snapshot_checked`], which also checks the database's
//! trailer in the same pass, so the restore tool can skip its own hash pass.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::RestoreError;
use super::decrypt::CheckedFile;
use super::read_ahead::ReadAhead;
use crate::fsutil;
use crate::snapshot::name::PART_SUFFIX;
use crate::snapshot::pipe::PipeWriter;
pub use crate::snapshot::verify::archive::check_entry_name;
use crate::snapshot::verify::archive::{archive_from, checked_name, not_a_zip, open_archive};
use crate::snapshot::verify::{StreamCheck, VerifyError};

/// Mode of the extracted database: etcd's private file mode, whatever the archive says.
const EXTRACTED_MODE: u32 = 0o600;
/// Copy buffer: large enough to keep deflate busy, small enough that memory stays flat.
const COPY_BUFFER: usize = 256 * 1024;

/// Extracts the single entry of `zip_path` to `<dest_dir>/<entry name>` and returns that path.
///
/// The data streams through a fixed buffer into `<entry>.part` (created exclusively, 0600), is
/// fsynced and renamed without replacing an existing file. The zip reader checks the CRC at the
/// end of the entry, so a corrupt archive fails before the rename and its `.part` is removed.
pub fn extract_snapshot(zip_path: &Path, dest_dir: &Path) -> Result<PathBuf, RestoreError> {
    extract(zip_path, dest_dir, None)
}

/// Like [`extract_snapshot`], and checks the extracted database as it is written (its trailer
/// against the SHA-256 of what precedes it, its first page), in the same pass: the restore tool
/// may then skip its own hash pass. A damaged database in an intact archive is refused here,
/// before the rename, and its `.part` removed.
pub fn extract_snapshot_checked(zip_path: &Path, dest_dir: &Path) -> Result<PathBuf, RestoreError> {
    extract(zip_path, dest_dir, Some(StreamCheck::new()))
}

/// Reads the archive through a read-ahead (`read_ahead`): the file is read on a thread of its
/// own while this one inflates, so a cold file's reads overlap the inflating.
fn extract(
    zip_path: &Path,
    dest_dir: &Path,
    check: Option<StreamCheck>,
) -> Result<PathBuf, RestoreError> {
    let opened = File::open(zip_path).and_then(ReadAhead::new);
    let reader = opened.map_err(|source| RestoreError::OpenArchive {
        zip: zip_path.to_path_buf(),
        source,
    })?;
    let mut archive = archive_from(reader, zip_path)?;
    extract_entry(&mut archive, zip_path, dest_dir, check)
}

/// An archive read from any seekable source, such as the decrypting read-ahead of a
/// `.zip.age` snapshot (`unzip_encrypted`); `zip_path` names it in errors.
pub struct OpenedArchive<R> {
    archive: zip::ZipArchive<R>,
    zip_path: PathBuf,
}

impl<R: Read + Seek> OpenedArchive<R> {
    /// The archive in `reader`, through the same checks as a `.zip` file's.
    pub fn from_reader(reader: R, zip_path: &Path) -> Result<Self, RestoreError> {
        Ok(Self {
            archive: archive_from(reader, zip_path)?,
            zip_path: zip_path.to_path_buf(),
        })
    }

    /// As [`archive_entry_size`].
    pub fn entry_size(&mut self) -> Result<u64, RestoreError> {
        let entry = self
            .archive
            .by_index(0)
            .map_err(|source| not_a_zip(&self.zip_path, source))?;
        checked_name(&self.zip_path, &entry)?;
        Ok(entry.size())
    }

    /// As [`extract_snapshot_checked`].
    pub fn extract_checked(&mut self, dest_dir: &Path) -> Result<PathBuf, RestoreError> {
        let check = Some(StreamCheck::new());
        extract_entry(&mut self.archive, &self.zip_path, dest_dir, check)
    }
}

fn extract_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    zip_path: &Path,
    dest_dir: &Path,
    check: Option<StreamCheck>,
) -> Result<PathBuf, RestoreError> {
    let mut entry = archive
        .by_index(0)
        .map_err(|source| not_a_zip(zip_path, source))?;
    let name = checked_name(zip_path, &entry)?;
    let dest = dest_dir.join(&name);
    if std::fs::symlink_metadata(&dest).is_ok() {
        return Err(RestoreError::ExtractedExists {
            zip: zip_path.to_path_buf(),
            dest,
        });
    }
    let part = dest_dir.join(format!("{name}{PART_SUFFIX}"));
    // Created exclusively: from here on the `.part` is ours to remove on any failure.
    let file = fsutil::create_new(&part, EXTRACTED_MODE).map_err(|source| {
        RestoreError::WriteExtracted {
            path: part.clone(),
            source,
        }
    })?;
    // A failed check names the archive: the extracted copy is ours and is about to go.
    let check = check.map(|c| (c, zip_path));
    let result = copy_into(&mut entry, file, check)
        .map_err(|failure| match failure {
            CopyFailure::Read(source) => RestoreError::CorruptArchive {
                zip: zip_path.to_path_buf(),
                entry: name.clone(),
                source,
            },
            CopyFailure::Write(source) => RestoreError::WriteExtracted {
                path: part.clone(),
                source,
            },
            CopyFailure::Check(error) => error.into(),
        })
        .and_then(|()| publish(&part, &dest, zip_path));
    if let Err(err) = result {
        let _ = std::fs::remove_file(&part);
        return Err(err);
    }
    Ok(dest)
}

/// The declared uncompressed size of the archive's single entry, after the same checks as
/// [`extract_snapshot`]: lets the free-space check run before anything is extracted. The
/// declared size is only a hint; extraction checks the data itself.
pub fn archive_entry_size(zip_path: &Path) -> Result<u64, RestoreError> {
    let mut archive = open_archive(zip_path)?;
    let entry = archive
        .by_index(0)
        .map_err(|source| not_a_zip(zip_path, source))?;
    checked_name(zip_path, &entry)?;
    Ok(entry.size())
}

/// Which side of the copy failed: reading the archive (corrupt data), writing the file, or the
/// check of the database it holds.
enum CopyFailure {
    Read(io::Error),
    Write(io::Error),
    Check(VerifyError),
}

/// Streams `reader` into `file` and fsyncs it; with `check`, the data goes through it too and
/// must pass (errors name the given path). Inflating stays on this thread; the check and the
/// writes run on a thread of their own (`snapshot::pipe`), at most a few chunks in flight.
fn copy_into(
    reader: &mut impl Read,
    file: File,
    check: Option<(StreamCheck, &Path)>,
) -> Result<(), CopyFailure> {
    let (check, check_path) = check.map_or((None, None), |(c, p)| (Some(c), Some(p)));
    let sink = CheckedFile {
        file: BufWriter::with_capacity(COPY_BUFFER, file),
        check,
    };
    let mut pipe = PipeWriter::new(sink).map_err(CopyFailure::Write)?;
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyFailure::Read(e)),
        };
        pipe.write_all(&buf[..n]).map_err(CopyFailure::Write)?;
    }
    let CheckedFile { file, check } = pipe.finish().map_err(CopyFailure::Write)?;
    if let (Some(c), Some(path)) = (check, check_path) {
        c.finish(path).map_err(CopyFailure::Check)?;
    }
    let file = file
        .into_inner()
        .map_err(|e| CopyFailure::Write(e.into_error()))?;
    file.sync_all().map_err(CopyFailure::Write)
}

/// Renames the finished `.part` into place, never over an existing file.
fn publish(part: &Path, dest: &Path, zip_path: &Path) -> Result<(), RestoreError> {
    fsutil::publish_no_clobber(part, dest).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            RestoreError::ExtractedExists {
                zip: zip_path.to_path_buf(),
                dest: dest.to_path_buf(),
            }
        } else {
            RestoreError::WriteExtracted {
                path: dest.to_path_buf(),
                source,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    /// A zip with the given (name, data) entries, Deflate like RKE2's.
    fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn entry_names_must_be_plain_file_names() {
        for ok in ["etcd-snapshot-node-1700000000", "a", "snap.db"] {
            assert_eq!(check_entry_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "../x", "a/b", "/abs", "a\\b", "..", "x..y", "a\0b", "s.part",
        ] {
            assert!(check_entry_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn extracts_the_single_entry_with_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (zip_path, dest) = (dir.path().join("s.zip"), dir.path().join("out"));
        std::fs::create_dir(&dest).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        zip_with(&zip_path, &[("snap-node-1", &data)]);
        assert_eq!(archive_entry_size(&zip_path).unwrap(), data.len() as u64);
        let out = extract_snapshot(&zip_path, &dest).unwrap();
        assert_eq!(out, dest.join("snap-node-1"));
        assert_eq!(std::fs::read(&out).unwrap(), data);
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A second extraction never replaces the first.
        let err = extract_snapshot(&zip_path, &dest).unwrap_err();
        assert!(matches!(err, RestoreError::ExtractedExists { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    }

    #[test]
    fn a_checked_extraction_refuses_a_damaged_database_in_an_intact_archive() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let mut good = vec![5u8; 1024];
        good[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
        let digest = sha2::Sha256::digest(&good);
        good.extend_from_slice(&digest);
        let zip_path = dir.path().join("s.zip");
        zip_with(&zip_path, &[("snap-n1-1", &good)]);
        let out = extract_snapshot_checked(&zip_path, &dest).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), good);
        std::fs::remove_file(&out).unwrap();
        let mut flipped = good.clone();
        flipped[700] ^= 1;
        zip_with(&zip_path, &[("snap-n1-1", &flipped)]);
        let err = extract_snapshot_checked(&zip_path, &dest).unwrap_err();
        assert!(
            matches!(err, RestoreError::ChecksumMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("s.zip"), "{err}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        zip_with(&zip_path, &[("snap-n1-1", &good[..1024])]);
        let err = extract_snapshot_checked(&zip_path, &dest).unwrap_err();
        assert!(matches!(err, RestoreError::NoTrailer { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
    }

    #[test]
    fn refuses_bad_archives_without_leaving_files() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let two = dir.path().join("two.zip");
        zip_with(&two, &[("a", b"1"), ("b", b"2")]);
        let err = extract_snapshot(&two, &dest).unwrap_err();
        assert!(
            matches!(err, RestoreError::EntryCount { entries: 2, .. }),
            "{err}"
        );
        let empty = dir.path().join("empty.zip");
        zip_with(&empty, &[]);
        let err = extract_snapshot(&empty, &dest).unwrap_err();
        assert!(
            matches!(err, RestoreError::EntryCount { entries: 0, .. }),
            "{err}"
        );
        let plain = dir.path().join("plain.zip");
        std::fs::write(&plain, b"not a zip at all").unwrap();
        let err = extract_snapshot(&plain, &dest).unwrap_err();
        assert!(matches!(err, RestoreError::NotAZip { .. }), "{err}");
        assert!(err.to_string().contains("plain.zip"));
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
    }
}
