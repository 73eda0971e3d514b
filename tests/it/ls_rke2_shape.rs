//! `ls -o json|yaml` through the real server, with S3 on the in-process S3 server: every item is
//! the whole object RKE2's list reply holds. An object uploaded by another node (as RKE2 would:
//! `Rke2-*` user metadata and a `.metadata/<name>` object) is listed under its uploader with its
//! extra metadata, `spec.s3` and the storage-node label; this server's own save is listed twice
//! (local and S3), each with its own label, the local one exactly as RKE2 lists a file from its
//! directory (its `.metadata` file, no token hash).

use serde_json::{Value, json};

use etcd_snapshot::store::s3::{ObjectMetadata, S3Store};

use crate::fakes::kube_support::etcd_s3_flags;
use crate::fakes::s3_support::{S3Server, Tls, write_pattern};
use crate::s3::ops::{blocking, created_name, start_server};
use crate::support::{TestEtcd, text};

const FOREIGN: &str = "etcd-snapshot-server-0-1754906881";
const STORAGE_LABEL: &str = "etcd.rke2.cattle.io/snapshot-storage-node";
const TOKEN_ANNOTATION: &str = "etcd.rke2.cattle.io/snapshot-token-hash";

/// Another node's upload, with RKE2's object metadata and a `.metadata/<name>` object.
async fn upload_foreign(s3: &S3Server) {
    let store = S3Store::connect(&s3.settings("snaps", "f"))
        .await
        .expect("connect");
    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join(FOREIGN), 10_000);
    let metadata = ObjectMetadata {
        cluster_id: "cluster-uid-1".into(),
        node_name: "server-0".into(),
        token_hash: "9f86d081884c".into(),
        sha256: None,
        extra: Default::default(),
    };
    let path = dir.path().join(FOREIGN);
    store
        .upload_file(&path, FOREIGN, &metadata)
        .await
        .expect("upload");
    let extra = br#"{"team":"platform","change":"CHG-42"}"#.to_vec();
    store
        .upload_metadata(FOREIGN, extra, &metadata)
        .await
        .expect("upload metadata");
}

fn item<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no item {name} in {list:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_items_carry_what_rke2_lists() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snaps");
    upload_foreign(&s3).await;
    let data = tempfile::tempdir().unwrap();
    let flags = etcd_s3_flags(&s3.addr.to_string(), "snaps", "f");
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = std::sync::Arc::new(start_server(data.path(), &etcd.endpoint, &refs).await);
    let cli = |args: &'static [&'static str]| {
        let server = server.clone();
        blocking(move || server.cli(args))
    };
    let out = cli(&["save"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let ours = created_name(&out);
    // Extra metadata beside the local copy, where RKE2 keeps it (`server/db/.metadata/<name>`).
    let metadata_dir = data.path().join("server/db/.metadata");
    std::fs::create_dir_all(&metadata_dir).unwrap();
    std::fs::write(metadata_dir.join(&ours), br#"{"team":"etcd"}"#).unwrap();

    let out = cli(&["ls", "-o", "json"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // RKE2's CLI prints the list with Kubernetes' JSON printer: indented by four spaces.
    assert!(
        stdout.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"List\","),
        "{stdout}"
    );
    let list: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list:#}");
    let s3_spec = json!({"endpoint": s3.addr.to_string(), "bucket": "snaps",
        "region": "us-east-1", "prefix": "f", "insecure": true});
    assert_eq!(
        item(&list, &format!("s3-{FOREIGN}")),
        &json!({
            "apiVersion": "k3s.cattle.io/v1",
            "kind": "ETCDSnapshotFile",
            "metadata": {
                "name": format!("s3-{FOREIGN}"),
                "creationTimestamp": null,
                "labels": {STORAGE_LABEL: "s3"},
                "annotations": {TOKEN_ANNOTATION: "9f86d081884c"}
            },
            "spec": {
                "snapshotName": FOREIGN,
                "nodeName": "server-0",
                "location": format!("s3://snaps/f/{FOREIGN}"),
                "metadata": {"team": "platform", "change": "CHG-42"},
                "s3": s3_spec
            },
            "status": {"size": "10k", "creationTime": "2025-08-11T10:08:01Z", "readyToUse": true}
        })
    );
    let our_s3 = item(&list, &format!("s3-{ours}"));
    assert_eq!(our_s3["spec"]["nodeName"], "n1", "{our_s3:#}");
    assert_eq!(our_s3["metadata"]["labels"], json!({STORAGE_LABEL: "s3"}));
    assert_eq!(our_s3["spec"]["s3"], s3_spec);
    let hash = our_s3["metadata"]["annotations"][TOKEN_ANNOTATION].as_str();
    assert!(hash.is_some_and(|h| h.len() == 12), "{our_s3:#}");
    // A local copy as RKE2 lists it from the directory: its node as label and node name, the
    // `.metadata` file as spec.metadata, no spec.s3, and no token-hash annotation (RKE2 knows
    // the hash of a local file only when it saves it, never when it lists it).
    let local = item(&list, &format!("local-{ours}"));
    let file = data.path().join("server/db/snapshots").join(&ours);
    assert_eq!(
        local,
        &json!({
            "apiVersion": "k3s.cattle.io/v1",
            "kind": "ETCDSnapshotFile",
            "metadata": {
                "name": format!("local-{ours}"),
                "creationTimestamp": null,
                "labels": {STORAGE_LABEL: "n1"}
            },
            "spec": {
                "snapshotName": ours,
                "nodeName": "n1",
                "location": format!("file://{}", file.display()),
                "metadata": {"team": "etcd"}
            },
            "status": local["status"].clone()
        })
    );
    assert_eq!(local["status"]["readyToUse"], true);
    assert_eq!(
        local["status"]["size"]
            .as_str()
            .and_then(|q| q.parse::<u64>().ok()),
        Some(std::fs::metadata(&file).unwrap().len()),
        "{local:#}"
    );

    // YAML is the same list; the table shows the quantity as whole bytes.
    let out = cli(&["ls", "-o", "yaml"]).await;
    let yaml: Value = serde_saphyr::from_str(&text(&out).0).expect("YAML list");
    assert_eq!(yaml, list);
    let out = cli(&["ls"]).await;
    let row = text(&out)
        .0
        .lines()
        .find(|l| l.starts_with(FOREIGN))
        .map(str::to_owned);
    assert!(
        row.as_deref().is_some_and(|r| r.contains(" 10000 ")),
        "{row:?}"
    );
}
