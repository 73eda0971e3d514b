//! The reset-flag file and the start decision it feeds (RKE2's table), plus the messages an
//! operator sees around a cluster reset.
//!
//! `<data-dir>/server/db/reset-flag` is an empty 0600 file written after a reset so that a
//! second start with `--cluster-reset` is refused. The decision is pure; the file helpers are
//! thin and crash-safe. Nothing here starts etcd or restores data.

use std::io;
use std::path::{Path, PathBuf};

use super::RestoreError;
use crate::fsutil;

/// The flag's file name inside `server/db`.
pub const RESET_FLAG_FILE: &str = "reset-flag";
/// Printed (and logged) when a reset finished and the server must be restarted normally.
pub const RESET_DONE_MESSAGE: &str =
    "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now.";
/// The flag's mode: private, like everything under `server/db`.
const FLAG_MODE: u32 = 0o600;

/// What other servers must do after this one was reset, with this node's data dir filled in
/// (RKE2 prints a literal `${datadir}`). Unlike RKE2's wording it names `server/db/etcd`:
/// deleting all of `server/db` would also delete the peers' snapshots.
pub fn peer_instruction(data_dir: &Path) -> String {
    format!(
        "Backup and delete {} on each peer etcd server and rejoin the nodes (start them with --etcd-join-endpoint set to this server's etcd client URL)",
        data_dir.join("server").join("db").join("etcd").display()
    )
}

/// The whole end-of-reset message: RKE2's wording, then the peer instruction.
pub fn reset_complete_message(data_dir: &Path) -> String {
    format!("{RESET_DONE_MESSAGE} {}", peer_instruction(data_dir))
}

/// `<data-dir>/server/db/reset-flag`.
pub fn reset_flag_path(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join("db").join(RESET_FLAG_FILE)
}

/// Writes the (empty) flag crash-safely; writing it again is harmless.
pub fn write_reset_flag(path: &Path) -> Result<(), RestoreError> {
    fsutil::write_atomic(path, b"", FLAG_MODE).map_err(|source| flag_err("write", path, source))
}

/// True when the flag is there.
pub fn reset_flag_exists(path: &Path) -> Result<bool, RestoreError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(flag_err("check", path, e)),
    }
}

/// Removes the flag durably; returns false when it was not there.
pub fn remove_reset_flag(path: &Path) -> Result<bool, RestoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(flag_err("remove", path, e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    fsutil::sync_dir(dir).map_err(|source| flag_err("remove", path, source))?;
    Ok(true)
}

fn flag_err(action: &'static str, path: &Path, source: io::Error) -> RestoreError {
    RestoreError::ResetFlag {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What a server start must do, from `--cluster-reset`, the restore path and the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartDecision {
    /// Restore the snapshot, reset membership, write the flag (an existing flag is ignored).
    ResetAndRestore { restore_path: String },
    /// Reset membership on the current data, then write the flag.
    ResetOnly,
    /// A second `--cluster-reset` while the flag is there: refuse (see [`Self::refusal`]).
    RefuseSecondReset,
    /// `--cluster-reset-restore-path` without `--cluster-reset`: refuse.
    RefuseRestoreWithoutReset,
    /// Start normally. `after_reset` is true when the flag is there: this is the first normal
    /// start after a reset, and the flag is to be cleared once the member is healthy.
    Normal { after_reset: bool },
}

impl StartDecision {
    /// The error to stop with, for the two refusals; `flag` is shown to the operator.
    pub fn refusal(&self, flag: &Path) -> Option<RestoreError> {
        match self {
            Self::RefuseSecondReset => Some(RestoreError::AlreadyReset {
                flag: flag.to_path_buf(),
            }),
            Self::RefuseRestoreWithoutReset => Some(RestoreError::RestorePathWithoutReset),
            _ => None,
        }
    }

    /// True when the reset is to be recorded by writing the flag.
    pub fn writes_flag(&self) -> bool {
        matches!(self, Self::ResetAndRestore { .. } | Self::ResetOnly)
    }
}

/// RKE2's start table, except that a restore is refused too while the reset-flag exists: with
/// the reset flags left in a config file and a service manager restarting the server, RKE2
/// restores again on every restart, moving each result aside until retention deletes the data
/// the first reset kept. Deleting the flag (the message says so) allows another reset. Pure. An
/// empty restore path counts as none, as in RKE2.
pub fn decide_start(
    cluster_reset: bool,
    restore_path: Option<&str>,
    flag_exists: bool,
) -> StartDecision {
    let restore_path = restore_path.filter(|p| !p.is_empty());
    match (cluster_reset, restore_path, flag_exists) {
        (false, Some(_), _) => StartDecision::RefuseRestoreWithoutReset,
        (true, _, true) => StartDecision::RefuseSecondReset,
        (true, Some(path), false) => StartDecision::ResetAndRestore {
            restore_path: path.to_string(),
        },
        (true, None, false) => StartDecision::ResetOnly,
        (false, None, after_reset) => StartDecision::Normal { after_reset },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn decide_start_follows_the_rke2_table() {
        use StartDecision::*;
        let restore = || ResetAndRestore {
            restore_path: "/s/snap".into(),
        };
        let cases: [(bool, Option<&str>, bool, StartDecision); 9] = [
            (true, Some("/s/snap"), false, restore()),
            (true, Some("/s/snap"), true, RefuseSecondReset),
            (true, None, false, ResetOnly),
            (true, Some(""), false, ResetOnly),
            (true, None, true, RefuseSecondReset),
            (false, None, true, Normal { after_reset: true }),
            (false, None, false, Normal { after_reset: false }),
            (false, Some("/s/snap"), false, RefuseRestoreWithoutReset),
            (false, Some("/s/snap"), true, RefuseRestoreWithoutReset),
        ];
        for (reset, path, flag, want) in cases {
            assert_eq!(
                decide_start(reset, path, flag),
                want,
                "{reset} {path:?} {flag}"
            );
        }
    }

    #[test]
    fn refusals_carry_rke2_messages() {
        let flag = reset_flag_path(Path::new("/var/lib/etcd-snapshot"));
        let err = StartDecision::RefuseSecondReset.refusal(&flag).unwrap();
        assert_eq!(
            err.to_string(),
            "Managed etcd cluster membership was previously reset, please remove the cluster-reset \
             flag and start etcd-snapshot normally. If you need to perform another cluster reset, \
             you must first manually delete the file at /var/lib/etcd-snapshot/server/db/reset-flag"
        );
        let err = StartDecision::RefuseRestoreWithoutReset
            .refusal(&flag)
            .unwrap();
        assert_eq!(
            err.to_string(),
            "invalid flag use; --cluster-reset required with --cluster-reset-restore-path"
        );
        assert!(StartDecision::ResetOnly.refusal(&flag).is_none());
        assert!(StartDecision::ResetOnly.writes_flag());
        assert!(!StartDecision::Normal { after_reset: true }.writes_flag());
    }

    #[test]
    fn completion_message_names_this_data_dir() {
        let msg = reset_complete_message(Path::new("/var/lib/rancher/rke2"));
        assert_eq!(
            msg,
            "Managed etcd cluster membership has been reset, restart without --cluster-reset flag \
             now. Backup and delete /var/lib/rancher/rke2/server/db/etcd on each peer etcd server \
             and rejoin the nodes (start them with --etcd-join-endpoint set to this server's etcd \
             client URL)"
        );
    }

    #[test]
    fn flag_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("server/db")).unwrap();
        let flag = reset_flag_path(dir.path());
        assert!(!reset_flag_exists(&flag).unwrap());
        assert!(!remove_reset_flag(&flag).unwrap());
        write_reset_flag(&flag).unwrap();
        write_reset_flag(&flag).unwrap();
        assert!(reset_flag_exists(&flag).unwrap());
        let meta = std::fs::metadata(&flag).unwrap();
        assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (0, 0o600));
        assert!(remove_reset_flag(&flag).unwrap());
        assert!(!reset_flag_exists(&flag).unwrap());
        assert_eq!(
            std::fs::read_dir(dir.path().join("server/db"))
                .unwrap()
                .count(),
            0
        );
    }
}
