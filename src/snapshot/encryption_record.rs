//! What a save records about an encrypted snapshot, beside it but apart from RKE2's metadata:
//! `<snapshot dir>/../.encryption/<file name>`, a JSON object of strings (the same format and
//! parser as the extra-metadata file) with the recipients' fingerprints (never the keys) and
//! the SHA-256 of the plaintext (what `age -d` gives back).
//!
//! The age header cannot say which keys a file was encrypted to (X25519 stanzas are anonymous),
//! so this record is what lets a restore name the keys it needs. It is informative: a missing or
//! malformed record never makes a snapshot unreadable.

use std::collections::BTreeMap;
use std::path::Path;

use crate::crypt::Fingerprint;
use crate::crypt::keys::{join, parse_list};

const ENCRYPTED_TO: &str = "encryptedTo";
const PLAINTEXT_SHA256: &str = "plaintextSha256";
const FILE_SHA256: &str = "fileSha256";

/// The record of one encrypted snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncryptionRecord {
    pub recipients: Vec<Fingerprint>,
    pub plaintext_sha256: Option<String>,
    /// SHA-256 of the encrypted file the record describes: rekey writes the record before it
    /// renames the new copy into place, and this tells which copy the name holds after a crash.
    pub file_sha256: Option<String>,
}

pub use crate::layout::encryption_dir_for;

impl EncryptionRecord {
    pub fn to_json(&self) -> Vec<u8> {
        let mut map = BTreeMap::from([(ENCRYPTED_TO.to_string(), join(&self.recipients))]);
        if let Some(sum) = &self.plaintext_sha256 {
            map.insert(PLAINTEXT_SHA256.to_string(), sum.clone());
        }
        if let Some(sum) = &self.file_sha256 {
            map.insert(FILE_SHA256.to_string(), sum.clone());
        }
        serde_json::to_vec(&map).unwrap_or_default()
    }

    /// Parses a record; None for anything that is not one we write (hostile text never gets
    /// through to listings or messages).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let map = super::record::parse_metadata(bytes).ok()?;
        let recipients = parse_list(map.get(ENCRYPTED_TO)?)?;
        let digest = |key: &str| match map.get(key) {
            None => Some(None),
            Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(Some(s.clone()))
            }
            Some(_) => None,
        };
        Some(Self {
            recipients,
            plaintext_sha256: digest(PLAINTEXT_SHA256)?,
            file_sha256: digest(FILE_SHA256)?,
        })
    }

    /// The record of the snapshot at `snapshot` (in its dir's `.encryption`), if any.
    pub fn read_beside(snapshot: &Path) -> Option<Self> {
        let dir = snapshot.parent()?;
        let path = encryption_dir_for(dir).join(snapshot.file_name()?);
        let bytes = crate::fsutil::read_capped(&path, 64 * 1024).ok()?;
        Self::parse(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_records() {
        let fp = Fingerprint::parse("age1:0123456789abcdef").unwrap();
        let record = EncryptionRecord {
            recipients: vec![fp],
            plaintext_sha256: Some("ab".repeat(32)),
            file_sha256: Some("cd".repeat(32)),
        };
        assert_eq!(EncryptionRecord::parse(&record.to_json()), Some(record));
        for bad in [
            &br#"{"encryptedTo":"age1:zz"}"#[..],
            br#"{"encryptedTo":"age1:0123456789abcdef","plaintextSha256":"x"}"#,
            br#"{"other":"1"}"#,
            b"[]",
        ] {
            assert_eq!(EncryptionRecord::parse(bad), None);
        }
    }
}
