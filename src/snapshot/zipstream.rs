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
//! number of blocks is in flight, so memory does not grow with the input; the workers and the
//! ordering of their output are `pool`'s. This module knows nothing about etcd or files: it
//! writes into any `Write`.

use std::io::{self, Write};

use self::encode::{BlockInput, Encoders};
use self::layout::EntryLayout;
use self::pool::Pool;

pub use self::encode::EncodedBytes;

#[path = "zipstream_encode.rs"]
mod encode;
#[path = "zipstream_layout.rs"]
mod layout;
#[path = "zipstream_plan.rs"]
mod plan;
#[path = "zipstream_pool.rs"]
mod pool;

/// Uncompressed bytes per block: large enough that the per-block flush and priming cost
/// nothing measurable, small enough that a few blocks in flight stay a few MiB.
pub const BLOCK_SIZE: usize = 1 << 20;
/// Deflate's window: the most history a block can refer back to.
const WINDOW: usize = 32 * 1024;
/// More workers than this only add memory: four already outpace etcd's stream (~200 MB/s),
/// and every worker adds ~2 blocks in flight plus its own allocator arena.
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
    /// Totals of the blocks written so far.
    encoded: EncodedBytes,
    pool: Pool<Job, Encoded>,
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
            encoded: EncodedBytes::default(),
            pool: start_workers(workers.clamp(2, MAX_WORKERS))?,
        })
    }

    /// Compresses what is buffered, writes the trailing records and flushes; returns the
    /// writer and what the archive holds.
    pub fn finish(mut self) -> io::Result<(W, ZipSummary)> {
        self.submit(true)?;
        while let Some(block) = self.pool.next()? {
            self.write_block(block)?;
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
            encoded: self.encoded,
        };
        let Self { out, .. } = self;
        Ok((out, summary))
    }

    /// Hands the buffered block to the workers, first writing out finished blocks while too
    /// many are in flight.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.pool.in_flight() >= max_in_flight(self.pool.workers()) {
            match self.pool.next()? {
                Some(block) => self.write_block(block)?,
                None => break,
            }
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
        while let Some(block) = self.pool.try_next()? {
            self.write_block(block)?;
        }
        Ok(())
    }

    /// Writes the next block in order.
    fn write_block(&mut self, (output, encoded): Encoded) -> io::Result<()> {
        self.encoded.add(encoded);
        self.out.write_all(&output)?;
        self.compressed += output.len() as u64;
        self.position += output.len() as u64;
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

/// One block to compress.
struct Job {
    dictionary: Vec<u8>,
    data: Vec<u8>,
    level: u32,
    last: bool,
    segment: usize,
}

/// A block's Deflate bytes and how many input bytes went out in each encoding.
type Encoded = (Vec<u8>, EncodedBytes);

/// Two blocks per worker keep every worker busy while the oldest one is written; each holds at
/// most an input and an output block.
fn max_in_flight(workers: usize) -> usize {
    workers * 2
}

/// The compression workers; each keeps its compressors from block to block.
fn start_workers(workers: usize) -> io::Result<Pool<Job, Encoded>> {
    Pool::start(workers, "zip-deflate", || {
        let mut encoders = Encoders::default();
        move |job: Job| {
            encoders.encode(&BlockInput {
                dictionary: &job.dictionary,
                data: &job.data,
                level: job.level,
                last: job.last,
                segment: job.segment,
            })
        }
    })
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
