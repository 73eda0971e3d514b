//! The blocking half of the save pipeline: checks the image as bytes pass (etcd's SHA-256
//! trailer, or a SQLite image's header against its length: `image::ImageCheck`), writes
//! them raw or as a one-entry zip, encrypts that to the age recipients when there are any, and
//! hashes both the plaintext (raw or zip) and what lands on disk.
//!
//! Runs on a blocking thread and sees one chunk at a time, so memory stays bounded. It never
//! names, publishes or deletes files: the caller owns the temp file's lifecycle.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::SnapshotName;
use super::image::{ImageCheck, ImageKind};
use super::pipe::PipeWriter;
use super::save::SaveError;
use super::tee::Tee;
use super::zipstream::{ZipEntry, ZipStreamWriter};
use crate::crypt::{EncryptingWriter, Recipients};
use crate::fsutil;
use crate::hex::encode as hex;

/// Size of etcd's integrity trailer: the SHA-256 of the database image.
const TRAILER_LEN: usize = 32;
/// etcd pads the database to whole pages; a complete stream is `pages * 512 + 32` bytes.
const PAGE_ALIGN: u64 = 512;
/// The mode of snapshot files (etcd's private file mode).
pub(crate) const SNAPSHOT_MODE: u32 = 0o600;
/// Write buffer in front of the file: batches small writes (raw chunks, zip headers).
const WRITE_BUFFER: usize = 256 * 1024;
/// Bytes written between starts of the file's writeback. Left to the kernel, a whole snapshot
/// stays dirty in memory (the default threshold is a tenth of RAM) and the final `fsync` writes
/// all of it while the save waits; started as the bytes arrive, the disk works during the
/// stream and the `fsync` only waits for the last few MiB.
const WRITE_BEHIND: u64 = 32 * 1024 * 1024;

/// What the sink wrote, once verified and fsynced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub size: u64,
    pub file_sha256: String,
    pub db_size: u64,
    /// SHA-256 of the plaintext (the raw or zip bytes that were encrypted); None when the file
    /// is not encrypted (it is then `file_sha256`).
    pub plaintext_sha256: Option<String>,
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

    /// SHA-256 of every byte seen so far, trailer included, without hashing them twice: the
    /// database hash's running state plus the held-back tail.
    pub(crate) fn whole_sha256(&self) -> [u8; 32] {
        let mut whole = self.hasher.clone();
        whole.update(&self.tail);
        whole.finalize().into()
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

/// Counts and hashes every byte that reaches the file, and copies it to the tee when there is
/// one, so the upload sees exactly the bytes on disk. A raw, unencrypted file is the image
/// byte for byte, so its digest comes from the image check's running hash (`hasher` is None)
/// instead of a second SHA-256 pass over the same bytes.
struct HashingFile {
    file: File,
    hasher: Option<Sha256>,
    written: u64,
    /// Where the writeback last started (`WRITE_BEHIND`).
    write_behind: u64,
    tee: Option<Tee>,
}

impl HashingFile {
    /// Starts writing the bytes since the last start to disk, without waiting for them.
    /// `POSIX_FADV_DONTNEED` does that for dirty pages, and drops pages already clean: the save
    /// does not read the file back, and a later reader (a drill) finds it on disk instead of
    /// crowding out etcd's cache. A refusal only leaves the work to the final `fsync`.
    fn start_writeback(&mut self) {
        let len = std::num::NonZeroU64::new(self.written - self.write_behind);
        let advice = rustix::fs::Advice::DontNeed;
        let _ = rustix::fs::fadvise(&self.file, self.write_behind, len, advice);
        self.write_behind = self.written;
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.written += n as u64;
        if self.written - self.write_behind >= WRITE_BEHIND {
            self.start_writeback();
        }
        if let Some(tee) = &mut self.tee {
            tee.write(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

type FileOut = BufWriter<HashingFile>;

/// The plaintext side of the file: hashed (when encrypted) on its way into the encryptor.
struct PlainOut {
    hasher: Option<Sha256>,
    inner: EncryptingWriter<FileOut>,
}

impl Write for PlainOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl PlainOut {
    /// Ends the encryption (its final chunk) and returns the plaintext digest, if encrypted.
    fn finish(self) -> io::Result<(FileOut, Option<String>)> {
        let digest = self.hasher.map(|h| hex(&h.finalize()));
        Ok((self.inner.finish()?, digest))
    }
}

/// Everything after deflate (plaintext hash, encryption, file hash, the tee, the disk) runs on
/// the pipe's thread, so it overlaps with receiving and compressing.
type Piped = PipeWriter<PlainOut>;

enum Output {
    Raw(Box<Piped>),
    Zip(Box<ZipStreamWriter<Piped>>),
}

/// Writes one snapshot into a freshly created temp file.
pub(crate) struct SnapshotSink {
    path: PathBuf,
    check: ImageCheck,
    out: Output,
}

impl SnapshotSink {
    /// Creates `path` exclusively (0600); a zip sink starts its single entry right away, an
    /// encrypting one its age header. With a tee, every byte written to the file is also sent
    /// to it (so S3 receives the ciphertext, never the plaintext). `kind` is the image the
    /// source produces, checked as it passes.
    pub(crate) fn create(
        path: &Path,
        kind: ImageKind,
        name: &SnapshotName,
        level: u32,
        tee: Option<Tee>,
        recipients: Option<&Recipients>,
    ) -> Result<Self, SaveError> {
        let write_err = |source| SaveError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = fsutil::create_new(path, SNAPSHOT_MODE).map_err(write_err)?;
        let image_is_file = !name.compressed && !name.encrypted;
        let buffered = BufWriter::with_capacity(
            WRITE_BUFFER,
            HashingFile {
                file,
                hasher: (!image_is_file).then(Sha256::new),
                written: 0,
                write_behind: 0,
                tee,
            },
        );
        // A `.age` name with nothing to encrypt to would publish plaintext under an encrypted
        // name; refuse it rather than mislabel the file.
        let recipients = match (name.encrypted, recipients) {
            (false, _) => None,
            (true, Some(r)) => Some(r),
            (true, None) => return Err(SaveError::Encrypt(crate::crypt::CryptError::NoRecipients)),
        };
        let inner = EncryptingWriter::new(buffered, recipients).map_err(SaveError::Encrypt)?;
        let plain = PlainOut {
            hasher: recipients.map(|_| Sha256::new()),
            inner,
        };
        let piped = PipeWriter::new(plain).map_err(write_err)?;
        let out = if name.compressed {
            // The zip writer never seeks back, so what is hashed is what stays on disk.
            let entry = ZipEntry {
                name: name.stem(),
                unix_mtime: name.unix,
                mode: SNAPSHOT_MODE,
            };
            let zip = ZipStreamWriter::new(piped, &entry, level).map_err(write_err)?;
            Output::Zip(Box::new(zip))
        } else {
            Output::Raw(Box::new(piped))
        };
        Ok(Self {
            path: path.to_path_buf(),
            check: ImageCheck::expecting(kind),
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

    /// Verifies the trailer (then calls `on_checked`), completes the zip, flushes and fsyncs.
    /// The file stays at its temp path; the tee comes back unfinished, for the caller to finish
    /// once the file is published.
    pub(crate) fn finish(
        self,
        on_checked: impl FnOnce(),
    ) -> Result<(Written, Option<Tee>), SaveError> {
        let Self { path, check, out } = self;
        let image_sha256 = check.whole_sha256();
        let (_, db_size) = check.verify()?;
        on_checked();
        let write_err = |source| SaveError::Write {
            path: path.clone(),
            source,
        };
        let piped = match out {
            Output::Raw(w) => *w,
            Output::Zip(z) => {
                let (piped, zip) = z.finish().map_err(write_err)?;
                let e = zip.encoded;
                tracing::debug!(
                    uncompressed = zip.uncompressed_size,
                    compressed = zip.compressed_size,
                    lz77_bytes = e.matched,
                    huffman_only_bytes = e.huffman_only,
                    stored_bytes = e.stored,
                    "snapshot deflated"
                );
                piped
            }
        };
        let plain = piped.finish().map_err(write_err)?;
        let (buffered, plaintext_sha256) = plain.finish().map_err(write_err)?;
        let hashing = buffered
            .into_inner()
            .map_err(|e| write_err(e.into_error()))?;
        hashing.file.sync_all().map_err(write_err)?;
        let file_sha256 = match hashing.hasher {
            Some(hasher) => hex(&hasher.finalize()),
            None => hex(&image_sha256),
        };
        let written = Written {
            size: hashing.written,
            file_sha256,
            db_size,
            plaintext_sha256,
        };
        Ok((written, hashing.tee))
    }

    fn write_error(&self, source: io::Error) -> SaveError {
        SaveError::Write {
            path: self.path.clone(),
            source,
        }
    }
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

    /// The whole-file hash derived from the trailer check equals hashing every byte, whatever
    /// the chunking (chunks shorter than the trailer take the other branch of `update`).
    #[test]
    fn whole_sha256_is_the_hash_of_every_byte_seen() {
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        for chunk in [1, 7, 32, 33, 512, 5000] {
            let mut check = TrailerCheck::default();
            bytes.chunks(chunk).for_each(|c| check.update(c));
            let expected: [u8; 32] = Sha256::digest(&bytes).into();
            assert_eq!(check.whole_sha256(), expected, "chunks of {chunk}");
        }
    }

    /// A raw file, past several writeback starts: every byte lands, its digest (taken from
    /// the image check, not a second pass) is the file's, and `on_checked` runs once, only for
    /// a matching trailer.
    #[test]
    fn a_raw_file_past_the_write_behind_step_is_whole_and_its_digest_the_files() {
        let name = SnapshotName {
            base: "on-demand".into(),
            node: "n1".into(),
            unix: 1_754_906_881,
            compressed: false,
            encrypted: false,
        };
        let dir = tempfile::tempdir().unwrap();
        let data = snapshot_bytes(2 * WRITE_BEHIND as usize + 512 * 1024);
        for corrupt in [false, true] {
            let mut data = data.clone();
            if corrupt {
                data[4096] ^= 1;
            }
            let path = dir.path().join(format!("snapshot-{corrupt}"));
            let mut sink =
                SnapshotSink::create(&path, ImageKind::Etcd, &name, 1, None, None).unwrap();
            data.chunks(32 * 1024)
                .for_each(|c| sink.write_chunk(c).unwrap());
            let mut checked = 0;
            let result = sink.finish(|| checked += 1);
            if corrupt {
                assert!(matches!(result, Err(SaveError::ChecksumMismatch { .. })));
                assert_eq!(checked, 0);
                continue;
            }
            let (written, _) = result.unwrap();
            assert_eq!(checked, 1);
            let on_disk = std::fs::read(&path).unwrap();
            assert!(on_disk == data, "the file differs from the stream");
            assert_eq!(written.size, data.len() as u64);
            assert_eq!(written.file_sha256, hex(&Sha256::digest(&on_disk)));
        }
    }
}
