//! A read-ahead for a seekable reader whose reads cost CPU, such as an age decryptor: a
//! thread of its own reads the next blocks while the caller consumes the current one, so a
//! `.zip.age` snapshot is decrypted on one core while it is inflated on the other, with no
//! decrypted copy of the archive on disk.
//!
//! Seeks are rare for its one user: a zip reader seeks to the directory at the end and then to
//! the entry, then reads the entry through. A seek to where the reader already is costs
//! nothing. Any other seek stops the thread, seeks the inner reader and starts reading ahead
//! again from there. Memory is at most `DEPTH + 1` blocks.
//!
//! An error of the inner reader is remembered with its offset ([`InnerFailure`]), so the
//! caller can tell damage in the encrypted file from damage in the archive inside it.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Bytes read ahead at a time.
const BLOCK: usize = 1 << 20;
/// Blocks waiting for the caller at most.
const DEPTH: usize = 3;

/// The inner reader: at hand, or lent to the thread reading ahead.
enum Inner<R> {
    Idle(R),
    Reading {
        blocks: Receiver<io::Result<Vec<u8>>>,
        thread: JoinHandle<R>,
    },
    /// Lost to a panic of the reading thread.
    Gone,
}

pub struct ReadAhead<R> {
    inner: Inner<R>,
    /// Position of the next byte handed out.
    pos: u64,
    current: Vec<u8>,
    at: usize,
    /// The thread reached the end: reads return 0 until the next seek.
    ended: bool,
    failure: InnerFailure,
}

/// Where the inner reader failed, if it did; shared with the thread and with the caller.
#[derive(Clone, Default)]
pub struct InnerFailure(Arc<AtomicU64>);

impl InnerFailure {
    const NONE: u64 = u64::MAX;

    fn new() -> Self {
        Self(Arc::new(AtomicU64::new(Self::NONE)))
    }

    fn record(&self, offset: u64) {
        let _ = self
            .0
            .compare_exchange(Self::NONE, offset, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The offset of the inner reader's first failed read or seek.
    pub fn at(&self) -> Option<u64> {
        let at = self.0.load(Ordering::Relaxed);
        (at != Self::NONE).then_some(at)
    }
}

impl<R: Read + Seek + Send + 'static> ReadAhead<R> {
    /// Reads ahead from `inner`'s current position.
    pub fn new(mut inner: R) -> io::Result<Self> {
        let pos = inner.stream_position()?;
        Ok(Self {
            inner: Inner::Idle(inner),
            pos,
            current: Vec::new(),
            at: 0,
            ended: false,
            failure: InnerFailure::new(),
        })
    }

    /// Where the inner reader failed a read or a seek, as opposed to the caller's use of the
    /// bytes; a handle that stays valid after the reader is moved.
    pub fn failure(&self) -> InnerFailure {
        self.failure.clone()
    }

    /// The inner reader back at hand, the thread (if any) stopped.
    fn idle(&mut self) -> io::Result<&mut R> {
        self.inner = match std::mem::replace(&mut self.inner, Inner::Gone) {
            Inner::Reading { blocks, thread } => {
                // A thread blocked on a full channel wakes with an error and returns the reader.
                drop(blocks);
                thread.join().map_or(Inner::Gone, Inner::Idle)
            }
            other => other,
        };
        match &mut self.inner {
            Inner::Idle(r) => Ok(r),
            _ => Err(io::Error::other("the read-ahead thread panicked")),
        }
    }

    fn start(&mut self) -> io::Result<()> {
        let reader = match std::mem::replace(&mut self.inner, Inner::Gone) {
            Inner::Idle(r) => r,
            other => {
                self.inner = other;
                return Ok(());
            }
        };
        let (tx, rx) = sync_channel(DEPTH);
        let failure = self.failure.clone();
        // Only called with the current block used up: the thread starts where the caller is.
        let from = self.pos;
        let thread = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || read_blocks(reader, from, &tx, &failure))?;
        self.inner = Inner::Reading { blocks: rx, thread };
        Ok(())
    }

    /// The next block from the thread; an empty one at the end.
    fn next_block(&mut self) -> io::Result<Vec<u8>> {
        self.start()?;
        let Inner::Reading { blocks, .. } = &self.inner else {
            return Err(io::Error::other("the read-ahead thread panicked"));
        };
        match blocks.recv() {
            Ok(block) => block,
            // The thread ended without a last word: it panicked.
            Err(_) => Err(io::Error::other("the read-ahead thread stopped")),
        }
    }
}

/// The thread: reads whole blocks (short only at the end) until the end, an error or a
/// caller that stopped listening; returns the reader.
fn read_blocks<R: Read>(
    mut reader: R,
    mut offset: u64,
    tx: &SyncSender<io::Result<Vec<u8>>>,
    failure: &InnerFailure,
) -> R {
    loop {
        let mut block = vec![0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match reader.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure.record(offset + filled as u64);
                    let _ = tx.send(Err(e));
                    return reader;
                }
            }
        }
        block.truncate(filled);
        offset += filled as u64;
        let last = filled < BLOCK;
        if tx.send(Ok(block)).is_err() || last {
            return reader;
        }
    }
}

impl<R: Read + Seek + Send + 'static> Read for ReadAhead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            self.current = self.next_block()?;
            self.at = 0;
            if self.current.len() < BLOCK {
                self.ended = true;
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek + Send + 'static> Seek for ReadAhead<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        // Relative to the position handed out, not the inner reader's (which is ahead).
        let seek = match to {
            SeekFrom::Current(d) => {
                let n = self.pos.checked_add_signed(d).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
                })?;
                SeekFrom::Start(n)
            }
            other => other,
        };
        if seek == SeekFrom::Start(self.pos) {
            return Ok(self.pos);
        }
        let failure = self.failure.clone();
        let at = match seek {
            SeekFrom::Start(n) => n,
            _ => self.pos,
        };
        let reader = self.idle()?;
        let pos = reader.seek(seek).inspect_err(|_| failure.record(at))?;
        self.pos = pos;
        self.current.clear();
        self.at = 0;
        self.ended = false;
        Ok(pos)
    }
}

#[cfg(test)]
#[path = "read_ahead_tests.rs"]
mod tests;
