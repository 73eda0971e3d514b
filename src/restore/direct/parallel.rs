//! Decrypting an encrypted database snapshot on every core: age encrypts in independent
//! 64 KiB chunks, so each worker seeks its own decryptor to its share of the plaintext and
//! writes it in place (positioned writes into a file sized up front). SHA-256 cannot be split,
//! so the first worker, whose share is the smallest, feeds its share to the trailer check
//! (`snapshot::verify::StreamCheck`) as it decrypts it and then reads the other shares back
//! in order as they are written; the disk is asked to write each step behind them.
//!
//! A file whose seal matches the one its save recorded (`Trailer::CheckedAtSave`, see
//! `crypt::seal`) skips that check: the save checked the same plaintext, and every chunk is
//! authenticated as it is decrypted. Its shares are then equal, and only the size and the
//! database's magic are checked at the end.
//!
//! Every worker reads the one file opened first (reopened through `/proc/self/fd`, so each has
//! its own position): a file renamed over the path midway cannot mix two files' chunks.
//!
//! Memory is one block per worker plus one for the check, whatever the size. A chunk that
//! fails authentication stops every worker and names the plaintext offset it failed at; the
//! partial file is the caller's to remove.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::num::NonZeroU64;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Condvar, Mutex};

use rustix::fs::Advice;

use crate::crypt::{DecryptingReader, Fingerprint, Identities, decrypting_reader};
use crate::fsutil;
use crate::restore::decrypt::DecryptError;
use crate::snapshot::verify::{StreamCheck, TRAILER_LEN, quick_check};

/// Plaintext handed over at a time: a multiple of age's 64 KiB chunk.
const BLOCK: u64 = 1 << 20;
/// Plaintext written between two writeback requests.
const WRITE_BEHIND: u64 = 32 << 20;
/// Most workers used: beyond this the disk, not the cipher, is the limit.
const MAX_WORKERS: usize = 4;

/// Whether the plaintext's SHA-256 trailer is checked here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trailer {
    /// Checked in order as the workers write (any file not known to be a checked save's).
    Check,
    /// The file's seal is the one its save recorded after checking this very plaintext.
    CheckedAtSave,
}

/// Which check a file gets: `CheckedAtSave` only when its seal (`found`) equals the recorded
/// one. Pure.
pub fn trailer_check(recorded: Option<&str>, found: Option<&str>) -> Trailer {
    match (recorded, found) {
        (Some(recorded), Some(found)) if recorded.eq_ignore_ascii_case(found) => {
            Trailer::CheckedAtSave
        }
        _ => Trailer::Check,
    }
}

/// What is needed to open the encrypted file, once per worker.
pub struct Encrypted<'a> {
    /// The file, opened once: every worker reopens this one.
    pub file: &'a File,
    /// Its path, for messages.
    pub path: &'a Path,
    pub identities: &'a Identities,
    /// The file's name, for messages.
    pub name: &'a str,
    /// The fingerprints its record names, for the refusal's message.
    pub needed: &'a [Fingerprint],
    pub trailer: Trailer,
}

/// Decrypts `input`, opened as `first` ([`open`]), into a new file `dest` (0600, synced) and
/// checks the plaintext's SHA-256 against its trailer unless `input.trailer` says its save did.
/// Returns the database image's length (the plaintext without its trailer).
pub fn decrypt_in_parallel(
    input: &Encrypted<'_>,
    mut first: DecryptingReader<File>,
    dest: &Path,
) -> Result<u64, DecryptError> {
    let len = first
        .seek(SeekFrom::End(0))
        .map_err(|source| damaged(input, 0, source))?;
    let out = fsutil::create_new(dest, 0o600).map_err(io_err("create", dest))?;
    out.set_len(len).map_err(io_err("size", dest))?;
    // The check reads back through its own handle: the new file is opened for writing only.
    let back = File::open(dest).map_err(io_err("open", dest))?;
    let checking = input.trailer == Trailer::Check;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = workers_for(&header_of(input.file, input.path)?, cores);
    let ranges = shares(len, workers, BLOCK, checking);
    let progress = Progress::new(ranges.len());
    let (decrypted, checked) = std::thread::scope(|scope| {
        // Workers 1.. decrypt their shares on threads of their own; this thread is worker 0,
        // which checks its share as it decrypts it and then reads the others back in order.
        let handles: Vec<_> = ranges
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, range)| {
                let (out, progress, range) = (&out, &progress, range.clone());
                scope.spawn(move || {
                    let guard = FailUnlessDone(progress);
                    let result =
                        decrypt_share(input, None, (out, dest), (i, range), progress, None);
                    guard.finished(result.is_ok());
                    result
                })
            })
            .collect();
        let behind = scope.spawn(|| write_behind(&out, &ranges, &progress));
        let mut check = checking.then(StreamCheck::new);
        let first_share = ranges.first().cloned().unwrap_or(0..0);
        let guard = FailUnlessDone(&progress);
        let own = decrypt_share(
            input,
            Some(first),
            (&out, dest),
            (0, first_share),
            &progress,
            check.as_mut(),
        );
        guard.finished(own.is_ok());
        let checked = match check {
            Some(check) => follow_and_check(&back, &ranges, &progress, check).map(Some),
            None => Ok(None),
        };
        // Only a hint to the kernel: the final sync below is what makes the file durable.
        let _ = behind.join();
        // Every worker is joined (a panic is an error, not the scope's panic), then the
        // first failure is the one reported.
        let joined: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(panicked(dest))))
            .collect();
        let decrypted = std::iter::once(own)
            .chain(joined)
            .find(Result::is_err)
            .unwrap_or(Ok(()));
        (decrypted, checked)
    });
    decrypted?;
    let check = checked.map_err(io_err("read back", dest))?;
    let not_a_snapshot = |source| DecryptError::Snapshot {
        file: input.name.to_string(),
        source: Box::new(source),
    };
    let image_len = match check {
        Some(check) => check.finish(dest).map_err(not_a_snapshot)?,
        // The save checked the hash; the size and the magic cost nothing to check again.
        None => quick_check(dest)
            .map(|()| len - TRAILER_LEN)
            .map_err(not_a_snapshot)?,
    };
    out.sync_all().map_err(io_err("sync", dest))?;
    Ok(image_len)
}

/// Marks the decryption failed when dropped before [`Self::finished`] said it went well:
/// also when its worker panics, so no thread waits for bytes that will never come.
struct FailUnlessDone<'a>(&'a Progress);

impl FailUnlessDone<'_> {
    fn finished(self, ok: bool) {
        if ok {
            std::mem::forget(self);
        }
    }
}

impl Drop for FailUnlessDone<'_> {
    fn drop(&mut self) {
        self.0.fail();
    }
}

/// How many workers decrypt: one per core, at least two and at most `MAX_WORKERS`, but one alone for a
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
fn header_of(file: &File, path: &Path) -> Result<Vec<u8>, DecryptError> {
    fsutil::read_prefix(file, 4096).map_err(io_err("read", path))
}

/// Splits `len` bytes into at most `workers` contiguous shares, each a multiple of `align`
/// long but the last. When `checking`, the first share is a fifth the size of the others:
/// its worker also checks the whole plaintext (SHA-256 costs about two thirds of decryption
/// per byte here), so with two workers both finish about together. Otherwise the shares are
/// equal. Pure.
pub fn shares(len: u64, workers: usize, align: u64, checking: bool) -> Vec<Range<u64>> {
    let workers = workers.max(1) as u64;
    // Weights: 1 for the first share, `rest` for each other.
    let rest = if checking { 5 } else { 1 };
    let parts = 1 + rest * (workers - 1);
    let unit = len.div_ceil(parts);
    let first = if workers == 1 {
        len
    } else {
        unit.div_ceil(align) * align
    };
    let per = (unit * rest).div_ceil(align).max(1) * align;
    let mut ranges = Vec::with_capacity(workers as usize);
    ranges.push(0..first.min(len));
    let mut at = first.min(len);
    while at < len {
        let end = (at + per).min(len);
        ranges.push(at..end);
        at = end;
    }
    ranges.retain(|r| !r.is_empty());
    ranges
}

/// Opens `input` with its identities: a file no identity opens is refused here, at its header.
pub fn open(input: &Encrypted<'_>) -> Result<DecryptingReader<File>, DecryptError> {
    let file = reopen(input.file, input.path).map_err(io_err("open", input.path))?;
    decrypting_reader(file, Some(input.identities), input.name, input.needed).map_err(|source| {
        DecryptError::Open {
            file: input.name.to_string(),
            source,
        }
    })
}

/// A new handle on the same open file, with a position of its own (a clone of the handle
/// would share one). By path only where `/proc` is not mounted.
fn reopen(file: &File, path: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).or_else(|_| File::open(path))
}

/// One worker: decrypts its share of the plaintext and writes it at the same offsets,
/// feeding `check` as it goes when it has one (worker 0's share comes first).
fn decrypt_share(
    input: &Encrypted<'_>,
    reader: Option<DecryptingReader<File>>,
    (out, dest): (&File, &Path),
    (index, range): (usize, Range<u64>),
    progress: &Progress,
    mut check: Option<&mut StreamCheck>,
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
            .map_err(io_err("write", dest))?;
        if let Some(check) = check.as_mut() {
            check.update(&buf[..n]);
        }
        at += n as u64;
        progress.advance(index, at - range.start);
    }
    Ok(())
}

/// Asks the kernel to start writing each step of plaintext to disk once it is written, so
/// the disk works while the cores decrypt and the final sync finds little left. A sync here
/// instead would wait, and stall the workers' writes behind it; `POSIX_FADV_DONTNEED` starts
/// the writeback of dirty pages without waiting (and drops only pages already clean, which
/// fresh ones are not, so the member proving the restore still reads from memory).
fn write_behind(out: &File, ranges: &[Range<u64>], progress: &Progress) {
    if ranges.is_empty() {
        return;
    }
    let lens: Vec<u64> = ranges.iter().map(|r| r.end - r.start).collect();
    let mut started = vec![0u64; ranges.len()];
    loop {
        let due = |done: &[u64]| {
            done.iter()
                .zip(&started)
                .zip(&lens)
                .any(|((d, s), len)| d - s >= WRITE_BEHIND || (d == len && d > s))
        };
        let Some(done) = progress.wait_for(due) else {
            return;
        };
        for ((d, s), r) in done.iter().zip(started.iter_mut()).zip(ranges) {
            if d > s {
                let len = NonZeroU64::new(d - *s);
                let _ = rustix::fs::fadvise(out, r.start + *s, len, Advice::DontNeed);
                *s = *d;
            }
        }
        if done == lens {
            return;
        }
    }
}

/// Reads the shares after the first back in order as the workers write them, into the
/// trailer check that worker 0's share already went through.
fn follow_and_check(
    back: &File,
    ranges: &[Range<u64>],
    progress: &Progress,
    mut check: StreamCheck,
) -> io::Result<StreamCheck> {
    let mut buf = vec![0u8; BLOCK as usize];
    for (index, range) in ranges.iter().enumerate().skip(1) {
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
        self.wait_for(|done| done[index] > seen)
            .map(|done| done[index])
    }

    /// Waits until `ready` holds for the bytes each worker has written; those figures, or
    /// None once any worker failed.
    fn wait_for(&self, ready: impl Fn(&[u64]) -> bool) -> Option<Vec<u64>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.1 {
                return None;
            }
            if ready(&state.0) {
                return Some(state.0.clone());
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
