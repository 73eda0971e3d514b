//! `etcd-snapshot restore`: restore a snapshot (the server's cluster-reset path as a command),
//! roll the last restore back, or list the backups restores left. Prints what was done and
//! what to do next; exit codes are `main.rs`'s.

use crate::cli::RestoreAction;
use crate::config::DesiredConfig;
use crate::restore::reset::{self, ResetOutcome};
use crate::restore::{BackupKind, ResetError};
use crate::snapshot::record::rfc3339;

/// Runs one restore action to completion.
pub async fn run(action: &RestoreAction, config: &DesiredConfig) -> Result<(), ResetError> {
    match action {
        RestoreAction::Snapshot(path) => {
            let outcome = reset::cluster_reset(config, Some(path)).await?;
            print_reset(config, &outcome);
        }
        RestoreAction::PointInTime => {
            // An empty `--cluster-reset-restore-to=` resolves to none: never a plain reset.
            if config.reset.restore_to.is_none() {
                return Err(crate::restore::RestoreError::EmptyRestorePath.into());
            }
            let outcome = reset::cluster_reset(config, None).await?;
            print_reset(config, &outcome);
        }
        RestoreAction::Rollback => {
            let done = reset::rollback_last(config)?;
            println!(
                "Restored etcd data from the last backup into {}.",
                done.restored.display()
            );
            if let Some(replaced) = done.replaced {
                println!("The data it replaced is kept at {}.", replaced.display());
            }
            if let Some(tls) = done.tls_restored {
                println!("Certificates put back into {}.", tls.display());
            }
            println!("Start the server normally.");
        }
        RestoreAction::ListBackups => {
            let backups = reset::backups(config)?;
            if backups.is_empty() {
                println!("No backups.");
            }
            for b in backups {
                let kind = match b.kind {
                    BackupKind::EtcdOld => "etcd-data",
                    BackupKind::TlsOld => "certificates",
                };
                println!(
                    "{kind:<13} {}  {}  {} bytes",
                    rfc3339(b.unix as i64),
                    b.path.display(),
                    b.size
                );
            }
        }
    }
    Ok(())
}

/// The messages after a reset, one per line.
pub fn print_reset(config: &DesiredConfig, outcome: &ResetOutcome) {
    for line in reset::report_lines(config, outcome) {
        println!("{line}");
    }
}
