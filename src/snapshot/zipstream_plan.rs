//! Which Deflate encoding each stretch of a block gets, decided from a cheap look at a sample of
//! every segment: its byte histogram (what Huffman codes alone would make of it) and how many of
//! its bytes repeat an earlier string of at least 8 bytes (what LZ77 matching adds).
//!
//! Matching is where Deflate spends its time: the greedy matcher (`crate::deflate`) runs at
//! about a third of the speed of Huffman codes alone, and on text without repeats (random
//! tokens, certificates, hex) it finds nothing to pay for that. So data with repeats keeps
//! LZ77, text without them goes out as Huffman-only blocks, and bytes no code shrinks
//! (encrypted payloads, compressed data) as stored blocks. Pure functions: no I/O, no
//! compression.
//!
//! The estimate of a matched run prices its literals at a fixed code's 8-9 bits, as the
//! encoders before this project's own did; the dynamic codes now used spend only the
//! literals' entropy. Keeping the dearer price leans the choice towards Huffman-only wherever
//! repeats are few, which is where it is several times faster and its output within a few
//! percent of matching's.

use std::borrow::Cow;
use std::ops::Range;

/// Bytes judged together. Small enough to follow a database whose values change kind every
/// few pages, large enough that a run of one encoding is long and the samples are a few
/// percent of the data.
pub(super) const SEGMENT: usize = 64 * 1024;
/// Bytes sampled at the start and again at the middle of a segment. The second sample can
/// match strings of the first, as LZ77 would across the segment.
const SAMPLE: usize = 2048;
/// Shortest repeat counted: shorter matches hardly pay for their length and distance codes.
const MIN_REPEAT: usize = 8;
/// Deflate's longest match.
const MAX_MATCH: usize = 258;
/// What one match costs in a fixed code: a 7-8 bit length code with up to 5 extra bits and a
/// 5-bit distance code with up to 13 extra bits.
const MATCH_BITS: f64 = 24.0;
/// A Huffman-only block pays for its code tree (about 80 bytes per 32 Ki symbols) and can
/// never spend less than one bit on a byte.
const HUFFMAN_TREE_BITS: f64 = 0.02;
/// Stored blocks keep every byte as it is (plus 5 header bytes per 64 KiB).
const STORED_BITS: f64 = 8.0;
/// A coding must save this much per byte over storing to be worth its time.
const MIN_SAVING: f64 = 0.1;
/// Matching is kept unless Huffman-only is smaller by this much per byte: LZ77 is what the
/// archive always used, and its estimate here is pessimistic (it ignores matches of 4 to 7
/// bytes, which the matcher also takes).
const MATCH_BIAS: f64 = 0.5;

/// How a stretch of a block is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// LZ77 and Huffman codes at the configured level, primed with the preceding 32 KiB.
    Matched,
    /// Dynamic Huffman codes of the literals, no matching.
    HuffmanOnly,
    /// Stored blocks: the bytes as they are.
    Stored,
}

/// One stretch of a block and its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    pub range: Range<usize>,
    pub encoding: Encoding,
}

/// Estimated output bits per input byte of a sample under each encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Estimate {
    pub huffman_only: f64,
    pub matched: f64,
}

/// The runs that encode `block`: every `segment` bytes judged on its own, neighbours with the
/// same encoding merged. Level 0 stores everything; an empty block is one empty run.
pub(super) fn plan(block: &[u8], level: u32, segment: usize) -> Vec<Run> {
    let segment = segment.max(1);
    let mut runs: Vec<Run> = Vec::with_capacity(4);
    for (i, part) in block.chunks(segment).enumerate() {
        let encoding = if level == 0 {
            Encoding::Stored
        } else {
            decide(estimate(&sample(part)))
        };
        let range = i * segment..i * segment + part.len();
        match runs.last_mut() {
            Some(run) if run.encoding == encoding => run.range.end = range.end,
            _ => runs.push(Run { range, encoding }),
        }
    }
    if runs.is_empty() {
        let encoding = if level == 0 {
            Encoding::Stored
        } else {
            Encoding::Matched
        };
        runs.push(Run {
            range: 0..0,
            encoding,
        });
    }
    runs
}

/// The encoding with the smallest estimate, leaning towards matching against Huffman-only (see
/// `MATCH_BIAS`); a coding must shrink the data by `MIN_SAVING` to beat storing it.
pub(super) fn decide(estimate: Estimate) -> Encoding {
    let worth_coding = |bits: f64| bits + MIN_SAVING < STORED_BITS;
    if worth_coding(estimate.matched) && estimate.matched <= estimate.huffman_only + MATCH_BIAS {
        Encoding::Matched
    } else if worth_coding(estimate.huffman_only) {
        Encoding::HuffmanOnly
    } else {
        Encoding::Stored
    }
}

/// What a segment is judged by: all of it when short, else its start and its middle.
pub(super) fn sample(segment: &[u8]) -> Cow<'_, [u8]> {
    if segment.len() <= 2 * SAMPLE {
        return Cow::Borrowed(segment);
    }
    let middle = segment.len() / 2;
    Cow::Owned([&segment[..SAMPLE], &segment[middle..middle + SAMPLE]].concat())
}

/// Estimated bits per byte of `sample` as Huffman-only and as LZ77 priced in a fixed code.
pub(super) fn estimate(sample: &[u8]) -> Estimate {
    if sample.is_empty() {
        return Estimate {
            huffman_only: 0.0,
            matched: 0.0,
        };
    }
    let mut counts = [0u32; 256];
    for &b in sample {
        counts[usize::from(b)] += 1;
    }
    let n = sample.len() as f64;
    // Repeats are counted in the second half only: the first half is the history it can refer
    // to, as a compressor in the middle of a block has history, so the estimate is not that of
    // a cold start.
    let measured = sample.len() - sample.len() / 2;
    let (covered, matches) = repeats(sample, sample.len() / 2);
    // Literals 0-143 take 8 bits in the fixed code, 144-255 take 9.
    let high: u32 = counts[144..].iter().sum();
    let literal_bits = 8.0 + f64::from(high) / n;
    let literals = (measured - covered) as f64;
    Estimate {
        huffman_only: entropy(&counts, n).max(1.0) + HUFFMAN_TREE_BITS,
        matched: (literals * literal_bits + matches as f64 * MATCH_BITS) / measured as f64,
    }
}

/// Order-0 entropy in bits per byte, with the Miller-Madow correction: a sample of a few KiB
/// sees too few of 256 symbols' frequencies to reach random data's 8 bits otherwise.
fn entropy(counts: &[u32; 256], n: f64) -> f64 {
    let mut bits = 0.0;
    let mut seen = 0u32;
    for &c in counts.iter().filter(|&&c| c > 0) {
        let p = f64::from(c) / n;
        bits -= p * p.log2();
        seen += 1;
    }
    bits + f64::from(seen.saturating_sub(1)) / (2.0 * n * std::f64::consts::LN_2)
}

/// A greedy parse of `sample` for repeats of at least `MIN_REPEAT` bytes, one candidate per
/// hash slot as a fast compressor keeps: (bytes covered by matches, matches) from `from` on;
/// the bytes before `from` are only remembered.
fn repeats(sample: &[u8], from: usize) -> (usize, usize) {
    const BITS: u32 = 12;
    // Positions + 1 (0 is empty); samples are at most 2 * SAMPLE bytes long.
    let mut table = [0u16; 1 << BITS];
    let (mut covered, mut matches, mut i) = (0, 0, 0);
    while i + MIN_REPEAT <= sample.len() {
        let mut key = [0u8; MIN_REPEAT];
        key.copy_from_slice(&sample[i..i + MIN_REPEAT]);
        let hash = u64::from_le_bytes(key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BITS);
        let slot = &mut table[hash as usize];
        let candidate = usize::from(*slot);
        *slot = u16::try_from(i + 1).unwrap_or(0);
        if candidate > 0 && i >= from {
            let len = sample[candidate - 1..]
                .iter()
                .zip(&sample[i..])
                .take(MAX_MATCH)
                .take_while(|(a, b)| a == b)
                .count();
            if len >= MIN_REPEAT {
                covered += len;
                matches += 1;
                i += len;
                continue;
            }
        }
        i += 1;
    }
    (covered, matches)
}

#[cfg(test)]
#[path = "zipstream_plan_tests.rs"]
mod tests;
