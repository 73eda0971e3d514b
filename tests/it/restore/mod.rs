//! Integration tests: restore. Real snapshots from a real etcd (`etcdctl snapshot save`), the
//! trailer check against corruption, zip extraction against hostile archives, a real
//! `etcdctl snapshot restore` through `run_restore` whose data dir a fresh etcd serves, and the
//! data dir swap with rollback.

/// `--cluster-reset`, alone and with a restore path.
pub mod cluster_reset;
/// Cluster reset with peers present.
mod cluster_reset_peers;
/// The direct restore of an encrypted snapshot against the tool's own.
mod direct;
/// The cheap revision read against etcd's own `snapshot status` and a restored member.
mod revision;
/// The restore tool skips its hash pass; our check refuses damage before anything changes.
mod skip_hash;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etcd_snapshot::restore::{
    self, RestoreError, RestoreTarget, datadir, run_restore, select_restore_tool,
    verify_snapshot_file,
};
use sha2::{Digest, Sha256};

use crate::support::{TestEtcd, free_port, require_binary, wait_for};

/// `etcdctl` with the v3 API (3.4 defaults to v2).
fn etcdctl(endpoint: &str) -> Command {
    let mut c = Command::new(require_binary("etcdctl").expect("etcdctl"));
    c.env("ETCDCTL_API", "3").args(["--endpoints", endpoint]);
    c
}

/// A snapshot of a live etcd holding `keys` (key -> value), saved by etcd's own client.
fn real_snapshot(dir: &Path, keys: &[(&str, &str)]) -> Option<PathBuf> {
    let etcd = TestEtcd::start()?;
    for (k, v) in keys {
        etcd.put(k, v);
    }
    let path = dir.join("snap-node-1700000000");
    etcdctl_save(&etcd.endpoint, &path);
    Some(path)
}

/// `etcdctl snapshot save` of the etcd at `endpoint` into `path`.
fn etcdctl_save(endpoint: &str, path: &Path) {
    succeeds(etcdctl(endpoint).args(["snapshot", "save"]).arg(path));
}

/// Runs `command`, which must succeed (its stderr is the failure's message).
fn succeeds(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a zip with `entries`, Deflate like RKE2's.
fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// Every file under `root` (relative path -> (sha256, mode)), and every dir (-> mode).
fn tree_digest(root: &Path) -> BTreeMap<PathBuf, (String, u32)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if meta.is_dir() {
                out.insert(rel, ("dir".into(), mode));
                pending.push(path);
            } else {
                let sum = hex(&Sha256::digest(std::fs::read(&path).unwrap()));
                out.insert(rel, (sum, mode));
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn len_minus_trailer(bytes: &[u8]) -> usize {
    bytes.len() - 32
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn real_snapshot_verifies_and_any_bit_flip_or_cut_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(path) = real_snapshot(dir.path(), &[("/a", "1"), ("/b", "2")]) else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let verified = verify_snapshot_file(&path).unwrap();
    assert_eq!(verified.file_size, bytes.len() as u64);
    assert_eq!(verified.db_size, bytes.len() as u64 - 32);
    let trailer = &bytes[bytes.len() - 32..];
    let trailer_hex = hex(trailer);
    assert_eq!(verified.sha256, trailer_hex);
    assert_eq!(
        hex(&Sha256::digest(&bytes[..len_minus_trailer(&bytes)])),
        trailer_hex
    );
    let len = bytes.len();
    for offset in [0, 100, len / 2, len - 40, len - 33, len - 32, len - 1] {
        let mut flipped = bytes.clone();
        flipped[offset] ^= 0x04;
        let bad = dir.path().join("flipped");
        std::fs::write(&bad, &flipped).unwrap();
        let err = verify_snapshot_file(&bad).unwrap_err();
        assert!(
            matches!(err, RestoreError::ChecksumMismatch { .. }),
            "flip at {offset} of {len}: {err}"
        );
        assert!(err.is_bad_snapshot());
    }
    for cut in [len - 1, len - 32, len / 2 + 7, 10] {
        let bad = dir.path().join("cut");
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        let err = verify_snapshot_file(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                RestoreError::Truncated { .. } | RestoreError::NoTrailer { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn zip_of_a_real_snapshot_extracts_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let Some(path) = real_snapshot(dir.path(), &[("/k", "v")]) else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let zip_path = dir.path().join("snap-node-1700000000.zip");
    write_zip(&zip_path, &[("snap-node-1700000000", &bytes)]);
    let dest = dir.path().join("work");
    std::fs::create_dir(&dest).unwrap();
    let out = restore::extract_snapshot(&zip_path, &dest).unwrap();
    assert_eq!(out, dest.join("snap-node-1700000000"));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    verify_snapshot_file(&out).unwrap();
    assert_eq!(names_in(&dest), ["snap-node-1700000000"]);
}

#[test]
fn hostile_or_corrupt_zips_are_refused_and_leave_nothing() {
    let root = tempfile::tempdir().unwrap();
    let Some(path) = real_snapshot(root.path(), &[("/k", "v")]) else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    // dest is two levels down so a `../x` escape would land inside `root`, where we look.
    let dest = root.path().join("db/work");
    std::fs::create_dir_all(&dest).unwrap();
    let before = names_in(root.path());

    let two = root.path().join("two.zip");
    write_zip(&two, &[("a", &bytes), ("b", &bytes)]);
    let escape = root.path().join("escape.zip");
    write_zip(&escape, &[("../x", &bytes)]);
    let nested = root.path().join("nested.zip");
    write_zip(&nested, &[("dir/x", &bytes)]);
    let corrupt = root.path().join("corrupt.zip");
    write_zip(&corrupt, &[("snap", &bytes)]);
    let mut zipped = std::fs::read(&corrupt).unwrap();
    // A byte that changes the entry (some bytes of a Deflate stream change nothing).
    let middle = crate::support::damaging_flip(&zipped, zipped.len() / 2);
    zipped[middle] ^= 0xff;
    std::fs::write(&corrupt, &zipped).unwrap();
    let not_zip = root.path().join("raw.zip");
    std::fs::write(&not_zip, &bytes).unwrap();

    let cases: [(&Path, ErrorCheck); 5] = [
        (&two, |e| {
            matches!(e, RestoreError::EntryCount { entries: 2, .. })
        }),
        (&escape, |e| matches!(e, RestoreError::UnsafeEntry { .. })),
        (&nested, |e| matches!(e, RestoreError::UnsafeEntry { .. })),
        (&corrupt, |e| {
            matches!(
                e,
                RestoreError::CorruptArchive { .. } | RestoreError::NotAZip { .. }
            )
        }),
        (&not_zip, |e| matches!(e, RestoreError::NotAZip { .. })),
    ];
    for (zip_path, expected) in cases {
        let err = restore::extract_snapshot(zip_path, &dest).unwrap_err();
        assert!(expected(&err), "{}: {err}", zip_path.display());
        assert!(err.is_bad_snapshot());
        let file_name = zip_path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(err.to_string().contains(&file_name), "{err}");
        assert!(
            names_in(&dest).is_empty(),
            "{}: left {:?}",
            zip_path.display(),
            names_in(&dest)
        );
        assert_eq!(names_in(&root.path().join("db")), ["work"]);
    }
    let mut after = names_in(root.path());
    after.retain(|n| !n.ends_with(".zip"));
    assert_eq!(after, before);
}

/// Which error a refused archive must produce.
type ErrorCheck = fn(&RestoreError) -> bool;

/// An etcd member serving `data_dir`, killed on drop.
struct Member {
    child: Child,
    endpoint: String,
}

impl Member {
    fn start(data_dir: &Path, name: &str, peer_url: &str) -> Self {
        let etcd = require_binary("etcd").expect("etcd");
        let endpoint = format!("http://127.0.0.1:{}", free_port());
        let child = Command::new(etcd)
            .args(["--name", name, "--data-dir"])
            .arg(data_dir)
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
            ])
            .args(["--initial-cluster", &format!("{name}={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let member = Self { child, endpoint };
        wait_for(
            "the restored etcd to serve",
            Duration::from_secs(30),
            || {
                etcdctl(&member.endpoint)
                    .args(["--command-timeout", "2s", "endpoint", "health"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
        );
        member
    }

    fn get(&self, key: &str) -> String {
        let out = etcdctl(&self.endpoint)
            .args(["get", key, "--print-value-only"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn etcdctl_restore_builds_a_data_dir_that_etcd_serves() {
    let root = tempfile::tempdir().unwrap();
    let Some(snapshot) = real_snapshot(
        root.path(),
        &[("/restored/a", "alpha"), ("/restored/b", "beta")],
    ) else {
        return;
    };
    let tool = select_restore_tool(Path::new("etcd")).await.unwrap();
    let db = root.path().join("server/db");
    std::fs::create_dir_all(&db).unwrap();
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let target = RestoreTarget {
        data_dir: db.join("etcd-restore-1.tmp"),
        name: "restored".into(),
        peer_url: peer_url.clone(),
        cluster_token: "restore-test-1".into(),
        bump_revision: None,
        // The tool's own check: it must refuse the corrupt copy below by itself.
        skip_hash_check: false,
    };

    // A corrupt snapshot fails inside the tool, with its words in the error, and no staging
    // dir is left behind.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let corrupt = root.path().join("corrupt");
    std::fs::write(&corrupt, &bytes).unwrap();
    let err = run_restore(&tool, &corrupt, &target).await.unwrap_err();
    assert!(
        matches!(err, RestoreError::ToolFailed { ref stderr, .. } if !stderr.is_empty()),
        "{err}"
    );
    assert!(!target.data_dir.exists());

    run_restore(&tool, &snapshot, &target).await.unwrap();
    let err = run_restore(&tool, &snapshot, &target).await.unwrap_err();
    assert!(matches!(err, RestoreError::StagingExists { .. }), "{err}");
    let live = datadir::install_staged(&target.data_dir, &db).unwrap();
    assert_eq!(names_in(&db), ["etcd"]);

    let member = tokio::task::spawn_blocking(move || {
        let member = Member::start(&live, "restored", &peer_url);
        let values = (member.get("/restored/a"), member.get("/restored/b"));
        let members = etcdctl(&member.endpoint)
            .args(["member", "list"])
            .output()
            .unwrap();
        (
            values,
            String::from_utf8_lossy(&members.stdout).into_owned(),
            member,
        )
    })
    .await
    .unwrap();
    let ((a, b), members, _member) = member;
    assert_eq!((a.as_str(), b.as_str()), ("alpha", "beta"));
    assert_eq!(members.lines().count(), 1, "{members}");
    assert!(members.contains("restored"), "{members}");
}

#[test]
fn move_aside_and_rollback_restore_the_exact_tree() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("server/db");
    let live = db.join("etcd");
    std::fs::create_dir_all(live.join("member/snap")).unwrap();
    std::fs::create_dir_all(live.join("member/wal")).unwrap();
    std::fs::write(live.join("name"), "node-a").unwrap();
    std::fs::write(live.join("member/snap/db"), vec![7u8; 70_000]).unwrap();
    std::fs::write(live.join("member/wal/0.wal"), b"wal").unwrap();
    std::fs::set_permissions(
        live.join("member/snap/db"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = tree_digest(&live);

    let old = datadir::move_current_aside(&db)
        .unwrap()
        .expect("a live dir");
    assert!(!live.exists());
    assert_eq!(tree_digest(&old), before);
    // A restore that went wrong: a different live dir is there when we roll back.
    std::fs::create_dir_all(live.join("member")).unwrap();
    std::fs::write(live.join("member/broken"), b"x").unwrap();
    let failed = datadir::rollback(&db, &old)
        .unwrap()
        .expect("the failed dir is kept");
    assert_eq!(tree_digest(&live), before);
    assert!(!old.exists());
    assert!(
        failed
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("etcd-failed-")
    );
    assert!(failed.join("member/broken").is_file());
    let mut names = names_in(&db);
    names.retain(|n| n != "etcd" && !n.starts_with("etcd-failed-"));
    assert!(names.is_empty(), "{names:?}");
}
