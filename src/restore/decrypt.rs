//! The decrypting step of a restore: an encrypted snapshot (`…[.zip].age`) is opened with this
//! host's identities and its plaintext written to a private temp file beside it, which the
//! rest of the restore reads like any other snapshot and which is removed when the restore is
//! done, whatever its outcome.
//!
//! It runs before anything live is touched: a snapshot no identity opens is refused at its
//! header (the error names the fingerprints it needs and those the host holds), and a tampered
//! or truncated one fails while being copied, because age authenticates every 64 KiB chunk and
//! marks the last one. Either way the data dir stays exactly as it was.
//!
//! A restore decrypts a database file with [`decrypt_snapshot_checked`]: the plaintext's
//! SHA-256 is compared with its trailer in the same pass, so the restore tool is told to skip
//! its own hash pass (a damaged plaintext inside an intact age stream is refused here).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::crypt::{CryptError, DecryptingReader, Fingerprint, Identities, decrypting_reader};
use crate::fsutil;
use crate::snapshot::name::without_age;
use crate::snapshot::pipe::PipeWriter;
use crate::snapshot::verify::{StreamCheck, VerifyError};

/// Why decrypting failed.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error("cannot open encrypted snapshot {file}; nothing was changed")]
    Open {
        file: String,
        #[source]
        source: CryptError,
    },
    #[error(
        "encrypted snapshot {file} is damaged (altered or truncated): it failed authentication after {plaintext_bytes} bytes of plaintext; nothing was changed"
    )]
    Damaged {
        file: String,
        plaintext_bytes: u64,
        #[source]
        source: io::Error,
    },
    #[error("decrypted snapshot {file} is not a whole etcd snapshot; nothing was changed")]
    Snapshot {
        file: String,
        #[source]
        source: Box<VerifyError>,
    },
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The plaintext copy of an encrypted snapshot, removed on drop.
pub struct Decrypted {
    path: PathBuf,
}

impl Decrypted {
    /// A plaintext file this restore writes at `path`, to be removed when dropped.
    pub(crate) fn removed_on_drop(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Decrypted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Decrypts `input` into `dest_dir/<name without .age>.decrypted` (0600, created exclusively).
/// `needed` are the fingerprints the snapshot's metadata records, for the error message.
pub fn decrypt_to_file(
    input: &Path,
    dest_dir: &Path,
    identities: Option<&Identities>,
    needed: &[Fingerprint],
) -> Result<Decrypted, DecryptError> {
    decrypt(input, dest_dir, identities, needed, None)
}

/// Like [`decrypt_to_file`] for a plaintext that is a database file (not a `.zip`): its
/// trailer is checked against the SHA-256 of the plaintext as it is written, in the same pass,
/// so the restore tool may skip its own hash pass over the copy.
pub fn decrypt_snapshot_checked(
    input: &Path,
    dest_dir: &Path,
    identities: Option<&Identities>,
    needed: &[Fingerprint],
) -> Result<Decrypted, DecryptError> {
    decrypt(
        input,
        dest_dir,
        identities,
        needed,
        Some(StreamCheck::new()),
    )
}

/// Opens `input` with `identities`: a snapshot none of them opens is refused here, at its
/// header, naming `needed` (the fingerprints its record names).
pub fn open_decrypting(
    input: &Path,
    identities: Option<&Identities>,
    needed: &[Fingerprint],
) -> Result<DecryptingReader<std::fs::File>, DecryptError> {
    let file_name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let source = std::fs::File::open(input).map_err(|source| DecryptError::Io {
        action: "open",
        path: input.to_path_buf(),
        source,
    })?;
    decrypting_reader(source, identities, &file_name, needed).map_err(|source| DecryptError::Open {
        file: file_name,
        source,
    })
}

fn decrypt(
    input: &Path,
    dest_dir: &Path,
    identities: Option<&Identities>,
    needed: &[Fingerprint],
    check: Option<StreamCheck>,
) -> Result<Decrypted, DecryptError> {
    let file_name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let io_err = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| DecryptError::Io {
            action,
            path,
            source,
        }
    };
    let mut reader = open_decrypting(input, identities, needed)?;
    let dest = dest_dir.join(format!("{}.decrypted", without_age(&file_name)));
    // A leftover from an interrupted restore is only ever our own plaintext copy.
    let _ = std::fs::remove_file(&dest);
    let out = fsutil::create_new(&dest, 0o600).map_err(io_err("create", &dest))?;
    let decrypted = Decrypted { path: dest };
    // Decryption stays on this thread; the trailer check (for a checked copy) and the writes
    // run on a thread of their own (`snapshot::pipe`), so the two cores share the work.
    let sink = CheckedFile {
        file: BufWriter::with_capacity(256 * 1024, out),
        check,
    };
    let pipe = PipeWriter::new(sink).map_err(io_err("write", decrypted.path()))?;
    let mut counting = CountingWriter {
        inner: pipe,
        written: 0,
    };
    if let Err(source) = io::copy(&mut reader, &mut counting) {
        return Err(match source.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => DecryptError::Damaged {
                file: file_name,
                plaintext_bytes: counting.written,
                source,
            },
            _ => io_err("write", decrypted.path())(source),
        });
    }
    let CheckedFile { mut file, check } = counting
        .inner
        .finish()
        .map_err(io_err("write", decrypted.path()))?;
    file.flush().map_err(io_err("write", decrypted.path()))?;
    if let Some(check) = check {
        check
            .finish(decrypted.path())
            .map_err(|source| DecryptError::Snapshot {
                file: file_name.clone(),
                source: Box::new(source),
            })?;
    }
    Ok(decrypted)
}

/// Counts the plaintext decrypted, for the message when authentication fails.
struct CountingWriter<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A copy being written and, when it is checked, the trailer check fed every byte written (the
/// decrypted or extracted snapshot a restore writes; shared with `unzip`).
pub(super) struct CheckedFile {
    pub(super) file: BufWriter<std::fs::File>,
    pub(super) check: Option<StreamCheck>,
}

impl Write for CheckedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(check) = self.check.as_mut() {
            check.update(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::EncryptingWriter;

    use crate::crypt::keys::generated_identities as identities;

    fn write_encrypted(path: &Path, data: &[u8], ids: &Identities) {
        let file = std::fs::File::create(path).unwrap();
        let mut w = EncryptingWriter::new(file, Some(&ids.recipients())).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn decrypts_beside_and_removes_the_copy_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let ids = identities();
        let input = dir.path().join("on-demand-n1-5.zip.age");
        let data = vec![3u8; 100_000];
        write_encrypted(&input, &data, &ids);
        let plain = decrypt_to_file(&input, dir.path(), Some(&ids), &[]).unwrap();
        assert_eq!(
            plain.path(),
            dir.path().join("on-demand-n1-5.zip.decrypted")
        );
        assert_eq!(std::fs::read(plain.path()).unwrap(), data);
        let path = plain.path().to_path_buf();
        drop(plain);
        assert!(!path.exists());
    }

    /// A database-shaped image (bbolt magic, two pages) with its SHA-256 trailer.
    fn snapshot_bytes() -> Vec<u8> {
        use sha2::Digest;
        let mut db = vec![5u8; 1024];
        db[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
        let digest = sha2::Sha256::digest(&db);
        db.extend_from_slice(&digest);
        db
    }

    #[test]
    fn a_checked_decryption_refuses_a_damaged_plaintext_in_an_intact_stream() {
        let dir = tempfile::tempdir().unwrap();
        let ids = identities();
        let input = dir.path().join("s-n1-5.age");
        let good = snapshot_bytes();
        write_encrypted(&input, &good, &ids);
        let plain = decrypt_snapshot_checked(&input, dir.path(), Some(&ids), &[]).unwrap();
        assert_eq!(std::fs::read(plain.path()).unwrap(), good);
        drop(plain);
        let mut flipped = good.clone();
        flipped[600] ^= 1;
        let no_trailer = good[..1024].to_vec();
        for (bytes, want) in [(flipped, "is corrupt"), (no_trailer, "no sha256 trailer")] {
            write_encrypted(&input, &bytes, &ids);
            let err = decrypt_snapshot_checked(&input, dir.path(), Some(&ids), &[])
                .err()
                .unwrap();
            assert!(matches!(err, DecryptError::Snapshot { .. }), "{err}");
            let text = crate::errors::error_chain(&err);
            assert!(text.contains(want), "{text}");
            // The unchecked form (a drill's, whose inspect checks) passes it through.
            assert!(decrypt_to_file(&input, dir.path(), Some(&ids), &[]).is_ok());
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the input remains");
    }

    #[test]
    fn wrong_key_and_damage_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let ids = identities();
        let input = dir.path().join("s-n1-5.age");
        write_encrypted(&input, &vec![9u8; 200_000], &ids);
        let err = decrypt_to_file(&input, dir.path(), Some(&identities()), &[])
            .err()
            .unwrap();
        assert!(matches!(err, DecryptError::Open { .. }), "{err}");
        let mut bytes = std::fs::read(&input).unwrap();
        bytes.truncate(bytes.len() - 100);
        std::fs::write(&input, &bytes).unwrap();
        let err = decrypt_to_file(&input, dir.path(), Some(&ids), &[])
            .err()
            .unwrap();
        assert!(matches!(err, DecryptError::Damaged { .. }), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the input remains");
    }
}
