//! Deflate's bit order: fields are packed from the least significant bit of each byte up, and
//! Huffman codes go out with their first bit lowest (`huffman::canonical_codes` stores them
//! reversed for that). A 64-bit accumulator lets a caller add up to 32 bits at a time and only
//! touches the output vector once every 32 bits.

/// Appends bit fields to a byte vector.
pub(super) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    bits: u64,
    /// Bits held in `bits`, always below 32 between calls.
    count: u32,
}

impl<'a> BitWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            bits: 0,
            count: 0,
        }
    }

    /// Adds the low `len` bits of `value` (`len` at most 32; higher bits of `value` zero).
    #[inline(always)]
    pub(super) fn put(&mut self, value: u32, len: u32) {
        debug_assert!(len <= 32 && (len == 32 || value >> len == 0));
        self.bits |= u64::from(value) << self.count;
        self.count += len;
        if self.count >= 32 {
            self.out
                .extend_from_slice(&(self.bits as u32).to_le_bytes());
            self.bits >>= 32;
            self.count -= 32;
        }
    }

    /// Adds two fields of at most 16 bits each with one check of the accumulator: the hot path
    /// of literal-only coding.
    #[inline(always)]
    pub(super) fn put_pair(&mut self, first: (u32, u32), second: (u32, u32)) {
        debug_assert!(first.1 <= 16 && second.1 <= 16);
        self.bits |= u64::from(first.0) << self.count;
        self.count += first.1;
        self.bits |= u64::from(second.0) << self.count;
        self.count += second.1;
        if self.count >= 32 {
            self.out
                .extend_from_slice(&(self.bits as u32).to_le_bytes());
            self.bits >>= 32;
            self.count -= 32;
        }
    }

    /// Pads with zero bits to the next byte boundary and writes out everything held.
    pub(super) fn align(&mut self) {
        let bytes = self.count.div_ceil(8) as usize;
        self.out
            .extend_from_slice(&self.bits.to_le_bytes()[..bytes]);
        self.bits = 0;
        self.count = 0;
    }

    /// Bytes at the byte boundary: only after `align`.
    pub(super) fn bytes(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.count, 0);
        self.out.extend_from_slice(bytes);
    }

    /// Makes room for `additional` more output bytes, so the hot loops do not reallocate.
    pub(super) fn reserve(&mut self, additional: usize) {
        self.out.reserve(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_pack_from_the_lowest_bit_up() {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.put(0b1, 1);
        w.put(0b10, 2);
        w.put(0b11111, 5);
        w.put(0xABCD, 16);
        w.put_pair((0x3, 2), (0x1, 3));
        w.align();
        assert_eq!(out, vec![0b1111_1101, 0xCD, 0xAB, 0b0000_0111]);
    }

    #[test]
    fn thirty_two_bit_fields_and_alignment_of_a_whole_byte() {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.put(0xDEAD_BEEF, 32);
        w.put(0xFF, 8);
        w.align();
        w.bytes(&[1, 2]);
        assert_eq!(out, vec![0xEF, 0xBE, 0xAD, 0xDE, 0xFF, 1, 2]);
    }
}
