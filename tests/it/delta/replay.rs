//! Point-in-time restore end to end: the real server with its embedded etcd captures a chain
//! while the load generator writes; the state etcd reports at chosen revisions (and at a
//! wall-clock time) is recorded; the server and its etcd are killed with SIGKILL; then
//! `etcd-snapshot restore --cluster-reset-restore-to` brings each point back, and the restored
//! member must serve exactly the recorded keys, values, versions, create and mod revisions and
//! leases. The cluster is compacted mid-chain, as Kubernetes does, so later segment hashes are
//! matched only by a replay that compacts the same way. A corrupted segment is refused by name
//! while a point before it still restores. An age-encrypted full snapshot anchors a replay
//! when the restore has its identity file.

use std::collections::BTreeSet;

use super::load::{KeyState, Load, state, tls_client};
use super::*;
use crate::restore::cluster_reset::Node;
use crate::support::{require_binary, text};

/// The pids of processes whose command line mentions `needle` (the node's etcd: its data dir).
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILL for the embedded etcd and the server (etcd first: the server would restart it, and
/// dies with it gone anyway), then waits until no etcd of this node is left.
fn kill_server_and_etcd(node: &Node, server: &mut TestServer) {
    let etcd_dir = node.dir().join("server/db/etcd").display().to_string();
    let etcd_pids = || -> Vec<u32> {
        pids_mentioning(&etcd_dir)
            .into_iter()
            .filter(|pid| *pid != std::process::id())
            .collect()
    };
    let first = etcd_pids();
    assert!(!first.is_empty(), "the embedded etcd's pid");
    for pid in first {
        // It may be gone already (the kill of another pid of its group): not an error.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    signal(server.pid(), "KILL");
    server.wait_exit();
    wait_for("the killed etcd to be gone", WAIT, || {
        etcd_pids().is_empty()
    });
}

/// Restores with `args`, expecting success and a replay report; returns stdout.
pub(super) fn restore_ok(node: &Node, args: &[&str]) -> String {
    let out = node.restore(args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "restore {args:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("Replayed its delta chain"),
        "restore {args:?}:\n{stdout}"
    );
    stdout
}

/// Starts the node normally (which clears the reset-flag, so the next restore may run), reads
/// every key, stops it.
pub(super) async fn restored_state(node: &Node) -> Vec<KeyState> {
    let mut server = node.start(&[]);
    let mut client = tls_client(&node.endpoint(), &node.tls_dir()).await;
    let keys = state(&mut client, None).await;
    let flag = node.dir().join("server/db/reset-flag");
    wait_for("the reset-flag to be cleared", WAIT, || !flag.exists());
    server.terminate();
    keys
}

/// The keys the load wrote (the server's own bootstrap keys are not the test's).
pub(super) fn load_keys(all: Vec<KeyState>) -> Vec<KeyState> {
    all.into_iter()
        .filter(|k| k.0.starts_with("/load/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_restores_every_chosen_point_exactly_and_refuses_a_corrupted_segment() {
    if require_binary("etcd").is_none() || require_binary("etcdctl").is_none() {
        return;
    }
    let node = Node::new();
    let mut server = node.start(&[
        "--etcd-snapshot-delta",
        "--etcd-snapshot-delta-period",
        "1s",
    ]);
    let chain = wait_for_chain(node.dir(), &server);
    let anchor_path = snapshot_dir(node.dir()).join(anchor_name_of(&chain));
    let client = tls_client(&node.endpoint(), &node.tls_dir()).await;
    let mut load = Load::new(client);

    // Phase A: a lease that stays, and one that expires in phase C.
    let kept = load.client.lease_grant(600, None).await.unwrap().id();
    let expiring = load.client.lease_grant(6, None).await.unwrap().id();
    let options = PutOptions::new().with_lease(expiring);
    load.client
        .put("/load/expiring", "e", Some(options))
        .await
        .unwrap();
    let r1 = load.run(60, kept).await;
    let at_r1 = state(&mut load.client, Some(r1)).await;

    // Phase B, then a wall-clock point once everything up to it is in published segments.
    let r2 = load.run(60, kept).await;
    wait_for("segments up to phase B", WAIT, || chain_end(&chain) >= r2);
    let at_time = chrono::Utc::now();
    let at_r2 = state(&mut load.client, Some(r2)).await;
    // Kubernetes compacts every few minutes: the hashes recorded after this cover only what is
    // after r2, and the replay must compact its member the same way to match them.
    load.client.compact(r2, None).await.unwrap();
    wait_for("the clock to pass the chosen time", WAIT, || {
        chrono::Utc::now().timestamp_millis() > at_time.timestamp_millis()
    });

    // Phase C: the kept lease revoked (its keys deleted at one revision), the other expires.
    load.run(30, kept).await;
    load.client.lease_revoke(kept).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !load
        .client
        .get("/load/expiring", None)
        .await
        .unwrap()
        .kvs()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease did not expire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r3 = load.run(30, 0).await;
    let at_r3 = state(&mut load.client, Some(r3)).await;
    let hash_r3 = load.client.hash_kv(r3).await.unwrap();
    wait_for("segments up to phase C", WAIT, || chain_end(&chain) >= r3);
    // The segment ending at r3 recorded etcd's HashKV there: the replay must reproduce it.
    let tail = super::segments(&chain).pop().unwrap();
    assert_eq!(tail.footer.to_revision, r3);
    let recorded = tail.footer.hashkv.expect("the last segment's HashKV");
    assert_eq!(
        (recorded.hash, recorded.compact_revision),
        (hash_r3.hash(), hash_r3.compact_version())
    );
    assert_eq!(
        recorded.compact_revision, r2,
        "recorded after the compaction"
    );
    let leases: BTreeSet<i64> = at_r1.iter().map(|k| k.5).collect();
    assert!(
        leases.contains(&kept) && leases.contains(&expiring),
        "{at_r1:?}"
    );
    assert!(
        at_r3.iter().all(|k| k.5 == 0),
        "phase C removed every leased key"
    );
    drop(load);
    kill_server_and_etcd(&node, &mut server);

    // A wall-clock time, with the full snapshot chosen automatically.
    let time = at_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    restore_ok(&node, &["--cluster-reset-restore-to", &time]);
    assert_eq!(load_keys(restored_state(&node).await), load_keys(at_r2));

    // The last revision, from the given snapshot.
    let anchor = anchor_path.display().to_string();
    let stdout = restore_ok(
        &node,
        &[&anchor, "--cluster-reset-restore-to", &r3.to_string()],
    );
    let (segments_read, hashes) = replay_counts(&stdout);
    assert!(
        segments_read >= 1 && hashes == 1,
        "the last segment end's recorded hash was matched:\n{stdout}"
    );
    assert_eq!(load_keys(restored_state(&node).await), load_keys(at_r3));

    // A corrupted segment after r1 is refused by name, and nothing is changed.
    let last = segments_named(&chain).pop().unwrap();
    assert!(last.0 > r1, "the last segment starts after r1");
    let mut bytes = std::fs::read(&last.1).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&last.1, bytes).unwrap();
    let before = crate::restore::cluster_reset::tree(&node.dir().join("server/db/etcd"));
    let out = node.restore(&[&anchor, "--cluster-reset-restore-to", &r3.to_string()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let name = last.1.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr.contains(&name) && stderr.contains("corrupted"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    let after = crate::restore::cluster_reset::tree(&node.dir().join("server/db/etcd"));
    assert_eq!(
        before, after,
        "a refused replay leaves the data dir as it was"
    );

    // A revision before it still restores, with the recorded hash matched along the way.
    restore_ok(
        &node,
        &[&anchor, "--cluster-reset-restore-to", &r1.to_string()],
    );
    assert_eq!(load_keys(restored_state(&node).await), load_keys(at_r1));
}

/// From the report line `... from N segments, M keyspace hashes matched.`: (N, M).
fn replay_counts(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Replayed its delta chain"))
        .unwrap();
    let number_before = |word: &str| -> u64 {
        let head = &line[..line.find(word).unwrap()];
        head.split_whitespace().last().unwrap().parse().unwrap()
    };
    (
        number_before(" segments"),
        number_before(" keyspace hashes"),
    )
}

/// The published segments of a chain dir: (from, path), in revision order.
fn segments_named(chain: &Path) -> Vec<(i64, PathBuf)> {
    let mut named: Vec<(i64, PathBuf)> = std::fs::read_dir(chain)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let (from, _) = parse_segment_file_name(e.file_name().to_str()?)?;
            Some((from, e.path()))
        })
        .collect();
    named.sort();
    named
}

#[test]
fn a_restore_to_point_needs_cluster_reset_on_the_server_and_a_point_that_parses() {
    let data = tempfile::tempdir().unwrap();
    let out = crate::support::run(
        &["server", "--cluster-reset-restore-to", "latest"],
        data.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("--cluster-reset required with --cluster-reset-restore-to"),
        "{stderr}"
    );
    // A value that is no point in time: the key, the value, where it came from, what would do.
    let out = crate::support::run(
        &["restore", "--cluster-reset-restore-to", "yesterday"],
        data.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    for part in [
        "--cluster-reset-restore-to",
        "yesterday",
        "RFC 3339",
        "latest",
    ] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    assert!(
        !data.path().join("server/db/etcd").exists(),
        "nothing was restored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_full_snapshot_anchors_a_replay_with_the_identity_file() {
    if ["etcd", "etcdctl", "age-keygen"]
        .iter()
        .any(|tool| require_binary(tool).is_none())
    {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = crate::inspect_encrypted::keygen(keys.path(), "key.txt");
    let node = Node::new();
    let recipients = format!("--etcd-snapshot-encryption-recipients={public}");
    let mut server = node.start(&[
        "--etcd-snapshot-delta",
        "--etcd-snapshot-delta-period",
        "1s",
        &recipients,
    ]);
    let chain = wait_for_chain(node.dir(), &server);
    assert!(anchor_name_of(&chain).ends_with(".age"), "{chain:?}");
    let mut client = tls_client(&node.endpoint(), &node.tls_dir()).await;
    let mut last = 0;
    for (key, value) in [("/test/a", "1"), ("/test/b", "2"), ("/test/a", "3")] {
        let put = client.put(key, value, None).await.unwrap();
        last = put.header().unwrap().revision();
    }
    let want = state(&mut client, Some(last)).await;
    wait_for("segments up to the last write", WAIT, || {
        chain_end(&chain) >= last
    });
    assert!(server.terminate().success());

    let identity = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        identity.display()
    );
    restore_ok(&node, &["--cluster-reset-restore-to", "latest", &identity]);
    let under_test = |all: Vec<KeyState>| -> Vec<KeyState> {
        all.into_iter()
            .filter(|k| k.0.starts_with("/test/"))
            .collect()
    };
    let restored = under_test(restored_state(&node).await);
    assert_eq!(restored, under_test(want));
    assert_eq!(restored[0].2, 2, "/test/a was written twice: {restored:?}");
}
