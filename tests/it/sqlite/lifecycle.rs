//! The rest of a SQLite snapshot's life goes through the code etcd snapshots use: encryption
//! (opened by the `age` tool and by `inspect`), `delete`,
//! retention on `prune` (and its `--dry-run`), and an ETCDSnapshotFile resource per copy when a
//! cluster API is reachable (the Kubernetes stand-in here), like any local copy's.

use std::sync::Arc;

use super::save::{direct, save_ok};
use super::small_cluster;
use crate::support::{snapshot_dir, snapshot_files, text};

#[test]
fn sqlite_snapshots_are_deleted_and_pruned_like_etcd_ones() {
    let data = tempfile::tempdir().unwrap();
    small_cluster(data.path());
    for name in ["keep", "keep", "keep", "gone"] {
        save_ok(&["--name", name], data.path());
    }
    let dir = snapshot_dir(data.path());
    let files = snapshot_files(&dir);
    assert_eq!(files.len(), 4, "{files:?}");
    let gone = files
        .iter()
        .find(|n| n.starts_with("gone-"))
        .unwrap()
        .clone();
    let out = direct(&["delete", &gone], data.path());
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!dir.join(&gone).exists());
    assert!(!data.path().join("server/db/.metadata").join(&gone).exists());

    let keep: Vec<String> = snapshot_files(&dir);
    let out = direct(
        &[
            "prune",
            "--name",
            "keep",
            "--snapshot-retention",
            "1",
            "--dry-run",
        ],
        data.path(),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(snapshot_files(&dir), keep, "a dry run removes nothing");
    let out = direct(
        &["prune", "--name", "keep", "--snapshot-retention", "1"],
        data.path(),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let left = snapshot_files(&dir);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(&left[0], keep.iter().max().unwrap(), "the newest is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_snapshot_gets_its_etcdsnapshotfile_resource() {
    use crate::fakes::kube_api::KubeApi;
    use crate::fakes::kube_support::{FILES, cli, start_kube_server, wait_until};
    let api = Arc::new(KubeApi::start().await);
    let dir = tempfile::tempdir().unwrap();
    small_cluster(&dir.path().join("n1"));
    let db = dir.path().join("n1/server/db/state.db");
    let endpoint = format!("sqlite://{}", db.display());
    let extra = vec![format!("--datastore-endpoint={endpoint}")];
    // The stand-in's etcd URL is never dialled: the datastore endpoint decides.
    let (data, server) = start_kube_server(&api, dir.path(), "n1", "", extra).await;
    let out = cli(&server, &["save", "--name", "lite"]).await;
    assert!(
        out.status.success(),
        "{:?}\n{}",
        text(&out),
        server.log_text()
    );
    let lister = api.clone();
    wait_until("the SQLite snapshot's resource", move || {
        lister.list(FILES).iter().any(|r| {
            r["spec"]["snapshotName"]
                .as_str()
                .is_some_and(|n| n.starts_with("lite-"))
        })
    })
    .await;
    let resource = api
        .list(FILES)
        .into_iter()
        .find(|r| {
            r["spec"]["snapshotName"]
                .as_str()
                .unwrap()
                .starts_with("lite-")
        })
        .unwrap();
    assert_eq!(resource["spec"]["nodeName"], "n1", "{resource:#}");
    assert_eq!(resource["status"]["readyToUse"], true, "{resource:#}");
    let name = resource["spec"]["snapshotName"].as_str().unwrap();
    let file = data.join("server/db/snapshots").join(name);
    let size = std::fs::metadata(&file).unwrap().len().to_string();
    assert_eq!(resource["status"]["size"], size.as_str(), "{resource:#}");
}

#[test]
fn an_encrypted_sqlite_snapshot_opens_with_the_age_tool_and_inspect() {
    let Some(age) = crate::support::require_binary("age") else {
        return;
    };
    if crate::support::require_binary("age-keygen").is_none() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    small_cluster(data.path());
    let (identity, public) = crate::inspect_encrypted::keygen(data.path(), "key.txt");
    let recipients = format!("--etcd-snapshot-encryption-recipients={public}");
    save_ok(&[recipients.as_str()], data.path());
    let sealed = super::only_snapshot(data.path());
    assert!(
        sealed.to_string_lossy().ends_with(".age"),
        "{}",
        sealed.display()
    );
    let plain = data.path().join("opened.db");
    let out = std::process::Command::new(age)
        .arg("-d")
        .arg("-i")
        .arg(&identity)
        .arg("-o")
        .arg(&plain)
        .arg(&sealed)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let db = super::state_db(data.path());
    assert_eq!(super::snapshot_keys(&plain), super::live_keys(&db));

    let identity_flag = format!(
        "--etcd-snapshot-encryption-identity-file={}",
        identity.display()
    );
    let target = sealed.display().to_string();
    let out = direct(
        &[identity_flag.as_str(), "inspect", "-o", "json", &target],
        data.path(),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["datastore"], "sqlite", "{report:#}");
    assert_eq!(report["encrypted"], true, "{report:#}");
}
