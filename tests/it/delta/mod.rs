//! Delta capture against a real etcd and the real server binary: what the segments hold is
//! compared with etcd's own history (a read at each revision), a restart mid-segment (SIGKILL)
//! resumes with no gap or duplicate, and a compaction past the chain ends it and re-anchors on
//! a new full snapshot; segments live as long as their full snapshot (delete, prune and its dry
//! run, orphan healing); a point-in-time restore replays a chain and brings back exactly the
//! recorded state (`replay`, with the load generator in `load`); segments compressed and
//! encrypted like snapshots decrypt with `age` and replay with their keys (`pipeline`), and
//! follow the encryption Secret (`secret`); segments go to S3, follow their snapshot's S3 copy and
//! restore from the bucket on a new host (`s3`); `ls` shows each full snapshot's point-in-time
//! window, its end following the segments (`window`). Each test is bounded by its polls
//! (seconds). The tests are in `capture`, `retention`, `replay`, `pipeline`, `secret`, `s3` and
//! `window`; this module holds
//! what they share (reading chain dirs and segments, the oracle).

mod capture;
mod load;
mod pipeline;
mod replay;
mod retention;
mod s3;
mod secret;
mod window;

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};
use etcd_snapshot::delta::chain::{chain_reach, parse_segment_file_name};
use etcd_snapshot::delta::segment::{Event, Segment, decode};

use crate::support::{TestEtcd, TestServer, metrics, signal, snapshot_dir, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn deltas_dir(data: &Path) -> PathBuf {
    data.join("server/db/.deltas")
}

/// The chain dirs, by name (each is a full snapshot's file name).
fn chain_dirs(data: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(deltas_dir(data))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Every published segment of a chain dir, decoded, in revision order.
fn segments(chain: &Path) -> Vec<Segment> {
    let mut named: Vec<((i64, i64), PathBuf)> = std::fs::read_dir(chain)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let range = parse_segment_file_name(e.file_name().to_str()?)?;
                    Some((range, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    named.sort();
    named
        .into_iter()
        .map(|((from, to), path)| {
            let segment = decode(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                (segment.header.from_revision, segment.footer.to_revision),
                (from, to),
                "{} names its range",
                path.display()
            );
            segment
        })
        .collect()
}

/// The highest `to` published in a chain dir (0 when none).
fn chain_end(chain: &Path) -> i64 {
    std::fs::read_dir(chain)
        .map(|d| {
            d.flatten()
                .filter_map(|e| parse_segment_file_name(e.file_name().to_str()?))
                .map(|(_, to)| to)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn start_server(data: &Path, etcd: &TestEtcd, period: &str, max_size: &str) -> TestServer {
    TestServer::start(
        data,
        &[
            "--etcd-endpoints",
            &etcd.endpoint,
            "--etcd-snapshot-delta",
            "--etcd-snapshot-delta-period",
            period,
            "--etcd-snapshot-delta-max-size",
            max_size,
        ],
    )
}

/// `wait_for`, with the server's log in the failure message.
fn wait_logged(server: &TestServer, what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < WAIT,
            "timed out after {WAIT:?} waiting for {what}; server log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The full snapshot a chain dir belongs to: its name.
fn anchor_name_of(chain: &Path) -> String {
    chain.file_name().unwrap().to_string_lossy().into_owned()
}

/// The full snapshots in the snapshot dir, by name.
fn snapshots(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(snapshot_dir(data))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits for the server's first chain: the full snapshot it took to anchor it, and the chain's
/// dir (created with its first segment).
fn wait_for_chain(data: &Path, server: &TestServer) -> PathBuf {
    wait_logged(server, "the anchor snapshot and the delta capture", || {
        server.log_text().contains("delta capture started")
    });
    let names = snapshots(data);
    assert_eq!(
        names.len(),
        1,
        "one full snapshot anchors the chain: {names:?}"
    );
    deltas_dir(data).join(&names[0])
}

/// The chain's walk from its anchor covers every segment, with no hole.
fn assert_contiguous(segments: &[Segment]) {
    let anchor = segments[0].header.anchor_revision;
    let pairs: Vec<(i64, i64)> = segments
        .iter()
        .map(|s| (s.header.from_revision, s.footer.to_revision))
        .collect();
    let reach = chain_reach(anchor, &pairs);
    assert!(reach.stray.is_empty(), "segments off the chain: {pairs:?}");
    assert_eq!(reach.path, pairs);
}

/// One event as the test compares it: (revision, put?, key, value, create rev, version, lease).
type Seen = (i64, bool, String, String, i64, i64, i64);

fn seen_in(segments: &[Segment]) -> Vec<Seen> {
    let mut all = Vec::new();
    for group in segments.iter().flat_map(|s| &s.groups) {
        for event in &group.events {
            all.push(match event {
                Event::Put(p) => (
                    group.revision,
                    true,
                    String::from_utf8_lossy(&p.key).into_owned(),
                    String::from_utf8_lossy(&p.value).into_owned(),
                    p.create_revision,
                    p.version,
                    p.lease,
                ),
                Event::Delete { key } => (
                    group.revision,
                    false,
                    String::from_utf8_lossy(key).into_owned(),
                    String::new(),
                    0,
                    0,
                    0,
                ),
            });
        }
    }
    all
}

/// What etcd itself says each key was at `revision`, for the puts the test made: an independent
/// oracle for create revision, version and lease.
async fn etcd_put(client: &mut Client, revision: i64, key: &str) -> Seen {
    let got = client
        .get(key, Some(GetOptions::new().with_revision(revision)))
        .await
        .unwrap();
    let kv = &got.kvs()[0];
    assert_eq!(kv.mod_revision(), revision, "{key} at {revision}");
    (
        revision,
        true,
        key.to_string(),
        String::from_utf8_lossy(kv.value()).into_owned(),
        kv.create_revision(),
        kv.version(),
        kv.lease(),
    )
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("response header").revision()
}

/// Every revision after the anchor, once each, across all segments.
fn revisions(segments: &[Segment]) -> Vec<i64> {
    segments
        .iter()
        .flat_map(|s| s.groups.iter().map(|g| g.revision))
        .collect()
}
