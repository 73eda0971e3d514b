//! Encodes one block of the parallel zip writer as raw Deflate, run by run as `plan` decides:
//! LZ77 (at level 1, the save's level, this project's greedy encoder, `crate::deflate`; at
//! higher levels flate2's), Huffman-only blocks (`crate::deflate`), or stored blocks written
//! here.
//!
//! Every run ends on a byte boundary (a sync flush, or a stored block, which is byte-aligned by
//! definition), so runs and blocks concatenate into one Deflate stream; only the last run of the
//! last block carries the final-block bit. A matched run is primed with the 32 KiB before it,
//! whatever encoding those bytes had: the reader's window holds the decoded bytes either way.

use std::borrow::Cow;
use std::io;

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::deflate;

use super::WINDOW;
use super::plan::{Encoding, plan};

/// Uncompressed bytes that went out in each encoding.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncodedBytes {
    pub matched: u64,
    pub huffman_only: u64,
    pub stored: u64,
}

impl EncodedBytes {
    pub(super) fn add(&mut self, other: Self) {
        self.matched += other.matched;
        self.huffman_only += other.huffman_only;
        self.stored += other.stored;
    }

    fn count(&mut self, encoding: Encoding, bytes: usize) {
        let slot = match encoding {
            Encoding::Matched => &mut self.matched,
            Encoding::HuffmanOnly => &mut self.huffman_only,
            Encoding::Stored => &mut self.stored,
        };
        *slot += bytes as u64;
    }
}

/// The largest stored block Deflate allows.
const STORED_MAX: usize = 65_535;

/// The level whose matching is this project's greedy encoder; higher levels search harder
/// with flate2.
const GREEDY_LEVEL: u32 = 1;

/// A worker's compressors, kept from block to block so each run only resets one.
#[derive(Default)]
pub(super) struct Encoders {
    matched: Option<(u32, Compress)>,
    own: deflate::Encoder,
}

/// One block: the 32 KiB before it, its bytes, the level, whether it ends the stream, and the
/// segment size the plan judges.
pub(super) struct BlockInput<'a> {
    pub dictionary: &'a [u8],
    pub data: &'a [u8],
    pub level: u32,
    pub last: bool,
    pub segment: usize,
}

impl Encoders {
    /// The block's Deflate bytes and how many input bytes each encoding took.
    pub(super) fn encode(&mut self, block: &BlockInput) -> io::Result<(Vec<u8>, EncodedBytes)> {
        let runs = plan(block.data, block.level, block.segment);
        let data = block.data;
        // Room for the worst case of every encoding (9 bits a byte, block headers), so runs
        // append without reallocating: blocks in flight are most of the writer's memory.
        let mut out = Vec::with_capacity(bound(data.len()) + 1024 * runs.len());
        let mut totals = EncodedBytes::default();
        for (i, run) in runs.iter().enumerate() {
            let last = block.last && i + 1 == runs.len();
            let bytes = &data[run.range.clone()];
            match run.encoding {
                Encoding::Matched => {
                    let window = window_before(block.dictionary, data, run.range.start);
                    if block.level == GREEDY_LEVEL {
                        self.own.matched(&window, bytes, last, &mut out);
                    } else {
                        self.matched(&window, bytes, block.level, last, &mut out)?;
                    }
                }
                Encoding::HuffmanOnly => self.own.huffman_only(bytes, last, &mut out),
                Encoding::Stored => store(bytes, last, &mut out),
            }
            totals.count(run.encoding, bytes.len());
        }
        Ok((out, totals))
    }

    /// LZ77 at `level` (above the greedy one) with flate2, primed with `window`.
    fn matched(
        &mut self,
        window: &[u8],
        data: &[u8],
        level: u32,
        last: bool,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let deflate = match &mut self.matched {
            Some((kept, deflate)) if *kept == level => {
                deflate.reset();
                deflate
            }
            slot => {
                &mut slot
                    .insert((level, Compress::new(Compression::new(level), false)))
                    .1
            }
        };
        if !window.is_empty() {
            deflate.set_dictionary(window).map_err(io::Error::other)?;
        }
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        out.reserve_exact(bound(data.len()));
        let start = out.len();
        loop {
            let (before_in, before_out) = (deflate.total_in(), deflate.total_out());
            let consumed = usize::try_from(before_in).unwrap_or(usize::MAX);
            let status = deflate
                .compress_vec(&data[consumed..], out, flush)
                .map_err(io::Error::other)?;
            let all_in = deflate.total_in() == data.len() as u64;
            // A sync flush is complete once all input is in and the output had room to spare.
            match status {
                Status::StreamEnd => return Ok(()),
                _ if !last && all_in && out.len() < out.capacity() => return Ok(()),
                _ => {}
            }
            let progressed = deflate.total_in() != before_in || deflate.total_out() != before_out;
            if !progressed && out.len() < out.capacity() {
                return Err(io::Error::other(format!(
                    "failed to deflate block: no progress after {} bytes",
                    out.len() - start
                )));
            }
            out.reserve(64 * 1024);
        }
    }
}

/// Output room for `len` input bytes in any encoding: every encoder falls back to fixed codes
/// (at most 9 bits a byte) or stored blocks when its dynamic codes would be larger, plus block
/// headers, the sync flush's empty stored block and the final block.
fn bound(len: usize) -> usize {
    len + len / 8 + 1024
}

/// The 32 KiB of input before `start`: from the block itself, or the previous block's tail.
fn window_before<'a>(dictionary: &'a [u8], data: &'a [u8], start: usize) -> Cow<'a, [u8]> {
    if start >= WINDOW {
        return Cow::Borrowed(&data[start - WINDOW..start]);
    }
    if start == 0 {
        return Cow::Borrowed(&dictionary[dictionary.len().saturating_sub(WINDOW)..]);
    }
    let from_dictionary = &dictionary[dictionary.len().saturating_sub(WINDOW - start)..];
    Cow::Owned([from_dictionary, &data[..start]].concat())
}

/// Stored blocks of up to 65,535 bytes: a header byte (final bit, type 00, padding to the byte
/// boundary), the length and its complement, the bytes. The stream is byte-aligned here, as
/// every run ends on a byte boundary. An empty last run is one empty final block.
pub(super) fn store(data: &[u8], last: bool, out: &mut Vec<u8>) {
    if data.is_empty() {
        if last {
            out.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
        }
        return;
    }
    let blocks = data.len().div_ceil(STORED_MAX);
    out.reserve(data.len() + 5 * blocks);
    for (i, chunk) in data.chunks(STORED_MAX).enumerate() {
        out.push(u8::from(last && i + 1 == blocks));
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}
