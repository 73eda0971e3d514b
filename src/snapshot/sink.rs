//! The blocking half of the save pipeline: checks etcd's SHA-256 trailer as bytes pass, writes
//! them raw or as a one-entry zip into the temp file, and hashes what lands on disk.
//!
//! Runs on a blocking thread and sees one chunk at a time, so memory stays bounded. It never
//! names, publishes or deletes files: the caller owns the temp file's lifecycle.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::write::{FullFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use super::SnapshotName;
use super::save::SaveError;
use crate::fsutil;

/// Size of etcd's integrity trailer: the SHA-256 of the database image.
const TRAILER_LEN: usize = 32;
/// etcd pads the database to whole pages; a complete stream is `pages * 512 + 32` bytes.
const PAGE_ALIGN: u64 = 512;
/// The mode of snapshot files (etcd's private file mode).
pub(crate) const SNAPSHOT_MODE: u32 = 0o600;
/// Write buffer in front of the file: batches the zip writer's small writes.
const WRITE_BUFFER: usize = 256 * 1024;

/// What the sink wrote, once verified and fsynced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub size: u64,
    pub file_sha256: String,
    pub db_size: u64,
}

/// Recomputes the digest of everything except the last 32 bytes, holding back a 32-byte tail
/// because the trailer's start is only known once the stream ends.
#[derive(Default)]
pub(crate) struct TrailerCheck {
    hasher: Sha256,
    tail: Vec<u8>,
    total: u64,
}

impl TrailerCheck {
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        if chunk.len() >= TRAILER_LEN {
            self.hasher.update(&self.tail);
            let split = chunk.len() - TRAILER_LEN;
            self.hasher.update(&chunk[..split]);
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[split..]);
        } else {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > TRAILER_LEN {
                let excess = self.tail.len() - TRAILER_LEN;
                self.hasher.update(&self.tail[..excess]);
                self.tail.drain(..excess);
            }
        }
    }

    /// The database size when the stream is complete and its trailer matches.
    pub(crate) fn verify(self) -> Result<u64, SaveError> {
        let received = self.total;
        // An empty database still has pages, so a lone trailer is as truncated as nothing.
        if received < PAGE_ALIGN + TRAILER_LEN as u64 || received % PAGE_ALIGN != TRAILER_LEN as u64
        {
            return Err(SaveError::Truncated { received });
        }
        let actual = hex(&self.hasher.finalize());
        let expected = hex(&self.tail);
        if actual != expected {
            return Err(SaveError::ChecksumMismatch { expected, actual });
        }
        Ok(received - TRAILER_LEN as u64)
    }
}

/// Counts and hashes every byte that reaches the file.
struct HashingFile {
    file: File,
    hasher: Sha256,
    written: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

type FileOut = BufWriter<HashingFile>;

enum Output {
    Raw(FileOut),
    Zip(Box<ZipWriter<StreamWriter<FileOut>>>),
}

/// Writes one snapshot into a freshly created temp file.
pub(crate) struct SnapshotSink {
    path: PathBuf,
    check: TrailerCheck,
    out: Output,
}

impl SnapshotSink {
    /// Creates `path` exclusively (0600); a zip sink starts its single entry right away.
    pub(crate) fn create(path: &Path, name: &SnapshotName, level: u32) -> Result<Self, SaveError> {
        let write_err = |source| SaveError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = fsutil::create_new(path, SNAPSHOT_MODE).map_err(write_err)?;
        let buffered = BufWriter::with_capacity(
            WRITE_BUFFER,
            HashingFile {
                file,
                hasher: Sha256::new(),
                written: 0,
            },
        );
        let out = if name.compressed {
            // The streaming writer never seeks back, so what is hashed is what stays on disk.
            let mut zip = ZipWriter::new_stream(buffered);
            zip.start_file(name.stem(), entry_options(name.unix, level))
                .map_err(|e| write_err(e.into()))?;
            Output::Zip(Box::new(zip))
        } else {
            Output::Raw(buffered)
        };
        Ok(Self {
            path: path.to_path_buf(),
            check: TrailerCheck::default(),
            out,
        })
    }

    pub(crate) fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), SaveError> {
        self.check.update(chunk);
        let result = match &mut self.out {
            Output::Raw(w) => w.write_all(chunk),
            Output::Zip(z) => z.write_all(chunk),
        };
        result.map_err(|source| self.write_error(source))
    }

    /// Verifies the trailer, completes the zip, flushes and fsyncs. The file stays at its temp
    /// path.
    pub(crate) fn finish(self) -> Result<Written, SaveError> {
        let Self { path, check, out } = self;
        let db_size = check.verify()?;
        let write_err = |source| SaveError::Write {
            path: path.clone(),
            source,
        };
        let buffered = match out {
            Output::Raw(w) => w,
            Output::Zip(z) => z.finish().map_err(|e| write_err(e.into()))?.into_inner(),
        };
        let hashing = buffered
            .into_inner()
            .map_err(|e| write_err(e.into_error()))?;
        hashing.file.sync_all().map_err(write_err)?;
        Ok(Written {
            size: hashing.written,
            file_sha256: hex(&hashing.hasher.finalize()),
            db_size,
        })
    }

    fn write_error(&self, source: io::Error) -> SaveError {
        SaveError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// The zip entry RKE2 writes: Deflate, Unix creator, mode 0600, modified at the snapshot time
/// (DOS time in UTC plus the extended timestamp), zip64 so any size fits.
fn entry_options(unix: i64, level: u32) -> FullFileOptions<'static, 'static> {
    let options = FullFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(i64::from(level)))
        .system(zip::System::Unix)
        .unix_permissions(SNAPSHOT_MODE)
        .last_modified_time(dos_time(unix))
        .large_file(true);
    match u32::try_from(unix) {
        // Only fails for a malformed field, which a single mtime cannot produce; keep going
        // without it rather than fail a snapshot over a timestamp.
        Ok(mtime) => options
            .clone()
            .with_extended_timestamp(Some(mtime), None, None)
            .unwrap_or(options),
        Err(_) => options,
    }
}

fn dos_time(unix: i64) -> zip::DateTime {
    use chrono::{Datelike, Timelike};
    let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0) else {
        return zip::DateTime::default();
    };
    let (Ok(year), Ok(month), Ok(day), Ok(hour), Ok(minute), Ok(second)) = (
        u16::try_from(t.year()),
        u8::try_from(t.month()),
        u8::try_from(t.day()),
        u8::try_from(t.hour()),
        u8::try_from(t.minute()),
        u8::try_from(t.second()),
    ) else {
        return zip::DateTime::default();
    };
    zip::DateTime::from_date_and_time(year, month, day, hour, minute, second).unwrap_or_default()
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake etcd stream: `db_len` bytes of pattern plus their SHA-256.
    fn snapshot_bytes(db_len: usize) -> Vec<u8> {
        let mut data: Vec<u8> = (0..db_len).map(|i| (i * 7 % 251) as u8).collect();
        let digest = Sha256::digest(&data);
        data.extend_from_slice(&digest);
        data
    }

    #[test]
    fn trailer_check_is_independent_of_chunking() {
        let data = snapshot_bytes(4096);
        for chunk in [1, 5, 31, 32, 33, 512, 4128] {
            let mut check = TrailerCheck::default();
            data.chunks(chunk).for_each(|c| check.update(c));
            assert_eq!(check.verify().unwrap(), 4096, "chunk size {chunk}");
        }
    }

    #[test]
    fn trailer_check_rejects_bad_shapes_and_digests() {
        let mut flipped = snapshot_bytes(1024);
        flipped[100] ^= 1;
        let mut check = TrailerCheck::default();
        check.update(&flipped);
        assert!(matches!(
            check.verify(),
            Err(SaveError::ChecksumMismatch { .. })
        ));
        for data in [vec![], snapshot_bytes(0), snapshot_bytes(1000)] {
            let mut check = TrailerCheck::default();
            check.update(&data);
            assert!(matches!(check.verify(), Err(SaveError::Truncated { .. })));
        }
    }

    #[test]
    fn dos_time_is_utc_of_the_name() {
        let t = dos_time(1_754_906_881);
        assert_eq!((t.year(), t.month(), t.day()), (2025, 8, 11));
        assert_eq!((t.hour(), t.minute(), t.second()), (10, 8, 0));
    }
}
