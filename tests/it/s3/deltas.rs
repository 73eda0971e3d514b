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

    let removed = store.delete_chain(a).await.unwrap();
    assert_eq!(removed.len(), 2);
    assert!(store.list_chain(a).await.unwrap().is_empty());
    assert_eq!(store.list_chain(b).await.unwrap().len(), 1, "b is kept");
    assert!(server.has_object("snapshots", &format!("prod/{a}")));
}
