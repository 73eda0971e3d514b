//! `S3Store::upload_stream` fed by a real `snapshot::tee` from a blocking writer thread, as the
//! save pipeline does, and `upload_file_with_retry`. Every upload is read back with
//! `download()`, which verifies the recorded sha256.

use std::time::Duration;

use etcd_snapshot::snapshot::tee;
use etcd_snapshot::store::s3::{RetryPolicy, S3Error, S3Store, UploadedObject};
use sha2::{Digest, Sha256};

use super::metadata;
use crate::fakes::s3_support::{S3Server, Tls, write_pattern};

const MIB: usize = 1024 * 1024;

/// How the writer side of the tee ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// `finish` with the right sha256 and size, and a late entry (`LATE`).
    Done,
    /// `finish` announcing one byte more than was written.
    WrongSize,
    /// The tee is dropped: the save failed.
    Dropped,
}

/// The entry the tee's end carries (the keyspace hash asked for after the stream).
const LATE: (&str, &str) = ("etcd-snapshot-hashkv", "77");

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `data` through a tee in uneven pieces on a blocking thread while `upload_stream`
/// consumes it.
async fn stream(
    store: &S3Store,
    name: &str,
    data: Vec<u8>,
    ending: Ending,
) -> Result<UploadedObject, S3Error> {
    let (writer_end, feed) = tee::channel();
    let writer = tokio::task::spawn_blocking(move || {
        let mut tee = writer_end;
        for piece in data.chunks(300_001) {
            tee.write(piece);
        }
        let size = data.len() as u64;
        match ending {
            Ending::Done => {
                let late = [(LATE.0.to_string(), LATE.1.to_string())];
                tee.finish(sha256_hex(&data), size, late.into())
            }
            Ending::WrongSize => tee.finish(sha256_hex(&data), size + 1, Default::default()),
            Ending::Dropped => drop(tee),
        }
    });
    let uploaded = store.upload_stream(name, &metadata(), feed).await;
    writer.await.expect("writer thread");
    uploaded
}

async fn store_on(server: &S3Server, folder: &str) -> S3Store {
    server.create_bucket("snapshots");
    S3Store::connect(&server.settings("snapshots", folder))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_uploads_download_with_a_verified_checksum() {
    let server = S3Server::start(Tls::Plain).await;
    let store = store_on(&server, "prod").await;
    // One PutObject; an exact multiple of the part size (empty last remainder); several parts
    // plus a remainder.
    let cases = [
        ("on-demand-node1-1700000100", 300_000),
        ("on-demand-node1-1700000200.zip", 16 * MIB),
        ("etcd-snapshot-node1-1700000300.zip", 20 * MIB + 5),
    ];
    let out = tempfile::tempdir().unwrap();
    for (name, len) in cases {
        let data = pattern(len);
        let uploaded = stream(&store, name, data.clone(), Ending::Done)
            .await
            .unwrap_or_else(|e| panic!("stream {name}: {e:?}"));
        assert_eq!(uploaded.size, len as u64, "{name}");
        assert_eq!(uploaded.sha256, sha256_hex(&data), "{name}");
        assert_eq!(uploaded.location, format!("s3://snapshots/prod/{name}"));

        let head = store
            .client()
            .sdk()
            .head_object()
            .bucket("snapshots")
            .key(&uploaded.key)
            .send()
            .await
            .expect("head");
        super::assert_object_metadata(head.metadata(), &uploaded.sha256, name);
        // The late entry reaches a PutObject and a multipart object (its self-copy) alike.
        let late = head.metadata().and_then(|m| m.get(LATE.0));
        assert_eq!(late.map(String::as_str), Some(LATE.1), "{name}");
        let expected_type = if name.ends_with(".zip") {
            "application/zip"
        } else {
            "application/octet-stream"
        };
        assert_eq!(head.content_type(), Some(expected_type), "{name}");

        let path = store.download(name, out.path()).await.expect("download");
        assert!(
            std::fs::read(&path).unwrap() == data,
            "{name}: bytes differ"
        );
    }
    assert!(
        server.pending_uploads().is_empty(),
        "{:?}",
        server.pending_uploads()
    );
    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.file_name)
        .collect();
    assert_eq!(listed, cases.map(|(name, _)| name.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_save_leaves_nothing_at_the_key() {
    let server = S3Server::start(Tls::Plain).await;
    let store = store_on(&server, "prod").await;
    for (name, len) in [
        ("on-demand-node1-1700000400", 2 * MIB),
        ("on-demand-node1-1700000500.zip", 20 * MIB + 5),
    ] {
        let err = stream(&store, name, pattern(len), Ending::Dropped)
            .await
            .unwrap_err();
        match &err {
            S3Error::Abandoned { key, received, .. } => {
                assert_eq!(key, &format!("prod/{name}"));
                assert!(*received <= len as u64, "{err}");
                if len > 16 * MIB {
                    // Parts had gone up, so a multipart upload was open when the save failed.
                    assert!(*received >= 16 * MIB as u64, "{err}");
                }
            }
            other => panic!("{name}: expected Abandoned, got {other:?}"),
        }
        assert!(!err.is_retryable());
        assert!(
            !server.has_object("snapshots", &format!("prod/{name}")),
            "{name}"
        );
    }
    assert!(
        server.pending_uploads().is_empty(),
        "multipart upload left behind: {:?}",
        server.pending_uploads()
    );
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_that_does_not_match_the_bytes_is_rejected() {
    let server = S3Server::start(Tls::Plain).await;
    let store = store_on(&server, "").await;
    for (name, len) in [
        ("on-demand-node1-1700000600", 1000),
        ("on-demand-node1-1700000700", 9 * MIB),
    ] {
        let err = stream(&store, name, pattern(len), Ending::WrongSize)
            .await
            .unwrap_err();
        assert!(
            matches!(err, S3Error::SizeMismatch { announced, received, .. }
                if announced == len as u64 + 1 && received == len as u64),
            "{err:?}"
        );
        assert!(!server.has_object("snapshots", name), "{name}");
    }
    assert!(
        server.pending_uploads().is_empty(),
        "{:?}",
        server.pending_uploads()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_name_is_refused_before_reading_the_feed() {
    let server = S3Server::start(Tls::Plain).await;
    let store = store_on(&server, "").await;
    let (_writer_end, feed) = tee::channel();
    let err = store
        .upload_stream("../escape-node1-1", &metadata(), feed)
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::InvalidName { .. }), "{err:?}");
}

#[tokio::test]
async fn retried_file_upload_succeeds_and_gives_up_on_lasting_failures() {
    let server = S3Server::start(Tls::Plain).await;
    let store = store_on(&server, "f").await;
    let dir = tempfile::tempdir().unwrap();
    let name = "on-demand-node1-1700000800";
    let data = write_pattern(&dir.path().join(name), 10 * MIB);
    let uploaded = store
        .upload_file_with_retry(
            &dir.path().join(name),
            name,
            &metadata(),
            RetryPolicy::default(),
        )
        .await
        .expect("upload");
    assert_eq!(uploaded.sha256, sha256_hex(&data));
    let out = tempfile::tempdir().unwrap();
    let path = store.download(name, out.path()).await.expect("download");
    assert!(std::fs::read(path).unwrap() == data);

    // A missing file is not retried (it would fail the same way each time).
    let err = store
        .upload_file_with_retry(
            &dir.path().join("gone"),
            name,
            &metadata(),
            RetryPolicy::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::Io { .. }), "{err:?}");

    // An endpoint that refuses connections is retried per the policy, then reported.
    let mut settings = server.settings("snapshots", "f");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    settings.endpoint = closed.to_string();
    let client = etcd_snapshot::store::s3::S3Client::build(&settings)
        .await
        .unwrap();
    let unreachable = S3Store::new(client, "f");
    let quick = RetryPolicy {
        attempts: 2,
        first_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    let err = unreachable
        .upload_file_with_retry(&dir.path().join(name), name, &metadata(), quick)
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::Unreachable { .. }), "{err:?}");
}
