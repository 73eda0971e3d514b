//! The throwaway member: restored from the plain snapshot file into the drill's own temp dir,
//! started on loopback at the lowest priority, asked what it serves, and stopped.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use etcd_client::GetOptions;

use super::DrillError;
use super::judge::{Observed, ObservedHash};
use crate::etcd::standalone::{StandaloneEtcd, StandaloneOptions};
use crate::restore::restore_args;
use crate::restore::run::RestoreTarget;
use crate::restore::tool::{RestoreTool, ToolKind};
use crate::snapshot::hashkv::HashKvRecord;

/// The member's name; the cluster token is unique per drill.
const MEMBER: &str = "etcd-snapshot-drill";
/// Keys per range read: bounded memory whatever the snapshot holds (etcd values are at most
/// 1.5 MiB by default, so a page is at most ~1.5 GiB in theory and a few MiB in practice).
const PAGE: i64 = 500;
/// A member restored from a big snapshot rebuilds its index before answering.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Restores `snapshot` (a plain database file with trailer) into `dir/member` with `tool`, at
/// the lowest priority. The tool checks the trailer as it restores.
pub async fn restore(
    tool: &RestoreTool,
    snapshot: &Path,
    dir: &Path,
    unique: &str,
) -> Result<std::path::PathBuf, DrillError> {
    let target = RestoreTarget {
        data_dir: dir.join("member"),
        name: MEMBER.into(),
        // Recorded in the member; the real listener is picked when it starts (etcd keeps the
        // recorded peer URL for a member with a WAL, see `StandaloneOptions`).
        peer_url: "https://127.0.0.1:2380".into(),
        cluster_token: format!("{MEMBER}-{unique}"),
        bump_revision: None,
    };
    let args = restore_args(tool, snapshot, &target)?;
    let mut command = crate::child::command(&tool.path);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if tool.kind == ToolKind::Etcdctl {
        command.env("ETCDCTL_API", "3");
    }
    let child = command.spawn().map_err(|source| DrillError::Spawn {
        program: tool.path.clone(),
        source,
    })?;
    if let Some(pid) = child.id() {
        crate::child::lower_priority(pid);
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| DrillError::Spawn {
            program: tool.path.clone(),
            source,
        })?;
    if !output.status.success() {
        let stderr = crate::child::mask_known(&String::from_utf8_lossy(&output.stderr));
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(DrillError::RestoreFailed {
            status: output.status.to_string(),
            stderr: tail,
        });
    }
    Ok(target.data_dir)
}

/// Starts the restored member on free loopback ports at the lowest priority.
pub async fn start(etcd_binary: &Path, data_dir: &Path) -> Result<StandaloneEtcd, DrillError> {
    let mut options = StandaloneOptions::new(etcd_binary, data_dir, MEMBER);
    options.low_priority = true;
    options.health_timeout = START_TIMEOUT;
    StandaloneEtcd::start(options)
        .await
        .map_err(|e| DrillError::Start(Box::new(e)))
}

/// Asks the member for its revision, key count and `HashKV` at the recorded revision, then
/// reads every key once in pages of `PAGE` at that revision.
pub async fn observe(
    member: &StandaloneEtcd,
    recorded: Option<&HashKvRecord>,
) -> Result<Observed, etcd_client::Error> {
    let mut client = member.client();
    let count = client
        .get(
            vec![0u8],
            Some(GetOptions::new().with_from_key().with_count_only()),
        )
        .await?;
    let revision = count.header().map_or(0, |h| h.revision());
    let keys = u64::try_from(count.count()).unwrap_or(0);
    let hash = match recorded {
        Some(r) => Some(
            client
                .hash_kv(r.revision)
                .await
                .map(|a| ObservedHash {
                    hash: a.hash(),
                    compact_revision: a.compact_version(),
                })
                .map_err(|e| e.to_string()),
        ),
        None => None,
    };
    let (read_keys, read_bytes) = read_all(&mut client, revision).await?;
    Ok(Observed {
        revision,
        keys,
        hash,
        read_keys,
        read_bytes,
    })
}

/// Every key at `revision`, `PAGE` at a time; returns how many and their bytes.
async fn read_all(
    client: &mut etcd_client::Client,
    revision: i64,
) -> Result<(u64, u64), etcd_client::Error> {
    let (mut keys, mut bytes) = (0u64, 0u64);
    let mut from = vec![0u8];
    loop {
        let options = GetOptions::new()
            .with_from_key()
            .with_limit(PAGE)
            .with_revision(revision);
        let page = client.get(from.clone(), Some(options)).await?;
        for kv in page.kvs() {
            keys += 1;
            bytes += (kv.key().len() + kv.value().len()) as u64;
        }
        match page.kvs().last() {
            Some(last) if page.more() => {
                // The next key after `last`: itself with a NUL appended.
                from = last.key().to_vec();
                from.push(0);
            }
            _ => return Ok((keys, bytes)),
        }
    }
}
