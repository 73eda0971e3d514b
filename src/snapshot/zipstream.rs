//! A streaming, parallel writer of a one-entry zip archive: the `.zip` form of a snapshot.
//!
//! Deflate on one core is slower than etcd streams a snapshot, so the input is cut into blocks
//! that worker threads compress independently. Each block is primed with the previous block's
//! last 32 KiB (so the ratio stays near a single stream) and ends byte-aligned with a sync
//! flush; the last one ends the stream. Concatenated in order, the blocks are one valid Deflate
//! stream. Within a block every 64 KiB segment is judged from a sample (`plan`): data with
//! repeats keeps LZ77, text without repeats gets Huffman codes alone, and bytes no code shrinks
//! are stored, so no time goes into matching that finds nothing (`encode`). The container is
//! written front to back and never seeks, so every byte can be hashed as it passes. A bounded
//! number of blocks is in flight, so memory does not grow with the input. This module knows
//! nothing about etcd or files: it writes into any `Write`.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use self::encode::{BlockInput, Encoders};
use self::layout::EntryLayout;

pub use self::encode::EncodedBytes;

#[path = "zipstream_encode.rs"]
mod encode;
#[path = "zipstream_layout.rs"]
mod layout;
#[path = "zipstream_plan.rs"]
mod plan;

/// Uncompressed bytes per block: large enough that the per-block flush and priming cost
/// nothing measurable, small enough that a few blocks in flight stay a few MiB.
pub const BLOCK_SIZE: usize = 1 << 20;
/// Deflate's window: the most history a block can refer back to.
const WINDOW: usize = 32 * 1024;
/// More workers than this only add memory: four already outpace etcd's stream (~200 MB/s) at
/// level 1, and every worker adds ~2 blocks in flight plus its own allocator arena.
const MAX_WORKERS: usize = 4;

/// The single entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// File name inside the archive (no directory).
    pub name: String,
    /// Modification time, Unix seconds (written as UTC DOS time plus an extended timestamp).
    pub unix_mtime: i64,
    /// Unix permission bits, e.g. 0o600; stored as a regular file.
    pub mode: u32,
}

/// What the finished archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipSummary {
    /// CRC-32 of the uncompressed data.
    pub crc32: u32,
    pub uncompressed_size: u64,
    /// Size of the Deflate data alone.
    pub compressed_size: u64,
    /// Size of the whole archive.
    pub archive_size: u64,
    /// How many uncompressed bytes went out in each Deflate encoding.
    pub encoded: EncodedBytes,
}

/// Streams one entry into `out` as a zip archive; call `finish` to complete it. Dropping it
/// unfinished stops the workers and leaves an incomplete archive in `out`.
pub struct ZipStreamWriter<W: Write> {
    out: W,
    entry: EntryLayout,
    level: u32,
    block_size: usize,
    /// Bytes judged together when choosing an encoding (`plan::SEGMENT` unless tuned).
    segment: usize,
    block: Vec<u8>,
    /// Tail of the last submitted block: the next block's dictionary.
    history: Vec<u8>,
    crc: crc32fast::Hasher,
    uncompressed: u64,
    compressed: u64,
    /// Bytes written to `out` so far.
    position: u64,
    pool: Pool,
}

impl<W: Write> ZipStreamWriter<W> {
    /// Starts the archive: writes the local header and starts the compression workers (one per
    /// core, at least 2, at most 4). `level` is the Deflate level, 0-9.
    pub fn new(out: W, entry: &ZipEntry, level: u32) -> io::Result<Self> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_tuning(out, entry, level, BLOCK_SIZE, workers)
    }

    /// Judges `segment` bytes at a time when choosing encodings (tests use small segments to
    /// switch encodings often).
    pub fn with_segment(mut self, segment: usize) -> Self {
        self.segment = segment.max(1);
        self
    }

    /// `new` with an explicit block size and worker count (tests use small blocks to cross
    /// many boundaries).
    pub fn with_tuning(
        mut out: W,
        entry: &ZipEntry,
        level: u32,
        block_size: usize,
        workers: usize,
    ) -> io::Result<Self> {
        let entry = EntryLayout::new(entry)?;
        let header = entry.local_header();
        out.write_all(&header)?;
        Ok(Self {
            out,
            entry,
            level: level.min(9),
            block_size: block_size.max(1),
            segment: plan::SEGMENT,
            block: Vec::with_capacity(block_size.max(1)),
            history: Vec::new(),
            crc: crc32fast::Hasher::new(),
            uncompressed: 0,
            compressed: 0,
            position: header.len() as u64,
            pool: Pool::start(workers.clamp(2, MAX_WORKERS))?,
        })
    }

    /// Compresses what is buffered, writes the trailing records and flushes; returns the
    /// writer and what the archive holds.
    pub fn finish(mut self) -> io::Result<(W, ZipSummary)> {
        self.submit(true)?;
        while self.pool.in_flight() > 0 {
            let done = self.pool.wait()?;
            self.write_ready(done)?;
        }
        self.pool.stop();
        let crc32 = self.crc.clone().finalize();
        let records = self
            .entry
            .trailer(crc32, self.compressed, self.uncompressed, self.position);
        self.out.write_all(&records)?;
        self.out.flush()?;
        let summary = ZipSummary {
            crc32,
            uncompressed_size: self.uncompressed,
            compressed_size: self.compressed,
            archive_size: self.position + records.len() as u64,
            encoded: self.pool.encoded,
        };
        let Self { out, .. } = self;
        Ok((out, summary))
    }

    /// Hands the buffered block to the workers, first waiting while too many are in flight.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.pool.in_flight() >= self.pool.max_in_flight() {
            let done = self.pool.wait()?;
            self.write_ready(done)?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(self.block_size));
        let dictionary = std::mem::take(&mut self.history);
        self.history = data[data.len().saturating_sub(WINDOW)..].to_vec();
        self.pool.send(Job {
            dictionary,
            data,
            level: self.level,
            last,
            segment: self.segment,
        })?;
        while let Some(done) = self.pool.poll() {
            self.write_ready(done)?;
        }
        Ok(())
    }

    /// Writes every block that is next in order.
    fn write_ready(&mut self, done: Done) -> io::Result<()> {
        let (output, encoded) = done.output?;
        self.pool.encoded.add(encoded);
        self.pool.finished.insert(done.seq, output);
        while let Some(output) = self.pool.finished.remove(&self.pool.written) {
            self.out.write_all(&output)?;
            self.compressed += output.len() as u64;
            self.position += output.len() as u64;
            self.pool.written += 1;
        }
        Ok(())
    }
}

impl<W: Write> Write for ZipStreamWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.block.len() == self.block_size {
            self.submit(false)?;
        }
        let take = buf.len().min(self.block_size - self.block.len());
        self.block.extend_from_slice(&buf[..take]);
        self.crc.update(&buf[..take]);
        self.uncompressed += take as u64;
        Ok(take)
    }

    /// Only flushes `out`: compressed data exists once a block is full, or at `finish`.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One block to compress. Blocks are numbered by the order they were sent.
struct Job {
    dictionary: Vec<u8>,
    data: Vec<u8>,
    level: u32,
    last: bool,
    segment: usize,
}

struct Done {
    seq: u64,
    output: io::Result<(Vec<u8>, EncodedBytes)>,
}

/// The worker threads and the bookkeeping that keeps their output in order.
struct Pool {
    jobs: Option<SyncSender<(u64, Job)>>,
    results: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    /// Blocks sent / written out so far.
    sent: u64,
    written: u64,
    /// Compressed blocks waiting for an earlier one.
    finished: BTreeMap<u64, Vec<u8>>,
    /// Totals of the blocks received so far.
    encoded: EncodedBytes,
}

impl Pool {
    fn start(workers: usize) -> io::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<(u64, Job)>(workers);
        let queue = Arc::new(Mutex::new(queue));
        let (done_tx, results) = mpsc::channel();
        let mut pool = Self {
            jobs: Some(jobs),
            results,
            workers: Vec::with_capacity(workers),
            sent: 0,
            written: 0,
            finished: BTreeMap::new(),
            encoded: EncodedBytes::default(),
        };
        for i in 0..workers {
            let (queue, done_tx) = (Arc::clone(&queue), done_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("zip-deflate-{i}"))
                .spawn(move || work(&queue, &done_tx))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Sent blocks not yet written out; each holds at most an input and an output block.
    fn in_flight(&self) -> usize {
        usize::try_from(self.sent - self.written).unwrap_or(usize::MAX)
    }

    /// Two blocks per worker keeps every worker busy while the oldest one is written.
    fn max_in_flight(&self) -> usize {
        self.workers.len() * 2
    }

    fn send(&mut self, job: Job) -> io::Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send((self.sent, job)).map_err(|_| stopped())?;
        self.sent += 1;
        Ok(())
    }

    fn wait(&self) -> io::Result<Done> {
        self.results.recv().map_err(|_| stopped())
    }

    fn poll(&self) -> Option<Done> {
        self.results.try_recv().ok()
    }

    /// Closes the queue and joins the workers.
    fn stop(&mut self) {
        self.jobs = None;
        for handle in self.workers.drain(..) {
            // A worker that panicked already surfaced as a missing block.
            let _ = handle.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stopped() -> io::Error {
    io::Error::other("failed to compress snapshot block: the compression workers stopped")
}

/// A worker: takes blocks until the queue closes or nobody waits for results. Its compressors
/// are reused from block to block.
fn work(queue: &Mutex<Receiver<(u64, Job)>>, done: &Sender<Done>) {
    let mut encoders = Encoders::default();
    loop {
        let next = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok((seq, job)) = next else { return };
        let output = encoders.encode(&BlockInput {
            dictionary: &job.dictionary,
            data: &job.data,
            level: job.level,
            last: job.last,
            segment: job.segment,
        });
        drop(job);
        if done.send(Done { seq, output }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
#[path = "zipstream_testdata.rs"]
mod testdata;

#[cfg(test)]
#[path = "zipstream_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "zipstream_adaptive_tests.rs"]
mod adaptive_tests;
