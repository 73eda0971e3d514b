//! The cheap revision read a restore runs beside the restore tool (`inspect::revision`, a few
//! pages) against etcd's own tools on real snapshots: `etcdctl snapshot status` (3.4) and
//! `etcdutl snapshot status` (3.5) report the same revision, on a snapshot whose `key` bucket is
//! a multi-level tree, after deletes and a compaction, and after the newest revisions were
//! deleted and compacted away; and a member restored from each serves `Revisions::served`.

use std::path::Path;

use etcd_client::{Client, CompactionOptions};
use etcd_snapshot::inspect::revision::{self, Revisions};

use super::{Member, etcdctl, etcdctl_save};
use crate::support::{TestEtcd, free_port, require_binary};

/// `snapshot status -w json`'s revision from `program` (etcdctl runs with the v3 API).
fn status_revision(program: &Path, snapshot: &Path) -> u64 {
    let out = std::process::Command::new(program)
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status"])
        .arg(snapshot)
        .args(["-w", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["revision"].as_u64().expect("revision")
}

async fn head(client: &mut Client) -> i64 {
    let r = client.get("/", None).await.unwrap();
    r.header().unwrap().revision()
}

/// Restores `snapshot` with the real restore tool, starts it, and returns the revision served.
async fn served_after_restore(snapshot: &Path, root: &Path, n: usize) -> i64 {
    let tool = etcd_snapshot::restore::select_restore_tool(Path::new("etcd"))
        .await
        .unwrap();
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let target = etcd_snapshot::restore::RestoreTarget {
        data_dir: root.join(format!("restored-{n}")),
        name: "restored".into(),
        peer_url: peer_url.clone(),
        cluster_token: format!("revision-test-{n}"),
        bump_revision: None,
        skip_hash_check: false,
    };
    etcd_snapshot::restore::run_restore(&tool, snapshot, &target)
        .await
        .unwrap();
    let dir = target.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        let member = Member::start(&dir, "restored", &peer_url);
        let out = etcdctl(&member.endpoint)
            .args(["get", "/", "-w", "json"])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["header"]["revision"]
            .as_i64()
            .expect("header revision")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revision_read_agrees_with_snapshot_status_and_the_restored_member() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let etcdctl_bin = require_binary("etcdctl").expect("etcdctl");
    let etcdutl_bin = require_binary("etcdutl");
    let root = tempfile::tempdir().unwrap();
    let mut client = Client::connect([etcd.endpoint.clone()], None)
        .await
        .unwrap();
    // Enough revisions that the `key` bucket is a tree of several pages.
    for i in 0..3000 {
        let value = format!("value-{i}-{}", "x".repeat(i % 97));
        client.put(format!("/k/{i:05}"), value, None).await.unwrap();
    }
    let plain = root.path().join("plain-n1-1");
    etcdctl_save(&etcd.endpoint, &plain);
    // Deletes, then a compaction below the newest revision.
    for i in 0..200 {
        client.delete(format!("/k/{i:05}"), None).await.unwrap();
    }
    let middle = head(&mut client).await - 100;
    let physical = || Some(CompactionOptions::new().with_physical());
    client.compact(middle, physical()).await.unwrap();
    let compacted = root.path().join("compacted-n1-2");
    etcdctl_save(&etcd.endpoint, &compacted);
    // The newest changes are deletions, then compacted at the head: the revisions above the
    // last key left are gone from the file, and etcd serves the compaction's.
    for i in 200..260 {
        client.delete(format!("/k/{i:05}"), None).await.unwrap();
    }
    let top = head(&mut client).await;
    client.compact(top, physical()).await.unwrap();
    let top_gone = root.path().join("top-gone-n1-3");
    etcdctl_save(&etcd.endpoint, &top_gone);

    let mut seen = Vec::new();
    for (n, snapshot) in [&plain, &compacted, &top_gone].into_iter().enumerate() {
        let ours: Revisions = revision::read_file(snapshot).unwrap();
        let name = snapshot.display();
        assert_eq!(
            ours.latest,
            status_revision(&etcdctl_bin, snapshot),
            "{name}"
        );
        if let Some(etcdutl) = &etcdutl_bin {
            assert_eq!(ours.latest, status_revision(etcdutl, snapshot), "{name}");
        }
        let served = served_after_restore(snapshot, root.path(), n).await;
        assert_eq!(served, ours.served() as i64, "{name}: {ours:?}");
        seen.push(ours);
    }
    assert_eq!(
        seen[0],
        Revisions {
            latest: 3001,
            finished_compact: None
        }
    );
    assert_eq!(seen[1].finished_compact, Some(middle as u64));
    // The case the file's highest key alone gets wrong.
    assert_eq!(seen[2].finished_compact, Some(top as u64));
    assert!(seen[2].latest < top as u64, "{:?}", seen[2]);
}
