//! The restore tool runs with `--skip-hash-check`, so our own trailer check is what refuses a
//! damaged snapshot: beside the tool for a plain file, while decrypting or extracting for the
//! copies the restore writes itself. Damage the outer layer cannot see (a damaged database in an
//! intact zip, or in an intact age stream) and plain bit flips are refused with our message and
//! the data dir byte-identical; a file without a trailer is refused as before. And a snapshot
//! whose newest revisions were compacted away restores (the expected revision is the compaction's).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cluster_reset::{Node, expected, tree};
use crate::support::{require_binary, text};

/// Saves {a=1, b=2} through the server; returns the snapshot (server stopped).
fn saved(node: &Node) -> PathBuf {
    let mut server = node.start(&[]);
    node.put("/test/a", "1");
    node.put("/test/b", "2");
    let snapshot = node.save(&server, false);
    assert!(server.terminate().success());
    snapshot
}

fn zip_of(path: &Path, entry: &str, bytes: &[u8]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(entry, options).unwrap();
    zip.write_all(bytes).unwrap();
    zip.finish().unwrap();
}

/// `age -r <public>` of `bytes` into `out`, with the reference tool.
fn age_of(out: &Path, bytes: &[u8], public: &str, scratch: &Path) {
    let plain = scratch.join("plain-for-age");
    std::fs::write(&plain, bytes).unwrap();
    let status = Command::new(require_binary("age").expect("age"))
        .args(["-r", public, "-o"])
        .arg(out)
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn damage_our_check_must_catch_is_refused_before_the_data_dir_changes() {
    if require_binary("etcd").is_none() {
        return;
    }
    let node = Node::new();
    let good = std::fs::read(saved(&node)).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    let scratch = tempfile::tempdir().unwrap();
    let mut cases: Vec<(&str, PathBuf, Vec<String>, &str)> = Vec::new();
    let plain = scratch.path().join("flipped-n1-1");
    std::fs::write(&plain, &flipped).unwrap();
    cases.push(("plain bit flip", plain, vec![], "is corrupt"));
    let zipped = scratch.path().join("zipped-n1-2.zip");
    zip_of(&zipped, "zipped-n1-2", &flipped);
    cases.push((
        "damaged database in an intact zip",
        zipped,
        vec![],
        "is corrupt",
    ));
    let bare = scratch.path().join("bare-n1-3");
    std::fs::write(&bare, &good[..good.len() - 32]).unwrap();
    cases.push(("no trailer", bare, vec![], "no sha256 trailer"));
    if require_binary("age").is_some() && require_binary("age-keygen").is_some() {
        let (identity, public) = crate::inspect_encrypted::keygen(scratch.path(), "key.txt");
        let aged = scratch.path().join("aged-n1-4.age");
        age_of(&aged, &flipped, &public, scratch.path());
        let flag = format!(
            "--etcd-snapshot-encryption-identity-file={}",
            identity.display()
        );
        cases.push((
            "damaged database in an intact age stream",
            aged,
            vec![flag],
            "is corrupt",
        ));
    }
    let before = tree(node.dir());
    for (label, path, flags, message) in &cases {
        let mut args = vec![path.to_str().unwrap()];
        args.extend(flags.iter().map(String::as_str));
        let out = node.restore(&args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{label}: {stdout}\n{stderr}");
        assert!(stderr.contains(message), "{label}: {stderr}");
        assert_eq!(
            tree(node.dir()),
            before,
            "{label} changed the data dir:\n{stderr}"
        );
    }
    // Nothing of ours is left beside the operator's files (extracted or decrypted copies).
    let mut left: Vec<String> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert!(
        left.iter()
            .all(|n| !n.ends_with(".decrypted") && !n.ends_with(".part")),
        "{left:?}"
    );
}

/// The served revision, through the real etcdctl.
fn served_revision(node: &Node) -> i64 {
    let out = node.etcdctl(&["get", "/test/a", "-w", "json"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["header"]["revision"].as_i64().expect("revision")
}

#[test]
fn a_snapshot_whose_newest_revisions_were_compacted_away_restores() {
    if require_binary("etcd").is_none() {
        return;
    }
    let node = Node::new();
    let mut server = node.start(&[]);
    node.put("/test/a", "1");
    node.put("/test/b", "2");
    node.del("/test/b");
    let head = served_revision(&node);
    let out = node.etcdctl(&["compact", &head.to_string(), "--physical"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let snapshot = node.save(&server, false);
    assert!(server.terminate().success());
    // The file's highest key is below the head: the deleted key's revisions are gone.
    let revisions = etcd_snapshot::inspect::revision::read_file(&snapshot).unwrap();
    assert!(revisions.latest < head as u64, "{revisions:?} head {head}");
    assert_eq!(revisions.served(), head as u64);

    let out = node.restore(&[snapshot.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let mut server = node.start(&[]);
    assert_eq!(node.keys(), expected(&[("/test/a", "1")]));
    assert!(served_revision(&node) >= head);
    assert!(server.terminate().success());
}
