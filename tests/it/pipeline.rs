//! Integration tests: the save pipeline against a real etcd, checked with etcd's and unzip's own
//! tools (byte-identical to `etcdctl snapshot save`, a zip RKE2 and unzip accept, metadata file).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use etcd_snapshot::config::EtcdSettings;
use etcd_snapshot::layout::SnapshotDirLayout;
use etcd_snapshot::snapshot::SnapshotName;
use etcd_snapshot::snapshot::save::save_snapshot;

use crate::support::{TestEtcd, require_binary};

fn settings(endpoint: &str) -> EtcdSettings {
    EtcdSettings::plain(vec![endpoint.to_string()])
}

/// Connects with the library (retrying for a bounded time: etcd listens a moment before it
/// serves) and writes some keys, one of them ~1 MB.
async fn connect_and_fill(etcd: &TestEtcd) -> etcd_client::Client {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut client = loop {
        match etcd_snapshot::etcd::client::connect(&settings(&etcd.endpoint)).await {
            Ok(client) => break client,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("etcd not ready yet: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("failed to connect to etcd: {e:?}"),
        }
    };
    for i in 0..50 {
        client
            .put(format!("/registry/test/key{i}"), format!("value-{i}"), None)
            .await
            .unwrap();
    }
    let big: String = (0..1_000_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    client.put("/registry/test/big", big, None).await.unwrap();
    client
}

fn name(unix: i64, compressed: bool) -> SnapshotName {
    SnapshotName {
        base: "on-demand".into(),
        node: "n1".into(),
        unix,
        compressed,
    }
}

fn etcdctl(endpoint: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args)
        .output()
        .expect("run etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn raw_snapshot_is_byte_identical_to_etcdctl() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    if require_binary("etcdctl").is_none() {
        return;
    }
    let mut client = connect_and_fill(&etcd).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("snapshots");
    std::fs::create_dir(&dir).unwrap();

    let saved = save_snapshot(
        &mut client,
        &SnapshotDirLayout::open(&dir),
        &name(1_700_000_000, false),
        None,
        None,
    )
    .await
    .expect("save");
    let theirs = root.path().join("etcdctl.db");
    etcdctl(
        &etcd.endpoint,
        &["snapshot", "save", theirs.to_str().unwrap()],
    );

    let ours = std::fs::read(&saved.path).unwrap();
    assert!(ours.len() > 1_000_000, "the 1 MB value is in the snapshot");
    assert!(
        ours == std::fs::read(&theirs).unwrap(),
        "bytes differ from etcdctl's snapshot"
    );
    assert_eq!(saved.size, ours.len() as u64);
    assert_eq!(saved.db_size + 32, ours.len() as u64);
    assert_eq!(saved.file_sha256, sha_hex(&ours));
    assert_eq!(mode(&saved.path), 0o600);
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(entries.len(), 1, "only the snapshot is left in the dir");
    assert!(!root.path().join(".metadata").exists());

    let status = etcdctl(
        &etcd.endpoint,
        &[
            "snapshot",
            "status",
            saved.path.to_str().unwrap(),
            "-w",
            "json",
        ],
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["totalKey"].as_u64().unwrap() >= 51, "{status}");
}

#[tokio::test]
async fn compressed_snapshot_is_a_zip_unzip_accepts() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let Some(_unzip) = require_binary("unzip") else {
        return;
    };
    let mut client = connect_and_fill(&etcd).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("snapshots");
    std::fs::create_dir(&dir).unwrap();

    let raw = save_snapshot(
        &mut client,
        &SnapshotDirLayout::open(&dir),
        &name(1_700_000_000, false),
        None,
        None,
    )
    .await
    .unwrap();
    let meta = BTreeMap::from([("provider".to_string(), "rke2".to_string())]);
    let zipped = save_snapshot(
        &mut client,
        &SnapshotDirLayout::open(&dir),
        &name(1_700_000_001, true),
        Some(&meta),
        None,
    )
    .await
    .unwrap();
    assert_eq!(zipped.path, dir.join("on-demand-n1-1700000001.zip"));
    assert_eq!(mode(&zipped.path), 0o600);
    let zip_bytes = std::fs::read(&zipped.path).unwrap();
    assert_eq!(zipped.file_sha256, sha_hex(&zip_bytes));
    assert!(zipped.size < raw.size, "deflate shrank the snapshot");

    let zip_path = zipped.path.to_str().unwrap();
    let test = Command::new("unzip")
        .args(["-t", zip_path])
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stdout)
    );
    let listing = Command::new("unzip")
        .args(["-Z1", zip_path])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["on-demand-n1-1700000001"]
    );
    let unpacked = Command::new("unzip")
        .args(["-p", zip_path])
        .output()
        .unwrap();
    assert!(unpacked.status.success());
    let db = unpacked.stdout;
    assert!(
        db == std::fs::read(&raw.path).unwrap(),
        "zip content differs from the raw snapshot"
    );
    let (image, trailer) = db.split_at(db.len() - 32);
    assert_eq!(sha_hex(image), sha_hex_raw(trailer));

    let meta_file = root.path().join(".metadata/on-demand-n1-1700000001.zip");
    assert_eq!(
        std::fs::read_to_string(&meta_file).unwrap(),
        r#"{"provider":"rke2"}"#
    );
    python_zipfile_agrees(&zipped.path, db.len());
}

fn sha_hex_raw(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Python's zipfile (a second, independent reader) sees one entry of the right size and mode.
fn python_zipfile_agrees(path: &Path, size: usize) {
    let Some(python) = require_binary("python3") else {
        return;
    };
    let script = "import sys, zipfile\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        [i] = z.infolist()\n\
        assert z.testzip() is None\n\
        print(i.filename, i.file_size, oct(i.external_attr >> 16 & 0o777), i.compress_type)";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("on-demand-n1-1700000001 {size} 0o600 8")
    );
}
