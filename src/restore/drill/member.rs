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
/// Keys per range read at most. A page of large values can exceed the reply limit below; the
/// read then halves its page (see [`next_page_limit`]).
const PAGE: i64 = 500;
/// The largest reply the drill accepts: memory stays bounded whatever the snapshot holds, and a
/// single value up to this size (etcd's request limit is 1.5 MiB by default) still fits.
const MAX_REPLY_BYTES: usize = 16 << 20;
/// Pages read in a row without a too-large reply before the page grows again.
const GROW_AFTER: u32 = 8;
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

/// Every key at `revision`, a page at a time; returns how many and their bytes. A reply over
/// `MAX_REPLY_BYTES` (a page of large values) is refused by the client and retried with half
/// the page.
async fn read_all(
    client: &mut etcd_client::Client,
    revision: i64,
) -> Result<(u64, u64), etcd_client::Error> {
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(MAX_REPLY_BYTES);
    let (mut keys, mut bytes) = (0u64, 0u64);
    let mut from = vec![0u8];
    let (mut limit, mut streak) = (PAGE, 0u32);
    loop {
        let options = GetOptions::new()
            .with_from_key()
            .with_limit(limit)
            .with_revision(revision);
        let page = match kv.get(from.clone(), Some(options)).await {
            Ok(page) => page,
            Err(e) if reply_too_large(&e) && limit > 1 => {
                (limit, streak) = next_page_limit(limit, streak, true);
                continue;
            }
            Err(e) => return Err(e),
        };
        (limit, streak) = next_page_limit(limit, streak, false);
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

/// The client refused a reply over its decoding limit (gRPC's "message length too large").
fn reply_too_large(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            status.message().contains("message length too large")
        }
        _ => false,
    }
}

/// The next page size and success streak after a read: a too-large reply halves the page; a
/// run of `GROW_AFTER` good pages doubles it again, up to `PAGE`, so a region of large values
/// does not slow the small keys after it. Pure.
fn next_page_limit(limit: i64, streak: u32, too_large: bool) -> (i64, u32) {
    if too_large {
        return ((limit / 2).max(1), 0);
    }
    if streak + 1 >= GROW_AFTER {
        return ((limit * 2).min(PAGE), 0);
    }
    (limit, streak + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_halves_on_a_too_large_reply_and_grows_back_after_a_run_of_good_ones() {
        assert_eq!(next_page_limit(500, 3, true), (250, 0));
        assert_eq!(next_page_limit(1, 0, true), (1, 0));
        let (mut limit, mut streak) = (250, 0);
        for _ in 0..GROW_AFTER {
            (limit, streak) = next_page_limit(limit, streak, false);
        }
        assert_eq!((limit, streak), (PAGE, 0));
        assert_eq!(next_page_limit(PAGE, GROW_AFTER, false), (PAGE, 0));
    }
}
