//! Running `etcdutl`/`etcdctl snapshot restore` into a fresh staging dir.
//!
//! The argv is built by a pure function; the run captures the tool's stderr into the error.
//! It only ever writes the staging dir it is given (which must not exist yet), removes that dir
//! again when the tool fails, and never touches the live data dir: swapping is `datadir`'s job.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::RestoreError;
use super::tool::{RestoreTool, ToolKind};

/// The most of the tool's stderr kept in an error (its last lines say what went wrong).
const STDERR_KEPT: usize = 4096;

/// The member a restore creates: a single-member cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreTarget {
    /// The staging dir to create (e.g. `server/db/etcd-restore-<unix>.tmp`), never the live one.
    pub data_dir: PathBuf,
    /// Member name, as etcd will be started with.
    pub name: String,
    /// The member's advertised peer URL, as etcd will be started with.
    pub peer_url: String,
    /// `--initial-cluster-token`: unique per restore, so the new member and cluster IDs can
    /// never match the old cluster's and stale peers cannot join by accident.
    pub cluster_token: String,
    /// `--bump-revision N --mark-compacted`, when wanted and supported.
    pub bump_revision: Option<u64>,
    /// `--skip-hash-check`: only when the caller checks the trailer itself and lets the restore
    /// count only if that check passed. The tool still strips a trailer it finds; a file
    /// without one must be refused before (`snapshot::verify::quick_check`).
    pub skip_hash_check: bool,
}

/// The tool's command line for restoring `snapshot` into `target`. Pure.
///
/// Fails when a revision bump is asked of a tool without it, rather than silently restoring
/// without one.
pub fn restore_args(
    tool: &RestoreTool,
    snapshot: &Path,
    target: &RestoreTarget,
) -> Result<Vec<OsString>, RestoreError> {
    let mut args: Vec<OsString> = vec!["snapshot".into(), "restore".into(), snapshot.into()];
    args.push("--data-dir".into());
    args.push(target.data_dir.clone().into());
    for (flag, value) in [
        ("--name", target.name.clone()),
        (
            "--initial-cluster",
            format!("{}={}", target.name, target.peer_url),
        ),
        ("--initial-advertise-peer-urls", target.peer_url.clone()),
        ("--initial-cluster-token", target.cluster_token.clone()),
    ] {
        args.push(flag.into());
        args.push(value.into());
    }
    if let Some(bump) = target.bump_revision {
        if !tool.assessment.bump_revision {
            return Err(RestoreError::BumpUnsupported {
                program: tool.path.clone(),
                version: tool.version.to_string(),
            });
        }
        args.push("--bump-revision".into());
        args.push(bump.to_string().into());
        args.push("--mark-compacted".into());
    }
    if target.skip_hash_check {
        args.push("--skip-hash-check".into());
    }
    Ok(args)
}

/// Restores `snapshot` into the staging dir `target.data_dir` with `tool`.
///
/// The staging dir must not exist (its parent must). On failure it is removed again and the
/// error carries the tool's exit status and the end of its stderr.
pub async fn run_restore(
    tool: &RestoreTool,
    snapshot: &Path,
    target: &RestoreTarget,
) -> Result<(), RestoreError> {
    let args = restore_args(tool, snapshot, target)?;
    if std::fs::symlink_metadata(&target.data_dir).is_ok() {
        return Err(RestoreError::StagingExists {
            dir: target.data_dir.clone(),
        });
    }
    let mut command = crate::child::command(&tool.path);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if tool.kind == ToolKind::Etcdctl {
        command.env("ETCDCTL_API", "3");
    }
    let output = command
        .output()
        .await
        .map_err(|source| RestoreError::SpawnTool {
            program: tool.path.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    // The dir did not exist before, so whatever is there is the tool's half-written output.
    let _ = std::fs::remove_dir_all(&target.data_dir);
    Err(RestoreError::ToolFailed {
        program: tool.path.clone(),
        snapshot: snapshot.to_path_buf(),
        status: output.status.to_string(),
        stderr: tail(&output.stderr, STDERR_KEPT),
    })
}

/// The last `max` bytes of `bytes` as trimmed text, cut at a line start when possible.
fn tail(bytes: &[u8], max: usize) -> String {
    let text = crate::child::mask_known(&String::from_utf8_lossy(bytes));
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    let cut = cut.split_once('\n').map_or(cut, |(_, rest)| rest);
    format!("...{cut}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::tool::{ToolAssessment, Version};

    fn tool(kind: ToolKind, bump: bool) -> RestoreTool {
        RestoreTool {
            kind,
            path: PathBuf::from("/usr/bin/etcdutl"),
            version: Version::new(3, 5, 26),
            assessment: ToolAssessment {
                bump_revision: bump,
                warnings: Vec::new(),
            },
        }
    }

    fn target(bump: Option<u64>) -> RestoreTarget {
        RestoreTarget {
            data_dir: PathBuf::from("/d/server/db/etcd-restore-7.tmp"),
            name: "node-a".into(),
            peer_url: "http://127.0.0.1:2380".into(),
            cluster_token: "restore-7".into(),
            bump_revision: bump,
            skip_hash_check: false,
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn argv_for_a_single_member_restore() {
        let args = restore_args(
            &tool(ToolKind::Etcdctl, false),
            Path::new("/s/snap"),
            &target(None),
        );
        assert_eq!(
            strings(args.unwrap()),
            [
                "snapshot",
                "restore",
                "/s/snap",
                "--data-dir",
                "/d/server/db/etcd-restore-7.tmp",
                "--name",
                "node-a",
                "--initial-cluster",
                "node-a=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster-token",
                "restore-7",
            ]
        );
    }

    #[test]
    fn skip_hash_check_is_passed_only_when_asked() {
        let mut t = target(None);
        t.skip_hash_check = true;
        let args = strings(
            restore_args(&tool(ToolKind::Etcdutl, false), Path::new("/s/snap"), &t).unwrap(),
        );
        assert_eq!(args.last().unwrap(), "--skip-hash-check");
        let args = strings(
            restore_args(
                &tool(ToolKind::Etcdutl, false),
                Path::new("/s/snap"),
                &target(None),
            )
            .unwrap(),
        );
        assert!(!args.iter().any(|a| a == "--skip-hash-check"));
    }

    #[test]
    fn bump_is_added_when_supported_and_refused_otherwise() {
        let snap = Path::new("/s/snap");
        let args = strings(
            restore_args(
                &tool(ToolKind::Etcdutl, true),
                snap,
                &target(Some(1_000_000_000)),
            )
            .unwrap(),
        );
        assert_eq!(
            args[args.len() - 3..],
            ["--bump-revision", "1000000000", "--mark-compacted"]
        );
        let err =
            restore_args(&tool(ToolKind::Etcdutl, false), snap, &target(Some(5))).unwrap_err();
        assert!(matches!(err, RestoreError::BumpUnsupported { .. }), "{err}");
    }

    #[test]
    fn stderr_tail_is_bounded_and_starts_at_a_line() {
        assert_eq!(tail(b"  short\n", 100), "short");
        let long: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let cut = tail(long.as_bytes(), 50);
        assert!(cut.len() <= 53 && cut.starts_with("...line "), "{cut}");
        assert!(cut.ends_with("line 99"));
    }

    #[tokio::test]
    async fn refuses_an_existing_staging_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = target(None);
        t.data_dir = dir.path().to_path_buf();
        let err = run_restore(&tool(ToolKind::Etcdutl, false), Path::new("/s/snap"), &t)
            .await
            .unwrap_err();
        assert!(matches!(err, RestoreError::StagingExists { .. }), "{err}");
        assert!(dir.path().exists());
    }
}
