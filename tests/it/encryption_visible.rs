//! Where an encrypted snapshot's key fingerprints show, end to end through the real server, a
//! real etcd and the in-process S3 server: `ls -o wide` and `-o json` (the `ETCDSnapshotFile`
//! annotations) for the local and the S3 copy, the S3 object's user metadata, `inspect` of the
//! S3 object, and the metrics. Keys come from `age-keygen`.

use std::sync::Arc;

use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
use crate::inspect_encrypted::{fingerprint, keygen};
use crate::s3::ops::{blocking, created_name, direct, s3_flags, start_server};
use crate::support::{require_binary, text};

fn series(metrics: &str, name: &str) -> Option<String> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprints_show_in_ls_resources_s3_metadata_inspect_and_metrics() {
    let Some(env) = crate::s3::ops::EncryptedS3::start().await else {
        return;
    };
    let (etcd, s3, data, keys) = (env.etcd, env.s3, env.data, env.keys);
    let (identity, public) = keygen(keys.path(), "a.txt");
    let fp = fingerprint(&public);
    let endpoint = format!("--etcd-s3-endpoint={}", s3.addr);
    let recipients = format!("--etcd-snapshot-encryption-recipients={public}");
    let args = [
        "--etcd-s3",
        &endpoint,
        "--etcd-s3-insecure",
        "--etcd-s3-bucket=snapshots",
        "--etcd-s3-folder=f",
        &format!("--etcd-s3-access-key={ACCESS_KEY}"),
        &format!("--etcd-s3-secret-key={SECRET_KEY}"),
        &recipients,
    ];
    let server = Arc::new(start_server(data.path(), &etcd.endpoint, &args).await);
    let srv = server.clone();
    let out = blocking(move || srv.cli(&["save", "--snapshot-compress"])).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let name = created_name(&out);
    assert!(name.ends_with(".zip.age"), "{name}");

    // ls -o wide: both copies name the key.
    let srv = server.clone();
    let out = blocking(move || srv.cli(&["ls", "-o", "wide"])).await;
    let (wide, stderr) = text(&out);
    assert!(out.status.success(), "{wide}\n{stderr}");
    let rows: Vec<&str> = wide.lines().filter(|l| l.starts_with(&name)).collect();
    assert_eq!(rows.len(), 2, "local and S3 rows:\n{wide}");
    for row in rows {
        // The Encrypted column, then the Verified one.
        assert!(row.contains(&format!(" {fp} ")), "{wide}");
    }

    // ls -o json: the ETCDSnapshotFile annotations, on both items.
    let srv = server.clone();
    let out = blocking(move || srv.cli(&["ls", "-o", "json"])).await;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items: Vec<&serde_json::Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["spec"]["snapshotName"] == name.as_str())
        .collect();
    assert_eq!(items.len(), 2, "{list:#}");
    for item in items {
        let annotations = &item["metadata"]["annotations"];
        assert_eq!(
            annotations["etcd-snapshot.io/encryption"], "age",
            "{item:#}"
        );
        assert_eq!(annotations["etcd-snapshot.io/encrypted-to"], fp.as_str());
        // Our recorded entries never reach the user's metadata.
        let shown = item["spec"]["metadata"].to_string();
        assert!(
            !shown.to_ascii_lowercase().contains("encryption"),
            "{item:#}"
        );
    }

    // The S3 object itself carries the fingerprints.
    let store = etcd_snapshot::store::s3::S3Store::connect(&s3.settings("snapshots", "f"))
        .await
        .unwrap();
    let meta = store.object_metadata(&name).await.unwrap();
    assert_eq!(
        meta.get("etcd-snapshot-encryption-fingerprints"),
        Some(&fp),
        "{meta:?}"
    );
    assert!(!meta.values().any(|v| v.contains(&public)), "{meta:?}");

    // Metrics, from the listing ls just made (the S3 keys once their metadata was read).
    let metrics = crate::support::metrics(&server).await;
    for (want, name) in [
        (
            "1",
            "etcd_snapshot_files_encrypted{storage=\"local\",encrypted=\"true\"}",
        ),
        (
            "0",
            "etcd_snapshot_files_encrypted{storage=\"local\",encrypted=\"false\"}",
        ),
        (
            "1",
            "etcd_snapshot_files_encrypted{storage=\"s3\",encrypted=\"true\"}",
        ),
    ] {
        assert_eq!(
            series(&metrics, name).as_deref(),
            Some(want),
            "{name}\n{metrics}"
        );
    }
    for storage in ["local", "s3"] {
        let name =
            format!("etcd_snapshot_files_by_recipient{{storage=\"{storage}\",recipient=\"{fp}\"}}");
        assert_eq!(
            series(&metrics, &name).as_deref(),
            Some("1"),
            "{name}\n{metrics}"
        );
    }

    // inspect of the S3 object (direct mode) reads the fingerprints from its metadata.
    std::fs::remove_file(crate::support::snapshot_dir(data.path()).join(&name)).unwrap();
    let mut args = s3_flags(&s3, "snapshots");
    args.extend([
        format!(
            "--etcd-snapshot-encryption-identity-file={}",
            identity.display()
        ),
        "inspect".into(),
        "-o".into(),
        "json".into(),
        name.clone(),
    ]);
    let out = direct(data.path(), &etcd.endpoint, args).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["encrypted"], true);
    assert_eq!(report["encrypted_to"], serde_json::json!([fp]));
    assert_eq!(report["source"], format!("s3://snapshots/f/{name}"));
}

/// A restore from S3 with a key that does not open the object is refused before anything is
/// touched, naming the key the object's metadata records (no local record exists).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_restore_with_the_wrong_key_names_the_key_the_object_needs() {
    use crate::restore::cluster_reset::{Node, tree};
    if require_binary("etcd").is_none() || require_binary("age-keygen").is_none() {
        return;
    }
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snapshots");
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = keygen(keys.path(), "right.txt");
    let (wrong, wrong_public) = keygen(keys.path(), "wrong.txt");
    let s3_args = vec![
        "--etcd-s3".to_string(),
        format!("--etcd-s3-endpoint={}", s3.addr),
        "--etcd-s3-insecure".into(),
        "--etcd-s3-bucket=snapshots".into(),
        "--etcd-s3-folder=f".into(),
        format!("--etcd-s3-access-key={ACCESS_KEY}"),
        format!("--etcd-s3-secret-key={SECRET_KEY}"),
    ];
    let (node, args) = (Node::new(), s3_args.clone());
    let recipients = format!("--etcd-snapshot-encryption-recipients={public}");
    let (node, name) = blocking(move || {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push(&recipients);
        let mut server = node.start(&all);
        node.put("/test/a", "1");
        let path = node.save(&server, true);
        assert!(server.terminate().success());
        std::fs::remove_file(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        (node, name)
    })
    .await;
    let before = tree(node.dir());
    let identity = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        wrong.display()
    );
    let out = blocking(move || {
        let mut all: Vec<&str> = s3_args.iter().map(String::as_str).collect();
        all.push(&identity);
        all.push(&name);
        let out = node.restore(&all);
        (out, node)
    })
    .await;
    let (out, node) = out;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&fingerprint(&public)) && stderr.contains(&fingerprint(&wrong_public)),
        "{stderr}"
    );
    let after = tree(node.dir());
    let db_before: Vec<_> = before
        .iter()
        .filter(|(k, _)| k.contains("db/etcd"))
        .collect();
    let db_after: Vec<_> = after
        .iter()
        .filter(|(k, _)| k.contains("db/etcd"))
        .collect();
    assert_eq!(db_after, db_before, "the data dir is untouched");
}
