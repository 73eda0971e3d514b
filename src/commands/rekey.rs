//! `etcd-snapshot rekey [--dry-run]`: runs the local rekey (`store::rekey`) and prints one line
//! per copy: what was (or would be) done, or why it failed. Runs on this node only; it never
//! asks the server (the server holds no identity).

use crate::config::DesiredConfig;
use crate::kube::encryption_secret::{self, EncryptionSecretError};
use crate::store::LocalStore;
use crate::store::rekey::{Action, RekeyError, rekey_local};

/// Why `rekey` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum RekeyCommandError {
    #[error("failed to read the encryption keys")]
    Keys(#[source] EncryptionSecretError),
    #[error(transparent)]
    Rekey(#[from] RekeyError),
}

/// Rekeys the snapshot dir; `Ok(false)` when some copy failed (the others are done). The
/// recipients and identities include the encryption Secret's when one is configured.
pub async fn run(config: &DesiredConfig, dry_run: bool) -> Result<bool, RekeyCommandError> {
    let settings = &config.snapshot.encryption;
    let access = match &settings.secret {
        Some(name) => encryption_secret::command_access(config, name)
            .await
            .map_err(RekeyCommandError::Keys)?,
        None => crate::kube::KubeAccess::disabled(),
    };
    let recipients = encryption_secret::current_recipients(&access, settings)
        .await
        .map_err(RekeyCommandError::Keys)?;
    let identities = encryption_secret::command_identities(config)
        .await
        .map_err(RekeyCommandError::Keys)?;
    let store = LocalStore::open(&config.snapshot.dir, &config.node_name, false)
        .map_err(RekeyError::List)?;
    let reports = rekey_local(&store, recipients.as_ref(), identities.as_ref(), dry_run)?;
    let target = recipients
        .as_ref()
        .map(|r| crate::crypt::keys::join(&r.fingerprints()))
        .unwrap_or_default();
    let mut all_ok = true;
    for report in &reports {
        let name = crate::commands::output::printable(&report.file_name);
        let verb = match (&report.action, dry_run) {
            (Action::Skip(why), _) => format!("skipped {name}: {why}"),
            (Action::Reencrypt, true) => format!("would re-encrypt {name} to {target}"),
            (Action::Encrypt, true) => {
                format!("would encrypt {name} to {target} as {}", report.new_name)
            }
            (Action::Reencrypt, false) => format!("re-encrypted {name} to {target}"),
            (Action::Encrypt, false) => format!(
                "encrypted {name} to {target} as {} (plaintext removed)",
                report.new_name
            ),
        };
        match &report.error {
            None => println!("{verb}"),
            Some(error) => {
                all_ok = false;
                eprintln!("failed {name}: {error}");
            }
        }
    }
    if reports.is_empty() {
        println!("No local snapshots.");
    }
    Ok(all_ok)
}
