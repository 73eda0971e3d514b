//! Recipients (public keys), identities (private keys) and the fingerprints shown for both.
//!
//! A fingerprint is `age1:` plus the first 16 hex digits of the SHA-256 of the recipient's
//! `age1…` text: short enough for a table column, stable across hosts, and never the key
//! itself, so metadata, listings and metrics can name keys without carrying them. An identity's
//! fingerprint is its recipient's, which is how a restore tells which snapshots a key opens.

// age 0.13 marks the classic X25519 recipient deprecated in favour of post-quantum keys; it is
// the format age-keygen and the age 1.1 tool use, so it is the one snapshots are encrypted to.
#![allow(deprecated)]

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::CryptError;
use crate::fsutil;

/// Largest identity or recipients file read (a few thousand keys).
pub const MAX_KEY_FILE: u64 = 1024 * 1024;

/// The fingerprint shown for a passphrase.
pub const PASSPHRASE_FINGERPRINT: &str = "scrypt";

/// scrypt work factor (log2 N) of the passphrases we encrypt with: 2^15 x 8 x 128 bytes = 32 MiB
/// of memory per save, inside the save's memory bound (age's tool targets about one second,
/// usually 18, i.e. 256 MiB). The passphrase's strength is what protects the file.
pub const PASSPHRASE_WORK_FACTOR: u8 = 15;

/// The highest work factor a passphrase-encrypted file may ask of us (256 MiB, about what the
/// `age` tool writes): a hostile file cannot make a reader spend more.
pub const PASSPHRASE_MAX_WORK_FACTOR: u8 = 18;

/// A key's public fingerprint: `age1:<16 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a recipient's canonical `age1…` text.
    pub fn of_recipient(recipient: &age::x25519::Recipient) -> Self {
        let digest = Sha256::digest(recipient.to_string().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("age1:{hex}"))
    }

    /// What a passphrase (age's scrypt recipient) is shown as: a fixed word, as any digest of
    /// the passphrase would help whoever guesses it.
    pub fn passphrase() -> Self {
        Self(PASSPHRASE_FINGERPRINT.to_string())
    }

    /// A fingerprint read back from metadata: accepted only in the exact form we write, so
    /// hostile metadata cannot smuggle text into listings.
    pub fn parse(text: &str) -> Option<Self> {
        if text == PASSPHRASE_FINGERPRINT {
            return Some(Self::passphrase());
        }
        let hex = text.strip_prefix("age1:")?;
        let ok = hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Joins fingerprints for messages and columns: `a,b,c` (sorted, no duplicates).
pub fn join(fingerprints: &[Fingerprint]) -> String {
    let mut sorted: Vec<&str> = fingerprints.iter().map(Fingerprint::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(",")
}

/// Parses a comma-joined fingerprint list from metadata; None when any entry is malformed.
pub fn parse_list(text: &str) -> Option<Vec<Fingerprint>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(Fingerprint::parse).collect()
}

/// The public keys new snapshots are encrypted to, or a passphrase (age allows it only alone).
#[derive(Clone)]
pub struct Recipients {
    keys: Vec<age::x25519::Recipient>,
    passphrase: Option<age::secrecy::SecretString>,
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.fingerprints()).finish()
    }
}

impl Recipients {
    /// Parses `age1…` keys; `source_name` says where they came from (a key, a file) for errors.
    /// Empty entries are skipped, so a trailing comma is harmless.
    pub fn parse<'a>(
        values: impl IntoIterator<Item = &'a str>,
        source_name: &str,
    ) -> Result<Self, CryptError> {
        let mut keys = Vec::new();
        for value in values.into_iter().map(str::trim).filter(|v| !v.is_empty()) {
            let key = age::x25519::Recipient::from_str(value).map_err(|_| {
                CryptError::InvalidRecipient {
                    value: printable(value),
                    source_name: source_name.to_string(),
                }
            })?;
            keys.push(key);
        }
        Ok(Self {
            keys,
            passphrase: None,
        })
    }

    /// A passphrase read from `path` (its first line, without the line end): new snapshots are
    /// encrypted with age's scrypt recipient. The passphrase never reaches an error.
    pub fn read_passphrase_file(path: &Path) -> Result<Self, CryptError> {
        Ok(Self {
            keys: Vec::new(),
            passphrase: Some(read_passphrase(path)?),
        })
    }

    /// The passphrase, when encrypting with one.
    pub fn passphrase(&self) -> Option<&age::secrecy::SecretString> {
        self.passphrase.as_ref()
    }

    /// Parses a recipients file in the `age -R` format: one `age1…` key per line, `#` comments
    /// and empty lines ignored.
    pub fn parse_file_text(text: &str, source_name: &str) -> Result<Self, CryptError> {
        Self::parse(
            text.lines().filter(|l| !l.trim_start().starts_with('#')),
            source_name,
        )
    }

    /// Reads a recipients file (regular file, at most `MAX_KEY_FILE` bytes).
    pub fn read_file(path: &Path) -> Result<Self, CryptError> {
        let bytes = read_key_file(path, "encryption recipients file")?;
        let text = String::from_utf8_lossy(&bytes);
        Self::parse_file_text(&text, &format!("file {}", path.display()))
    }

    /// Adds `other`'s keys after these (duplicates dropped).
    pub fn extend(&mut self, other: Recipients) {
        for key in other.keys {
            if !self.keys.iter().any(|k| k.to_string() == key.to_string()) {
                self.keys.push(key);
            }
        }
        if self.passphrase.is_none() {
            self.passphrase = other.passphrase;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.passphrase.is_none()
    }

    pub fn keys(&self) -> &[age::x25519::Recipient] {
        &self.keys
    }

    /// The fingerprints, sorted, without duplicates.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        let mut all: Vec<Fingerprint> = self.keys.iter().map(Fingerprint::of_recipient).collect();
        if self.passphrase.is_some() {
            all.push(Fingerprint::passphrase());
        }
        all.sort();
        all.dedup();
        all
    }
}

/// Private keys that can open snapshots. Never displayed: `Debug` shows fingerprints only.
/// Cloned only to hand them to a blocking task (age zeroizes each copy when dropped).
#[derive(Clone)]
pub struct Identities {
    keys: Vec<age::x25519::Identity>,
    passphrase: Option<age::secrecy::SecretString>,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.fingerprints()).finish()
    }
}

impl Identities {
    /// Parses an identity file in the format `age-keygen` writes: `AGE-SECRET-KEY-1…` lines,
    /// `#` comments and empty lines. Errors name the line number, never its text.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, CryptError> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key =
                age::x25519::Identity::from_str(line).map_err(|_| CryptError::InvalidIdentity {
                    line: index + 1,
                    source_name: source_name.to_string(),
                })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(CryptError::NoIdentities {
                source_name: source_name.to_string(),
            });
        }
        Ok(Self {
            keys,
            passphrase: None,
        })
    }

    /// The passphrase of `path` as an identity (files encrypted with it, by us or `age -p`).
    pub fn read_passphrase_file(path: &Path) -> Result<Self, CryptError> {
        Ok(Self {
            keys: Vec::new(),
            passphrase: Some(read_passphrase(path)?),
        })
    }

    /// Every identity as age takes them: the X25519 keys and the passphrase (its work factor
    /// capped at `PASSPHRASE_MAX_WORK_FACTOR`).
    pub fn age_identities(&self) -> Vec<Box<dyn age::Identity>> {
        let mut all: Vec<Box<dyn age::Identity>> = self
            .keys
            .iter()
            .map(|k| Box::new(k.clone()) as Box<dyn age::Identity>)
            .collect();
        if let Some(passphrase) = &self.passphrase {
            let mut id = age::scrypt::Identity::new(passphrase.clone());
            id.set_max_work_factor(PASSPHRASE_MAX_WORK_FACTOR);
            all.push(Box::new(id));
        }
        all
    }

    /// Reads an identity file (regular file, at most `MAX_KEY_FILE` bytes).
    pub fn read_file(path: &Path) -> Result<Self, CryptError> {
        let bytes = read_key_file(path, "encryption identity file")?;
        // The bytes are secret: wrap them at once so they are zeroized when dropped.
        let text = age::secrecy::SecretString::from(String::from_utf8_lossy(&bytes).into_owned());
        drop(bytes);
        Self::parse(text.expose_secret(), &format!("file {}", path.display()))
    }

    pub fn keys(&self) -> &[age::x25519::Identity] {
        &self.keys
    }

    /// The fingerprints of the public halves, sorted.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        let mut all: Vec<Fingerprint> = self
            .keys
            .iter()
            .map(|k| Fingerprint::of_recipient(&k.to_public()))
            .collect();
        if self.passphrase.is_some() {
            all.push(Fingerprint::passphrase());
        }
        all.sort();
        all.dedup();
        all
    }

    /// Adds `other`'s keys after these (duplicates dropped; the first passphrase kept).
    pub fn extend(&mut self, other: Identities) {
        if self.passphrase.is_none() {
            self.passphrase = other.passphrase;
        }
        for key in other.keys {
            let fingerprint = Fingerprint::of_recipient(&key.to_public());
            let known = self
                .keys
                .iter()
                .any(|k| Fingerprint::of_recipient(&k.to_public()) == fingerprint);
            if !known {
                self.keys.push(key);
            }
        }
    }

    /// The public halves, to encrypt to (rekey keeps a copy readable by the same keys).
    pub fn recipients(&self) -> Recipients {
        Recipients {
            keys: self
                .keys
                .iter()
                .map(age::x25519::Identity::to_public)
                .collect(),
            passphrase: self.passphrase.clone(),
        }
    }
}

/// The first line of a passphrase file, without its line end; never empty.
fn read_passphrase(path: &Path) -> Result<age::secrecy::SecretString, CryptError> {
    let bytes = read_key_file(path, "encryption passphrase file")?;
    let text = age::secrecy::SecretString::from(String::from_utf8_lossy(&bytes).into_owned());
    drop(bytes);
    let line = text.expose_secret().lines().next().unwrap_or("");
    let line = line.trim_end_matches('\r');
    if line.is_empty() {
        return Err(CryptError::EmptyPassphrase {
            path: path.to_path_buf(),
        });
    }
    Ok(age::secrecy::SecretString::from(line.to_string()))
}

fn read_key_file(path: &Path, what: &'static str) -> Result<Vec<u8>, CryptError> {
    fsutil::read_capped(path, MAX_KEY_FILE).map_err(|source| CryptError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// A value for an error message: at most 80 characters, control characters escaped by `{:?}`.
/// A private key given where a public one belongs is never echoed.
fn printable(value: &str) -> String {
    if value.to_ascii_uppercase().contains(SECRET_KEY_PREFIX) {
        return "(a private key, not shown: give its public age1… key instead)".to_string();
    }
    value.chars().take(80).collect()
}

/// How every age X25519 private key starts (any case).
const SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-";

/// A fresh X25519 identity, parsed the way an identity file is (tests across the crate).
#[cfg(test)]
pub fn generated_identities() -> Identities {
    let id = age::x25519::Identity::generate();
    let text = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
    Identities::parse(&text, "test").unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_parse_and_fingerprint_without_showing_keys() {
        let id = age::x25519::Identity::generate();
        let public = id.to_public().to_string();
        let recipients = Recipients::parse([public.as_str(), ""], "key x").unwrap();
        let fp = recipients.fingerprints();
        assert_eq!(fp.len(), 1);
        assert!(Fingerprint::parse(fp[0].as_str()).is_some());
        assert!(!format!("{recipients:?}").contains(&public));
        let err = Recipients::parse(["age1nope"], "key etcd-snapshot-encryption-recipients")
            .unwrap_err()
            .to_string();
        assert!(err.contains("age1nope") && err.contains("etcd-snapshot-encryption-recipients"));
        assert!(err.contains("expected an age X25519 public key"), "{err}");
        // A private key pasted where a recipient belongs is refused without echoing it.
        let secret = id.to_string();
        let err = Recipients::parse([secret.expose_secret()], "key r")
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&secret.expose_secret()[15..]), "{err}");
        assert!(err.contains("private key, not shown"), "{err}");
    }

    #[test]
    fn identity_files_parse_like_age_keygen_output_and_errors_hide_lines() {
        let id = age::x25519::Identity::generate();
        let secret = id.to_string();
        let text = format!(
            "# created: 2026-01-01\n# public key: {}\n{}\n",
            id.to_public(),
            secret.expose_secret()
        );
        let ids = Identities::parse(&text, "file k").unwrap();
        assert_eq!(ids.fingerprints(), ids.recipients().fingerprints());
        assert!(!format!("{ids:?}").contains("AGE-SECRET-KEY"));
        let broken = format!("{}x\n", secret.expose_secret());
        let err = Identities::parse(&broken, "file k")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && !err.contains("AGE-SECRET"),
            "{err}"
        );
        assert!(matches!(
            Identities::parse("# only a comment\n", "file k"),
            Err(CryptError::NoIdentities { .. })
        ));
    }

    #[test]
    fn fingerprint_lists_round_trip_and_refuse_anything_else() {
        let ids: Vec<Fingerprint> = (0..3)
            .map(|_| Fingerprint::of_recipient(&age::x25519::Identity::generate().to_public()))
            .collect();
        let text = join(&ids);
        let mut back = parse_list(&text).unwrap();
        back.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(back, want);
        assert_eq!(parse_list(""), Some(vec![]));
        for bad in [
            "age1:XYZ",
            "age1:0123",
            "sha:0123456789abcdef",
            "age1:0123456789abcdef,\n",
        ] {
            assert_eq!(parse_list(bad), None, "{bad:?}");
        }
    }
}
