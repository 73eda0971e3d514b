//! The encrypting writer of the save pipeline and the decrypting reader of every read path.
//!
//! Both stream: age encrypts in 64 KiB chunks, each authenticated on its own, and marks the last
//! one, so a reader detects a flipped byte at the chunk that holds it and a truncated file at
//! its end, with memory bounded by one chunk whatever the snapshot's size.

// age 0.13 marks the classic X25519 recipient deprecated in favour of post-quantum keys; it is
// the format age-keygen and the age 1.1 tool use, so it is the one snapshots are encrypted to.
#![allow(deprecated)]

use std::io::{self, BufRead, BufReader, Read, Write};

use super::CryptError;
use super::keys::{Fingerprint, Identities, Recipients, join};
use super::named::FingerprintStanza;

/// The first line of every age v1 file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// True when `prefix` (the first bytes of a file) starts like an age v1 file.
pub fn is_age_header(prefix: &[u8]) -> bool {
    prefix.starts_with(AGE_MAGIC)
}

/// Passes bytes through unchanged, or encrypts them to the recipients.
pub enum EncryptingWriter<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> EncryptingWriter<W> {
    /// Writes the age header to `inner` right away when there are recipients.
    pub fn new(inner: W, recipients: Option<&Recipients>) -> Result<Self, CryptError> {
        Self::build(inner, recipients, false)
    }

    /// Like [`Self::new`], with the recipients' fingerprints named in the header
    /// (`crypt::named`), for files that travel without a record beside them.
    pub fn new_named(inner: W, recipients: Option<&Recipients>) -> Result<Self, CryptError> {
        Self::build(inner, recipients, true)
    }

    fn build(inner: W, recipients: Option<&Recipients>, named: bool) -> Result<Self, CryptError> {
        let Some(recipients) = recipients else {
            return Ok(Self::Plain(inner));
        };
        if recipients.is_empty() {
            return Err(CryptError::NoRecipients);
        }
        let encryptor = match recipients.passphrase() {
            Some(_) if !recipients.keys().is_empty() => return Err(CryptError::MixedPassphrase),
            Some(passphrase) => {
                let mut scrypt = age::scrypt::Recipient::new(passphrase.clone());
                scrypt.set_work_factor(super::keys::PASSPHRASE_WORK_FACTOR);
                age::Encryptor::with_recipients(std::iter::once(&scrypt as &dyn age::Recipient))
                    .map_err(|_| CryptError::NoRecipients)?
            }
            None => {
                let names: Vec<FingerprintStanza> = match named {
                    true => recipients
                        .fingerprints()
                        .into_iter()
                        .map(FingerprintStanza)
                        .collect(),
                    false => Vec::new(),
                };
                let keys = recipients.keys().iter().map(|k| k as &dyn age::Recipient);
                let names = names.iter().map(|n| n as &dyn age::Recipient);
                age::Encryptor::with_recipients(keys.chain(names))
                    .map_err(|_| CryptError::NoRecipients)?
            }
        };
        let writer = encryptor.wrap_output(inner).map_err(CryptError::Encrypt)?;
        Ok(Self::Age(writer))
    }

    /// Writes the final (marked) chunk and hands back the inner writer. Without this call an
    /// encrypted file is truncated and every reader refuses it.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Self::Plain(w) => Ok(w),
            Self::Age(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Age(w) => w.flush(),
        }
    }
}

/// The plaintext of an age file, read on the fly. A read fails with `InvalidData` at a chunk
/// that was altered and at the end of a truncated file.
pub type DecryptingReader<R> = age::stream::StreamReader<BufReader<R>>;

/// Opens an age file for reading: parses the header and unwraps the file key with one of the
/// identities *before* any plaintext is produced, so a caller can refuse a snapshot it cannot
/// read before it touches anything. `file` names the snapshot in errors; `needed` are the
/// fingerprints its metadata records (empty when unknown, e.g. a file the `age` tool made).
pub fn decrypting_reader<R: Read>(
    input: R,
    identities: Option<&Identities>,
    file: &str,
    needed: &[Fingerprint],
) -> Result<DecryptingReader<R>, CryptError> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let peek = input
        .fill_buf()
        .map_err(|e| bad_header(file, e.to_string()))?;
    if !is_age_header(peek) {
        return Err(bad_header(
            file,
            "it does not start with the age v1 magic line".into(),
        ));
    }
    let decryptor =
        age::Decryptor::new_buffered(input).map_err(|e| bad_header(file, e.to_string()))?;
    let needed_text = describe_needed(needed);
    let Some(identities) = identities else {
        return Err(CryptError::IdentityRequired {
            file: file.to_string(),
            needed: needed_text,
        });
    };
    let all = identities.age_identities();
    let keys = all.iter().map(|k| k.as_ref() as &dyn age::Identity);
    decryptor.decrypt(keys).map_err(|e| match e {
        // A wrong passphrase fails the scrypt stanza's authentication rather than not matching.
        age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
            CryptError::NoMatchingIdentity {
                file: file.to_string(),
                held: join(&identities.fingerprints()),
                needed: needed_text,
            }
        }
        other => bad_header(file, other.to_string()),
    })
}

fn describe_needed(needed: &[Fingerprint]) -> String {
    if needed.is_empty() {
        "recipients this host has no record of (the snapshot carries no fingerprint metadata)"
            .to_string()
    } else {
        join(needed)
    }
}

fn bad_header(file: &str, reason: String) -> CryptError {
    CryptError::BadHeader {
        file: file.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (Identities, Recipients) {
        let id = age::x25519::Identity::generate();
        let text = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
        let ids = Identities::parse(&text, "test").unwrap();
        let recipients = ids.recipients();
        (ids, recipients)
    }

    fn encrypt(data: &[u8], recipients: &Recipients) -> Vec<u8> {
        let mut w = EncryptingWriter::new(Vec::new(), Some(recipients)).unwrap();
        // Odd write sizes cross age's 64 KiB chunk boundaries.
        for piece in data.chunks(7777) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn decrypt(file: &[u8], ids: &Identities) -> Result<Vec<u8>, String> {
        let mut reader = decrypting_reader(file, Some(ids), "s", &[]).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn round_trips_across_chunks_and_plain_passes_through() {
        let (ids, recipients) = keypair();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let file = encrypt(&data, &recipients);
        assert!(is_age_header(&file));
        assert_eq!(decrypt(&file, &ids).unwrap(), data);
        let mut plain = EncryptingWriter::new(Vec::new(), None).unwrap();
        plain.write_all(b"abc").unwrap();
        assert_eq!(plain.finish().unwrap(), b"abc");
    }

    #[test]
    fn wrong_identity_is_refused_naming_fingerprints_before_any_plaintext() {
        let (_, recipients) = keypair();
        let (other, _) = keypair();
        let file = encrypt(b"secret", &recipients);
        let needed = recipients.fingerprints();
        let err = decrypting_reader(&file[..], Some(&other), "snap.age", &needed)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(needed[0].as_str()), "{err}");
        assert!(err.contains(other.fingerprints()[0].as_str()), "{err}");
        let err = decrypting_reader(&file[..], None, "snap.age", &needed)
            .err()
            .unwrap();
        assert!(matches!(err, CryptError::IdentityRequired { .. }));
    }

    #[test]
    fn a_passphrase_encrypts_alone_and_a_wrong_one_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let (right, wrong) = (dir.path().join("right"), dir.path().join("wrong"));
        std::fs::write(&right, "correct horse battery staple\n").unwrap();
        std::fs::write(&wrong, "incorrect horse\n").unwrap();
        let recipients = Recipients::read_passphrase_file(&right).unwrap();
        assert_eq!(recipients.fingerprints()[0].as_str(), "scrypt");
        let file = encrypt(b"secret data", &recipients);
        assert!(
            file.windows(9).any(|w| w == b"-> scrypt"),
            "a scrypt stanza"
        );
        let ids = Identities::read_passphrase_file(&right).unwrap();
        assert_eq!(decrypt(&file, &ids).unwrap(), b"secret data");
        let other = Identities::read_passphrase_file(&wrong).unwrap();
        let err = decrypting_reader(&file[..], Some(&other), "s.age", &recipients.fingerprints())
            .err()
            .unwrap();
        assert!(
            matches!(err, CryptError::NoMatchingIdentity { .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("horse"), "{err}");
        // Not beside keys: age allows a passphrase only alone.
        let (_, keys) = keypair();
        let mut mixed = keys.clone();
        mixed.extend(recipients);
        assert!(matches!(
            EncryptingWriter::new(Vec::new(), Some(&mixed)),
            Err(CryptError::MixedPassphrase)
        ));
        std::fs::write(&wrong, "\nsecond line\n").unwrap();
        assert!(matches!(
            Recipients::read_passphrase_file(&wrong),
            Err(CryptError::EmptyPassphrase { .. })
        ));
    }

    #[test]
    fn tampered_and_truncated_files_fail_while_reading() {
        let (ids, recipients) = keypair();
        let data = vec![7u8; 150_000];
        let file = encrypt(&data, &recipients);
        let mut flipped = file.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 1;
        assert!(decrypt(&flipped, &ids).is_err());
        // Cut at a chunk boundary too: without the last-chunk mark the end is detected.
        for cut in [file.len() - 1, file.len() - 17 - 65536, 40] {
            assert!(decrypt(&file[..cut], &ids).is_err(), "cut at {cut}");
        }
        assert!(decrypt(b"not an age file", &ids).is_err());
    }
}
