//! Length-limited Huffman codes in Deflate's canonical form.
//!
//! Lengths come from the two-queue construction over the symbols sorted by frequency (linear
//! after the sort), then any code longer than the limit is shortened and the Kraft sum brought
//! back to exactly one by moving codes one level down the tree; the shortest lengths go to
//! the most frequent symbols. Every code this produces is complete, as inflaters require (zlib
//! refuses an incomplete literal/length or code-length code), even with one symbol or none.

/// A symbol's code, bit-reversed for Deflate's lowest-bit-first order, and its length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Code {
    pub bits: u16,
    pub len: u8,
}

/// Writes the code length of every symbol of `freqs` into `lengths` (0 for unused symbols),
/// none above `limit`. Fewer than two used symbols get a second one (the lowest unused): a
/// complete code needs two, and an unused code costs nothing but its header entry.
pub(super) fn code_lengths(freqs: &[u32], limit: u32, lengths: &mut [u8]) {
    debug_assert_eq!(freqs.len(), lengths.len());
    debug_assert!(freqs.len() >= 2 && freqs.len() <= 1 << limit);
    lengths.fill(0);
    let mut used: Vec<(u32, u16)> = freqs
        .iter()
        .enumerate()
        .filter(|(_, f)| **f > 0)
        .map(|(s, f)| (*f, s as u16))
        .collect();
    let unused = (0..freqs.len()).filter(|&s| freqs[s] == 0);
    let missing = 2usize.saturating_sub(used.len());
    used.extend(unused.take(missing).map(|s| (0, s as u16)));
    used.sort_unstable();
    let depths = tree_depths(&used);
    let per_length = limited_counts(&depths, limit);
    // The least frequent symbols (first in `used`) take the longest codes.
    let mut symbols = used.iter();
    for len in (1..=limit).rev() {
        for _ in 0..per_length[len as usize] {
            if let Some((_, s)) = symbols.next() {
                lengths[usize::from(*s)] = len as u8;
            }
        }
    }
}

/// Depth of each leaf in a Huffman tree over `sorted` (ascending weights), by the two-queue
/// method: leaves and merged nodes are each taken in increasing weight order.
fn tree_depths(sorted: &[(u32, u16)]) -> Vec<u32> {
    let n = sorted.len();
    let nodes = 2 * n - 1;
    let mut weight: Vec<u64> = Vec::with_capacity(nodes);
    weight.extend(sorted.iter().map(|(f, _)| u64::from(*f)));
    weight.resize(nodes, 0);
    let mut parent = vec![0usize; nodes];
    let (mut leaf, mut merged, mut next) = (0, n, n);
    for _ in 0..n - 1 {
        let mut take = || {
            if leaf < n && (merged >= next || weight[leaf] <= weight[merged]) {
                leaf += 1;
                leaf - 1
            } else {
                merged += 1;
                merged - 1
            }
        };
        let (a, b) = (take(), take());
        weight[next] = weight[a] + weight[b];
        parent[a] = next;
        parent[b] = next;
        next += 1;
    }
    // A merged node's parent is made after it, so walking down from the root (the last node)
    // always finds the parent's depth set.
    let mut depth = vec![0u32; nodes];
    for node in (0..nodes - 1).rev() {
        depth[node] = depth[parent[node]] + 1;
    }
    depth.truncate(n);
    depth
}

/// How many codes of each length (index 1..=limit) once the depths are limited: deeper codes
/// are clamped to `limit`, which makes the Kraft sum too large; each step then removes one
/// code at `limit` and splits a shorter leaf into two one level down, which lowers the sum by
/// one unit of 2^-limit and keeps the number of codes, until the sum is exactly one.
fn limited_counts(depths: &[u32], limit: u32) -> Vec<u32> {
    let mut counts = vec![0u32; limit as usize + 1];
    for &d in depths {
        counts[d.min(limit) as usize] += 1;
    }
    let full = 1u64 << limit;
    let mut kraft: u64 = (1..=limit)
        .map(|len| u64::from(counts[len as usize]) << (limit - len))
        .sum();
    // Clamping moved each clamped code by less than one unit, so while the sum is too large
    // there is a code at `limit` to remove.
    while kraft > full {
        counts[limit as usize] -= 1;
        if let Some(len) = (1..limit).rev().find(|&len| counts[len as usize] > 0) {
            counts[len as usize] -= 1;
            counts[len as usize + 1] += 2;
        }
        kraft -= 1;
    }
    counts
}

/// The canonical codes (RFC 1951 3.2.2) of `lengths`, bit-reversed.
pub(super) fn canonical_codes(lengths: &[u8], codes: &mut [Code]) {
    debug_assert_eq!(lengths.len(), codes.len());
    let mut per_length = [0u16; 16];
    for &len in lengths {
        per_length[usize::from(len)] += 1;
    }
    per_length[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for len in 1..16 {
        code = (code + per_length[len - 1]) << 1;
        next[len] = code;
    }
    for (slot, &len) in codes.iter_mut().zip(lengths) {
        *slot = if len == 0 {
            Code::default()
        } else {
            let value = next[usize::from(len)];
            next[usize::from(len)] += 1;
            Code {
                bits: value.reverse_bits() >> (16 - u32::from(len)),
                len,
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths_of(freqs: &[u32], limit: u32) -> Vec<u8> {
        let mut lengths = vec![0u8; freqs.len()];
        code_lengths(freqs, limit, &mut lengths);
        lengths
    }

    fn kraft(lengths: &[u8], limit: u32) -> u64 {
        lengths
            .iter()
            .filter(|l| **l > 0)
            .map(|l| 1u64 << (limit - u32::from(*l)))
            .sum()
    }

    #[test]
    fn a_textbook_distribution_gets_its_huffman_lengths() {
        // Weights 1, 1, 2, 4: depths 3, 3, 2, 1.
        assert_eq!(lengths_of(&[4, 2, 1, 1], 15), vec![1, 2, 3, 3]);
    }

    #[test]
    fn one_symbol_or_none_still_gets_a_complete_code_of_two() {
        assert_eq!(lengths_of(&[0, 0, 7, 0], 15), vec![1, 0, 1, 0]);
        assert_eq!(lengths_of(&[0, 0, 0], 15), vec![1, 1, 0]);
    }

    #[test]
    fn skewed_frequencies_are_limited_and_stay_complete() {
        // Fibonacci weights make a tree as deep as there are symbols.
        let mut freqs = vec![1u32, 1];
        while freqs.len() < 30 {
            let n = freqs.len();
            freqs.push(freqs[n - 1] + freqs[n - 2]);
        }
        // Unlimited, the rarest two would be 29 bits long.
        assert_eq!(lengths_of(&freqs, 15)[0], 15);
        for limit in [7, 9, 15] {
            let lengths = lengths_of(&freqs, limit);
            assert!(lengths.iter().all(|&l| l >= 1 && u32::from(l) <= limit));
            assert_eq!(kraft(&lengths, limit), 1 << limit, "limit {limit}");
            // More frequent symbols never get longer codes.
            for i in 1..freqs.len() {
                assert!(lengths[i] <= lengths[i - 1]);
            }
        }
    }

    #[test]
    fn every_alphabet_size_and_spread_is_complete() {
        let mut seed = 0x1234_5678_u64;
        for n in 2..=286usize {
            let freqs: Vec<u32> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Many zeros, and weights over six orders of magnitude.
                    if seed.is_multiple_of(5) {
                        0
                    } else {
                        1 + (seed >> 40) as u32 % (1 << (seed % 20))
                    }
                })
                .collect();
            let lengths = lengths_of(&freqs, 15);
            assert_eq!(kraft(&lengths, 15), 1 << 15, "n {n}");
            if freqs.iter().filter(|f| **f > 0).count() >= 2 {
                for (f, l) in freqs.iter().zip(&lengths) {
                    assert_eq!(
                        *f > 0,
                        *l > 0,
                        "n {n}: a used symbol has a code, no other does"
                    );
                }
            }
        }
    }

    #[test]
    fn canonical_codes_follow_the_rfc_example() {
        // RFC 1951 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) give codes 010, 011, 100, 101,
        // 110, 00, 1110, 1111.
        let lengths = [3u8, 3, 3, 3, 3, 2, 4, 4];
        let mut codes = [Code::default(); 8];
        canonical_codes(&lengths, &mut codes);
        let expected = [0b010u16, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111];
        for ((code, len), want) in codes.iter().zip(lengths).zip(expected) {
            assert_eq!(code.len, len);
            assert_eq!(code.bits.reverse_bits() >> (16 - u32::from(len)), want);
        }
    }
}
