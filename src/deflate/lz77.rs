//! Greedy LZ77 for Deflate: one hash probe per position over 4-byte prefixes, the longest match
//! at that one candidate taken whole, no search for a better one. This is the speed level:
//! each byte costs a hash, a load and a compare, and the dynamic Huffman codes that follow
//! win back much of what a deeper search would find (text the matcher cannot shorten still
//! costs only its entropy, where a fixed code spends 8 or 9 bits on every literal).
//!
//! A run of misses makes the scan step further (one more byte per `SKIP_AFTER` misses, as
//! fast LZ compressors do), so stretches with no repeats, such as random tokens inside
//! otherwise repetitive JSON, cost little time; their bytes still go out as literals, and the
//! first match after them resets the step.

use super::bits::BitWriter;
use super::block::{
    Codes, Freqs, MAX_DISTANCE, MAX_MATCH, distance_symbol, length_symbol, stored_bits,
    write_stored,
};

/// Hash table slots: 2^15 positions (128 KiB), which stays in a core's L2 cache.
const HASH_BITS: u32 = 15;
/// Shortest match taken: shorter ones hardly pay for their length and distance codes.
const MIN_TAKEN: usize = 4;
/// Misses per extra byte of step. Measured on 256 MiB of the benchmark's Kubernetes-like
/// objects (`examples/zip-throughput`): 16 gave 46.0% of the input in 0.68 CPU-s, 4 gave 46.8%
/// in 0.58, 2 gives 47.3% in 0.52, 1 gave 49.5% in 0.51. The save shares two cores with etcd,
/// so CPU is what its time is made of.
const SKIP_AFTER: u32 = 2;
/// Input bytes per Deflate block: codes follow the data's changes every 64 KiB, and a block's
/// header (about 80 bytes) costs a tenth of a percent.
const BLOCK_INPUT: usize = 64 * 1024;
/// A match token has this bit set; a literal token is the byte itself.
const MATCH_FLAG: u32 = 1 << 31;

/// The matcher's memory, kept from call to call.
pub(super) struct Matcher {
    table: Vec<u32>,
    tokens: Vec<u32>,
    buf: Vec<u8>,
}

impl Matcher {
    pub(super) fn new() -> Self {
        Self {
            table: vec![0; 1 << HASH_BITS],
            tokens: Vec::with_capacity(BLOCK_INPUT + MAX_MATCH),
            buf: Vec::new(),
        }
    }

    /// Writes `data` as dynamic (or, where smaller, stored) blocks, matching into `window` (the
    /// bytes before `data`, at most 32 KiB are used); the last block is final when `last`.
    pub(super) fn encode(&mut self, window: &[u8], data: &[u8], last: bool, w: &mut BitWriter) {
        let window = &window[window.len().saturating_sub(MAX_DISTANCE)..];
        // One contiguous buffer, the window then the data, lets a match start in the window and
        // run on into the data with plain indexing. The copy is a few percent of the encoding.
        self.buf.clear();
        self.buf.extend_from_slice(window);
        self.buf.extend_from_slice(data);
        self.table.fill(0);
        self.prime(window.len());
        let end = self.buf.len();
        let mut start = window.len();
        while start < end {
            let mut freqs = Freqs::new();
            self.tokens.clear();
            let stop = self.parse(start, (start + BLOCK_INPUT).min(end), &mut freqs);
            let final_block = last && stop == end;
            let codes = Codes::build(&freqs);
            if codes.block_bits(&freqs) < stored_bits(stop - start) {
                w.reserve((stop - start) * 9 / 8 + 1024);
                codes.start_block(w, final_block);
                write_tokens(&self.tokens, &codes, w);
                codes.end_block(w);
            } else {
                write_stored(w, &self.buf[start..stop], final_block);
            }
            start = stop;
        }
        if data.is_empty() && last {
            write_stored(w, &[], true);
        }
    }

    /// Enters every position of the window, so the first bytes of `data` can refer to it.
    fn prime(&mut self, window_len: usize) {
        let buf = &self.buf;
        for i in 0..window_len.min(buf.len().saturating_sub(3)) {
            self.table[hash(read_u32(buf, i))] = i as u32;
        }
    }

    /// Tokens from `i` until at least `target` (a match may run past it), counting their
    /// symbols; returns where the tokens stop.
    fn parse(&mut self, mut i: usize, target: usize, freqs: &mut Freqs) -> usize {
        let buf = &self.buf[..];
        let end = buf.len();
        // Matching reads 8 bytes at a time; the last few bytes go out as literals.
        let scan_end = end.saturating_sub(8);
        let mut misses = 0u32;
        while i < target {
            if i >= scan_end {
                literals(&buf[i..i + 1], &mut self.tokens, freqs);
                i += 1;
                continue;
            }
            let current = read_u32(buf, i);
            let slot = &mut self.table[hash(current)];
            let candidate = *slot as usize;
            *slot = i as u32;
            let dist = i - candidate;
            if (1..=MAX_DISTANCE).contains(&dist) && read_u32(buf, candidate) == current {
                let longest = (end - i).min(MAX_MATCH);
                let len = MIN_TAKEN
                    + common_prefix(
                        buf,
                        candidate + MIN_TAKEN,
                        i + MIN_TAKEN,
                        longest - MIN_TAKEN,
                    );
                self.tokens
                    .push(MATCH_FLAG | (len as u32) << 16 | dist as u32);
                freqs.lit[usize::from(length_symbol(len).symbol)] += 1;
                freqs.dist[usize::from(distance_symbol(dist).symbol)] += 1;
                i += len;
                misses = 0;
            } else {
                let step = (1 + (misses / SKIP_AFTER) as usize).min(end - i);
                literals(&buf[i..i + step], &mut self.tokens, freqs);
                i += step;
                misses += 1;
            }
        }
        i
    }
}

#[inline(always)]
fn literals(bytes: &[u8], tokens: &mut Vec<u32>, freqs: &mut Freqs) {
    for &b in bytes {
        tokens.push(u32::from(b));
        freqs.lit[usize::from(b)] += 1;
    }
}

/// The block's body: each token in its code, with the extra bits of lengths and distances.
fn write_tokens(tokens: &[u32], codes: &Codes, w: &mut BitWriter) {
    for &token in tokens {
        if token & MATCH_FLAG == 0 {
            let code = codes.lit[token as usize];
            w.put(u32::from(code.bits), u32::from(code.len));
            continue;
        }
        let len = ((token >> 16) & 0x7FFF) as usize;
        let dist = (token & 0xFFFF) as usize;
        let ls = length_symbol(len);
        let lc = codes.lit[usize::from(ls.symbol)];
        w.put(
            u32::from(lc.bits) | u32::from(ls.extra) << lc.len,
            u32::from(lc.len) + u32::from(ls.extra_bits),
        );
        let ds = distance_symbol(dist);
        let dc = codes.dist[usize::from(ds.symbol)];
        w.put(
            u32::from(dc.bits) | u32::from(ds.extra) << dc.len,
            u32::from(dc.len) + u32::from(ds.extra_bits),
        );
    }
}

#[inline(always)]
fn hash(four: u32) -> usize {
    (four.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

#[inline(always)]
fn read_u32(buf: &[u8], i: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&buf[i..i + 4]);
    u32::from_le_bytes(word)
}

#[inline(always)]
fn read_u64(buf: &[u8], i: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&buf[i..i + 8]);
    u64::from_le_bytes(word)
}

/// How many bytes from `a` equal those from `b`, up to `max` (`b + max` within `buf`; `a < b`).
#[inline(always)]
fn common_prefix(buf: &[u8], a: usize, b: usize, max: usize) -> usize {
    let mut n = 0;
    while n + 8 <= max {
        let diff = read_u64(buf, a + n) ^ read_u64(buf, b + n);
        if diff != 0 {
            return n + (diff.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < max && buf[a + n] == buf[b + n] {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_stops_at_the_first_difference_and_at_max() {
        let buf = b"abcdefghijklmnopabcdefghijklmnoXabcdefghij";
        assert_eq!(common_prefix(buf, 0, 16, 20), 15);
        assert_eq!(common_prefix(buf, 0, 16, 9), 9);
        assert_eq!(common_prefix(buf, 0, 32, 10), 10);
        assert_eq!(common_prefix(buf, 1, 16, 5), 0);
    }
}
