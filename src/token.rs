//! The server token: where it comes from, creating it, and its RKE2 forms.
//!
//! Server: `--token` > `--token-file` > `<data-dir>/server/token` (created, 0600, when absent).
//! CLI: `--etcd-token` > `<data-dir>/server/token`. Tokens are `SecretString` from the moment
//! they are read and never logged.

use std::path::PathBuf;

use secrecy::SecretString;

use crate::config::DesiredConfig;

/// Errors finding or creating a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("failed to read token file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to create token file {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {path} is empty")]
    Empty { path: PathBuf },
    #[error("no token: pass --etcd-token or make {path} readable")]
    Missing { path: PathBuf },
}

/// The server's token, creating `<data-dir>/server/token` when nothing else provides one.
pub fn load_or_create_server_token(config: &DesiredConfig) -> Result<SecretString, TokenError> {
    let _ = config;
    todo!()
}

/// The token the CLI authenticates with.
pub fn client_token(config: &DesiredConfig) -> Result<SecretString, TokenError> {
    let _ = config;
    todo!()
}

/// The password part of a token: `K10<hash>::<user>:<password>` -> `<password>`; anything not
/// starting with `K10` is the password itself.
pub fn password_part(token: &str) -> &str {
    let _ = token;
    todo!()
}
