//! The encryption Secret end to end: the real binary as a server with
//! `--etcd-snapshot-encryption-secret`, the Kubernetes API stand-in holding the Secret, keys
//! from `age-keygen` and files checked with the reference `age` tool. A rotated Secret is used by
//! the next save without a restart; a missing or invalid one fails the save (never plaintext)
//! naming the Secret and key; an identity in the Secret opens snapshots for `inspect`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::fakes::kube_api::KubeApi;
use crate::inspect_encrypted::{fingerprint, keygen};
use crate::s3::ops::{blocking, created_name, direct, start_server};
use crate::support::{TestEtcd, TestServer, require_binary, snapshot_dir, snapshot_files, text};

const SECRET_PATH: &str = "/api/v1/namespaces/kube-system/secrets/snapshot-keys";

fn secret(entries: &[(&str, &str)]) -> Value {
    let data: BTreeMap<&str, String> = entries
        .iter()
        .map(|(k, v)| (*k, STANDARD.encode(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": "snapshot-keys", "namespace": "kube-system"},
        "data": data,
    })
}

async fn save(server: &Arc<TestServer>) -> std::process::Output {
    let server = server.clone();
    blocking(move || server.cli(&["save"])).await
}

/// The Kubernetes API stand-in, a temp dir holding a kubeconfig for it and an empty data dir.
async fn kube_and_dirs() -> (Arc<KubeApi>, tempfile::TempDir, PathBuf, PathBuf) {
    let api = Arc::new(KubeApi::start().await);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    (api, dir, kubeconfig, data)
}

/// True when the `age` tool decrypts `file` with `identity`.
fn age_opens(identity: &Path, file: &Path) -> bool {
    Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg("-o")
        .arg("/dev/null")
        .arg(file)
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recipients_rotate_with_the_secret_and_a_bad_secret_never_yields_plaintext() {
    if require_binary("age").is_none() || require_binary("age-keygen").is_none() {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let (api, dir, kubeconfig, data) = kube_and_dirs().await;
    let (id_a, pub_a) = keygen(dir.path(), "a.txt");
    let (id_b, pub_b) = keygen(dir.path(), "b.txt");
    let kubeconfig_flag = format!("--kubeconfig={}", kubeconfig.display());
    let args = [
        kubeconfig_flag.as_str(),
        "--etcd-snapshot-encryption-secret=snapshot-keys",
    ];
    let server = Arc::new(start_server(&data, &etcd.endpoint, &args).await);
    let snapshots = snapshot_dir(&data);

    // No Secret yet: the save fails, naming it, and writes nothing.
    let out = save(&server).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("encryption Secret kube-system/snapshot-keys does not exist"),
        "{stderr}"
    );
    assert!(snapshot_files(&snapshots).is_empty());

    // Key A, then (a kubectl apply, no restart) key B.
    api.put(
        SECRET_PATH,
        secret(&[("etcd-snapshot-encryption-recipients", &pub_a)]),
    );
    let out = save(&server).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let first = snapshots.join(created_name(&out));
    assert!(first.to_string_lossy().ends_with(".age"), "{first:?}");
    assert!(age_opens(&id_a, &first) && !age_opens(&id_b, &first));

    let both = format!("# new key first\n{pub_b}\n");
    api.put(
        SECRET_PATH,
        secret(&[("etcd-snapshot-encryption-recipients", &both)]),
    );
    let out = save(&server).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let second = snapshots.join(created_name(&out));
    assert!(age_opens(&id_b, &second) && !age_opens(&id_a, &second));
    let srv = server.clone();
    let out = blocking(move || srv.cli(&["ls", "-o", "wide"])).await;
    let (wide, _) = text(&out);
    assert!(
        wide.contains(&fingerprint(&pub_a)) && wide.contains(&fingerprint(&pub_b)),
        "{wide}"
    );

    // An invalid value: named with its Secret and key and what was expected; no snapshot.
    let secret_key = std::fs::read_to_string(&id_a).unwrap();
    let secret_line = secret_key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    api.put(
        SECRET_PATH,
        secret(&[
            ("etcd-snapshot-encryption-recipients", "age1typo"),
            ("etcd-snapshot-encryption-identity", &secret_key),
        ]),
    );
    let before = snapshot_files(&snapshots);
    let out = save(&server).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    for part in [
        "Secret kube-system/snapshot-keys key etcd-snapshot-encryption-recipients",
        "age1typo",
        "expected an age X25519 public key",
    ] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    assert_eq!(
        snapshot_files(&snapshots),
        before,
        "no snapshot, plaintext or not"
    );
    // An identity only (no recipients key): still no plaintext.
    api.put(
        SECRET_PATH,
        secret(&[("etcd-snapshot-encryption-identity", &secret_key)]),
    );
    let out = save(&server).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("has no key etcd-snapshot-encryption-recipients"),
        "{stderr}"
    );
    assert_eq!(snapshot_files(&snapshots), before);
    let log = server.log_text();
    assert!(!log.contains(&secret_line) && !stderr.contains(&secret_line));

    // The identity in the Secret opens the first snapshot for inspect (direct mode).
    let args = vec![
        kubeconfig_flag.clone(),
        "--etcd-snapshot-encryption-secret=snapshot-keys".into(),
        "inspect".into(),
        "-o".into(),
        "json".into(),
        first.display().to_string(),
    ];
    let out = direct(&data, &etcd.endpoint, args).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["encrypted"], true);
    assert_eq!(report["encrypted_to"], json!([fingerprint(&pub_a)]));
    assert!(!stdout.contains(&secret_line) && !stderr.contains(&secret_line));
}

/// Runs `verify -o json` through the server; the exit code and the one drill of the reply.
async fn verify_one(server: &Arc<TestServer>, name: &str) -> (Option<i32>, Value) {
    let (server, name) = (server.clone(), name.to_string());
    let out = blocking(move || server.cli(&["verify", "-o", "json", &name])).await;
    let reply: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", text(&out)));
    (out.status.code(), reply["drills"][0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_drills_open_encrypted_copies_with_the_identity_in_the_secret() {
    if require_binary("age-keygen").is_none()
        || (require_binary("etcdutl").is_none() && require_binary("etcdctl").is_none())
    {
        return;
    }
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let (api, dir, kubeconfig, data) = kube_and_dirs().await;
    let (id, public) = keygen(dir.path(), "a.txt");
    let identity = std::fs::read_to_string(&id).unwrap();
    api.put(
        SECRET_PATH,
        secret(&[
            ("etcd-snapshot-encryption-recipients", &public),
            ("etcd-snapshot-encryption-identity", &identity),
        ]),
    );
    let kubeconfig_flag = format!("--kubeconfig={}", kubeconfig.display());
    let args = [
        kubeconfig_flag.as_str(),
        "--etcd-snapshot-encryption-secret=snapshot-keys",
    ];
    let server = Arc::new(start_server(&data, &etcd.endpoint, &args).await);
    let out = save(&server).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let name = created_name(&out);
    assert!(name.ends_with(".age"), "{name}");

    // The server holds no identity file: the Secret's identity opens the copy for the drill.
    let (code, drill) = verify_one(&server, &name).await;
    assert_eq!(
        (code, &drill["result"]),
        (Some(0), &json!("passed")),
        "{drill:#}"
    );

    // Read afresh per drill: with the identity taken out of the Secret, it cannot verify.
    api.put(
        SECRET_PATH,
        secret(&[("etcd-snapshot-encryption-recipients", &public)]),
    );
    let (code, drill) = verify_one(&server, &name).await;
    assert_eq!(code, Some(1), "{drill:#}");
    assert_eq!(drill["result"], "cannot-verify", "{drill:#}");
    let secret_line = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    assert!(!server.log_text().contains(secret_line));
}
