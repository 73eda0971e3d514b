//! One Deflate block (RFC 1951 3.2): the symbols of lengths and distances, a dynamic block's
//! header (its code lengths, run-length coded and themselves Huffman coded), the body, and
//! stored blocks. A block is written dynamic only when that is smaller than storing its bytes.

use super::bits::BitWriter;
use super::huffman::{Code, canonical_codes, code_lengths};

pub(super) const LITLEN_SYMBOLS: usize = 286;
pub(super) const DIST_SYMBOLS: usize = 30;
const END_OF_BLOCK: usize = 256;
/// The longest code Deflate allows for literals, lengths and distances, and for code lengths.
const MAX_CODE: u32 = 15;
const MAX_CODE_LENGTH_CODE: u32 = 7;
/// The largest stored block.
const STORED_MAX: usize = 65_535;
/// The order code-length code lengths are sent in.
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

pub(super) const MIN_MATCH: usize = 3;
pub(super) const MAX_MATCH: usize = 258;
pub(super) const MAX_DISTANCE: usize = 32_768;

/// A symbol and the extra bits that follow it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Symbol {
    pub symbol: u16,
    pub extra_bits: u8,
    pub extra: u16,
}

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// Length symbols by `length - 3`.
static LENGTHS: [Symbol; 256] = length_table();
/// Distance symbol indices: by `distance - 1` below 256, else by `(distance - 1) >> 7` from 256.
static DISTANCES: [u8; 512] = distance_table();

const fn length_table() -> [Symbol; 256] {
    let mut table = [Symbol {
        symbol: 0,
        extra_bits: 0,
        extra: 0,
    }; 256];
    let mut code = 0;
    while code < 29 {
        let base = LENGTH_BASE[code] as usize;
        let span = if code == 28 {
            1
        } else {
            1 << LENGTH_EXTRA[code]
        };
        let mut k = 0;
        while k < span && base + k <= MAX_MATCH {
            table[base + k - MIN_MATCH] = Symbol {
                symbol: 257 + code as u16,
                extra_bits: LENGTH_EXTRA[code],
                extra: k as u16,
            };
            k += 1;
        }
        code += 1;
    }
    table
}

const fn distance_table() -> [u8; 512] {
    let mut table = [0u8; 512];
    let mut code = 0;
    while code < 30 {
        let base = DIST_BASE[code] as usize;
        let span = 1usize << DIST_EXTRA[code];
        let mut d = base;
        while d < base + span {
            let slot = if d - 1 < 256 {
                d - 1
            } else {
                256 + ((d - 1) >> 7)
            };
            table[slot] = code as u8;
            d += 1;
        }
        code += 1;
    }
    table
}

/// The symbol of a match length (3..=258).
#[inline(always)]
pub(super) fn length_symbol(len: usize) -> Symbol {
    LENGTHS[len - MIN_MATCH]
}

/// The symbol of a match distance (1..=32768).
#[inline(always)]
pub(super) fn distance_symbol(dist: usize) -> Symbol {
    let slot = if dist <= 256 {
        dist - 1
    } else {
        256 + ((dist - 1) >> 7)
    };
    let code = usize::from(DISTANCES[slot]);
    Symbol {
        symbol: code as u16,
        extra_bits: DIST_EXTRA[code],
        extra: (dist - usize::from(DIST_BASE[code])) as u16,
    }
}

/// Symbol counts of one block.
pub(super) struct Freqs {
    pub lit: [u32; LITLEN_SYMBOLS],
    pub dist: [u32; DIST_SYMBOLS],
}

impl Freqs {
    pub(super) fn new() -> Self {
        Self {
            lit: [0; LITLEN_SYMBOLS],
            dist: [0; DIST_SYMBOLS],
        }
    }
}

/// A block's codes and the header that sends them.
pub(super) struct Codes {
    pub lit: [Code; LITLEN_SYMBOLS],
    pub dist: [Code; DIST_SYMBOLS],
    /// The header after the block type: counts, code-length code, run-length coded lengths.
    header: Vec<(u32, u32)>,
}

impl Codes {
    /// Codes for `freqs` plus one end-of-block symbol.
    pub(super) fn build(freqs: &Freqs) -> Self {
        let mut lit_freq = freqs.lit;
        lit_freq[END_OF_BLOCK] = 1;
        let mut lit_len = [0u8; LITLEN_SYMBOLS];
        let mut dist_len = [0u8; DIST_SYMBOLS];
        code_lengths(&lit_freq, MAX_CODE, &mut lit_len);
        code_lengths(&freqs.dist, MAX_CODE, &mut dist_len);
        let mut codes = Self {
            lit: [Code::default(); LITLEN_SYMBOLS],
            dist: [Code::default(); DIST_SYMBOLS],
            header: header_fields(&lit_len, &dist_len),
        };
        canonical_codes(&lit_len, &mut codes.lit);
        canonical_codes(&dist_len, &mut codes.dist);
        codes
    }

    /// Bits of the whole dynamic block: type, header, body and end of block.
    pub(super) fn block_bits(&self, freqs: &Freqs) -> u64 {
        let header: u64 = self.header.iter().map(|(_, len)| u64::from(*len)).sum();
        let lit: u64 = (0..LITLEN_SYMBOLS)
            .map(|s| {
                let extra = if s > END_OF_BLOCK {
                    LENGTH_EXTRA[s - 257]
                } else {
                    0
                };
                u64::from(freqs.lit[s]) * u64::from(self.lit[s].len + extra)
            })
            .sum();
        let dist: u64 = (0..DIST_SYMBOLS)
            .map(|s| u64::from(freqs.dist[s]) * u64::from(self.dist[s].len + DIST_EXTRA[s]))
            .sum();
        3 + header + lit + dist + u64::from(self.lit[END_OF_BLOCK].len)
    }

    /// The block's type bits and header.
    pub(super) fn start_block(&self, w: &mut BitWriter, last: bool) {
        w.put(u32::from(last) | 0b10 << 1, 3);
        for &(value, len) in &self.header {
            w.put(value, len);
        }
    }

    pub(super) fn end_block(&self, w: &mut BitWriter) {
        let eob = self.lit[END_OF_BLOCK];
        w.put(u32::from(eob.bits), u32::from(eob.len));
    }
}

/// The fields of a dynamic header: HLIT, HDIST, HCLEN, the code-length code's lengths, then the
/// literal/length and distance code lengths as one run-length coded sequence.
fn header_fields(lit_len: &[u8; LITLEN_SYMBOLS], dist_len: &[u8; DIST_SYMBOLS]) -> Vec<(u32, u32)> {
    let hlit = 257.max(lit_len.iter().rposition(|&l| l > 0).map_or(0, |p| p + 1));
    let hdist = 1.max(dist_len.iter().rposition(|&l| l > 0).map_or(0, |p| p + 1));
    let sequence: Vec<u8> = lit_len[..hlit]
        .iter()
        .chain(&dist_len[..hdist])
        .copied()
        .collect();
    let runs = run_length_code(&sequence);
    let mut cl_freq = [0u32; 19];
    for &(symbol, _) in &runs {
        cl_freq[usize::from(symbol)] += 1;
    }
    let mut cl_len = [0u8; 19];
    code_lengths(&cl_freq, MAX_CODE_LENGTH_CODE, &mut cl_len);
    let mut cl_code = [Code::default(); 19];
    canonical_codes(&cl_len, &mut cl_code);
    let hclen = 4.max(
        CODE_LENGTH_ORDER
            .iter()
            .rposition(|&s| cl_len[s] > 0)
            .map_or(0, |p| p + 1),
    );
    let mut fields = Vec::with_capacity(3 + hclen + runs.len());
    fields.push(((hlit - 257) as u32, 5));
    fields.push(((hdist - 1) as u32, 5));
    fields.push(((hclen - 4) as u32, 4));
    fields.extend(
        CODE_LENGTH_ORDER[..hclen]
            .iter()
            .map(|&s| (u32::from(cl_len[s]), 3)),
    );
    for (symbol, extra) in runs {
        let code = cl_code[usize::from(symbol)];
        let extra_bits = match symbol {
            16 => 2,
            17 => 3,
            18 => 7,
            _ => 0,
        };
        fields.push((
            u32::from(code.bits) | u32::from(extra) << code.len,
            u32::from(code.len) + extra_bits,
        ));
    }
    fields
}

/// Code lengths as code-length symbols: 0-15 literally, 16 repeats the previous length 3-6
/// times, 17 and 18 give 3-10 and 11-138 zeros; each with its extra-bits value.
fn run_length_code(lengths: &[u8]) -> Vec<(u8, u8)> {
    let mut out = Vec::with_capacity(lengths.len());
    let mut i = 0;
    while i < lengths.len() {
        let value = lengths[i];
        let run = lengths[i..].iter().take_while(|&&l| l == value).count();
        let mut left = run;
        if value == 0 {
            while left >= 11 {
                let n = left.min(138);
                out.push((18, (n - 11) as u8));
                left -= n;
            }
            if left >= 3 {
                out.push((17, (left - 3) as u8));
                left = 0;
            }
        } else {
            out.push((value, 0));
            left -= 1;
            while left >= 3 {
                let n = left.min(6);
                out.push((16, (n - 3) as u8));
                left -= n;
            }
        }
        out.extend(std::iter::repeat_n((value, 0), left));
        i += run;
    }
    out
}

/// Bits of `len` bytes as stored blocks, each with its header and worst-case padding.
pub(super) fn stored_bits(len: usize) -> u64 {
    let blocks = len.div_ceil(STORED_MAX).max(1) as u64;
    8 * len as u64 + blocks * (3 + 7 + 32)
}

/// `data` as stored blocks of up to 65,535 bytes, the last one final when `last`.
pub(super) fn write_stored(w: &mut BitWriter, data: &[u8], last: bool) {
    let blocks = data.len().div_ceil(STORED_MAX).max(1);
    let mut chunks = data.chunks(STORED_MAX);
    for i in 0..blocks {
        let chunk = chunks.next().unwrap_or(&[]);
        w.put(u32::from(last && i + 1 == blocks), 3);
        w.align();
        let len = chunk.len() as u16;
        let mut head = [0u8; 4];
        head[..2].copy_from_slice(&len.to_le_bytes());
        head[2..].copy_from_slice(&(!len).to_le_bytes());
        w.bytes(&head);
        w.bytes(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `symbol_of` gives each value its (symbol, extra bits, extra value) of RFC 1951 3.2.5.
    fn assert_symbols(symbol_of: fn(usize) -> Symbol, cases: &[(usize, u16, u8, u16)]) {
        for &(value, symbol, extra_bits, extra) in cases {
            let s = symbol_of(value);
            let got = (s.symbol, s.extra_bits, s.extra);
            assert_eq!(got, (symbol, extra_bits, extra), "value {value}");
        }
    }

    #[test]
    fn length_symbols_match_rfc_1951() {
        assert_symbols(
            length_symbol,
            &[
                (3, 257, 0, 0),
                (10, 264, 0, 0),
                (11, 265, 1, 0),
                (12, 265, 1, 1),
                (19, 269, 2, 0),
                (227, 284, 5, 0),
                (257, 284, 5, 30),
                (258, 285, 0, 0),
            ],
        );
    }

    #[test]
    fn distance_symbols_match_rfc_1951() {
        assert_symbols(
            distance_symbol,
            &[
                (1, 0, 0, 0),
                (4, 3, 0, 0),
                (5, 4, 1, 0),
                (6, 4, 1, 1),
                (256, 15, 6, 63),
                (257, 16, 7, 0),
                (385, 17, 7, 0),
                (24_577, 29, 13, 0),
                (32_768, 29, 13, 8191),
            ],
        );
        for dist in 1..=MAX_DISTANCE {
            let s = distance_symbol(dist);
            let base = usize::from(DIST_BASE[usize::from(s.symbol)]);
            assert_eq!(base + usize::from(s.extra), dist);
            assert!(usize::from(s.extra) < 1 << s.extra_bits);
        }
    }

    #[test]
    fn run_length_coding_uses_every_repeat_form() {
        let mut lengths = vec![8u8; 10];
        lengths.extend([0u8; 150]);
        lengths.extend([5, 0, 0, 0, 0, 7, 7]);
        let runs = run_length_code(&lengths);
        assert_eq!(
            runs,
            vec![
                (8, 0),
                (16, 3),
                (16, 0), // 1 + 6 + 3 eights
                (18, 127),
                (18, 1), // 138 + 12 zeros
                (5, 0),
                (17, 1),
                (7, 0),
                (7, 0),
            ]
        );
        let decoded: usize = runs
            .iter()
            .map(|&(s, e)| match s {
                16 => 3 + usize::from(e),
                17 => 3 + usize::from(e),
                18 => 11 + usize::from(e),
                _ => 1,
            })
            .sum();
        assert_eq!(decoded, lengths.len());
    }
}
