//! Decrypting an encrypted database snapshot on every core: age encrypts in independent
//! 64 KiB chunks, so each worker seeks its own decryptor to its share of the plaintext and
//! writes it in place (positioned writes into a file sized up front), while this thread
//! follows behind in order, feeding every plaintext byte to the trailer check
//! (`snapshot::verify::StreamCheck`). SHA-256 cannot be split, so it runs beside the workers
//! instead of after them.
//!
//! Memory is one block per worker plus one for the check, whatever the size. A chunk that
//! fails authentication stops every worker and names the plaintext offset it failed at; the
//! partial file is the caller's to remove.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Condvar, Mutex};

use crate::crypt::{DecryptingReader, Fingerprint, Identities, decrypting_reader};
use crate::fsutil;
use crate::restore::decrypt::DecryptError;
use crate::snapshot::verify::StreamCheck;

/// Plaintext handed over at a time: a multiple of age's 64 KiB chunk.
const BLOCK: u64 = 1 << 20;
/// Most workers used: beyond this the disk, not the cipher, is the limit.
const MAX_WORKERS: usize = 4;

/// What is needed to open the encrypted file, once per worker.
pub struct Encrypted<'a> {
    pub path: &'a Path,
    pub identities: &'a Identities,
    /// The file's name, for messages.
    pub name: &'a str,
    /// The fingerprints its record names, for the refusal's message.
    pub needed: &'a [Fingerprint],
}

/// Decrypts `input` into a new file `dest` (0600, synced) and checks the plaintext's SHA-256
/// against its trailer. Returns the plaintext's length (the trailer included).
pub fn decrypt_in_parallel(input: &Encrypted<'_>, dest: &Path) -> Result<u64, DecryptError> {
    let mut first = open(input)?;
    let len = first
        .seek(SeekFrom::End(0))
        .map_err(|source| damaged(input, 0, source))?;
    let out = fsutil::create_new(dest, 0o600).map_err(io_err("create", dest))?;
    out.set_len(len).map_err(io_err("size", dest))?;
    // The check reads back through its own handle: the new file is opened for writing only.
    let back = File::open(dest).map_err(io_err("open", dest))?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ranges = shares(len, workers_for(&header_of(input.path)?, cores), BLOCK);
    let progress = Progress::new(ranges.len());
    let mut readers = vec![Some(first)];
    readers.resize_with(ranges.len(), || None);
    let (decrypted, checked) = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .zip(readers)
            .enumerate()
            .map(|(i, (range, reader))| {
                let (out, progress, range) = (&out, &progress, range.clone());
                scope.spawn(move || {
                    let result = decrypt_share(input, reader, out, i, range, progress);
                    if result.is_err() {
                        progress.fail();
                    }
                    result
                })
            })
            .collect();
        let checked = follow_and_check(&back, &ranges, &progress);
        // Every worker is joined (a panic is an error, not the scope's panic), then the
        // first failure is the one reported.
        let joined: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(panicked(dest))))
            .collect();
        let decrypted = joined.into_iter().find(Result::is_err).unwrap_or(Ok(()));
        (decrypted, checked)
    });
    decrypted?;
    let check = checked.map_err(io_err("read back", dest))?;
    check
        .finish(dest)
        .map_err(|source| DecryptError::Snapshot {
            file: input.name.to_string(),
            source: Box::new(source),
        })?;
    out.sync_all().map_err(io_err("sync", dest))?;
    Ok(len)
}

/// How many workers decrypt: one per core up to `MAX_WORKERS`, but one alone for a
/// passphrase-encrypted file, since each worker opens the file and every opening of a
/// passphrase stanza runs scrypt (about a second by design). Pure.
pub fn workers_for(header: &[u8], cores: usize) -> usize {
    let passphrase = header.windows(10).any(|w| w == b"\n-> scrypt");
    if passphrase {
        1
    } else {
        cores.clamp(2, MAX_WORKERS)
    }
}

/// The first bytes of the file, where age keeps its recipient stanzas.
fn header_of(path: &Path) -> Result<Vec<u8>, DecryptError> {
    let mut head = Vec::with_capacity(4096);
    File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(io_err("read", path))?;
    Ok(head)
}

/// Splits `len` bytes into at most `workers` contiguous shares, each a multiple of `align`
/// long but the last. Pure.
pub fn shares(len: u64, workers: usize, align: u64) -> Vec<Range<u64>> {
    let per = len.div_ceil(workers.max(1) as u64).div_ceil(align).max(1) * align;
    (0..workers as u64)
        .map(|i| (i * per).min(len)..((i + 1) * per).min(len))
        .filter(|r| !r.is_empty())
        .collect()
}

fn open(input: &Encrypted<'_>) -> Result<DecryptingReader<File>, DecryptError> {
    let file = File::open(input.path).map_err(io_err("open", input.path))?;
    decrypting_reader(file, Some(input.identities), input.name, input.needed).map_err(|source| {
        DecryptError::Open {
            file: input.name.to_string(),
            source,
        }
    })
}

/// One worker: decrypts `range` of the plaintext and writes it at the same offsets.
fn decrypt_share(
    input: &Encrypted<'_>,
    reader: Option<DecryptingReader<File>>,
    out: &File,
    index: usize,
    range: Range<u64>,
    progress: &Progress,
) -> Result<(), DecryptError> {
    let mut reader = match reader {
        Some(reader) => reader,
        None => open(input)?,
    };
    reader
        .seek(SeekFrom::Start(range.start))
        .map_err(|source| damaged(input, range.start, source))?;
    let mut buf = vec![0u8; BLOCK as usize];
    let mut at = range.start;
    while at < range.end && !progress.failed() {
        let n = (range.end - at).min(BLOCK) as usize;
        reader
            .read_exact(&mut buf[..n])
            .map_err(|source| damaged(input, at, source))?;
        out.write_all_at(&buf[..n], at)
            .map_err(|source| DecryptError::Io {
                action: "write",
                path: input.path.to_path_buf(),
                source,
            })?;
        at += n as u64;
        progress.advance(index, at - range.start);
    }
    Ok(())
}

/// Reads the plaintext back in order as the workers write it, into the trailer check.
fn follow_and_check(
    back: &File,
    ranges: &[Range<u64>],
    progress: &Progress,
) -> io::Result<StreamCheck> {
    let mut check = StreamCheck::new();
    let mut buf = vec![0u8; BLOCK as usize];
    for (index, range) in ranges.iter().enumerate() {
        let mut at = range.start;
        while at < range.end {
            let Some(done) = progress.wait_beyond(index, at - range.start) else {
                // A worker failed; its error is the one to report.
                return Ok(check);
            };
            let n = (range.start + done - at).min(BLOCK) as usize;
            back.read_exact_at(&mut buf[..n], at)?;
            check.update(&buf[..n]);
            at += n as u64;
        }
    }
    Ok(check)
}

/// How far each worker got, and whether one failed.
struct Progress {
    state: Mutex<(Vec<u64>, bool)>,
    changed: Condvar,
}

impl Progress {
    fn new(workers: usize) -> Self {
        Self {
            state: Mutex::new((vec![0; workers], false)),
            changed: Condvar::new(),
        }
    }

    fn advance(&self, index: usize, done: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0[index] = done;
        self.changed.notify_all();
    }

    fn fail(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.changed.notify_all();
    }

    fn failed(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    /// Waits until worker `index` has written more than `seen` bytes of its share; its total
    /// so far, or None once any worker failed.
    fn wait_beyond(&self, index: usize, seen: u64) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.1 {
                return None;
            }
            if state.0[index] > seen {
                return Some(state.0[index]);
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A failed read: authentication or truncation is damage at plaintext offset `at`; anything
/// else is the disk's.
fn damaged(input: &Encrypted<'_>, at: u64, source: io::Error) -> DecryptError {
    match source.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => DecryptError::Damaged {
            file: input.name.to_string(),
            plaintext_bytes: at,
            source,
        },
        _ => DecryptError::Io {
            action: "read",
            path: input.path.to_path_buf(),
            source,
        },
    }
}

fn panicked(dest: &Path) -> DecryptError {
    DecryptError::Io {
        action: "decrypt into",
        path: dest.to_path_buf(),
        source: io::Error::other("a decryption worker panicked"),
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DecryptError {
    let path = path.to_path_buf();
    move |source| DecryptError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
#[path = "parallel_tests.rs"]
mod tests;
