//! Bootstrap data: the cluster's confidential files (CAs, keys, passwd, encryption config) kept
//! in etcd, encrypted with the server token exactly as k3s does, so that every snapshot carries
//! them and a restore with the token brings them back.
//!
//! A top-level module rather than part of `restore/`: the server writes it before every save,
//! and restore reads it back. Split by sub-concept: `passphrase` (token -> passphrase), `crypto`
//! (the k3s cipher format and storage key, pure), `files` (the file table, reading and writing
//! the files on disk), `backup` (the `tls-<unix>` copy), `codec` (the k3s JSON form), `store`
//! (the etcd key). This module decides
//! nothing about when to save or restore; the server and `restore/` do.

pub mod backup;
pub mod codec;
pub mod crypto;
pub mod files;
pub mod passphrase;
pub mod store;
pub mod sync;

#[cfg(test)]
mod fuzz_tests;

use std::path::PathBuf;

pub use codec::{BootstrapData, BootstrapFile};
pub use crypto::{decrypt, encrypt, storage_key};
pub use files::{
    BOOTSTRAP_FILES, BootstrapFileSpec, WriteOutcome, read_bootstrap, write_bootstrap,
};
pub use passphrase::token_password;
pub use store::{SaveOutcome, load_from_etcd, save_to_etcd};

/// Text shared by every error that means "this is not the token the data was encrypted with",
/// so users recognise the one fix (pass the original token) whichever step noticed.
pub const WRONG_TOKEN_HINT: &str =
    "the token differs from the one that encrypted the bootstrap data";

/// Errors reading, writing, encrypting or storing bootstrap data. None of them carries a token,
/// a key or file content.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "failed to normalize server token; must be in format K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>"
    )]
    TokenFormat,
    #[error("failed to decrypt bootstrap data: invalid cipher text, not : delimited")]
    NotDelimited,
    #[error("failed to decode bootstrap cipher text as base64")]
    Base64(#[source] base64::DecodeError),
    #[error(
        "failed to decrypt bootstrap data: cipher text is {len} bytes, shorter than a nonce and a tag"
    )]
    TooShort { len: usize },
    #[error("failed to decrypt bootstrap data: authentication failed; {WRONG_TOKEN_HINT}")]
    WrongToken,
    #[error("failed to generate random bytes for bootstrap encryption")]
    Random,
    #[error("failed to encrypt bootstrap data")]
    Encrypt,
    #[error("failed to parse bootstrap data as JSON")]
    Json(#[source] serde_json::Error),
    #[error("failed to decode the content of bootstrap field {field} as base64")]
    Content {
        field: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("failed to parse the timestamp {value:?} of bootstrap field {field}")]
    Timestamp {
        field: String,
        value: String,
        #[source]
        source: chrono::ParseError,
    },
    #[error("failed to read bootstrap file {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write bootstrap file {path}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to back up certificates directory {from} to {to}")]
    Backup {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to {op} bootstrap key {key} in etcd")]
    Etcd {
        op: &'static str,
        key: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error(
        "bootstrap data already found and encrypted with a different token at {key}; {WRONG_TOKEN_HINT} (it is left untouched)"
    )]
    DifferentToken { key: String },
    #[error("bootstrap key {key} in etcd does not hold encrypted bootstrap data")]
    Corrupt {
        key: String,
        #[source]
        source: Box<BootstrapError>,
    },
    #[error(
        "failed to load bootstrap data: nothing stored at {key}, but found {found:?}; {WRONG_TOKEN_HINT}"
    )]
    NotForThisToken { key: String, found: Vec<String> },
    #[error("failed to save bootstrap data at {key}: it kept changing concurrently")]
    Contended { key: String },
}

impl BootstrapError {
    /// True when the fix is to pass the token that encrypted the data (not retryable as is).
    pub fn is_wrong_token(&self) -> bool {
        matches!(
            self,
            Self::WrongToken | Self::DifferentToken { .. } | Self::NotForThisToken { .. }
        )
    }
}
