//! The server mirroring its snapshots into `ETCDSnapshotFile` resources, end to end: the real
//! binary with `--kubeconfig` pointing at the Kubernetes API stand-in, a real etcd and the
//! in-process S3 server. Saves, deletes, a file removed by hand, failed uploads and failed
//! saves all show up in the resources, with their Events, without anyone running kubectl.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::fakes::kube_api::KubeApi;
use crate::fakes::kube_support::{
    EVENTS, FILES, STORAGE_LABEL, cli, etcd_s3_flags, start_kube_server, wait_until,
};
use crate::fakes::s3_support::{S3Server, Tls};
use crate::s3::ops::{blocking, created_name};
use crate::support::{TestEtcd, snapshot_dir, text};

/// The resources for `snapshot`, by storage label.
fn resources_of(api: &KubeApi, snapshot: &str) -> Vec<Value> {
    api.list(FILES)
        .into_iter()
        .filter(|r| r["spec"]["snapshotName"] == snapshot)
        .collect()
}

/// RKE2 sends the same `Rke2-*` user metadata with the `.metadata/<name>` object as with the
/// snapshot object; ours adds only the snapshot's checksum, on the snapshot object alone.
async fn assert_metadata_object_carries_snapshot_user_metadata(s3: &S3Server, name: &str) {
    let store = etcd_snapshot::store::s3::S3Store::connect(&s3.settings("snaps", "f"))
        .await
        .expect("connect");
    let head = |key: String| {
        let sdk = store.client().sdk().clone();
        async move {
            let head = sdk.head_object().bucket("snaps").key(key).send().await;
            head.expect("head").metadata().cloned().unwrap_or_default()
        }
    };
    let mut snapshot = head(format!("f/{name}")).await;
    let metadata = head(format!("f/.metadata/{name}")).await;
    // The snapshot object alone carries our checksum and the keyspace hash recorded at save.
    for own in [
        "etcd-snapshot-sha256",
        "etcd-snapshot-hashkv",
        "etcd-snapshot-hashkv-revision",
        "etcd-snapshot-hashkv-compact-revision",
        "etcd-snapshot-revision",
    ] {
        assert!(snapshot.remove(own).is_some(), "{own}: {snapshot:?}");
    }
    assert_eq!(snapshot, metadata);
    let mut keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["rke2-cluster-id", "rke2-node-name", "rke2-token-hash"]
    );
    assert_eq!(metadata["rke2-node-name"], "n1");
    assert_eq!(metadata["rke2-token-hash"].len(), 12, "{metadata:?}");
}

fn reasons_for(api: &KubeApi, resource: &str) -> Vec<String> {
    api.list(EVENTS)
        .iter()
        .filter(|e| e["regarding"]["name"] == resource)
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saves_deletes_and_failures_are_mirrored_into_resources() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let api = Arc::new(KubeApi::start().await);
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("snaps");
    let dir = tempfile::tempdir().unwrap();
    let flags = etcd_s3_flags(&s3.addr.to_string(), "snaps", "f");
    let (data, server) = start_kube_server(&api, dir.path(), "n1", &etcd.endpoint, flags).await;

    // The extra-metadata ConfigMap is stored with the snapshot.
    api.put(
        "/api/v1/namespaces/kube-system/configmaps/rke2-etcd-snapshot-extra-metadata",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "rke2-etcd-snapshot-extra-metadata", "namespace": "kube-system"},
            "data": {"team": "platform", "change": "CHG-42"}}),
    );

    // A save: one local and one S3 resource, RKE2's names, labels and fields, Created events.
    let out = cli(&server, &["save"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let name = created_name(&out);
    let found = resources_of(&api, &name);
    assert_eq!(found.len(), 2, "{found:#?}");
    let local = found
        .iter()
        .find(|r| r["metadata"]["labels"][STORAGE_LABEL] == "n1")
        .expect("local resource");
    let remote = found
        .iter()
        .find(|r| r["metadata"]["labels"][STORAGE_LABEL] == "s3")
        .expect("s3 resource");
    let local_name = local["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        local_name.starts_with(&format!("local-{name}-")),
        "{local_name}"
    );
    assert_eq!(local["spec"]["nodeName"], "n1");
    assert!(
        local["spec"]["location"]
            .as_str()
            .unwrap()
            .starts_with("file:///")
    );
    assert_eq!(local["status"]["readyToUse"], true);
    assert!(
        local["metadata"]["annotations"]["etcd.rke2.cattle.io/snapshot-token-hash"]
            .as_str()
            .is_some_and(|h| h.len() == 12),
        "the saving server annotates its local copy: {local:#?}"
    );
    assert_eq!(remote["spec"]["location"], format!("s3://snaps/f/{name}"));
    // The uploader, from the object's metadata, as in the seed's `kubectl describe`.
    assert_eq!(remote["spec"]["nodeName"], "n1");
    let remote_name = remote["metadata"]["name"].as_str().unwrap();
    assert!(
        remote_name.starts_with(&format!("s3-{name}-")),
        "{remote_name}"
    );
    assert!(
        remote["metadata"]["annotations"]["etcd.rke2.cattle.io/snapshot-token-hash"]
            .as_str()
            .is_some_and(|h| h.len() == 12),
        "{remote:#?}"
    );
    for resource in [local, remote] {
        assert_eq!(resource["spec"]["metadata"]["team"], "platform");
        assert_eq!(resource["spec"]["metadata"]["change"], "CHG-42");
    }
    assert!(s3.has_object("snaps", &format!("f/.metadata/{name}")));
    assert_metadata_object_carries_snapshot_user_metadata(&s3, &name).await;
    assert_eq!(remote["spec"]["s3"]["bucket"], "snaps");
    assert_eq!(remote["spec"]["s3"]["prefix"], "f");
    assert!(
        remote["spec"]["s3"].get("accessKey").is_none(),
        "no credentials in resources"
    );
    assert_eq!(reasons_for(&api, &local_name), vec!["ETCDSnapshotCreated"]);

    // Delete through the CLI: both resources go at once, with Deleted events.
    let out = blocking({
        let server = server.clone();
        let name = name.clone();
        move || server.cli(&["delete", &name])
    })
    .await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(resources_of(&api, &name).is_empty());
    assert!(reasons_for(&api, &local_name).contains(&"ETCDSnapshotDeleted".to_string()));

    // A file removed by hand loses its local resource on the next reconcile pass.
    let out = cli(&server, &["save", "--s3=false"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let by_hand = created_name(&out);
    assert_eq!(resources_of(&api, &by_hand).len(), 1);
    std::fs::remove_file(snapshot_dir(&data).join(&by_hand)).unwrap();
    let probe = api.clone();
    wait_until("the reconcile pass removes the resource", move || {
        resources_of(&probe, &by_hand).is_empty()
    })
    .await;

    // An S3 outage: the failed copy is a not-ready S3 resource with the error.
    drop(s3);
    let out = cli(&server, &["save"]).await;
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    let failed = created_name(&out);
    let found = resources_of(&api, &failed);
    let not_ready: Vec<&Value> = found
        .iter()
        .filter(|r| r["status"]["readyToUse"] == false)
        .collect();
    assert_eq!(not_ready.len(), 1, "{found:#?}");
    assert!(
        not_ready[0]["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upload failed"),
        "{not_ready:#?}"
    );
    assert!(not_ready[0]["status"]["error"]["time"].is_string());
    let failed_resource = not_ready[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        reasons_for(&api, failed_resource),
        vec!["ETCDSnapshotFailed"]
    );

    // A CLI request may not have the server sign for another endpoint with its own keys.
    let out = cli(
        &server,
        &[
            "--s3",
            "--s3-bucket=snaps",
            "--s3-endpoint=127.0.0.1:9",
            "ls",
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("must bring its own credentials"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_save_is_a_not_ready_resource() {
    let api = Arc::new(KubeApi::start().await);
    let dir = tempfile::tempdir().unwrap();
    // An endpoint nothing listens on: every save fails before producing a snapshot.
    let dead = format!("http://127.0.0.1:{}", crate::support::free_port());
    let (_, server) = start_kube_server(&api, dir.path(), "n1", &dead, Vec::new()).await;
    let out = cli(&server, &["save"]).await;
    assert!(!out.status.success(), "{:?}", text(&out));
    let failures: Vec<Value> = api
        .list(FILES)
        .into_iter()
        .filter(|r| r["status"]["readyToUse"] == false)
        .collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["spec"]["location"], "");
    assert_eq!(failures[0]["spec"]["nodeName"], "n1");
    assert!(failures[0]["status"]["error"]["message"].is_string());
}

/// Resource count per (storage label, snapshot name): every copy must appear exactly once.
fn copies(api: &KubeApi) -> std::collections::BTreeMap<(String, String), usize> {
    let mut seen = std::collections::BTreeMap::new();
    for r in api.list(FILES) {
        let label = r["metadata"]["labels"][STORAGE_LABEL]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let snapshot = r["spec"]["snapshotName"].as_str().unwrap().to_string();
        *seen.entry((label, snapshot)).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_saving_at_once_get_every_resource_exactly_once() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let api = Arc::new(KubeApi::start().await);
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("shared");
    let dir = tempfile::tempdir().unwrap();
    let flags = etcd_s3_flags(&s3.addr.to_string(), "shared", "cluster");
    let mut servers = Vec::new();
    for node in ["n1", "n2"] {
        servers
            .push(start_kube_server(&api, dir.path(), node, &etcd.endpoint, flags.clone()).await);
    }

    // Three rounds of simultaneous saves on both nodes.
    let mut names = Vec::new();
    for _ in 0..3 {
        let (a, b) = tokio::join!(cli(&servers[0].1, &["save"]), cli(&servers[1].1, &["save"]));
        for out in [a, b] {
            assert!(out.status.success(), "{:?}", text(&out));
            names.push(created_name(&out));
        }
    }
    let expected: std::collections::BTreeMap<(String, String), usize> = names
        .iter()
        .flat_map(|name| {
            let node = if name.contains("-n1-") { "n1" } else { "n2" };
            [
                ((node.to_string(), name.clone()), 1),
                (("s3".to_string(), name.clone()), 1),
            ]
        })
        .collect();
    let probe = api.clone();
    let want = expected.clone();
    wait_until("every copy's resource exactly once", move || {
        copies(&probe) == want
    })
    .await;
    // And it stays so over further reconcile passes of both nodes: no resource was deleted
    // and re-created on the way (a race between a pass and a save would show here).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(copies(&api), expected);
    let churn: Vec<Value> = api
        .list(EVENTS)
        .into_iter()
        .filter(|e| e["reason"] == "ETCDSnapshotDeleted")
        .collect();
    assert!(churn.is_empty(), "{churn:#?}");
    // Each S3 resource names its uploader; the nodes agree on it (no second resource appeared).
    for r in api.list(FILES) {
        let snapshot = r["spec"]["snapshotName"].as_str().unwrap();
        let uploader = if snapshot.contains("-n1-") {
            "n1"
        } else {
            "n2"
        };
        assert_eq!(r["spec"]["nodeName"], uploader, "{r:#}");
    }

    // A file removed by hand on n2 loses its local resource; n1's and the S3 ones stay.
    let gone = names.iter().find(|n| n.contains("-n2-")).unwrap().clone();
    std::fs::remove_file(snapshot_dir(&servers[1].0).join(&gone)).unwrap();
    let mut want = expected.clone();
    want.remove(&("n2".to_string(), gone));
    let probe = api.clone();
    wait_until("the removed file's resource to go", move || {
        copies(&probe) == want
    })
    .await;
}

/// The S3 resource of `snapshot`, if there is one.
fn s3_resource_of(api: &KubeApi, snapshot: &str) -> Option<Value> {
    resources_of(api, snapshot)
        .into_iter()
        .find(|r| r["metadata"]["labels"][STORAGE_LABEL] == "s3")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_resources_keep_their_metadata_without_the_local_copy_on_every_node() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let s3 = S3Server::start(Tls::Plain).await;
    s3.create_bucket("shared");
    let dir = tempfile::tempdir().unwrap();
    // Two clusters' views of one bucket: n2 reports to its own API, so every resource it has
    // was computed by n2 alone, from S3.
    let (api1, api2) = (
        Arc::new(KubeApi::start().await),
        Arc::new(KubeApi::start().await),
    );
    let flags = etcd_s3_flags(&s3.addr.to_string(), "shared", "cluster");
    let mut servers = Vec::new();
    for (node, api) in [("n1", &api1), ("n2", &api2)] {
        servers.push(start_kube_server(api, dir.path(), node, &etcd.endpoint, flags.clone()).await);
    }
    api1.put(
        "/api/v1/namespaces/kube-system/configmaps/rke2-etcd-snapshot-extra-metadata",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "rke2-etcd-snapshot-extra-metadata", "namespace": "kube-system"},
            "data": {"team": "platform", "change": "CHG-42"}}),
    );
    let expected = serde_json::json!({"team": "platform", "change": "CHG-42"});
    let out = cli(&servers[0].1, &["save"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let name = created_name(&out);
    let remote = s3_resource_of(&api1, &name).expect("the S3 resource");
    assert_eq!(remote["spec"]["metadata"], expected);

    // The local copy goes, file and metadata file, as local retention would take them.
    let data = &servers[0].0;
    std::fs::remove_file(snapshot_dir(data).join(&name)).unwrap();
    std::fs::remove_file(data.join("server/db/.metadata").join(&name)).unwrap();
    let probe = api1.clone();
    let gone = name.clone();
    wait_until("the local resource to go", move || {
        resources_of(&probe, &gone).len() == 1
    })
    .await;
    let remote = s3_resource_of(&api1, &name).expect("the S3 resource stays");
    assert_eq!(remote["spec"]["metadata"], expected);

    // Re-created from scratch (kept metadata on the old resource proves nothing): the
    // metadata now comes from S3 alone.
    let path = format!("{FILES}/{}", remote["metadata"]["name"].as_str().unwrap());
    assert!(api1.remove(&path));
    let probe = api1.clone();
    let again = name.clone();
    wait_until("n1 re-creates the S3 resource", move || {
        s3_resource_of(&probe, &again).is_some()
    })
    .await;
    let recreated = s3_resource_of(&api1, &name).unwrap();
    assert_eq!(recreated["spec"]["metadata"], expected, "{recreated:#}");

    // n2 never had the local copy nor the ConfigMap, and computes the same resource.
    let probe = api2.clone();
    let shared = name.clone();
    wait_until("n2 mirrors the S3 object", move || {
        s3_resource_of(&probe, &shared).is_some()
    })
    .await;
    let on_n2 = s3_resource_of(&api2, &name).unwrap();
    assert_eq!(on_n2["spec"], recreated["spec"]);
    assert_eq!(on_n2["metadata"]["name"], recreated["metadata"]["name"]);
}
