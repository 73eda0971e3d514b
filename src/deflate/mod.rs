//! Raw Deflate (RFC 1951) encoding, written for the zip writer's speed: Huffman-only blocks
//! (dynamic codes of the bytes alone) and greedy LZ77 blocks with dynamic codes.
//!
//! General-purpose encoders spend most of a fast level's time on bookkeeping this writer does
//! not need: stream state, pending-output buffers, a fixed code that costs 8-9 bits for every
//! literal. Here a call encodes one run of bytes into a `Vec<u8>` and ends byte-aligned,
//! with a final block or with an empty stored block (a sync flush), so runs encoded apart (on
//! different threads, in different encodings) concatenate into one valid stream. Every block
//! is checked against storing its bytes and stored when that is smaller, so no run grows by
//! more than stored blocks' headers. A leaf: no I/O, no `crate::` imports.

mod bits;
mod block;
mod huffman;
mod lz77;

use self::bits::BitWriter;
use self::block::{Codes, Freqs, stored_bits, write_stored};

/// Input bytes per Huffman-only block: the codes follow changes in the data every 64 KiB.
const HUFFMAN_BLOCK: usize = 64 * 1024;

/// An encoder's memory (hash table, token and copy buffers), kept from run to run.
pub struct Encoder {
    matcher: lz77::Matcher,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self {
            matcher: lz77::Matcher::new(),
        }
    }

    /// Appends `data` as Huffman-only blocks: every byte a literal in codes fitted to its
    /// block. Ends the stream when `last`, else with a sync flush.
    pub fn huffman_only(&mut self, data: &[u8], last: bool, out: &mut Vec<u8>) {
        let mut w = BitWriter::new(out);
        let blocks = data.len().div_ceil(HUFFMAN_BLOCK);
        for (k, chunk) in data.chunks(HUFFMAN_BLOCK).enumerate() {
            literal_block(chunk, last && k + 1 == blocks, &mut w);
        }
        if data.is_empty() && last {
            write_stored(&mut w, &[], true);
        }
        finish(&mut w, last);
    }

    /// Appends `data` as greedy LZ77 blocks that may refer back into `window` (the bytes just
    /// before `data` in the stream; its last 32 KiB are used). Ends the stream when `last`,
    /// else with a sync flush.
    pub fn matched(&mut self, window: &[u8], data: &[u8], last: bool, out: &mut Vec<u8>) {
        let mut w = BitWriter::new(out);
        self.matcher.encode(window, data, last, &mut w);
        finish(&mut w, last);
    }
}

/// Ends a run on a byte boundary: after the final block, padding; otherwise an empty stored
/// block, whose header aligns the stream without ending it.
fn finish(w: &mut BitWriter, last: bool) {
    if !last {
        w.put(0, 3);
        w.align();
        w.bytes(&[0, 0, 0xFF, 0xFF]);
    }
    w.align();
}

/// One block of `chunk` as literals, or stored if its codes would not make it smaller.
fn literal_block(chunk: &[u8], final_block: bool, w: &mut BitWriter) {
    let mut freqs = Freqs::new();
    histogram(chunk, &mut freqs.lit);
    let codes = Codes::build(&freqs);
    if codes.block_bits(&freqs) >= stored_bits(chunk.len()) {
        write_stored(w, chunk, final_block);
        return;
    }
    w.reserve(chunk.len() + chunk.len() / 8 + 1024);
    codes.start_block(w, final_block);
    let code_of = |b: u8| {
        let code = codes.lit[usize::from(b)];
        (u32::from(code.bits), u32::from(code.len))
    };
    let mut pairs = chunk.chunks_exact(2);
    for pair in &mut pairs {
        w.put_pair(code_of(pair[0]), code_of(pair[1]));
    }
    for &b in pairs.remainder() {
        let (bits, len) = code_of(b);
        w.put(bits, len);
    }
    codes.end_block(w);
}

/// Byte counts into `counts[..256]`, over four tables so repeated bytes do not wait on each
/// other's increments.
fn histogram(data: &[u8], counts: &mut [u32]) {
    let mut tables = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        tables[0][usize::from(q[0])] += 1;
        tables[1][usize::from(q[1])] += 1;
        tables[2][usize::from(q[2])] += 1;
        tables[3][usize::from(q[3])] += 1;
    }
    for &b in quads.remainder() {
        tables[0][usize::from(b)] += 1;
    }
    for (s, count) in counts.iter_mut().take(256).enumerate() {
        *count = tables.iter().map(|t| t[s]).sum();
    }
}

#[cfg(test)]
mod tests;
