//! How a segment is stored: the segment bytes (`delta::segment`) compressed with gzip when
//! `etcd-snapshot-compress` is on, then age-encrypted when recipients are configured, in that
//! order (ciphertext does not compress). The layers are streams: the capture writes events
//! through them straight into the temp file, so with encryption on no plaintext reaches the
//! disk, and a replay reads one segment's plaintext back through them with its size capped.
//!
//! Gzip, not zip: a segment is one stream that nothing but this crate reads (RKE2 never lists
//! the `.deltas` dir), and `gzip -d` opens it. The segment's own SHA-256 is over the plaintext,
//! so it is checked the same whatever the layers. Encrypted segments name their recipients'
//! fingerprints in the age header (`crypt::named`), as they travel without a record beside
//! them; `age -d -i key` still decrypts them.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::files::SegmentForm;
use crate::crypt::{
    CryptError, EncryptingWriter, Fingerprint, Identities, Recipients, decrypting_reader,
};

/// The gzip level: the capture compresses on the server's async threads while etcd writes, so
/// speed matters more than the last few percent.
const LEVEL: u32 = 3;
/// How much of an encrypted segment is read for the fingerprints its header names.
pub const HEADER_PREFIX: u64 = 16 << 10;

/// Why a stored segment could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    // The path is the caller's to name (every caller does); the source names the file.
    #[error("failed to open its age header")]
    Keys {
        path: PathBuf,
        #[source]
        source: CryptError,
    },
    #[error(
        "delta segment {path} cannot be decrypted or decompressed after {plaintext_bytes} bytes (altered or truncated)"
    )]
    Damaged {
        path: PathBuf,
        plaintext_bytes: u64,
        #[source]
        source: io::Error,
    },
    #[error("delta segment {path} holds more than {cap} bytes once decompressed")]
    TooLarge { path: PathBuf, cap: u64 },
    #[error("delta segment {path} has {what}: expected nothing after its end")]
    Trailing { path: PathBuf, what: &'static str },
}

/// The storing layers, outermost first: gzip (optional) over age (optional) over `W`.
pub struct StoredWriter<W: Write> {
    inner: Layers<W>,
}

enum Layers<W: Write> {
    Plain(EncryptingWriter<W>),
    // Boxed: the compressor's state is large, and the plain form should not carry its size.
    Gzip(Box<GzEncoder<EncryptingWriter<W>>>),
}

impl<W: Write> StoredWriter<W> {
    /// Starts the layers (an encrypted segment's age header is written at once).
    pub fn new(
        out: W,
        compress: bool,
        recipients: Option<&Recipients>,
    ) -> Result<Self, CryptError> {
        let encrypting = EncryptingWriter::new_named(out, recipients)?;
        let inner = match compress {
            true => Layers::Gzip(Box::new(GzEncoder::new(
                encrypting,
                Compression::new(LEVEL),
            ))),
            false => Layers::Plain(encrypting),
        };
        Ok(Self { inner })
    }

    /// Ends the gzip stream and the age file (its last, marked chunk); returns `W`. Without
    /// it the stored segment is truncated and every reader refuses it.
    pub fn finish(self) -> io::Result<W> {
        let encrypting = match self.inner {
            Layers::Plain(w) => w,
            Layers::Gzip(gz) => gz.finish()?,
        };
        encrypting.finish()
    }
}

impl<W: Write> Write for StoredWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Layers::Plain(w) => w.write(buf),
            Layers::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Layers::Plain(w) => w.flush(),
            Layers::Gzip(w) => w.flush(),
        }
    }
}

/// Opens an encrypted segment's header with `identities` (nothing is decrypted): the pre-flight
/// of a replay, refusing a segment no identity opens, naming the fingerprints it needs.
pub fn check_keys(path: &Path, identities: Option<&Identities>) -> Result<(), StoredError> {
    open_decrypting(path, identities).map(drop)
}

/// The plaintext segment bytes of a stored segment: at most `cap` bytes in memory, every
/// layer checked to its end (age's last chunk, gzip's CRC and length, nothing after either).
/// Blocking.
pub fn read_plaintext(
    path: &Path,
    form: SegmentForm,
    identities: Option<&Identities>,
    cap: u64,
) -> Result<Vec<u8>, StoredError> {
    let input: Box<dyn BufRead> = match form.encrypted {
        true => Box::new(BufReader::new(open_decrypting(path, identities)?)),
        false => Box::new(BufReader::new(open_file(path)?)),
    };
    let mut out = Vec::new();
    let damaged = |out: &Vec<u8>| {
        let plaintext_bytes = out.len() as u64;
        move |source| match form == SegmentForm::PLAIN {
            // A plain file has no layer to fail: what failed is the read.
            true => StoredError::Io {
                action: "read delta segment",
                path: path.to_path_buf(),
                source,
            },
            false => StoredError::Damaged {
                path: path.to_path_buf(),
                plaintext_bytes,
                source,
            },
        }
    };
    let mut rest = if form.compressed {
        let mut gz = flate2::bufread::GzDecoder::new(input);
        let read = gz
            .by_ref()
            .take(cap.saturating_add(1))
            .read_to_end(&mut out);
        read.map_err(|e| damaged(&out)(e))?;
        gz.into_inner()
    } else {
        let mut input = input;
        let read = input
            .by_ref()
            .take(cap.saturating_add(1))
            .read_to_end(&mut out);
        read.map_err(|e| damaged(&out)(e))?;
        input
    };
    if out.len() as u64 > cap {
        return Err(StoredError::TooLarge {
            path: path.to_path_buf(),
            cap,
        });
    }
    // Reading on to the end makes age authenticate its last chunk; a byte left over is not ours.
    let mut extra = [0u8; 1];
    if rest.read(&mut extra).map_err(|e| damaged(&out)(e))? != 0 {
        return Err(StoredError::Trailing {
            path: path.to_path_buf(),
            what: "bytes after its gzip stream",
        });
    }
    Ok(out)
}

fn open_file(path: &Path) -> Result<File, StoredError> {
    let io_err = |action| {
        move |source| StoredError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = File::open(path).map_err(io_err("open delta segment"))?;
    let meta = file.metadata().map_err(io_err("inspect delta segment"))?;
    if !meta.is_file() {
        let source = io::Error::other("not a regular file");
        return Err(io_err("read delta segment")(source));
    }
    Ok(file)
}

/// The age layer opened with `identities`, the file key unwrapped; the fingerprints the header
/// names go into the refusal when none of them opens it. `delta::rekey` streams it into a new
/// copy.
pub fn open_decrypting(
    path: &Path,
    identities: Option<&Identities>,
) -> Result<crate::crypt::DecryptingReader<File>, StoredError> {
    let mut file = open_file(path)?;
    let io_err = |source| StoredError::Io {
        action: "read delta segment",
        path: path.to_path_buf(),
        source,
    };
    // `&File` reads too: the header prefix, then back to the start for the age reader.
    let prefix = header_prefix(&file).map_err(io_err)?;
    file.rewind().map_err(io_err)?;
    let needed = crate::crypt::fingerprints_in_header(&prefix);
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    decrypting_reader(file, identities, &name, &needed).map_err(|source| StoredError::Keys {
        path: path.to_path_buf(),
        source,
    })
}

/// The fingerprints an encrypted segment's age header names (`crypt::named`): who can open it,
/// read from the file alone (empty for a file that is not age or names none).
pub fn header_fingerprints(path: &Path) -> Result<Vec<Fingerprint>, StoredError> {
    let file = open_file(path)?;
    let prefix = header_prefix(&file).map_err(|source| StoredError::Io {
        action: "read delta segment",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(crate::crypt::fingerprints_in_header(&prefix))
}

/// The start of a file, long enough for any age header this crate writes.
pub fn header_prefix(file: &File) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::new();
    file.take(HEADER_PREFIX).read_to_end(&mut prefix)?;
    Ok(prefix)
}

#[cfg(test)]
#[path = "stored_tests.rs"]
mod tests;
