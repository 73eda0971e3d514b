//! `--progress=json` for the bytes that cross S3, through the real binary and the in-process
//! S3 server: a direct-mode save reports its upload beside the save, ending at the object's
//! size; a restore from S3 reports the download, then the restore tool's copy.

use crate::cluster_reset::Node;
use crate::progress::events;
use crate::s3_ops::{blocking, created_name, direct, s3_flags};
use crate::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
use crate::support::{TestEtcd, require_binary, snapshot_dir, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_direct_save_to_s3_reports_the_upload_up_to_the_object_size() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let data = tempfile::tempdir().unwrap();
    let mut args = s3_flags(&s3, "snapshots");
    args.extend(["--progress=json", "save"].map(String::from));
    let out = direct(data.path(), &etcd.endpoint, args).await;
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let name = created_name(&out);
    let (saved, _) = events(&stderr, "save");
    let (uploaded, upload) = events(&stderr, "upload");
    assert_eq!(upload[0]["name"], name.as_str());
    let file = std::fs::metadata(snapshot_dir(data.path()).join(&name)).unwrap();
    assert_eq!(uploaded, file.len(), "the upload sent the whole file");
    assert_eq!(
        saved,
        file.len(),
        "an uncompressed save's file is etcd's stream"
    );
    assert!(s3.has_object("snapshots", &format!("f/{name}")));
}

/// `--etcd-s3` settings (server scope: what a restore takes) for `s3`'s bucket `b`.
fn etcd_s3_flags(s3: &S3Server, bucket: &str) -> Vec<String> {
    vec![
        "--etcd-s3".into(),
        format!("--etcd-s3-endpoint={}", s3.addr),
        "--etcd-s3-insecure".into(),
        format!("--etcd-s3-bucket={bucket}"),
        format!("--etcd-s3-access-key={ACCESS_KEY}"),
        format!("--etcd-s3-secret-key={SECRET_KEY}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_restore_from_s3_reports_the_download_then_the_restore() {
    if require_binary("etcd").is_none() {
        return;
    }
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let flags = etcd_s3_flags(&s3, "snapshots");
    let node = Node::new();
    let (node, snapshot) = blocking(move || {
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut server = node.start(&refs);
        node.put("/test/a", "1");
        let snapshot = node.save(&server, false);
        assert!(server.terminate().success());
        (node, snapshot)
    })
    .await;
    let name = snapshot.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        s3.has_object("snapshots", &name),
        "the save uploaded {name}"
    );
    let size = std::fs::metadata(&snapshot).unwrap().len();
    // Only the bucket has it now, so the restore must download it.
    std::fs::remove_file(&snapshot).unwrap();

    let mut args = etcd_s3_flags(&s3, "snapshots");
    args.extend(["--progress=json".into(), name.clone()]);
    let out = blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        node.restore(&refs)
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (downloaded, download) = events(&stderr, "download");
    assert_eq!(download[0]["name"], name.as_str());
    assert_eq!(downloaded, size, "the download ends at the object's size");
    let (restored, _) = events(&stderr, "restore");
    assert_eq!(restored, size - 32, "the database without etcd's trailer");
    let first = |op: &str| stderr.find(&format!("\"operation\":\"{op}\"")).unwrap();
    assert!(first("download") < first("restore"), "{stderr}");
}
