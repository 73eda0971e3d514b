//! Lower-case hex, the one encoding of digests everywhere: snapshot checksums, S3 metadata,
//! token hashes, CA hashes, bootstrap salts. A leaf: no `crate::` imports, so any layer may use it.

use std::fmt::Write as _;

/// `bytes` as lower-case hex, two characters per byte.
pub fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_case_and_zero_padded() {
        assert_eq!(encode(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(encode(&[]), "");
    }
}
