//! Client-side snapshot encryption in the age format (age-encryption.org/v1).
//!
//! Owns what "encrypted" means and nothing else: parsing recipients (public `age1…` X25519
//! keys) and identity files (private `AGE-SECRET-KEY-1…` keys), the fingerprints shown in place
//! of keys (and, for files that travel alone such as delta segments, named in the age header:
//! `named`), the encrypting writer the save pipeline streams through, and the decrypting reader
//! every reader of a snapshot (restore, verification, inspection) goes through, and a file's
//! seal (`seal`: what binds a file to the save that checked its plaintext). An encrypted
//! snapshot is a standard age file: the `age` command-line tool decrypts it.
//!
//! Identities are secret: they live in `SecretString`/age's zeroizing types, their text never
//! reaches an error, a log line or `Debug` output, and only their public half's fingerprint is
//! ever shown. This module depends on nothing else in the crate but `fsutil`.

pub mod keys;
pub mod named;
pub mod seal;
pub mod stream;

#[cfg(test)]
mod fuzz_tests;

use std::path::PathBuf;

pub use keys::{Fingerprint, Identities, Recipients};
pub use named::fingerprints_in_header;
pub use seal::{read_seal, seal_of};
pub use stream::{AGE_MAGIC, DecryptingReader, EncryptingWriter, decrypting_reader, is_age_header};

/// The suffix of an encrypted snapshot, after `.zip` when compressed.
pub const AGE_SUFFIX: &str = ".age";

/// Why encrypting or decrypting failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error(
        "invalid encryption recipient {value:?} from {source_name}: expected an age X25519 \
         public key (age1 followed by 58 bech32 characters)"
    )]
    InvalidRecipient { value: String, source_name: String },
    #[error(
        "invalid age identity on line {line} of {source_name}: expected an X25519 secret key \
         line as age-keygen writes it, a comment (#) or an empty line"
    )]
    InvalidIdentity { line: usize, source_name: String },
    #[error(
        "no age identity in {source_name}: expected at least one secret key line as age-keygen writes it"
    )]
    NoIdentities { source_name: String },
    #[error("failed to read {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no encryption recipients: expected at least one age1… public key")]
    NoRecipients,
    #[error("encryption passphrase file {path} has an empty first line: expected the passphrase")]
    EmptyPassphrase { path: PathBuf },
    #[error(
        "a passphrase cannot be combined with age1… recipients: age allows a passphrase only as the sole recipient"
    )]
    MixedPassphrase,
    #[error("failed to start encrypting")]
    Encrypt(#[source] std::io::Error),
    #[error("{file} is not an age file or its header is damaged ({reason})")]
    BadHeader { file: String, reason: String },
    #[error(
        "none of the given identities ({held}) can decrypt {file}; it is encrypted to {needed}"
    )]
    NoMatchingIdentity {
        file: String,
        held: String,
        needed: String,
    },
    #[error(
        "{file} is encrypted but no identity was given: set --etcd-snapshot-encryption-identity-file (or ETCD_SNAPSHOT_ENCRYPTION_IDENTITY_FILE) to a file holding the key for {needed}"
    )]
    IdentityRequired { file: String, needed: String },
}
