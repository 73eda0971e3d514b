//! Keeping etcd's copy of the bootstrap files current: read what is on disk and store it
//! (encrypted) when it differs from what etcd holds. Run at server start and before each
//! snapshot of the embedded etcd, so a snapshot always carries the certificates of its moment.

use secrecy::{ExposeSecret, SecretString};

use super::{BootstrapError, SaveOutcome, read_bootstrap, save_to_etcd, token_password};
use crate::config::DesiredConfig;

/// Stores this node's bootstrap files in etcd; `Ok(None)` when the node has none (nothing is
/// written, so a plain etcd without RKE2 files gets no bootstrap key).
pub async fn sync_from_disk(
    config: &DesiredConfig,
    token: &SecretString,
) -> Result<Option<SaveOutcome>, SyncError> {
    let data = read_bootstrap(&config.server_dir())?;
    if data.files.is_empty() {
        return Ok(None);
    }
    let passphrase = token_password(token.expose_secret())?;
    let mut client = crate::etcd::client::connect(&config.etcd).await?;
    let outcome = save_to_etcd(&mut client, passphrase.expose_secret(), &data).await?;
    if outcome != SaveOutcome::Unchanged {
        tracing::info!(
            files = data.files.len(),
            ?outcome,
            "bootstrap data stored in etcd"
        );
    }
    Ok(Some(outcome))
}

/// Why the bootstrap data could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Connect(#[from] crate::etcd::client::ConnectError),
}
