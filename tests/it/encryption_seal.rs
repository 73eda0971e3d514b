//! The seal shortcut of an encrypted restore, through the real binary: a snapshot this server
//! encrypted (raw database, so the direct restore runs) restores without a second hash of its
//! trailer, while a damaged chunk in it is still refused, and a file the `age` tool encrypted
//! under the same name, beside the same record, gets the full check and is refused when its
//! trailer does not match. Nothing changes in the data dir on a refusal.

use std::path::Path;

use crate::encryption::{age, encrypted_snapshot};
use crate::inspect_encrypted::keygen;
use crate::restore::cluster_reset::{Node, expected, tree};
use crate::support::{require_binary, text};

const SEALED: &str = "the snapshot's seal is the one its save recorded";

fn restore(node: &Node, snapshot: &Path, identity: &Path) -> (bool, String) {
    let flag = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        identity.display()
    );
    let out = node.restore(&[snapshot.to_str().unwrap(), &flag]);
    let (stdout, stderr) = text(&out);
    (out.status.success(), format!("{stdout}{stderr}"))
}

#[test]
fn only_the_file_its_save_sealed_skips_the_second_hash() {
    if require_binary("etcd").is_none() || require_binary("age").is_none() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = keygen(keys.path(), "key.txt");
    let node = Node::new();
    let snapshot = encrypted_snapshot(&node, &public, false);
    let name = snapshot.file_name().unwrap().to_string_lossy().into_owned();
    let dir = crate::support::snapshot_dir(node.dir());
    let record_path = dir.parent().unwrap().join(".encryption").join(&name);
    let record = std::fs::read_to_string(&record_path).unwrap();
    assert!(record.contains("\"ageSeal\":\""), "{record}");
    let good = std::fs::read(&snapshot).unwrap();

    // A changed chunk in the sealed file: its seal still matches, age's authentication refuses it.
    let mut flipped = good.clone();
    let at = good.len() / 2;
    flipped[at] ^= 0x01;
    std::fs::write(&snapshot, &flipped).unwrap();
    let before = tree(node.dir());
    let (ok, log) = restore(&node, &snapshot, &identity);
    assert!(!ok && log.contains("damaged"), "{log}");
    assert_eq!(tree(node.dir()), before, "{log}");

    // The age tool's encryption of a plaintext whose trailer is wrong, under the same name and
    // beside the same record: a new seal, so the full check, which refuses it.
    let scratch = tempfile::tempdir().unwrap();
    let plain = scratch.path().join("plain.db");
    std::fs::write(&snapshot, &good).unwrap();
    age(&[
        "-d",
        "-i",
        identity.to_str().unwrap(),
        "-o",
        plain.to_str().unwrap(),
        snapshot.to_str().unwrap(),
    ]);
    let mut bytes = std::fs::read(&plain).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&plain, &bytes).unwrap();
    std::fs::remove_file(&snapshot).unwrap();
    age(&[
        "-r",
        &public,
        "-o",
        snapshot.to_str().unwrap(),
        plain.to_str().unwrap(),
    ]);
    let before = tree(node.dir());
    let (ok, log) = restore(&node, &snapshot, &identity);
    assert!(!ok && log.contains("not a whole etcd snapshot"), "{log}");
    assert!(!log.contains(SEALED), "{log}");
    assert_eq!(tree(node.dir()), before, "{log}");
    assert_eq!(std::fs::read_to_string(&record_path).unwrap(), record);

    // The file the save wrote: restored, with the shortcut named in the log.
    std::fs::write(&snapshot, &good).unwrap();
    let (ok, log) = restore(&node, &snapshot, &identity);
    assert!(ok, "{log}");
    assert!(log.contains(SEALED), "{log}");
    assert!(log.contains("into the staging dir"), "{log}");
    let mut server = node.start(&[]);
    assert_eq!(node.keys(), expected(&[("/test/a", "1"), ("/test/b", "2")]));
    assert!(server.terminate().success());
}
