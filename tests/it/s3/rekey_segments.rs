//! `rekey` of delta segments through the real binary: a chain on disk (beside the snapshot
//! dir) and one in the in-process S3 server, encrypted to an old key, are re-encrypted to the
//! new recipients. The dry run changes no byte anywhere; after the run every encrypted segment,
//! local and in the bucket, reads back through the replay's segment reader with only the new
//! identity and is refused with only the old one (naming the new key), keeps its name and its
//! segment; a plain segment is reported and left plain; the capture's open segment (a temp
//! file) is not touched; no temp object is left; a second run is a no-op. The chain's plain
//! snapshot in the bucket is left plain (its chain is named after it). A segment the node
//! also holds ends up with the node's bytes in the bucket; one only the bucket holds is
//! re-encrypted from its download. A chain of 11 segments is summed up per outcome.

use std::path::{Path, PathBuf};

use etcd_snapshot::crypt::{Identities, Recipients};
use etcd_snapshot::delta::files::{ChainDir, parse_segment_name};
use etcd_snapshot::delta::segment::{Event, PutEvent, RevisionGroup, SegmentHeader, decode};
use etcd_snapshot::delta::stored::read_plaintext;
use etcd_snapshot::store::s3::retry::RetryPolicy;
use etcd_snapshot::store::s3::{ObjectMetadata, S3Store};

use crate::fakes::s3_support::{S3Server, Tls};
use crate::inspect_encrypted::{fingerprint, keygen};
use crate::s3::ops::{blocking, s3_flags};
use crate::support::{free_port, require_binary, run, snapshot_dir, text};

const ANCHOR: &str = "etcd-snapshot-n1-1700000000";
/// A chain long enough for `rekey` to sum its segments up in one line per outcome.
const LONG: &str = "etcd-snapshot-n1-1700000100";

/// Publishes segment `[from, to]` of `chain` (one put per revision).
fn publish(chain: &ChainDir, from: i64, to: i64, compress: bool, keys: Option<&Recipients>) {
    let header = SegmentHeader {
        cluster_id: 1,
        member_id: 2,
        anchor: chain
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        anchor_revision: 10,
        from_revision: from,
        opened_unix: 1_700_000_001,
    };
    let mut open = chain.open(&header, compress, keys).unwrap();
    for revision in from..=to {
        let put = PutEvent {
            key: format!("/registry/k{revision}").into_bytes(),
            value: format!("value at {revision}").into_bytes(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        };
        let events = vec![Event::Put(put)];
        let arrived_unix_ms = 1_700_000_001_000 + revision;
        open.push(&RevisionGroup {
            revision,
            arrived_unix_ms,
            events,
        })
        .unwrap();
    }
    open.finish(0, 1, None).unwrap();
}

fn seg_name(from: i64, to: i64, suffix: &str) -> String {
    format!("{from:020}-{to:020}{suffix}")
}

/// Every file under `dir` (recursive) with its bytes, by path.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            match path.is_dir() {
                true => todo.push(path),
                false => all.push((path.clone(), std::fs::read(&path).unwrap())),
            }
        }
    }
    all.sort();
    all
}

/// Reads every segment file in `dir` as the replay does, with `ids`: the ranges read, or the
/// first refusal.
fn replay_reads(dir: &Path, anchor: &str, ids: &Identities) -> Result<Vec<(i64, i64)>, String> {
    let mut ranges = Vec::new();
    for (path, _) in tree(dir) {
        let Some(name) = parse_segment_name(path.file_name().unwrap().to_str().unwrap()) else {
            continue;
        };
        let bytes = read_plaintext(&path, name.form, Some(ids), 1 << 30)
            .map_err(|e| etcd_snapshot::errors::error_chain(&e))?;
        let segment = decode(&bytes).unwrap();
        assert_eq!(segment.header.anchor, anchor);
        assert_eq!(
            (segment.header.from_revision, segment.footer.to_revision),
            (name.from, name.to)
        );
        ranges.push((name.from, name.to));
    }
    Ok(ranges)
}

/// Downloads every segment of the bucket's chain into a fresh dir.
async fn download_chain(store: &S3Store) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for object in store.list_chain(ANCHOR).await.unwrap() {
        store
            .download_segment(ANCHOR, &object.name, dir.path())
            .await
            .unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_moves_local_and_s3_segments_to_the_new_key_and_a_rerun_does_nothing() {
    if require_binary("age-keygen").is_none() {
        return;
    }
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let store = S3Store::connect(&s3.settings("snapshots", "f"))
        .await
        .unwrap();
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (old_id, _) = keygen(keys.path(), "old.txt");
    let (new_id, new_public) = keygen(keys.path(), "new.txt");
    let (old, new) = (
        Identities::read_file(&old_id).unwrap(),
        Identities::read_file(&new_id).unwrap(),
    );
    let to_old = old.recipients();
    std::fs::create_dir_all(snapshot_dir(data.path())).unwrap();
    let chain = ChainDir::new(&snapshot_dir(data.path()), ANCHOR).unwrap();
    publish(&chain, 11, 12, false, None);
    publish(&chain, 13, 20, true, Some(&to_old));
    publish(&chain, 21, 30, false, Some(&to_old));
    std::fs::write(chain.path().join(".31.part"), b"the open segment").unwrap();
    for file in chain.list().unwrap() {
        let name = file.path.file_name().unwrap().to_str().unwrap().to_string();
        let policy = RetryPolicy::default();
        let meta = ObjectMetadata::default();
        let path = file.path.clone();
        store
            .upload_segment(&path, ANCHOR, &name, &meta, policy)
            .await
            .unwrap();
    }
    // One segment only the bucket holds (its node's disk was lost): re-encrypted from the
    // download; the others take the node's rekeyed copy.
    let only_in_s3 = seg_name(21, 30, ".seg.age");
    std::fs::remove_file(chain.path().join(&only_in_s3)).unwrap();
    let long = ChainDir::new(&snapshot_dir(data.path()), LONG).unwrap();
    for from in (101..=111).map(|i| i * 10) {
        publish(&long, from, from + 9, true, Some(&to_old));
    }
    // The chain's snapshot in the bucket, plain: it stays so, under the name its chain bears.
    let anchor_copy = keys.path().join(ANCHOR);
    std::fs::write(&anchor_copy, b"a plain full snapshot").unwrap();
    let meta = ObjectMetadata::default();
    store
        .upload_file(&anchor_copy, ANCHOR, &meta)
        .await
        .unwrap();
    let bucket = s3.root.path().join("snapshots");
    let rekey = |extra: &[&str]| {
        let mut args = s3_flags(&s3, "snapshots");
        args.extend([
            format!("--etcd-endpoints=https://127.0.0.1:{}", free_port()),
            "--node-name=n1".into(),
            format!("--etcd-snapshot-encryption-recipients={new_public}"),
            format!(
                "--etcd-snapshot-encryption-identity-file={}",
                old_id.display()
            ),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let data = data.path().to_path_buf();
        blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&refs, &data)
        })
    };
    let (local_before, bucket_before) = (tree(chain.path()), tree(&bucket));

    let out = rekey(&["rekey", "--dry-run"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let seg = |from: i64, to: i64, suffix: &str| format!("{ANCHOR}/{}", seg_name(from, to, suffix));
    let encrypted = [seg(13, 20, ".seg.gz.age"), seg(21, 30, ".seg.age")];
    for (where_, count) in [("", 1), ("S3 ", 2)] {
        for encrypted in &encrypted[..count] {
            let line = format!("would re-encrypt {where_}segment {encrypted} to ");
            assert!(stdout.contains(&line), "{line}\n{stdout}");
        }
        let plain = format!(
            "skipped {where_}segment {}: left plain",
            seg(11, 12, ".seg")
        );
        assert!(stdout.contains(&plain), "{plain}\n{stdout}");
    }
    let summed = format!("would re-encrypt 11 segments of chain {LONG} to ");
    assert!(stdout.contains(&summed), "{summed}\n{stdout}");
    assert!(!stdout.contains(&format!("segment {LONG}/")), "{stdout}");
    assert_eq!(
        tree(chain.path()),
        local_before,
        "the dry run changed a local file"
    );
    assert_eq!(
        tree(&bucket),
        bucket_before,
        "the dry run changed the bucket"
    );

    let out = rekey(&["rekey"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let kept = format!("skipped S3 {ANCHOR}: left plain: it anchors a delta chain");
    assert!(stdout.contains(&kept), "{kept}\n{stdout}");
    assert!(bucket.join("f").join(ANCHOR).is_file());
    for done in &encrypted {
        let done = format!(
            "re-encrypted S3 segment {done} to {}",
            fingerprint(&new_public)
        );
        assert!(stdout.contains(&done), "{done}\n{stdout}");
    }
    assert_eq!(
        std::fs::read(chain.path().join(".31.part")).unwrap(),
        b"the open segment"
    );
    let downloaded = download_chain(&store).await;
    // The bucket holds the node's rekeyed bytes: the server's uploader has nothing to re-send.
    let names = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let files = tree(dir).into_iter();
        let named = files.map(|(p, b)| (p.file_name().unwrap().to_string_lossy().into_owned(), b));
        named
            .filter(|(n, _)| !n.starts_with('.') && *n != only_in_s3)
            .collect()
    };
    assert_eq!(names(downloaded.path()), names(chain.path()));
    let on_disk = vec![(11, 12), (13, 20)];
    let in_s3 = vec![(11, 12), (13, 20), (21, 30)];
    for (dir, all) in [(chain.path(), on_disk), (downloaded.path(), in_s3)] {
        assert_eq!(
            replay_reads(dir, ANCHOR, &new),
            Ok(all),
            "{}",
            dir.display()
        );
        let refused = replay_reads(dir, ANCHOR, &old).unwrap_err();
        assert!(refused.contains(&fingerprint(&new_public)), "{refused}");
    }
    let summed = format!("re-encrypted 11 segments of chain {LONG} to ");
    assert!(stdout.contains(&summed), "{summed}\n{stdout}");
    assert_eq!(
        replay_reads(long.path(), LONG, &new).map(|r| r.len()),
        Ok(11)
    );
    assert!(replay_reads(long.path(), LONG, &old).is_err());
    let temps = tree(&bucket)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("/.rekey/"))
        .count();
    assert_eq!(temps, 0, "no temp copy is left in the bucket");

    let (local_after, bucket_after) = (tree(chain.path()), tree(&bucket));
    let out = rekey(&["rekey"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("re-encrypted"), "{stdout}");
    let skipped = stdout
        .matches("already encrypted to the current recipients")
        .count();
    assert_eq!(
        skipped, 4,
        "three segments and the long chain's line: {stdout}"
    );
    let summed = format!("skipped 11 segments of chain {LONG}: already encrypted");
    assert!(stdout.contains(&summed), "{summed}\n{stdout}");
    assert_eq!(
        tree(chain.path()),
        local_after,
        "the rerun changed a local file"
    );
    assert_eq!(tree(&bucket), bucket_after, "the rerun changed the bucket");
}
