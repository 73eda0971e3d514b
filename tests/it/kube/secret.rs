//! The S3 config Secret end to end: the real binary as a server with only `--etcd-s3
//! --etcd-s3-config-secret`, the Kubernetes API stand-in holding the Secret and CA ConfigMap,
//! and s3s servers whose accepted key pairs change while they run (a credential rotation).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::fakes::kube_api::KubeApi;
use crate::fakes::s3_support::{KeyRing, S3Server, Tls};
use crate::s3::ops::{blocking, created_name, direct, start_server};
use crate::support::{TestEtcd, TestServer, text, wait_for};

const SECRET_PATH: &str = "/api/v1/namespaces/kube-system/secrets/s3-config";
const CA_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/s3-ca";
const STORAGE_LABEL: &str = "etcd.rke2.cattle.io/snapshot-storage-node";

/// A Secret of type `etcd.k3s.cattle.io/s3-config-secret` as the apiserver stores it (`data`,
/// base64), with the given keys.
fn secret(entries: &[(&str, &str)]) -> Value {
    let data: BTreeMap<&str, String> = entries
        .iter()
        .map(|(k, v)| (*k, STANDARD.encode(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "etcd.k3s.cattle.io/s3-config-secret",
        "metadata": {"name": "s3-config", "namespace": "kube-system"},
        "data": data,
    })
}

async fn save(server: &std::sync::Arc<TestServer>) -> std::process::Output {
    let server = server.clone();
    blocking(move || server.cli(&["save"])).await
}

fn object_exists(s3: &S3Server, bucket: &str, name: &str) -> bool {
    s3.has_object(bucket, name)
}

fn secret_reads(api: &KubeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == SECRET_PATH)
        .count()
}

/// A save whose S3 part fails: exit code 3, the local snapshot kept, `problem` on stderr.
/// Returns the snapshot's name and the stderr.
async fn save_keeps_local_and_names(
    server: &std::sync::Arc<TestServer>,
    data: &Path,
    problem: &str,
) -> (String, String) {
    let out = save(server).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let name = created_name(&out);
    assert!(stderr.contains(problem), "{stderr}");
    assert!(crate::support::snapshot_dir(data).join(&name).is_file());
    (name, stderr)
}

async fn start(data: &Path, etcd: &str, kubeconfig: &Path) -> std::sync::Arc<TestServer> {
    let kubeconfig = format!("--kubeconfig={}", kubeconfig.display());
    let args = [
        "--etcd-s3",
        "--etcd-s3-config-secret=s3-config",
        kubeconfig.as_str(),
        "--etcd-snapshot-reconcile-interval=1s",
    ];
    std::sync::Arc::new(start_server(data, etcd, &args).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_secret_is_used_by_the_next_save_without_a_restart() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let api = std::sync::Arc::new(KubeApi::start().await);
    let ring = KeyRing::default();
    ring.grant("pair-1", "secret-1");
    let plain = S3Server::start_with_ring(Tls::Plain, ring.clone()).await;
    plain.create_bucket("bucket-a");
    let https = S3Server::start_with_ring(Tls::PrivateCa, ring.clone()).await;
    https.create_bucket("bucket-b");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // The Secret need not exist when the server starts: it is created afterwards.
    let server = start(&data, &etcd.endpoint, &kubeconfig).await;
    assert!(api.get(SECRET_PATH).is_none());
    let endpoint_a = plain.addr.to_string();
    api.put(
        SECRET_PATH,
        secret(&[
            ("etcd-s3-endpoint", &endpoint_a),
            ("etcd-s3-insecure", "true"),
            ("etcd-s3-bucket", "bucket-a"),
            ("etcd-s3-access-key", "pair-1"),
            ("etcd-s3-secret-key", "secret-1"),
        ]),
    );

    // Pair 1, bucket A.
    let out = save(&server).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let first = created_name(&out);
    assert!(object_exists(&plain, "bucket-a", &first));

    // Rotation: pair 2 granted, pair 1 revoked, the Secret replaced. No restart.
    ring.grant("pair-2", "secret-2");
    ring.revoke("pair-1");
    api.put(
        SECRET_PATH,
        secret(&[
            ("etcd-s3-endpoint", &endpoint_a),
            ("etcd-s3-insecure", "true"),
            ("etcd-s3-bucket", "bucket-a"),
            ("etcd-s3-access-key", "pair-2"),
            ("etcd-s3-secret-key", "secret-2"),
        ]),
    );
    let reads_before = secret_reads(&api);
    let out = save(&server).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let second = created_name(&out);
    assert!(object_exists(&plain, "bucket-a", &second));
    assert!(
        secret_reads(&api) > reads_before,
        "the save read the Secret afresh"
    );

    // Bucket B over HTTPS, trusting a private CA given by the ConfigMap the Secret names.
    api.put(
        CA_PATH,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "s3-ca", "namespace": "kube-system"},
            "data": {"ca.crt": https.ca_pem.clone().unwrap()},
        }),
    );
    let endpoint_b = https.addr.to_string();
    let bucket_b = secret(&[
        ("etcd-s3-endpoint", &endpoint_b),
        ("etcd-s3-bucket", "bucket-b"),
        ("etcd-s3-folder", "rotated"),
        ("etcd-s3-endpoint-ca-name", "s3-ca"),
        ("etcd-s3-access-key", "pair-2"),
        ("etcd-s3-secret-key", "secret-2"),
    ]);
    api.put(SECRET_PATH, bucket_b.clone());
    let out = save(&server).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let third = created_name(&out);
    assert!(object_exists(
        &https,
        "bucket-b",
        &format!("rotated/{third}")
    ));
    assert!(!object_exists(&plain, "bucket-a", &third));

    // An invalid Secret: the local snapshot is kept, the problem is named, exit code 3.
    api.put(
        SECRET_PATH,
        secret(&[
            ("etcd-s3-endpoint", &endpoint_b),
            ("etcd-s3-bucket", "bucket-b"),
            ("etcd-s3-endpoint-ca-name", "s3-ca"),
            ("etcd-s3-timeout", "whenever"),
        ]),
    );
    save_keeps_local_and_names(
        &server,
        &data,
        "Secret kube-system/s3-config key etcd-s3-timeout",
    )
    .await;

    // The Secret deleted: same, and the message says it does not exist.
    assert!(api.remove(SECRET_PATH));
    let (fifth, stderr) = save_keeps_local_and_names(
        &server,
        &data,
        "S3 config Secret kube-system/s3-config does not exist",
    )
    .await;
    // ... and the ETCDSnapshotFile resources show the failed copy.
    let failed: Vec<Value> = api
        .list("/apis/k3s.cattle.io/v1/etcdsnapshotfiles")
        .into_iter()
        .filter(|r| r["spec"]["snapshotName"] == fifth.as_str())
        .filter(|r| r["status"]["readyToUse"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let message = failed[0]["status"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not exist"), "{message}");
    for secret in ["secret-1", "secret-2"] {
        assert!(!stderr.contains(secret) && !server.log_text().contains(secret));
    }

    // The Secret restored: the reconcile copies the snapshot, and the failure record goes with
    // the copy it stood for in place (one ready S3 resource, no failed one beside it).
    api.put(SECRET_PATH, bucket_b.clone());
    let probe = api.clone();
    let copied = fifth.clone();
    blocking(move || {
        wait_for(
            "the copy replaces the failure record",
            Duration::from_secs(30),
            || {
                let s3_rows: Vec<Value> = probe
                    .list("/apis/k3s.cattle.io/v1/etcdsnapshotfiles")
                    .into_iter()
                    .filter(|r| r["spec"]["snapshotName"] == copied.as_str())
                    .filter(|r| r["metadata"]["labels"][STORAGE_LABEL] == "s3")
                    .collect();
                s3_rows.len() == 1 && s3_rows[0]["status"]["readyToUse"] == true
            },
        )
    })
    .await;
    assert!(object_exists(
        &https,
        "bucket-b",
        &format!("rotated/{fifth}")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_show_names_the_secret_as_the_source_and_redacts_it() {
    let api = KubeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    api.put(
        SECRET_PATH,
        secret(&[
            ("etcd-s3-bucket", "from-the-secret"),
            ("etcd-s3-access-key", "AKIASHOWN"),
            ("etcd-s3-secret-key", "never-printed"),
        ]),
    );
    let data = dir.path().to_path_buf();
    let kc = format!("--kubeconfig={}", kubeconfig.display());
    let out = blocking(move || {
        crate::support::run(
            &[
                "config",
                "show",
                "--sources",
                "--etcd-s3",
                "--etcd-s3-config-secret=s3-config",
                &kc,
            ],
            &data,
        )
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let bucket = stdout
        .lines()
        .find(|l| l.starts_with("etcd-s3-bucket:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        bucket.contains("from-the-secret")
            && bucket.contains("# Secret kube-system/s3-config key etcd-s3-bucket"),
        "{bucket}"
    );
    for secret in ["AKIASHOWN", "never-printed"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_s3_settings_make_the_secret_ignored_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let out = blocking(move || {
        crate::support::run(
            &[
                "config",
                "show",
                "--etcd-s3",
                "--etcd-s3-config-secret=s3-config",
                "--etcd-s3-bucket=flag-bucket",
            ],
            &data,
        )
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("\"s3-config\" is ignored")
            && stderr.contains("etcd-s3-bucket (from flag --etcd-s3-bucket)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rekey_reaches_the_bucket_the_secret_names() {
    if crate::support::require_binary("age-keygen").is_none() {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let api = std::sync::Arc::new(KubeApi::start().await);
    let ring = KeyRing::default();
    ring.grant("pair-1", "secret-1");
    let s3 = S3Server::start_with_ring(Tls::Plain, ring.clone()).await;
    s3.create_bucket("from-secret");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let endpoint = s3.addr.to_string();
    api.put(
        SECRET_PATH,
        secret(&[
            ("etcd-s3-endpoint", &endpoint),
            ("etcd-s3-insecure", "true"),
            ("etcd-s3-bucket", "from-secret"),
            ("etcd-s3-access-key", "pair-1"),
            ("etcd-s3-secret-key", "secret-1"),
        ]),
    );
    let kube_flags = vec![
        "--etcd-s3".to_string(),
        "--etcd-s3-config-secret=s3-config".into(),
        format!("--kubeconfig={}", kubeconfig.display()),
    ];
    let mut args = kube_flags.clone();
    args.push("save".into());
    let out = direct(&data, &etcd.endpoint, args).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let plain = created_name(&out);
    assert!(object_exists(&s3, "from-secret", &plain));

    // Only the settings in the Secret say where the bucket is: rekey must read it too.
    let (_, public) = crate::inspect_encrypted::keygen(dir.path(), "key.txt");
    let mut args = kube_flags.clone();
    args.extend([
        format!("--etcd-snapshot-encryption-recipients={public}"),
        "rekey".into(),
    ]);
    let out = direct(&data, &etcd.endpoint, args).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("encrypted S3 {plain}")),
        "{stdout}"
    );
    assert!(object_exists(&s3, "from-secret", &format!("{plain}.age")));
    assert!(!object_exists(&s3, "from-secret", &plain));

    // A Secret that cannot be used stops the S3 part with its name, not a silent skip.
    api.remove(SECRET_PATH);
    let mut args = kube_flags;
    args.extend([
        format!("--etcd-snapshot-encryption-recipients={public}"),
        "rekey".into(),
    ]);
    let out = direct(&data, &etcd.endpoint, args).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("S3 config Secret kube-system/s3-config"),
        "{stderr}"
    );
}
