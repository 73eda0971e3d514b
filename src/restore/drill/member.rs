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
/// Keys per range read at most.
const PAGE: i64 = 500;
/// The first page's size: small, because nothing is known yet of the values' sizes and etcd
/// builds a whole reply before the client can refuse it.
const FIRST_PAGE: i64 = 16;
/// The largest reply the drill accepts: memory stays bounded whatever the snapshot holds, and a
/// single value up to this size (etcd's request limit is 1.5 MiB by default) still fits.
const MAX_REPLY_BYTES: usize = 16 << 20;
/// The reply size pages aim at: half the limit, so a page a little heavier than the last one
/// still fits.
const TARGET_PAGE_BYTES: u64 = (MAX_REPLY_BYTES / 2) as u64;
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
        // `inspect` checks the trailer beside the restore, and the restore counts only when
        // it passed (`run_checks`): the tool need not hash the file a second time.
        skip_hash_check: true,
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
    options.fast_election = true;
    options.health_timeout = START_TIMEOUT;
    StandaloneEtcd::start(options)
        .await
        .map_err(|e| DrillError::Start(Box::new(e)))
}

/// Asks the member for its revision and key count, then, side by side, for `HashKV` at the
/// recorded revision and every key once in pages at the served revision: etcd hashes on one
/// core while it serves the pages on the other.
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
    let mut hash_client = client.clone();
    let hash = async move {
        let r = recorded?;
        Some(
            hash_client
                .hash_kv(r.revision)
                .await
                .map(|a| ObservedHash {
                    hash: a.hash(),
                    compact_revision: a.compact_version(),
                })
                .map_err(|e| e.to_string()),
        )
    };
    let (hash, read) = tokio::join!(hash, read_all(&mut client, revision));
    let (read_keys, read_bytes) = read?;
    Ok(Observed {
        revision,
        keys,
        hash,
        read_keys,
        read_bytes,
    })
}

/// Every key at `revision`, a page at a time; returns how many and their bytes. Each page is
/// sized from the last one's bytes per key ([`next_page_limit`]); a reply over
/// `MAX_REPLY_BYTES` anyway is refused by the client and retried with half the page.
async fn read_all(
    client: &mut etcd_client::Client,
    revision: i64,
) -> Result<(u64, u64), etcd_client::Error> {
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(MAX_REPLY_BYTES);
    let (mut keys, mut bytes) = (0u64, 0u64);
    let mut from = vec![0u8];
    let mut limit = FIRST_PAGE;
    loop {
        // Serializable: a lone member has nothing to agree with, so a linearizable read would
        // only add a round through raft per page.
        let options = GetOptions::new()
            .with_from_key()
            .with_limit(limit)
            .with_revision(revision)
            .with_serializable();
        let page = match kv.get(from.clone(), Some(options)).await {
            Ok(page) => page,
            Err(e) if reply_too_large(&e) && limit > 1 => {
                limit = next_page_limit(limit, None);
                continue;
            }
            Err(e) => return Err(e),
        };
        let page_bytes: u64 = page
            .kvs()
            .iter()
            .map(|kv| (kv.key().len() + kv.value().len()) as u64)
            .sum();
        keys += page.kvs().len() as u64;
        bytes += page_bytes;
        limit = next_page_limit(limit, Some((page.kvs().len() as u64, page_bytes)));
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

/// The next page size after a read: `None` is a reply refused as too large, which halves the
/// page; `Some((keys, bytes))` sizes the next page to hold about `TARGET_PAGE_BYTES` at this
/// page's bytes per key, growing at most twofold a page (one small key among large values does
/// not make the next page huge) and staying within 1..=`PAGE`. Pure.
fn next_page_limit(limit: i64, page: Option<(u64, u64)>) -> i64 {
    let Some((keys, bytes)) = page else {
        return (limit / 2).max(1);
    };
    if keys == 0 {
        return limit;
    }
    let per_key = bytes.div_ceil(keys).max(1);
    let fits = i64::try_from(TARGET_PAGE_BYTES / per_key).unwrap_or(PAGE);
    fits.min(limit.saturating_mul(2)).clamp(1, PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_halves_on_a_too_large_reply_and_never_below_one() {
        assert_eq!(next_page_limit(500, None), 250);
        assert_eq!(next_page_limit(1, None), 1);
    }

    #[test]
    fn the_page_is_sized_from_the_bytes_per_key_of_the_last_one() {
        // 1 MiB values: 8 fit the 8 MiB target.
        assert_eq!(next_page_limit(16, Some((16, 16 << 20))), 8);
        // Tiny keys: grows twofold a page, up to PAGE.
        assert_eq!(next_page_limit(16, Some((16, 16 * 100))), 32);
        assert_eq!(next_page_limit(400, Some((400, 400 * 100))), PAGE);
        // A value larger than the target still reads one key at a time.
        assert_eq!(next_page_limit(8, Some((1, 12 << 20))), 1);
        // An empty page keeps the size.
        assert_eq!(next_page_limit(64, Some((0, 0))), 64);
    }
}
