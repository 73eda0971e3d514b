//! `etcd-snapshot rekey [--dry-run]`: runs the local rekey (`store::rekey`) and prints one line
//! per copy: what was (or would be) done, or why it failed. Runs on this node only; it never
//! asks the server (the server holds no identity).

use crate::config::DesiredConfig;
use crate::store::LocalStore;
use crate::store::rekey::{Action, RekeyError, rekey_local};

/// Rekeys the snapshot dir; `Ok(false)` when some copy failed (the others are done).
pub fn run(config: &DesiredConfig, dry_run: bool) -> Result<bool, RekeyError> {
    let settings = &config.snapshot.encryption;
    let recipients = settings.current_recipients().map_err(RekeyError::Keys)?;
    let identities = settings.identities().map_err(RekeyError::Keys)?;
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
