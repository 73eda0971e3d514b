//! A snapshot file's status (hash, revision, key count, size) as etcd's own tool reports it:
//! `etcdutl snapshot status -w json` (3.5+) or `ETCDCTL_API=3 etcdctl snapshot status -w json`.
//!
//! Owns running the tool and parsing its output; it never modifies the snapshot or picks the
//! tool (the restore module does).

use std::path::Path;
use std::process::Stdio;

use super::StandaloneError;
use serde::Deserialize;

/// How much of the tool's stderr an error carries.
const STDERR_KEPT: usize = 4096;

/// What `snapshot status` reports: the restored member's revision must equal `revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// etcd's CRC-32C over the db's buckets (tables print it as hex).
    pub hash: u32,
    pub revision: i64,
    /// 3.4/3.5: entries in all buckets; 3.6: live keys.
    pub total_key: u64,
    /// Size of the bbolt db in bytes.
    pub total_size: u64,
}

/// The tool's JSON; 3.6 adds `version`, ignored here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusJson {
    hash: u32,
    revision: i64,
    total_key: u64,
    total_size: u64,
}

/// Parses `snapshot status -w json` output (one JSON object, possibly surrounded by blanks).
pub fn parse_snapshot_status(stdout: &str) -> Result<SnapshotStatus, serde_json::Error> {
    let json: StatusJson = serde_json::from_str(stdout.trim())?;
    Ok(SnapshotStatus {
        hash: json.hash,
        revision: json.revision,
        total_key: json.total_key,
        total_size: json.total_size,
    })
}

/// Runs `<tool> snapshot status <snapshot> -w json` and parses it.
pub async fn snapshot_status(
    tool_path: &Path,
    tool_kind_is_etcdutl: bool,
    snapshot: &Path,
) -> Result<SnapshotStatus, StandaloneError> {
    let mut command = crate::child::command(tool_path);
    command
        .args(["snapshot", "status"])
        .arg(snapshot)
        .args(["-w", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !tool_kind_is_etcdutl {
        command.env("ETCDCTL_API", "3");
    }
    let output = command
        .output()
        .await
        .map_err(|source| StandaloneError::StatusTool {
            program: tool_path.to_path_buf(),
            snapshot: snapshot.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(StandaloneError::StatusFailed {
            program: tool_path.to_path_buf(),
            snapshot: snapshot.to_path_buf(),
            status: output.status.to_string(),
            stderr: tail(&output.stderr),
        });
    }
    parse_snapshot_status(&String::from_utf8_lossy(&output.stdout)).map_err(|source| {
        StandaloneError::StatusParse {
            program: tool_path.to_path_buf(),
            snapshot: snapshot.to_path_buf(),
            source,
        }
    })
}

/// The last `STDERR_KEPT` bytes of `bytes`, trimmed.
fn tail(bytes: &[u8]) -> String {
    let text = crate::child::mask_known(&String::from_utf8_lossy(bytes));
    let text = text.trim();
    let mut start = text.len().saturating_sub(STDERR_KEPT);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcdctl_3_4_output() {
        // Captured from `ETCDCTL_API=3 etcdctl snapshot status s.db -w json` (3.4.23); its table
        // form printed hash 314924ea, revision 3, 6 keys, 20 kB.
        let out = "{\"hash\":826877162,\"revision\":3,\"totalKey\":6,\"totalSize\":20480}\n";
        let status = parse_snapshot_status(out).unwrap();
        assert_eq!(format!("{:08x}", status.hash), "314924ea");
        assert_eq!(status.revision, 3);
        assert_eq!(status.total_key, 6);
        assert_eq!(status.total_size, 20480);
    }

    #[test]
    fn ignores_the_3_6_version_field_and_rejects_other_text() {
        let out = r#"{"hash":1,"revision":9,"totalKey":2,"totalSize":3,"version":"3.6.0"}"#;
        assert_eq!(parse_snapshot_status(out).unwrap().revision, 9);
        assert!(parse_snapshot_status("Error: snapshot file has no hash").is_err());
        assert!(parse_snapshot_status(r#"{"hash":1,"revision":9}"#).is_err());
    }

    #[test]
    fn tail_keeps_the_end() {
        let long = format!("{}end", "x".repeat(STDERR_KEPT * 2));
        let kept = tail(long.as_bytes());
        assert_eq!(kept.len(), STDERR_KEPT);
        assert!(kept.ends_with("end"));
    }
}
