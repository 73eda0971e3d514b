//! A writer that hands its bytes to a second thread, so the save pipeline uses both cores: the
//! receiving thread reads etcd's stream, checks the trailer and deflates, while the writer
//! thread hashes, encrypts and writes the file (and feeds the S3 tee). Without it every stage
//! ran on one thread, and encryption added a fifth to a compressed save.
//!
//! Memory stays bounded: at most [`DEPTH`] chunks of [`CHUNK`] bytes are in flight. The first
//! error of the writer thread is returned by the next write, or by [`PipeWriter::finish`].

use std::io::{self, Write};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Bytes gathered before a hand-over: large enough that the channel costs nothing.
const CHUNK: usize = 256 * 1024;
/// Chunks queued towards the writer thread before `write` waits for it.
const DEPTH: usize = 8;

/// Writes to `W` on a thread of its own. Call [`PipeWriter::finish`] to get `W` back; dropping
/// the pipe unfinished lets the thread drain and drop `W` on its own (a failed save's file is
/// abandoned by its owner anyway).
pub(crate) struct PipeWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    sender: Option<SyncSender<Vec<u8>>>,
    worker: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> PipeWriter<W> {
    pub(crate) fn new(inner: W) -> io::Result<Self> {
        let (sender, receiver) = sync_channel::<Vec<u8>>(DEPTH);
        let worker = std::thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || {
                let mut inner = inner;
                for chunk in receiver {
                    inner.write_all(&chunk)?;
                }
                Ok(inner)
            })?;
        Ok(Self {
            buf: Vec::with_capacity(CHUNK),
            sender: Some(sender),
            worker: Some(worker),
        })
    }

    /// Hands every byte over, waits for the thread to write them and returns the inner writer
    /// (not flushed: its owner finishes it), or the thread's first error.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.hand_over()?;
        drop(self.sender.take());
        self.join()
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let Some(sender) = &self.sender else {
            return Err(io::Error::other("the snapshot writer thread has stopped"));
        };
        if sender.send(chunk).is_ok() {
            return Ok(());
        }
        // The thread hung up: it stopped on an error, which is the one to report.
        self.sender = None;
        match self.join() {
            Ok(_) => Err(io::Error::other("the snapshot writer thread stopped early")),
            Err(e) => Err(e),
        }
    }

    fn join(&mut self) -> io::Result<W> {
        let Some(worker) = self.worker.take() else {
            return Err(io::Error::other("the snapshot writer thread has stopped"));
        };
        worker
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the snapshot writer thread panicked")))
    }
}

impl<W: Write + Send + 'static> Write for PipeWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let take = (CHUNK - self.buf.len()).min(bytes.len());
        self.buf.extend_from_slice(&bytes[..take]);
        if self.buf.len() == CHUNK {
            self.hand_over()?;
        }
        Ok(take)
    }

    /// Hands the partial chunk over; the file itself is flushed and synced by `finish`'s caller.
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_arrives_in_order() {
        let bytes: Vec<u8> = (0..3 * CHUNK as u32 + 17)
            .map(|i| (i % 253) as u8)
            .collect();
        let mut pipe = PipeWriter::new(Vec::new()).unwrap();
        for piece in bytes.chunks(1000) {
            pipe.write_all(piece).unwrap();
        }
        assert_eq!(pipe.finish().unwrap(), bytes);
    }

    /// Fails every write after `ok` bytes, like a full disk.
    struct FailsAfter {
        ok: usize,
    }
    impl Write for FailsAfter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.ok < b.len() {
                return Err(io::Error::other("disk full"));
            }
            self.ok -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_threads_error_reaches_the_writer() {
        let mut pipe = PipeWriter::new(FailsAfter { ok: CHUNK }).unwrap();
        let chunk = vec![7u8; CHUNK];
        // The failure surfaces on a later write (once the thread hangs up) or at finish.
        let mut failed = None;
        for _ in 0..4 * DEPTH {
            if let Err(e) = pipe.write_all(&chunk) {
                failed = Some(e);
                break;
            }
        }
        let err = match failed {
            Some(e) => e,
            None => pipe.finish().err().expect("finish reports the error"),
        };
        assert_eq!(err.to_string(), "disk full");
    }
}
