//! Restore and cluster reset: pre-flight checks (the snapshot checks themselves are
//! `snapshot::verify`; free space is checked here), unzip, the etcd restore tool, moving the old
//! data dir aside, the reset-flag, and rollback.
//!
//! With `--cluster-reset-restore-to`, `replay` first replays the snapshot's delta chain into a
//! throwaway member and hands that member's snapshot to the same steps.
//!
//! `stage` restores into the staging dir with the tool's own hash pass skipped: our trailer
//! check runs beside the tool (or ran while this restore decrypted or extracted the copy), with
//! the cheap revision read (`inspect::revision`), and the restore counts only when the check
//! passed and the file did not change meanwhile.
//!
//! Each file owns one step and keeps its decisions pure (`plan`, `reset_flag::decide_start`,
//! `tool::assess_tool`, `datadir::plan_backup_retention`, `run::restore_args`). This module
//! does not start or stop etcd, download from S3 or parse flags: the server and CLI wire those
//! around the steps, in the order `plan::plan_restore` gives.

mod checks;
pub mod datadir;
pub mod decrypt;
pub mod direct;
pub mod drill;
mod error;
pub mod flow;
pub mod last_restore;
pub mod plan;
mod progress_watch;
mod read_ahead;
pub mod replay;
pub mod reset;
mod reset_error;
pub mod reset_flag;
pub mod run;
pub mod sqlite;
mod stage;
mod stage_encrypted;
mod staging;
pub mod tool;
pub mod unzip;
pub mod unzip_encrypted;
pub mod verify;

#[cfg(test)]
mod fuzz_tests;

pub use datadir::{
    Backup, BackupKind, apply_backup_retention, install_staged, list_backups, move_current_aside,
    plan_backup_retention, rollback,
};
pub use error::RestoreError;
pub use plan::{RestoreInputs, RestorePlan, SnapshotSource, plan_restore};
pub use reset_error::{ROLLBACK_HINT, ResetError};
pub use reset_flag::{StartDecision, decide_start};
pub use run::{RestoreTarget, restore_args, run_restore};
pub use tool::{RestoreTool, ToolKind, Version, select_restore_tool};
pub use unzip::{extract_snapshot, extract_snapshot_checked};
pub use verify::{VerifiedSnapshot, check_free_space, verify_snapshot_file};
