//! Delta chain objects against the signature-checking S3 server: a segment uploaded under
//! `<folder>/.deltas/<snapshot>/.metadata/<segment>` lists back with its size, downloads with
//! its bytes (checked against the recorded SHA-256, damage refused), never shows up as a
//! snapshot, and `delete_chain` removes exactly its chain.

use etcd_snapshot::store::s3::retry::RetryPolicy;
use etcd_snapshot::store::s3::{ObjectMetadata, S3Store};

use crate::fakes::s3_support::{S3Server, Tls, write_pattern};

const SEG_A: &str = "00000000000000000011-00000000000000000013.seg";
const SEG_B: &str = "00000000000000000014-00000000000000000020.seg";

#[tokio::test]
async fn chain_objects_round_trip_stay_out_of_the_snapshot_listing_and_go_by_chain() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket("snapshots");
    let store = S3Store::connect(&server.settings("snapshots", "prod/"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ("etcd-snapshot-n1-1700000000", "etcd-snapshot-n1-1700000100");
    let meta = ObjectMetadata::default();
    let mut sent = Vec::new();
    for (anchor, name, len) in [(a, SEG_A, 300), (a, SEG_B, 7000), (b, SEG_A, 10)] {
        let path = dir.path().join(format!("{anchor}-{name}"));
        let bytes = write_pattern(&path, len);
        let policy = RetryPolicy::default();
        let up = store
            .upload_segment(&path, anchor, name, &meta, policy)
            .await
            .unwrap();
        assert_eq!(up.key, format!("prod/.deltas/{anchor}/.metadata/{name}"));
        sent.push((anchor, name, bytes));
    }
    store
        .upload_file(&dir.path().join(format!("{a}-{SEG_A}")), a, &meta)
        .await
        .unwrap();

    let listed = store.list_chain(a).await.unwrap();
    let names: Vec<(&str, u64)> = listed.iter().map(|o| (o.name.as_str(), o.size)).collect();
    assert_eq!(names, [(SEG_A, 300), (SEG_B, 7000)]);
    let all = store.list_chains().await.unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), [a, b]);
    let snapshots: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.file_name)
        .collect();
    assert_eq!(snapshots, [a], "segments are never listed as snapshots");

    let out = tempfile::tempdir().unwrap();
    let got = store.download_segment(a, SEG_B, out.path()).await.unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), sent[1].2);
    // Damaged in the bucket: refused, and nothing is left behind.
    let key = format!("prod/.deltas/{a}/.metadata/{SEG_A}");
    server.rewrite("snapshots", &key, b"not the bytes that were sent");
    let err = store
        .download_segment(a, SEG_A, out.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    assert!(!out.path().join(SEG_A).exists());
    assert!(
        store.download_segment(a, "../x", out.path()).await.is_err(),
        "a hostile name never reaches a key"
    );

    let removed = store.delete_chain(a).await;
    assert_eq!(removed.problem(), None);
    assert_eq!(removed.deleted.len(), 2);
    assert!(store.list_chain(a).await.unwrap().is_empty());
    assert_eq!(store.list_chain(b).await.unwrap().len(), 1, "b is kept");
    assert!(server.has_object("snapshots", &format!("prod/{a}")));
}

/// `ls --deltas` on a new host (empty data dir) lists the bucket's chains: each with its S3
/// location, the revision its S3 copy recorded and how far it reaches; a chain whose snapshot
/// is not in the bucket is listed without a revision; the table has a Location column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_deltas_lists_the_buckets_chains_with_their_location_and_reach() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket("snapshots");
    let store = S3Store::connect(&server.settings("snapshots", "f"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, orphan) = ("etcd-snapshot-n1-1700000000", "etcd-snapshot-n2-1700000100");
    let meta = ObjectMetadata::default();
    let hole = "00000000000000000030-00000000000000000040.seg";
    for (anchor, name) in [(a, SEG_A), (a, SEG_B), (a, hole), (orphan, SEG_A)] {
        let path = dir.path().join(format!("{anchor}-{name}"));
        write_pattern(&path, 100);
        let policy = RetryPolicy::default();
        store
            .upload_segment(&path, anchor, name, &meta, policy)
            .await
            .unwrap();
    }
    let snapshot = dir.path().join(a);
    write_pattern(&snapshot, 1000);
    store.upload_file(&snapshot, a, &meta).await.unwrap();
    let record = br#"{"etcd-snapshot-revision":"10"}"#.to_vec();
    store.upload_metadata(a, record, &meta).await.unwrap();

    let data = tempfile::tempdir().unwrap();
    let ls = |endpoint: String, format: &'static str| {
        let data = data.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let flags = [
                "--etcd-s3".to_string(),
                format!("--etcd-s3-endpoint={endpoint}"),
                "--etcd-s3-insecure".into(),
                "--etcd-s3-bucket=snapshots".into(),
                "--etcd-s3-folder=f".into(),
                format!(
                    "--etcd-s3-access-key={}",
                    crate::fakes::s3_support::ACCESS_KEY
                ),
                format!(
                    "--etcd-s3-secret-key={}",
                    crate::fakes::s3_support::SECRET_KEY
                ),
                "--node-name=n3".into(),
            ];
            let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
            args.extend(["ls", "--deltas", "-o", format]);
            crate::support::run(&args, &data)
        })
    };
    let endpoint = server.addr.to_string();
    let out = ls(endpoint.clone(), "json").await.unwrap();
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    let chains = json.as_array().expect("a list");
    assert_eq!(chains.len(), 2, "{json:#}");
    let first = &chains[0];
    assert_eq!(first["anchor"], a);
    assert_eq!(
        first["location"],
        format!("s3://snapshots/f/.deltas/{a}/.metadata/")
    );
    assert_eq!(first["anchorRevision"], 10);
    assert_eq!(first["restorableTo"], 20);
    let on_chain: Vec<bool> = first["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["onChain"].as_bool().unwrap())
        .collect();
    assert_eq!(on_chain, [true, true, false]);
    assert_eq!(chains[1]["anchor"], orphan);
    assert!(chains[1]["restorableTo"].is_null(), "{json:#}");

    let out = ls(endpoint, "table").await.unwrap();
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("Location"), "{stdout}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let location = format!("s3://snapshots/f/.deltas/{a}/.metadata/");
    assert_eq!(row, [a, "10", "20", "3", "1", "300", location.as_str()]);

    // A bucket that cannot be reached is an error naming it, not an empty listing.
    let nowhere = format!("127.0.0.1:{}", crate::support::free_port());
    let out = ls(nowhere, "table").await.unwrap();
    let (_, stderr) = crate::support::text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("failed to list the delta chains in S3 bucket \"snapshots\""),
        "{stderr}"
    );
}
