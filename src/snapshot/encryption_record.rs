//! What a save records about an encrypted snapshot, beside it but apart from RKE2's metadata:
//! `<snapshot dir>/../.encryption/<file name>`, a JSON object of strings (the same format and
//! parser as the extra-metadata file) with the recipients' fingerprints (never the keys) and
//! the SHA-256 of the plaintext (what `age -d` gives back).
//!
//! The age header cannot say which keys a file was encrypted to (X25519 stanzas are anonymous),
//! so this record is what lets a restore name the keys it needs. It is informative: a missing or
//! malformed record never makes a snapshot unreadable.
//!
//! A save also records the file's seal (`crypt::seal`), which stands for "this save checked
//! the plaintext's trailer": a restore of a file with that seal skips its own SHA-256 pass.
//! A record whose seal does not match the file (edited, or a file encrypted elsewhere) only
//! costs that pass.

use std::collections::BTreeMap;
use std::path::Path;

use crate::crypt::Fingerprint;
use crate::crypt::keys::{join, parse_list};

/// S3 object user-metadata keys carrying the record with an encrypted object (S3 copies have
/// no `.encryption` dir): the fingerprints, comma-joined, and the plaintext's SHA-256.
pub const META_FINGERPRINTS: &str = "Etcd-Snapshot-Encryption-Fingerprints";
pub const META_PLAINTEXT_SHA256: &str = "Etcd-Snapshot-Plaintext-Sha256";

const ENCRYPTED_TO: &str = "encryptedTo";
const PLAINTEXT_SHA256: &str = "plaintextSha256";
const FILE_SHA256: &str = "fileSha256";
const SEAL: &str = "ageSeal";

/// The record of one encrypted snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncryptionRecord {
    pub recipients: Vec<Fingerprint>,
    pub plaintext_sha256: Option<String>,
    /// SHA-256 of the encrypted file the record describes: rekey writes the record before it
    /// renames the new copy into place, and this tells which copy the name holds after a crash.
    pub file_sha256: Option<String>,
    /// The seal (`crypt::seal`) of the file as the save wrote it, after the save checked its
    /// plaintext's trailer. Only saves record it: rekey copies the plaintext without that check.
    pub seal: Option<String>,
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
        if let Some(seal) = &self.seal {
            map.insert(SEAL.to_string(), seal.clone());
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
            Some(s) if is_digest(s) => Some(Some(s.clone())),
            Some(_) => None,
        };
        Some(Self {
            recipients,
            plaintext_sha256: digest(PLAINTEXT_SHA256)?,
            file_sha256: digest(FILE_SHA256)?,
            seal: digest(SEAL)?,
        })
    }

    /// The record as S3 object user metadata (`META_FINGERPRINTS`, `META_PLAINTEXT_SHA256`).
    pub fn object_metadata(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::from([(META_FINGERPRINTS.to_string(), join(&self.recipients))]);
        if let Some(sum) = &self.plaintext_sha256 {
            map.insert(META_PLAINTEXT_SHA256.to_string(), sum.clone());
        }
        map
    }

    /// The record an object's user metadata carries (keys as the SDK returns them, lower
    /// case); None when it carries none or a malformed one (never trusted into a listing).
    pub fn from_object_metadata(
        metadata: &std::collections::HashMap<String, String>,
    ) -> Option<Self> {
        let get = |key: &str| metadata.get(&key.to_ascii_lowercase());
        let recipients = parse_list(get(META_FINGERPRINTS)?)?;
        let plaintext_sha256 = match get(META_PLAINTEXT_SHA256) {
            None => None,
            Some(s) if is_digest(s) => Some(s.to_ascii_lowercase()),
            Some(_) => return None,
        };
        Some(Self {
            recipients,
            plaintext_sha256,
            file_sha256: None,
            seal: None,
        })
    }

    /// The plaintext digest a snapshot's metadata record (`.metadata/<name>`, local or the S3
    /// object) carries under `META_PLAINTEXT_SHA256`, any key case; None when absent or not a
    /// digest. A streamed S3 upload sets its object metadata before the plaintext is hashed,
    /// so for those copies the record is where the digest is.
    pub fn plaintext_sha256_in(record: &BTreeMap<String, String>) -> Option<String> {
        let (_, value) = record
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(META_PLAINTEXT_SHA256))?;
        is_digest(value).then(|| value.to_ascii_lowercase())
    }

    /// The record of the snapshot at `snapshot` (in its dir's `.encryption`), if any.
    pub fn read_beside(snapshot: &Path) -> Option<Self> {
        let dir = snapshot.parent()?;
        let path = encryption_dir_for(dir).join(snapshot.file_name()?);
        let bytes = crate::fsutil::read_capped(&path, 64 * 1024).ok()?;
        Self::parse(&bytes)
    }
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
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
            seal: Some("ef".repeat(32)),
        };
        assert_eq!(EncryptionRecord::parse(&record.to_json()), Some(record));
        for bad in [
            &br#"{"encryptedTo":"age1:zz"}"#[..],
            br#"{"encryptedTo":"age1:0123456789abcdef","plaintextSha256":"x"}"#,
            br#"{"encryptedTo":"age1:0123456789abcdef","ageSeal":"x"}"#,
            br#"{"other":"1"}"#,
            b"[]",
        ] {
            assert_eq!(EncryptionRecord::parse(bad), None);
        }
    }

    #[test]
    fn object_metadata_round_trips_and_refuses_foreign_values() {
        let record = EncryptionRecord {
            recipients: vec![Fingerprint::parse("age1:0123456789abcdef").unwrap()],
            plaintext_sha256: Some("ab".repeat(32)),
            file_sha256: None,
            seal: None,
        };
        let lower = |m: BTreeMap<String, String>| -> std::collections::HashMap<String, String> {
            m.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect()
        };
        let meta = lower(record.object_metadata());
        assert_eq!(EncryptionRecord::from_object_metadata(&meta), Some(record));
        assert_eq!(
            EncryptionRecord::from_object_metadata(&Default::default()),
            None
        );
        let mut bad = meta.clone();
        bad.insert(META_FINGERPRINTS.to_ascii_lowercase(), "age1:zz\n".into());
        assert_eq!(EncryptionRecord::from_object_metadata(&bad), None);
        let mut bad = meta;
        bad.insert(META_PLAINTEXT_SHA256.to_ascii_lowercase(), "x".into());
        assert_eq!(EncryptionRecord::from_object_metadata(&bad), None);
    }
}

/// Fuzz target `encryption_records`: the `.encryption` record and the S3 object's fingerprint
/// metadata come from whoever can write the snapshot dir or the bucket; listings, resources,
/// metrics and `inspect` show what they say.
#[cfg(test)]
mod fuzz {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::fuzz_support::{Fuzz, hostile_text, mutated, mutated_text};

    const SAMPLE: &str = "age1:0123456789abcdef,age1:fedcba9876543210";

    #[test]
    fn fuzz_encryption_records() {
        let mut fuzz = Fuzz::new("encryption_records", 2);
        let record = EncryptionRecord {
            recipients: parse_list(SAMPLE).unwrap(),
            plaintext_sha256: Some("ab".repeat(32)),
            file_sha256: Some("cd".repeat(32)),
            seal: Some("ef".repeat(32)),
        };
        fuzz.check(
            "local_records",
            256,
            prop_oneof![
                mutated(record.to_json()).prop_map(|(b, _)| b),
                prop::collection::vec(any::<u8>(), 0..256),
            ],
            |bytes| {
                if let Some(parsed) = EncryptionRecord::parse(&bytes) {
                    // Whatever is accepted is in the exact form we write, and writes back.
                    prop_assert_eq!(EncryptionRecord::parse(&parsed.to_json()), Some(parsed));
                }
                Ok(())
            },
        );
        fuzz.check(
            "object_metadata",
            256,
            (
                prop_oneof![hostile_text(96), mutated_text(SAMPLE)],
                prop_oneof![hostile_text(80), mutated_text(&"ab".repeat(32))],
            ),
            |(fingerprints, digest)| {
                let meta = HashMap::from([
                    (META_FINGERPRINTS.to_ascii_lowercase(), fingerprints),
                    (META_PLAINTEXT_SHA256.to_ascii_lowercase(), digest),
                ]);
                if let Some(parsed) = EncryptionRecord::from_object_metadata(&meta) {
                    for fp in &parsed.recipients {
                        prop_assert!(Fingerprint::parse(fp.as_str()).is_some());
                    }
                    let text = join(&parsed.recipients);
                    prop_assert!(
                        text.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b":,".contains(&b))
                    );
                }
                Ok(())
            },
        );
        fuzz.finish();
    }
}
