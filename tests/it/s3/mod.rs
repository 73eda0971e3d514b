//! S3 store against a real, signature-checking S3 server on loopback (see `fakes/s3_support.rs`:
//! s3s + s3s-fs in-process). Round trips, folder isolation, setup errors, TLS variants;
//! streamed and retried uploads are in `s3/stream.rs`.

use etcd_snapshot::snapshot::Storage;
use etcd_snapshot::snapshot::retention::RetentionPolicy;
use etcd_snapshot::store::DeleteOutcome;
use etcd_snapshot::store::s3::{ObjectMetadata, S3Client, S3Error, S3Store};

use etcd_snapshot::config::desired::{BucketLookup, S3Proxy};

use crate::fakes::s3_support::{S3Server, SECRET_KEY, TestProxy, Tls, write_pattern};

/// Streamed (tee-fed) and retried uploads.
mod stream;

/// A delta chain's objects deleted in batches (DeleteObjects), and the per-key fallback.
mod batch_delete;
/// Delta chain objects.
mod deltas;

/// Operations with S3 configured, through the real binary.
pub mod ops;
/// Progress reported for bytes that cross S3.
mod progress;
/// Rekey of S3 copies, through an outage.
mod rekey;
/// Rekey of delta segments, local and in S3.
mod rekey_segments;
/// S3 retention policies.
mod retention;
/// One S3 session per operation.
mod session;
/// Where the S3 settings come from (flags, file, Secret).
mod sources;

/// The object carries `metadata()`'s RKE2 user metadata and the given sha256.
pub(crate) fn assert_object_metadata(
    meta: Option<&std::collections::HashMap<String, String>>,
    sha256: &str,
    name: &str,
) {
    let meta = meta.expect("user metadata");
    let get = |key: &str| meta.get(key).map(String::as_str);
    assert_eq!(get("etcd-snapshot-sha256"), Some(sha256), "{name}");
    assert_eq!(get("rke2-cluster-id"), Some("cluster-uid-1"), "{name}");
    assert_eq!(get("rke2-node-name"), Some("node1"), "{name}");
    assert_eq!(get("rke2-token-hash"), Some("0123456789ab"), "{name}");
}

pub(crate) fn metadata() -> ObjectMetadata {
    ObjectMetadata {
        cluster_id: "cluster-uid-1".into(),
        node_name: "node1".into(),
        token_hash: "0123456789ab".into(),
        sha256: None,
        extra: Default::default(),
    }
}

#[tokio::test]
async fn upload_list_download_delete_round_trip_stays_in_its_folder() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket("snapshots");
    // A sibling folder sharing the prefix, nested keys and junk must never be listed.
    server.put_raw("snapshots", "prod-old/on-demand-node1-1700000000", b"other");
    server.put_raw(
        "snapshots",
        "prod/nested/on-demand-node1-1700000001",
        b"nested",
    );
    server.put_raw("snapshots", "prod/README", b"not a snapshot");
    let store = S3Store::connect(&server.settings("snapshots", "prod/"))
        .await
        .expect("connect");

    let dir = tempfile::tempdir().unwrap();
    let small_name = "on-demand-node1-1700000100";
    let small = write_pattern(&dir.path().join(small_name), 100_000);
    // Larger than one part: goes up as a multipart upload.
    let big_name = "etcd-snapshot-node1-1700000200.zip";
    let big = write_pattern(&dir.path().join(big_name), 9 * 1024 * 1024 + 17);
    let up_small = store
        .upload_file(&dir.path().join(small_name), small_name, &metadata())
        .await
        .expect("upload small");
    assert_eq!(
        up_small.location,
        format!("s3://snapshots/prod/{small_name}")
    );
    assert_eq!(up_small.size, small.len() as u64);
    let up_big = store
        .upload_file(&dir.path().join(big_name), big_name, &metadata())
        .await
        .expect("upload multipart");
    assert_eq!(up_big.size, big.len() as u64);
    store
        .upload_metadata(small_name, br#"{"k":"v"}"#.to_vec(), &metadata())
        .await
        .expect("upload metadata");
    assert!(server.has_object("snapshots", &format!("prod/.metadata/{small_name}")));

    // RKE2's object user metadata and our checksum are on the object.
    let head = store
        .client()
        .sdk()
        .head_object()
        .bucket("snapshots")
        .key(format!("prod/{big_name}"))
        .send()
        .await
        .expect("head");
    assert_object_metadata(head.metadata(), &up_big.sha256, big_name);
    assert_eq!(head.content_type(), Some("application/zip"));

    let debug = format!("{store:?}");
    assert!(
        !debug.contains(SECRET_KEY),
        "Debug of the store shows the secret key"
    );

    let listed = store.list().await.expect("list");
    let names: Vec<&str> = listed.iter().map(|r| r.file_name.as_str()).collect();
    assert_eq!(names, [small_name, big_name]);
    assert!(
        listed
            .iter()
            .all(|r| r.storage == Storage::S3 && r.node_name == "s3")
    );
    assert_eq!(
        listed[1].location,
        format!("s3://snapshots/prod/{big_name}")
    );
    assert_eq!(listed[1].size, big.len() as u64);
    assert_eq!(listed[1].created_unix, 1_700_000_200);
    assert!(listed[1].compressed && !listed[0].compressed);

    let out = tempfile::tempdir().unwrap();
    let path = store
        .download(big_name, out.path())
        .await
        .expect("download");
    assert_eq!(path, out.path().join(big_name));
    assert!(
        std::fs::read(&path).unwrap() == big,
        "downloaded bytes differ"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        1,
        "no temp file left"
    );

    assert_eq!(
        store.delete(small_name).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(!server.has_object("snapshots", &format!("prod/.metadata/{small_name}")));
    assert_eq!(
        store.delete(small_name).await.unwrap(),
        DeleteOutcome::NotFound
    );
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.file_name)
        .collect();
    assert_eq!(names, [big_name]);
    assert!(server.has_object("snapshots", "prod-old/on-demand-node1-1700000000"));
}

#[tokio::test]
async fn download_rejects_an_object_whose_checksum_does_not_match() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket("snapshots");
    let store = S3Store::connect(&server.settings("snapshots", ""))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = "on-demand-node1-1700000300";
    write_pattern(&dir.path().join(name), 1000);
    let wrong = ObjectMetadata {
        sha256: Some("00".repeat(32)),
        ..metadata()
    };
    store
        .upload_file(&dir.path().join(name), name, &wrong)
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = store.download(name, out.path()).await.unwrap_err();
    assert!(matches!(err, S3Error::ChecksumMismatch { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing kept"
    );
    let err = store
        .download("on-demand-node1-1", out.path())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn download_never_replaces_a_same_name_file_and_reuses_an_identical_one() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket("snapshots");
    let store = S3Store::connect(&server.settings("snapshots", ""))
        .await
        .unwrap();
    let src = tempfile::tempdir().unwrap();
    let name = "on-demand-node1-1700000400";
    let bytes = write_pattern(&src.path().join(name), 5000);
    let sum = sha256_hex(&bytes);
    let recorded = ObjectMetadata {
        sha256: Some(sum),
        ..metadata()
    };
    store
        .upload_file(&src.path().join(name), name, &recorded)
        .await
        .unwrap();

    // The same bytes already in the snapshot dir: used as they are (the same file, not a
    // replacement of it).
    let dest = tempfile::tempdir().unwrap();
    std::fs::copy(src.path().join(name), dest.path().join(name)).unwrap();
    let inode = |path: &std::path::Path| {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
    };
    let before = inode(&dest.path().join(name));
    let path = store.download(name, dest.path()).await.unwrap();
    assert_eq!(path, dest.path().join(name));
    assert_eq!(inode(&path), before, "the file was replaced");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // A different file under that name is left alone, and the error says what to do.
    std::fs::write(dest.path().join(name), b"another snapshot").unwrap();
    let err = store.download(name, dest.path()).await.unwrap_err();
    assert!(matches!(err, S3Error::LocalCopyDiffers { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&dest.path().join(name).display().to_string())
            && text.contains("left untouched")
            && text.contains("restore from it by path"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(dest.path().join(name)).unwrap(),
        b"another snapshot"
    );

    // Objects without a recorded checksum (RKE2's uploads) are downloaded and compared: the
    // same bytes are used as they are, others refused; no temp file is left either way.
    let unrecorded = "on-demand-node1-1700000500";
    server.put_raw("snapshots", unrecorded, b"raw bytes");
    std::fs::write(dest.path().join(unrecorded), b"raw bytes").unwrap();
    let before = inode(&dest.path().join(unrecorded));
    let path = store.download(unrecorded, dest.path()).await.unwrap();
    assert_eq!(inode(&path), before, "the file was replaced");
    std::fs::write(dest.path().join(unrecorded), b"other bytes").unwrap();
    let err = store.download(unrecorded, dest.path()).await.unwrap_err();
    assert!(err.to_string().contains("downloaded sha256"), "{err}");
    assert_eq!(
        std::fs::read(dest.path().join(unrecorded)).unwrap(),
        b"other bytes"
    );
    let entries = std::fs::read_dir(dest.path()).unwrap().count();
    assert_eq!(entries, 2, "no temp file left behind");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn wrong_credentials_and_missing_bucket_are_distinct_clear_errors() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket("snapshots");

    let mut wrong = server.settings("snapshots", "");
    wrong.secret_key = Some("not-the-secret".to_string().into());
    let err = S3Client::connect(&wrong).await.unwrap_err();
    assert!(matches!(err, S3Error::AccessDenied { .. }), "{err:?}");
    let text = format!("{err}");
    assert!(
        text.contains("snapshots") && text.contains(&server.addr.to_string()),
        "{text}"
    );
    let chain = format!("{:?}", anyhow::Error::from(err));
    assert!(
        !chain.contains("not-the-secret") && !chain.contains(SECRET_KEY),
        "{chain}"
    );

    let err = S3Client::connect(&server.settings("no-such-bucket", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::BucketNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-bucket"), "{err}");

    // Each operation reports the same errors, not only the startup check.
    let missing = S3Client::build(&server.settings("no-such-bucket", "f"))
        .await
        .unwrap();
    let err = S3Store::new(missing, "f").list().await.unwrap_err();
    assert!(matches!(err, S3Error::BucketNotFound { .. }), "{err:?}");
    let denied = S3Client::build(&wrong).await.unwrap();
    let err = S3Store::new(denied, "f").list().await.unwrap_err();
    assert!(matches!(err, S3Error::AccessDenied { .. }), "{err:?}");

    let mut unreachable = server.settings("snapshots", "");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    unreachable.endpoint = closed.to_string();
    let err = S3Client::connect(&unreachable).await.unwrap_err();
    assert!(matches!(err, S3Error::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
}

#[tokio::test]
async fn https_with_a_private_ca_from_a_file_or_inline_pem() {
    let server = S3Server::start(Tls::PrivateCa).await;
    server.create_bucket("snapshots");
    let ca = server.ca_pem.clone().expect("ca");

    // Without the CA the system roots do not trust the endpoint.
    let err = S3Client::connect(&server.settings("snapshots", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::Certificate { .. }), "{err:?}");

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    for value in [ca_file.display().to_string(), ca.clone()] {
        let mut settings = server.settings("snapshots", "f");
        settings.endpoint_ca = Some(value);
        let store = S3Store::connect(&settings)
            .await
            .expect("connect over https");
        assert!(store.list().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn skip_ssl_verify_accepts_a_self_signed_endpoint() {
    let server = S3Server::start(Tls::SelfSigned).await;
    server.create_bucket("snapshots");
    let err = S3Client::connect(&server.settings("snapshots", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::Certificate { .. }), "{err:?}");

    let mut settings = server.settings("snapshots", "");
    settings.skip_ssl_verify = true;
    let store = S3Store::connect(&settings).await.expect("skip verify");
    let name = "on-demand-node1-1700000400";
    upload_one(&store, name, 5000).await;
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_explicit_proxy_carries_http_and_https_traffic() {
    let proxy = TestProxy::start().await;

    let plain = S3Server::start(Tls::Plain).await;
    plain.create_bucket("snapshots");
    let mut settings = plain.settings("snapshots", "f");
    settings.proxy = S3Proxy::Url(proxy.url());
    let store = S3Store::connect(&settings)
        .await
        .expect("connect through proxy");
    assert!(store.list().await.unwrap().is_empty());
    let target = format!("http://{}/", plain.addr);
    assert!(
        proxy.seen().iter().any(|l| l.contains(&target)),
        "proxy saw {:?}",
        proxy.seen()
    );

    let tls = S3Server::start(Tls::PrivateCa).await;
    tls.create_bucket("snapshots");
    let mut settings = tls.settings("snapshots", "f");
    settings.endpoint_ca = tls.ca_pem.clone();
    settings.proxy = S3Proxy::Url(proxy.url());
    S3Store::connect(&settings)
        .await
        .expect("connect through tunnel");
    let connect = format!("CONNECT {}", tls.addr);
    assert!(
        proxy.seen().iter().any(|l| l.starts_with(&connect)),
        "proxy saw {:?}",
        proxy.seen()
    );
}

#[tokio::test]
async fn prune_keeps_other_clusters_and_other_bases_and_dry_run_touches_nothing() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket("shared");
    let settings = server.settings("shared", "etcd");
    let a = S3Store::connect(&settings)
        .await
        .unwrap()
        .with_identity("node1", "cluster-a");
    let b = S3Store::connect(&settings)
        .await
        .unwrap()
        .with_identity("node1", "cluster-b");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    write_pattern(&file, 2048);
    let upload = |store: &S3Store, name: &'static str, cluster: &'static str| {
        let meta = ObjectMetadata {
            cluster_id: cluster.into(),
            ..metadata()
        };
        let store = store.clone();
        let file = file.clone();
        async move { store.upload_file(&file, name, &meta).await.unwrap() }
    };
    upload(&a, "etcd-snapshot-node1-100", "cluster-a").await;
    upload(&a, "etcd-snapshot-node1-200", "cluster-a").await;
    upload(&a, "etcd-snapshot-node1-300", "cluster-a").await;
    upload(&b, "etcd-snapshot-node1-150", "cluster-b").await;
    upload(&b, "etcd-snapshot-node1-250", "cluster-b").await;
    upload(&a, "etcd-snapshot-weekly-node1-50", "cluster-a").await;

    let planned = a
        .prune("etcd-snapshot", &RetentionPolicy::count(1), true)
        .await
        .unwrap()
        .deleted;
    assert_eq!(
        planned,
        ["etcd-snapshot-node1-100", "etcd-snapshot-node1-200"]
    );
    assert_eq!(a.list().await.unwrap().len(), 6, "dry run deletes nothing");

    let deleted = a
        .prune("etcd-snapshot", &RetentionPolicy::count(1), false)
        .await
        .unwrap()
        .deleted;
    assert_eq!(deleted, planned);
    let left: Vec<String> = a
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.file_name)
        .collect();
    assert_eq!(
        left,
        [
            "etcd-snapshot-weekly-node1-50",
            "etcd-snapshot-node1-150",
            "etcd-snapshot-node1-250",
            "etcd-snapshot-node1-300",
        ]
    );
}

#[tokio::test]
async fn virtual_host_style_addressing_puts_the_bucket_in_the_host_name() {
    // `snapshots.localhost` does not resolve here, so the test proxy dials loopback for it.
    let proxy = TestProxy::start().await;
    let server = S3Server::start_with(Tls::Plain, Some("localhost")).await;
    server.create_bucket("snapshots");
    let mut settings = server.settings("snapshots", "vh");
    settings.endpoint = format!("localhost:{}", server.addr.port());
    settings.bucket_lookup = BucketLookup::Dns;
    settings.proxy = S3Proxy::Url(proxy.url());
    let store = S3Store::connect(&settings)
        .await
        .expect("virtual-host connect");
    let name = "on-demand-node1-1700000500";
    upload_one(&store, name, 3000).await;
    assert_eq!(store.list().await.unwrap().len(), 1);
    assert!(server.has_object("snapshots", &format!("vh/{name}")));
    let host = format!("http://snapshots.localhost:{}/", server.addr.port());
    assert!(
        proxy.seen().iter().any(|l| l.contains(&host)),
        "proxy saw {:?}",
        proxy.seen()
    );
}

/// Uploads one `size`-byte patterned file as snapshot `name`.
async fn upload_one(store: &S3Store, name: &str, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join(name), size);
    store
        .upload_file(&dir.path().join(name), name, &metadata())
        .await
        .unwrap();
}

#[tokio::test]
async fn download_never_writes_through_a_symlink_planted_at_the_temp_name() {
    let server = S3Server::start(Tls::Plain).await;
    server.create_bucket("snapshots");
    let store = S3Store::connect(&server.settings("snapshots", ""))
        .await
        .unwrap();
    let name = "on-demand-node1-1700000600";
    server.put_raw("snapshots", name, b"snapshot bytes");
    let dest = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let part = dest.path().join(format!("{name}.part"));

    // A link to an existing file: refused, the target keeps its bytes, the link stays.
    let victim = elsewhere.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, &part).unwrap();
    let err = store.download(name, dest.path()).await.unwrap_err();
    let text = etcd_snapshot::errors::error_chain(&err);
    assert!(
        text.contains(&part.display().to_string()) && text.contains("symbolic link"),
        "{text}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&part).unwrap().is_symlink());
    assert!(!dest.path().join(name).exists());

    // A dangling link: refused, nothing is created at its target.
    std::fs::remove_file(&part).unwrap();
    let target = elsewhere.path().join("created-through-link");
    std::os::unix::fs::symlink(&target, &part).unwrap();
    store.download(name, dest.path()).await.unwrap_err();
    assert!(!target.exists(), "the download followed the link");

    // A regular file left by an interrupted download is replaced, and the download completes.
    std::fs::remove_file(&part).unwrap();
    std::fs::write(&part, b"half a download").unwrap();
    let path = store.download(name, dest.path()).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"snapshot bytes");
    assert!(!part.exists(), "no temp file left behind");
}
