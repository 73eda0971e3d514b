//! Restore drills and what they rest on, through the real binary and a real etcd: the keyspace
//! hash recorded at save time agrees with etcd's own `etcdctl endpoint hashkv`.

use std::path::Path;
use std::process::Command;

use crate::support::{TestEtcd, free_port, require_binary, run, snapshot_dir, text};

/// Saves `name` in direct mode against `etcd`; returns the snapshot's file name.
fn save(etcd: &TestEtcd, data: &Path, name: &str) -> String {
    let server = format!("--etcd-server=https://127.0.0.1:{}", free_port());
    let endpoints = format!("--etcd-endpoints={}", etcd.endpoint);
    let out = run(
        &[
            &server,
            &endpoints,
            "--node-name=n1",
            "save",
            "--name",
            name,
        ],
        data,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    std::fs::read_dir(snapshot_dir(data))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&format!("{name}-")))
        .expect("saved snapshot")
}

/// `etcdctl endpoint hashkv --rev <rev>`: (hash, compact revision) as etcd reports them.
fn etcdctl_hashkv(etcd: &TestEtcd, rev: i64) -> (u64, i64) {
    let out = Command::new(require_binary("etcdctl").expect("etcdctl"))
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.endpoint,
            "endpoint",
            "hashkv",
            "-w",
            "json",
        ])
        .arg(format!("--rev={rev}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let answer = &json[0]["HashKV"];
    (
        answer["hash"].as_u64().expect("hash"),
        answer["compact_revision"].as_i64().unwrap_or(0),
    )
}

#[test]
fn a_save_records_the_keyspace_hash_etcd_reports() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    for i in 0..20 {
        etcd.put(&format!("/registry/pods/default/p{i}"), &"v".repeat(i + 1));
    }
    let data = tempfile::tempdir().unwrap();
    let file = save(&etcd, data.path(), "hashed");
    let record = data.path().join("server/db/.metadata").join(&file);
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&record).expect("metadata record")).unwrap();
    let revision: i64 = map["etcd-snapshot-hashkv-revision"].parse().unwrap();
    // 20 puts on a fresh member: revision 21, all of it in the snapshot.
    assert_eq!(revision, 21, "{map:?}");
    // Writes after the save do not change the hash at the recorded revision.
    etcd.put("/registry/pods/default/later", "x");
    let (hash, compact) = etcdctl_hashkv(&etcd, revision);
    assert_eq!(map["etcd-snapshot-hashkv"], hash.to_string(), "{map:?}");
    assert_eq!(
        map["etcd-snapshot-hashkv-compact-revision"],
        compact.to_string()
    );
}
