//! The seal of an age file: the SHA-256 of its header (version line, recipient stanzas and
//! MAC line) and of the payload nonce that follows it.
//!
//! Why it means something: the header MAC is keyed by the file key, and every payload chunk is
//! authenticated under a key derived from the file key and that nonce. Two files with the same
//! seal therefore share their payload key, and nobody without the file key (that is, without
//! an identity the file was encrypted to) can write a payload that authenticates under it.
//! So a file whose seal equals the one a save recorded after checking the plaintext's trailer,
//! and whose every chunk then authenticates, holds exactly the plaintext that save checked.
//! A restore uses that to skip a second SHA-256 pass over the plaintext
//! (`restore::direct::parallel`). Anyone can encrypt a new file to a public recipient, but it
//! gets a new file key, hence a new seal, and the full check.

use std::fs::File;
use std::io;

use sha2::{Digest, Sha256};

use super::stream::AGE_MAGIC;

/// The most of a file read to find its seal: headers this build writes take a few hundred
/// bytes per recipient.
const MAX_HEADER: usize = 64 * 1024;
/// age's payload nonce, right after the header.
const NONCE_LEN: usize = 16;

/// The seal of the age file starting with `prefix` (lower-case hex), or None when `prefix` is
/// not a binary age file whose header and nonce it holds whole. Pure.
pub fn seal_of(prefix: &[u8]) -> Option<String> {
    let body = prefix.strip_prefix(AGE_MAGIC)?;
    let mut at = AGE_MAGIC.len();
    // Stanza lines start with "-> " and their bodies are base64, so the first line starting
    // with "---" is the MAC line, as age's own parser reads it.
    for line in body.split(|&b| b == b'\n') {
        let end = at + line.len() + 1;
        if end > prefix.len() {
            return None;
        }
        if line.starts_with(b"--- ") {
            let sealed = prefix.get(..end + NONCE_LEN)?;
            return Some(hex_lower(&Sha256::digest(sealed)));
        }
        at = end;
    }
    None
}

/// The seal of the file `file` (read at offset 0, not moving its cursor); None when it is not
/// an age file with a header of a size this build writes.
pub fn read_seal(file: &File) -> io::Result<Option<String>> {
    let prefix = crate::fsutil::read_prefix(file, MAX_HEADER + NONCE_LEN)?;
    Ok(seal_of(&prefix))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::crypt::EncryptingWriter;
    use crate::crypt::keys::generated_identities;

    fn encrypted(data: &[u8]) -> Vec<u8> {
        let ids = generated_identities();
        let mut w = EncryptingWriter::new(Vec::new(), Some(&ids.recipients())).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    /// Where the payload starts: after the MAC line and the nonce.
    fn payload_start(file: &[u8]) -> usize {
        let mac = file.windows(5).position(|w| w == b"\n--- ").unwrap() + 1;
        mac + file[mac..].iter().position(|&b| b == b'\n').unwrap() + 1 + NONCE_LEN
    }

    #[test]
    fn the_seal_covers_the_header_and_nonce_and_nothing_after() {
        let file = encrypted(&[7u8; 100_000]);
        let seal = seal_of(&file).unwrap();
        assert_eq!(seal.len(), 64);
        let start = payload_start(&file);
        assert_eq!(seal_of(&file[..start]).as_deref(), Some(seal.as_str()));
        assert_eq!(seal_of(&file[..start - 1]), None, "the nonce cut short");
        let mut payload_changed = file.clone();
        payload_changed[start + 10] ^= 1;
        assert_eq!(seal_of(&payload_changed), Some(seal.clone()));
        for at in [3, 30, start - 20, start - 1] {
            let mut header_changed = file.clone();
            header_changed[at] ^= 1;
            assert_ne!(seal_of(&header_changed), Some(seal.clone()), "byte {at}");
        }
    }

    #[test]
    fn each_encryption_has_its_own_seal_and_other_bytes_have_none() {
        let data = [1u8; 1000];
        assert_ne!(seal_of(&encrypted(&data)), seal_of(&encrypted(&data)));
        assert_eq!(seal_of(b""), None);
        assert_eq!(seal_of(b"age-encryption.org/v1\n-> X25519 abc\n"), None);
        assert_eq!(seal_of(b"-----BEGIN AGE ENCRYPTED FILE-----\n"), None);
        assert_eq!(seal_of(&[0u8; 4096]), None);
    }

    #[test]
    fn read_seal_reads_the_file_without_moving_it() {
        use std::io::{Read, Seek};
        let file = encrypted(&[9u8; 70_000]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.age");
        std::fs::write(&path, &file).unwrap();
        let mut opened = File::open(&path).unwrap();
        let mut first = [0u8; 4];
        opened.read_exact(&mut first).unwrap();
        assert_eq!(read_seal(&opened).unwrap(), seal_of(&file));
        assert_eq!(opened.stream_position().unwrap(), 4);
        std::fs::write(&path, b"plain").unwrap();
        assert_eq!(read_seal(&File::open(&path).unwrap()).unwrap(), None);
    }
}
