//! Delta segments through the snapshot pipeline, end to end with the real server and its
//! embedded etcd: with `etcd-snapshot-compress` and age recipients the segments are stored as
//! `.seg.gz.age` (no plaintext on disk), the reference `age` tool decrypts one to a gzip stream
//! that decodes as the segment its name says, a point-in-time restore without a key that opens
//! them is refused naming the fingerprint needed and leaves the data dir byte-identical, and
//! with the identity file it brings back exactly the recorded state. A chain that starts plain,
//! then is encrypted, then has its recipients rotated through the recipients file replays with
//! both identities, and is refused by the old one alone; after `rekey` to the new recipients it
//! replays with the new identity alone (refused before it) and is refused by the old one.

use std::io::Read;

use etcd_snapshot::delta::files::{SegmentForm, parse_segment_name};
use etcd_snapshot::delta::segment::decode;

use super::load::{Load, state, tls_client};
use super::replay::{load_keys, restore_ok, restored_state};
use super::*;
use crate::inspect_encrypted::{age, fingerprint, keygen};
use crate::restore::cluster_reset::{Node, tree};
use crate::support::{require_binary, text};

/// The published segment files of a chain dir, in revision order: (name, path).
fn stored_segments(chain: &Path) -> Vec<(etcd_snapshot::delta::files::SegmentName, PathBuf)> {
    let mut named: Vec<_> = std::fs::read_dir(chain)
        .unwrap()
        .flatten()
        .filter_map(|e| Some((parse_segment_name(e.file_name().to_str()?)?, e.path())))
        .collect();
    named.sort();
    named
}

/// The fingerprints an encrypted segment's header names.
fn named_in(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let found = etcd_snapshot::crypt::fingerprints_in_header(&bytes);
    found.iter().map(|f| f.to_string()).collect()
}

/// A restore that must be refused before anything changes: returns stderr.
fn restore_refused(node: &Node, args: &[&str]) -> String {
    let data = node.dir().join("server/db/etcd");
    let before = tree(&data);
    let out = node.restore(args);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(before, tree(&data), "the data dir is byte-identical");
    stderr
}

fn identity_flag(path: &Path) -> String {
    format!(
        "--etcd-snapshot-encryption-identity-file={}",
        path.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_encrypted_segments_open_with_age_and_replay_only_with_their_key() {
    if ["etcd", "etcdctl", "age", "age-keygen"]
        .iter()
        .any(|tool| require_binary(tool).is_none())
    {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = keygen(keys.path(), "key.txt");
    let (stranger, _) = keygen(keys.path(), "stranger.txt");
    let node = Node::new();
    let recipients = format!("--etcd-snapshot-encryption-recipients={public}");
    let mut server = node.start(&[
        "--etcd-snapshot-delta",
        "--etcd-snapshot-delta-period",
        "1s",
        "--etcd-snapshot-compress",
        &recipients,
    ]);
    let chain = wait_for_chain(node.dir(), &server);
    let mut load = Load::new(tls_client(&node.endpoint(), &node.tls_dir()).await);
    let secret = "plaintext-that-must-not-reach-the-disk";
    load.client.put("/load/secret", secret, None).await.unwrap();
    let last = load.run(80, 0).await;
    let want = state(&mut load.client, Some(last)).await;
    wait_for("segments up to the last write", WAIT, || {
        chain_end(&chain) >= last
    });
    drop(load);
    assert!(server.terminate().success());

    let stored = stored_segments(&chain);
    let all_stored = SegmentForm {
        compressed: true,
        encrypted: true,
    };
    for (name, path) in &stored {
        assert_eq!(name.form, all_stored, "{}", path.display());
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        assert_eq!(named_in(path), [fingerprint(&public)]);
    }
    // The reference tool decrypts one to a gzip stream holding the segment its name says.
    let (name, path) = stored.last().unwrap();
    let plain = keys.path().join("segment.gz");
    let (out, input) = (plain.display().to_string(), path.display().to_string());
    age(&[
        "-d",
        "-i",
        &identity.display().to_string(),
        "-o",
        &out,
        &input,
    ]);
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&plain).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let segment = decode(&bytes).unwrap();
    assert_eq!(
        (segment.header.from_revision, segment.footer.to_revision),
        (name.from, name.to)
    );
    assert_eq!(segment.header.anchor, anchor_name_of(&chain));

    // A stranger's key: refused before anything is restored, naming the key needed.
    let err = restore_refused(
        &node,
        &[
            "--cluster-reset-restore-to",
            "latest",
            &identity_flag(&stranger),
        ],
    );
    assert!(err.contains(&fingerprint(&public)), "{err}");
    assert!(err.contains(".seg.gz.age"), "{err}");
    // The right one restores exactly the recorded state.
    restore_ok(
        &node,
        &[
            "--cluster-reset-restore-to",
            "latest",
            &identity_flag(&identity),
        ],
    );
    assert_eq!(load_keys(restored_state(&node).await), load_keys(want));
    listed_then_deleted_with_their_snapshot(&node, &chain, &stored);
}

/// `ls --deltas` lists stored segments with their sizes on disk; deleting their full snapshot
/// removes them with its chain.
fn listed_then_deleted_with_their_snapshot(
    node: &Node,
    chain: &Path,
    stored: &[(etcd_snapshot::delta::files::SegmentName, PathBuf)],
) {
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--node-name=n1");
        let out = crate::support::run(&all, node.dir());
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
        stdout
    };
    let stdout = run(&["ls", "--deltas", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let segments = listed[0]["segments"].as_array().unwrap();
    assert_eq!(segments.len(), stored.len(), "{stdout}");
    for ((name, path), listed) in stored.iter().zip(segments) {
        let size = std::fs::metadata(path).unwrap().len();
        assert_eq!(listed["from"], name.from, "{stdout}");
        assert_eq!(listed["size"], size, "{stdout}");
        assert_eq!(listed["onChain"], true, "{stdout}");
        assert_eq!(listed["compressed"], true, "{stdout}");
        assert_eq!(listed["encrypted"], true, "{stdout}");
    }
    let stdout = run(&["delete", &anchor_name_of(chain)]);
    let said = format!("deleted with it: {} segments", stored.len());
    assert!(stdout.contains(&said), "{stdout}");
    assert!(!chain.exists(), "the chain went with its snapshot");
}

/// Writes and waits until a published segment past `after` names `wanted` (the recipients in
/// force when it opened); returns the last revision written.
async fn write_until_named(load: &mut Load, chain: &Path, after: i64, wanted: &[String]) -> i64 {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let last = load.run(10, 0).await;
        wait_for("segments up to the last write", WAIT, || {
            chain_end(chain) >= last
        });
        let named = stored_segments(chain)
            .into_iter()
            .filter(|(n, _)| n.from > after && n.form.encrypted)
            .any(|(_, path)| named_in(&path) == wanted);
        if named {
            return last;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no segment for {wanted:?}"
        );
    }
}

/// A chain that starts plain, goes on encrypted (and compressed) to the recipients file's old
/// key, then to the new key once the file is rotated; the server is stopped.
struct Rotated {
    keys: tempfile::TempDir,
    node: Node,
    chain: PathBuf,
    old_key: PathBuf,
    new_key: PathBuf,
    old_public: String,
    new_public: String,
    /// `--etcd-snapshot-encryption-recipients-file=…`, naming the new key now.
    recipients_file: String,
    last: i64,
    want: Vec<super::load::KeyState>,
}

async fn rotated_chain() -> Rotated {
    let keys = tempfile::tempdir().unwrap();
    let (old_key, old_public) = keygen(keys.path(), "old.txt");
    let (new_key, new_public) = keygen(keys.path(), "new.txt");
    let node = Node::new();
    let delta = [
        "--etcd-snapshot-delta",
        "--etcd-snapshot-delta-period",
        "1s",
    ];

    // Plain segments first.
    let mut server = node.start(&delta);
    let chain = wait_for_chain(node.dir(), &server);
    let mut load = Load::new(tls_client(&node.endpoint(), &node.tls_dir()).await);
    let plain_end = load.run(30, 0).await;
    wait_for("plain segments", WAIT, || chain_end(&chain) >= plain_end);
    drop(load);
    assert!(server.terminate().success());

    // The same chain goes on encrypted (and compressed) to the recipients file's key, which
    // is then rotated: each segment takes the key in force when it opens.
    let file = keys.path().join("recipients.txt");
    std::fs::write(&file, format!("{old_public}\n")).unwrap();
    let recipients_file = format!(
        "--etcd-snapshot-encryption-recipients-file={}",
        file.display()
    );
    let mut args = delta.to_vec();
    args.extend(["--etcd-snapshot-compress", recipients_file.as_str()]);
    let mut server = node.start(&args);
    let mut load = Load::new(tls_client(&node.endpoint(), &node.tls_dir()).await);
    let old_end =
        write_until_named(&mut load, &chain, plain_end, &[fingerprint(&old_public)]).await;
    let rotated = keys.path().join("recipients.new");
    std::fs::write(&rotated, format!("{new_public}\n")).unwrap();
    std::fs::rename(&rotated, &file).unwrap();
    let last = write_until_named(&mut load, &chain, old_end, &[fingerprint(&new_public)]).await;
    let want = state(&mut load.client, Some(last)).await;
    drop(load);
    assert!(server.terminate().success());
    let forms: Vec<SegmentForm> = stored_segments(&chain)
        .iter()
        .map(|(n, _)| n.form)
        .collect();
    assert_eq!(forms.first(), Some(&SegmentForm::PLAIN), "{forms:?}");
    assert!(forms.last().unwrap().encrypted && forms.last().unwrap().compressed);

    Rotated {
        keys,
        node,
        chain,
        old_key,
        new_key,
        old_public,
        new_public,
        recipients_file,
        last,
        want,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_turned_encrypted_then_rotated_replays_with_both_identities() {
    if ["etcd", "etcdctl", "age-keygen"]
        .iter()
        .any(|tool| require_binary(tool).is_none())
    {
        return;
    }
    let Rotated {
        keys,
        node,
        old_key,
        new_key,
        new_public,
        last,
        want,
        ..
    } = rotated_chain().await;
    // The old key alone cannot open the rotated segments: refused, naming the new key.
    let err = restore_refused(
        &node,
        &[
            "--cluster-reset-restore-to",
            "latest",
            &identity_flag(&old_key),
        ],
    );
    assert!(err.contains(&fingerprint(&new_public)), "{err}");
    // Both keys in one identity file: the whole mixed chain replays.
    let both = keys.path().join("both.txt");
    let text_of = |p: &Path| std::fs::read_to_string(p).unwrap();
    std::fs::write(&both, text_of(&old_key) + &text_of(&new_key)).unwrap();
    let stdout = restore_ok(
        &node,
        &[
            "--cluster-reset-restore-to",
            "latest",
            &identity_flag(&both),
        ],
    );
    assert!(stdout.contains(&format!("to revision {last}:")), "{stdout}");
    assert_eq!(load_keys(restored_state(&node).await), load_keys(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_chain_after_rekey_replays_with_the_new_identity_alone() {
    if ["etcd", "etcdctl", "age-keygen"]
        .iter()
        .any(|tool| require_binary(tool).is_none())
    {
        return;
    }
    let r = rotated_chain().await;
    let (node, chain) = (&r.node, &r.chain);
    let (old_identity, new_identity) = (identity_flag(&r.old_key), identity_flag(&r.new_key));
    let latest = ["--cluster-reset-restore-to", "latest"];
    // Before: the new key alone cannot open the segments written to the old one.
    let err = restore_refused(node, &[latest[0], latest[1], &new_identity]);
    assert!(err.contains(&fingerprint(&r.old_public)), "{err}");

    // `rekey` to the rotated recipients, with the old identity: the old key can be retired.
    let args = ["--node-name=n1", &r.recipients_file, &old_identity, "rekey"];
    let out = crate::support::run(&args, node.dir());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("re-encrypted segment"), "{stdout}");
    assert!(stdout.contains(": left plain"), "{stdout}");
    // The chain's plain snapshot stays plain under its name: its chain and segments name it.
    let anchor = chain.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stdout.contains(&format!(
            "skipped {anchor}: left plain: it anchors a delta chain"
        )),
        "{stdout}"
    );
    assert!(snapshot_dir(node.dir()).join(&anchor).is_file());
    for (name, path) in stored_segments(chain) {
        if name.form.encrypted {
            assert_eq!(
                named_in(&path),
                [fingerprint(&r.new_public)],
                "{}",
                path.display()
            );
        }
    }
    // After: the old key alone is refused (naming the new one), the new one alone replays the
    // whole chain to exactly the recorded state.
    let err = restore_refused(node, &[latest[0], latest[1], &old_identity]);
    assert!(err.contains(&fingerprint(&r.new_public)), "{err}");
    let stdout = restore_ok(node, &[latest[0], latest[1], &new_identity]);
    assert!(
        stdout.contains(&format!("to revision {}:", r.last)),
        "{stdout}"
    );
    assert_eq!(load_keys(restored_state(node).await), load_keys(r.want));
}
