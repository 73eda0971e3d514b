//! Age files that name their recipients: beside each X25519 stanza, the header carries one
//! `-> etcd-snapshot-fingerprint age1:<16 hex>` stanza per recipient (empty body), so a reader
//! that holds none of the keys can say which ones it needs without any record beside the file.
//!
//! Why in the header: an X25519 stanza is anonymous, and a file that travels alone (a delta
//! segment copied to a new host or uploaded to S3) has no `.encryption` record with it. The age
//! format lets identities skip stanzas they do not know (`age` 1.x and the age crate both do),
//! so these files stay standard: `age -d -i key` decrypts them. The header MAC covers the
//! stanzas, so once a key opens the file they are authenticated; before that they are only a
//! hint for the error message, parsed strictly (`fingerprints_in_header`, fuzzed). A passphrase
//! file gets none: age allows its scrypt stanza only alone, and that stanza names it already.

use std::collections::HashSet;

use age_core::format::{FileKey, Stanza};

use super::keys::Fingerprint;

/// The stanza type naming one recipient's fingerprint.
pub const FINGERPRINT_TAG: &str = "etcd-snapshot-fingerprint";
/// age's scrypt stanza type: a passphrase file.
const SCRYPT_TAG: &str = "scrypt";
/// The most header lines looked at: a header with more is no file this build wrote.
const MAX_HEADER_LINES: usize = 256;

/// A "recipient" that wraps nothing: it only adds the fingerprint stanza.
pub(super) struct FingerprintStanza(pub Fingerprint);

impl age::Recipient for FingerprintStanza {
    fn wrap_file_key(
        &self,
        _file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let stanza = Stanza {
            tag: FINGERPRINT_TAG.to_string(),
            args: vec![self.0.as_str().to_string()],
            body: Vec::new(),
        };
        // No labels, like X25519 recipients: the two combine freely.
        Ok((vec![stanza], HashSet::new()))
    }
}

/// The fingerprints an age header names (sorted, no duplicates): the fingerprint stanzas'
/// arguments, and the passphrase for an scrypt stanza. `prefix` is the start of the file (the
/// header fits in a few KiB); anything malformed is skipped, nothing here fails.
pub fn fingerprints_in_header(prefix: &[u8]) -> Vec<Fingerprint> {
    let Some(rest) = prefix.strip_prefix(super::stream::AGE_MAGIC) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in rest.split(|&b| b == b'\n').take(MAX_HEADER_LINES) {
        if line.starts_with(b"---") {
            break;
        }
        let Some(stanza) = line.strip_prefix(b"-> ") else {
            continue; // a stanza body line
        };
        let Ok(stanza) = std::str::from_utf8(stanza) else {
            continue;
        };
        let mut words = stanza.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some(FINGERPRINT_TAG), Some(arg), None) => {
                found.extend(Fingerprint::parse(arg).filter(|f| f != &Fingerprint::passphrase()))
            }
            (Some(SCRYPT_TAG), _, _) => found.push(Fingerprint::passphrase()),
            _ => {}
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::crypt::{EncryptingWriter, Recipients, decrypting_reader};

    use crate::crypt::keys::generated_identities as identities;

    fn encrypt_named(data: &[u8], recipients: &Recipients) -> Vec<u8> {
        let mut w = EncryptingWriter::new_named(Vec::new(), Some(recipients)).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn a_named_file_lists_its_recipients_and_still_decrypts() {
        let (one, two) = (identities(), identities());
        let mut recipients = one.recipients();
        recipients.extend(two.recipients());
        let file = encrypt_named(b"segment bytes", &recipients);
        assert_eq!(fingerprints_in_header(&file), recipients.fingerprints());
        for ids in [&one, &two] {
            let mut reader = decrypting_reader(&file[..], Some(ids), "f", &[]).unwrap();
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            assert_eq!(out, b"segment bytes");
        }
        // A stranger is told which keys the file needs, read from the file alone.
        let needed = fingerprints_in_header(&file);
        let err = decrypting_reader(&file[..], Some(&identities()), "f", &needed)
            .err()
            .unwrap()
            .to_string();
        for fp in recipients.fingerprints() {
            assert!(err.contains(fp.as_str()), "{err}");
        }
    }

    #[test]
    fn passphrase_files_and_plain_age_files_name_what_they_can() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "a long passphrase\n").unwrap();
        let recipients = Recipients::read_passphrase_file(&path).unwrap();
        let file = encrypt_named(b"x", &recipients);
        assert_eq!(fingerprints_in_header(&file), [Fingerprint::passphrase()]);
        // Unnamed (as snapshots are): no fingerprint stanza to find.
        let mut w = EncryptingWriter::new(Vec::new(), Some(&identities().recipients())).unwrap();
        w.write_all(b"x").unwrap();
        assert!(fingerprints_in_header(&w.finish().unwrap()).is_empty());
        assert!(fingerprints_in_header(b"not age").is_empty());
        // Malformed or hostile stanzas are skipped, never echoed.
        let hostile = b"age-encryption.org/v1\n-> etcd-snapshot-fingerprint ../../x\n\
            -> etcd-snapshot-fingerprint age1:0123456789abcdef extra\n\
            -> etcd-snapshot-fingerprint age1:0123456789abcdef\n--- mac\n\
            -> etcd-snapshot-fingerprint age1:fedcba9876543210\n";
        let found = fingerprints_in_header(hostile);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].as_str(), "age1:0123456789abcdef");
    }
}
