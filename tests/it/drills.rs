//! Restore drills and what they rest on, through the real binary and a real etcd: the keyspace
//! hash recorded at save time agrees with etcd's own `etcdctl endpoint hashkv`; a drill passes a
//! good snapshot and catches a changed value under a valid trailer, a bit flip and a snapshot of
//! another cluster, and leaves nothing behind.

use std::path::Path;
use std::process::Command;

use etcd_snapshot::restore::drill::{DrillReport, DrillSetup, drill_local};
use sha2::Digest;

use crate::support::{TestEtcd, free_port, require_binary, run, snapshot_dir, text};

/// Saves `name` in direct mode against `etcd`; returns the snapshot's file name.
fn save(etcd: &TestEtcd, data: &Path, name: &str) -> String {
    save_with(etcd, data, name, &[]).0
}

/// `save` with more flags; also returns the command's stderr (its log).
fn save_with(etcd: &TestEtcd, data: &Path, name: &str, flags: &[&str]) -> (String, String) {
    let server = format!("--etcd-server=https://127.0.0.1:{}", free_port());
    let endpoints = format!("--etcd-endpoints={}", etcd.endpoint);
    let mut args = vec![server.as_str(), &endpoints, "--node-name=n1"];
    args.extend_from_slice(flags);
    args.extend(["save", "--name", name]);
    let out = run(&args, data);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    std::fs::read_dir(snapshot_dir(data))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&format!("{name}-")))
        .map(|file| (file, stderr))
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
    assert_eq!(map["etcd-snapshot-revision"], "21", "{map:?}");
}

/// Over `etcd-snapshot-hashkv-max-db-size` a save records its revision but asks for no hash,
/// says why at info, and succeeds; its drill passes and says no hash was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_over_the_hash_limit_records_no_hash_and_its_drill_says_so() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if require_binary("etcdutl").is_none() && require_binary("etcdctl").is_none() {
        return;
    }
    for i in 0..10 {
        etcd.put(&format!("/registry/pods/default/p{i}"), "v");
    }
    let (data, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flags = ["--etcd-snapshot-hashkv-max-db-size=1"];
    let (file, log) = save_with(&etcd, data.path(), "big", &flags);
    assert!(
        log.contains("keyspace hash skipped: database is")
            && log.contains("over etcd-snapshot-hashkv-max-db-size"),
        "{log}"
    );
    let record = data.path().join("server/db/.metadata").join(&file);
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&record).expect("metadata record")).unwrap();
    assert_eq!(map["etcd-snapshot-revision"], "11", "{map:?}");
    assert!(
        !map.keys().any(|k| k.starts_with("etcd-snapshot-hashkv")),
        "{map:?}"
    );
    let path = snapshot_dir(data.path()).join(&file);
    let report = drill_local(&setup(data.path(), tmp.path()), &path)
        .await
        .unwrap();
    assert!(report.passed, "{report:#?}");
    let hash = report.checks.iter().find(|c| c.name == "hashkv").unwrap();
    assert!(hash.detail.contains("no hash recorded"), "{hash:?}");
    // 0 never hashes.
    let (_, log) = save_with(
        &etcd,
        data.path(),
        "never",
        &["--etcd-snapshot-hashkv-max-db-size=0"],
    );
    assert!(log.contains("keyspace hash skipped"), "{log}");
}

/// The two halves of the save-time hash against a real etcd: `Status` gives the revision and a
/// database size, `HashKV` at it agrees with etcdctl, and once etcd compacted past that revision
/// the hash is refused as compacted (the save then records none and goes on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hash_after_the_stream_is_etcds_and_a_compacted_revision_is_named() {
    use etcd_snapshot::snapshot::hashkv::{HashKvError, hash_at, live_status};
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    for i in 0..5 {
        etcd.put(&format!("/registry/a/{i}"), "v");
    }
    let mut client = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let status = live_status(&mut client).await.unwrap();
    assert_eq!(status.revision, 6);
    assert!(status.db_size > 0, "{status:?}");
    let record = hash_at(&mut client, status.revision).await.unwrap();
    let (hash, _) = etcdctl_hashkv(&etcd, status.revision);
    assert_eq!(u64::from(record.hash), hash);
    etcd.put("/registry/a/later", "v");
    client.compact(7, None).await.unwrap();
    let err = hash_at(&mut client, status.revision).await.unwrap_err();
    assert!(
        matches!(err, HashKvError::Compacted { revision: 6 }),
        "{err:?}"
    );
}

/// The drill's temp dirs go to `tmp` (outside the data dir), so a test sees what it left.
fn setup(data: &Path, tmp: &Path) -> DrillSetup {
    DrillSetup {
        etcd_binary: "etcd".into(),
        data_dir: data.to_path_buf(),
        temp_dir: Some(tmp.to_path_buf()),
        keys: Default::default(),
    }
}

fn failed(report: &DrillReport) -> Vec<&str> {
    report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect()
}

/// Writes `bytes` with a fresh SHA-256 trailer over everything but the old one.
fn with_recomputed_trailer(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(bytes.len() - 32);
    let sum = sha2::Sha256::digest(&bytes);
    bytes.extend_from_slice(&sum);
    bytes
}

/// What drills left in the test's temp dir.
fn drill_dirs(tmp: &Path) -> usize {
    std::fs::read_dir(tmp).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_passes_a_good_snapshot_and_catches_a_changed_value_under_a_valid_trailer() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if require_binary("etcdutl").is_none() && require_binary("etcdctl").is_none() {
        return;
    }
    for i in 0..30 {
        etcd.put(
            &format!("/registry/pods/default/p{i}"),
            &format!("DRILLVALUE-{i:04}"),
        );
    }
    let (data, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = save(&etcd, data.path(), "drilled");
    let path = snapshot_dir(data.path()).join(&file);
    let good = drill_local(&setup(data.path(), tmp.path()), &path)
        .await
        .unwrap();
    assert!(good.passed, "{good:#?}");
    let hash = good.checks.iter().find(|c| c.name == "hashkv").unwrap();
    assert!(hash.detail.contains("HashKV at revision 31"), "{hash:?}");
    let read = good.checks.iter().find(|c| c.name == "read").unwrap();
    assert!(read.detail.starts_with("read 30 keys"), "{read:?}");

    // One value changed in place and the trailer recomputed: the file is whole to every
    // structural check and restores, but the keyspace is not the one saved.
    // Every copy of the value: bbolt's free pages may still hold older copies of its leaf, and
    // which copy is live depends on etcd's commit timing.
    let mut bytes = std::fs::read(&path).unwrap();
    let copies: Vec<usize> = bytes
        .windows(15)
        .enumerate()
        .filter(|(_, w)| *w == b"DRILLVALUE-0007")
        .map(|(at, _)| at)
        .collect();
    assert!(!copies.is_empty(), "value in the file");
    for at in copies {
        bytes[at + 14] = b'8';
    }
    std::fs::write(&path, with_recomputed_trailer(bytes)).unwrap();
    let changed = drill_local(&setup(data.path(), tmp.path()), &path)
        .await
        .unwrap();
    assert_eq!(failed(&changed), ["hashkv"], "{changed:#?}");

    // A bit flip without a new trailer is caught before anything is restored.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4096 + 100] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let flipped = drill_local(&setup(data.path(), tmp.path()), &path)
        .await
        .unwrap();
    assert_eq!(failed(&flipped), ["inspect"], "{flipped:#?}");
    assert_eq!(drill_dirs(tmp.path()), 0, "a drill left its temp dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_cluster_fails_its_drill_and_an_unrecorded_hash_is_said() {
    let (Some(ours), Some(theirs)) = (TestEtcd::start(), TestEtcd::start()) else {
        return;
    };
    for i in 0..10 {
        ours.put(&format!("/registry/a/{i}"), "ours");
        theirs.put(&format!("/registry/a/{i}"), "theirs");
    }
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let file = save(&ours, a.path(), "mine");
    let other = save(&theirs, b.path(), "mine");
    // Their snapshot under our name, with our record: same revision and key count.
    std::fs::copy(
        snapshot_dir(b.path()).join(&other),
        snapshot_dir(a.path()).join(&file),
    )
    .unwrap();
    let report = drill_local(
        &setup(a.path(), tmp.path()),
        &snapshot_dir(a.path()).join(&file),
    )
    .await
    .unwrap();
    assert_eq!(failed(&report), ["hashkv"], "{report:#?}");
    // Without a record the drill passes and says the hash was not compared.
    std::fs::remove_file(a.path().join("server/db/.metadata").join(&file)).unwrap();
    let report = drill_local(
        &setup(a.path(), tmp.path()),
        &snapshot_dir(a.path()).join(&file),
    )
    .await
    .unwrap();
    assert!(report.passed, "{report:#?}");
    let hash = report.checks.iter().find(|c| c.name == "hashkv").unwrap();
    assert!(hash.detail.contains("no hash recorded"), "{hash:?}");
}

/// Puts `value` under `key` through etcdctl's standard input (a value this large cannot be an
/// argument: Linux caps one argument at 128 KiB).
fn put_large(etcd: &TestEtcd, key: &str, value: &[u8]) {
    use std::io::Write;
    let mut child = Command::new(require_binary("etcdctl").expect("etcdctl"))
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.endpoint, "put", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(value).unwrap();
    assert!(child.wait().unwrap().success(), "etcdctl put {key}");
}

/// 20 values of 1 MiB: one page of the drill's read would be a 20 MiB reply, over the client's
/// limit, so the read must shrink its page and still read every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_reads_every_key_of_a_snapshot_with_large_values() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if require_binary("etcdutl").is_none() && require_binary("etcdctl").is_none() {
        return;
    }
    for i in 0..20u8 {
        let value = vec![b'a' + i; 1024 * 1024];
        put_large(&etcd, &format!("/registry/configmaps/big/c{i}"), &value);
    }
    let (data, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = save(&etcd, data.path(), "large");
    let path = snapshot_dir(data.path()).join(&file);
    let report = drill_local(&setup(data.path(), tmp.path()), &path)
        .await
        .unwrap();
    assert!(report.passed, "{report:#?}");
    let read = report.checks.iter().find(|c| c.name == "read").unwrap();
    assert!(read.detail.starts_with("read 20 keys"), "{read:?}");
    assert_eq!(drill_dirs(tmp.path()), 0, "a drill left its temp dir");
}
